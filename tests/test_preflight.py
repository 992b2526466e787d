"""The paper tier's preflight: what is missing with the commands that fetch it, the cost model's verdict on fake GPU
lists, and `cotlab reproduce --tier paper [--check]` refusing on a machine without a GPU, having run and written
nothing."""
from pathlib import Path

import pytest
import torch

from cotlab import cli
from cotlab.experiments import preflight as pf
from cotlab.experiments.plan import GPUS, GPUSpec, estimate
from cotlab.training import preset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
H100 = GPUS["h100-80gb"]
GPU_24GB = GPUSpec("24gb-card", 24.0, H100.bf16_tflops, H100.hbm_tbps, H100.nvlink_gbps)


def needs(tmp_path, **environ):
    return pf.paper_needs(tmp_path, environ=environ, cache=tmp_path / "hub")


def complete(need: pf.Need) -> list[str]:
    """File names that satisfy every entry of `need` (the first alternative of each, patterns made concrete)."""
    return [p.strip().replace("*", "model") for entry in need.files for p in entry.split("|")[0].split("+")]


def everything(tmp_path):
    listed = needs(tmp_path, COTLAB_T2I_COMPBENCH="/data/cb", COTLAB_GENEVAL="/data/ge")
    return listed, {need.name: complete(need) for need in listed}


def test_every_missing_file_is_listed_with_its_command_and_place(tmp_path):
    listed = needs(tmp_path)
    report = pf.assess(listed, pf.Facts(gpus=(H100,) * 8, files={}, packages={"deepspeed"}))
    text = pf.format_preflight(report)
    assert not report.ok
    by_name = {need.name: (need, missing) for need, missing in report.needs}
    assert set(by_name) >= {"Janus-Pro-7B", "Janus-Pro-1B", "HPS v2.1", "ImageReward", "UnifiedReward",
                            "Mask2Former Swin-S", "CLIP ViT-L/14", "BLIP-VQA", "CLIP ViT-B/32",
                            "T2I-CompBench prompts", "GenEval prompts"}
    for name, command, place in (
            ("Janus-Pro-7B", "hf download deepseek-community/Janus-Pro-7B",
             tmp_path / "hub" / "models--deepseek-community--Janus-Pro-7B"),
            ("HPS v2.1", "hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir", tmp_path / "checkpoints/HPSv2.1"),
            ("ImageReward", "hf download THUDM/ImageReward ImageReward.pt med_config.json",
             tmp_path / "checkpoints/ImageReward"),
            ("UnifiedReward", "hf download CodeGoat24/UnifiedReward-qwen-7b", None),
            ("T2I-CompBench prompts", "git clone --depth 1 https://github.com/Karine-Huang/T2I-CompBench", None),
            ("GenEval prompts", "export COTLAB_GENEVAL=", None)):
        need, missing = by_name[name]
        assert missing and any(c.startswith(command) for c in need.commands), name
        assert f"$ {command}" in text
        if place is not None:
            assert need.location == str(place) and f"at {place}" in text
    missing_names = report.problems[0]
    assert "Janus-Pro-7B" in missing_names and "Janus-Pro-1B" not in missing_names  # the 1B variant is optional
    assert "optional Janus-Pro-1B" in " ".join(text.split())


def test_a_partial_checkpoint_names_what_it_lacks(tmp_path):
    listed = needs(tmp_path)
    imagereward = next(n for n in listed if n.name == "ImageReward")
    assert pf.missing_files(imagereward, ["ImageReward.pt", "vocab.txt"]) == ["med_config.json"]
    assert pf.missing_files(imagereward, ["ImageReward.pt", "med_config.json", "tokenizer.json"]) == []
    hps = next(n for n in listed if n.name == "HPS v2.1")
    assert pf.missing_files(hps, ["HPS_v2.1_compressed.pt", "vocab.json"]) == [
        "tokenizer.json | vocab.json + merges.txt"]
    janus = next(n for n in listed if n.name == "Janus-Pro-7B")
    assert pf.missing_files(janus, ["config.json", "model-00001-of-00003.safetensors"]) == []
    assert pf.missing_files(janus, ["config.json"]) == ["*.safetensors | *.bin"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="the official prompt files (../shared/benchmarks) are not here")
def test_the_survey_reads_real_prompt_files_and_the_hub_cache_layout(tmp_path):
    snapshot = tmp_path / "hub" / "models--deepseek-community--Janus-Pro-7B" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    listed = needs(tmp_path, COTLAB_T2I_COMPBENCH=str(SHARED / "t2i-compbench"), COTLAB_GENEVAL=str(SHARED / "geneval"))
    facts = pf.survey(listed, cache=tmp_path / "hub")
    checked = dict((need.name, missing) for need, missing in pf.assess(listed, facts).needs)
    assert checked["Janus-Pro-7B"] == [] and checked["GenEval prompts"] == []
    # the shared copy holds the 16 category files but not the two 3-in-1 lists of the official dataset folder
    assert checked["T2I-CompBench prompts"] == ["complex_val_spatial.txt", "complex_val_action.txt"]
    assert "HPS v2.1" not in facts.files  # no directory: nothing found there


def test_prompt_files_in_place_but_no_variable_ask_only_for_the_export(tmp_path):
    listed = needs(tmp_path)  # neither variable set: the default places under the root
    compbench = next(n for n in listed if n.name == "T2I-CompBench prompts")
    report = pf.assess(listed, pf.Facts(files={compbench.name: complete(compbench)}))
    text = pf.format_preflight(report)
    block = text[text.index("T2I-CompBench prompts"):text.index("GenEval prompts")]
    assert "lacks" not in block and "git clone" not in block
    assert f"$ export COTLAB_T2I_COMPBENCH={compbench.location}" in block
    assert "T2I-CompBench prompts" in report.problems[0]


def test_eight_80gb_gpus_with_everything_present_are_ready(tmp_path):
    listed, files = everything(tmp_path)
    report = pf.assess(listed, pf.Facts(gpus=(H100,) * 8, files=files, packages={"deepspeed"}))
    assert report.ok and report.problems == []
    assert report.setup["strategy"] == "zero2" and report.setup["accelerate_config"].endswith("zero2_8gpu.yaml")
    grpo = estimate("janus-pro-7b", "grpo", num_gpus=8, strategy="zero2", gpu=H100, tiled_logprobs=True)
    run = report.setup["presets"][0]
    assert run["fits"] and run["peak_gib"] == pytest.approx(grpo["total_gib"])
    assert run["gpu_hours"] == pytest.approx(grpo["step_s"] * 1600 * 8 / 3600)
    assert pf.format_preflight(report).splitlines()[-1].startswith("Verdict: ready")
    # ZeRO-2 is DeepSpeed's: without the package the launch would fail, so the preflight says so
    without = pf.assess(listed, pf.Facts(gpus=(H100,) * 8, files=files))
    assert not without.ok and without.problems == ["zero2 needs the deepspeed package: pip install deepspeed"]


def test_one_24gb_gpu_is_refused_with_what_would_fit(tmp_path):
    listed, files = everything(tmp_path)
    report = pf.assess(listed, pf.Facts(gpus=(GPU_24GB,), files=files, packages={"deepspeed"}))
    assert not report.ok
    assert report.problems[0].startswith("janus-pro-7b does not fit on 1 x 24gb-card")
    one_b = [s for s in report.suggestions if s.startswith("janus-pro-1b")]
    assert one_b and "num_gpus=8" in one_b[0] and "zero" in one_b[0]  # more GPUs with ZeRO
    text = pf.format_preflight(report)
    assert "REFUSED" in text and "What would fit" in text


def test_one_80gb_gpu_suggests_the_1b_variant(tmp_path):
    listed, files = everything(tmp_path)
    report = pf.assess(listed, pf.Facts(gpus=(H100,), files=files))
    assert not report.ok and report.setup["strategy"] == "ddp"
    assert any(s.startswith("janus-pro-1b (preset janus-pro-1b) fits on 1 x h100-80gb with ddp")
               for s in report.suggestions)


def test_gpu_hours_per_chapter_from_the_planned_runs(tmp_path):
    listed, files = everything(tmp_path)
    grpo = preset("janus-pro-7b", "grpo", max_steps=100)
    dpo = preset("janus-pro-7b", "dpo", max_steps=100, rounds=2)
    runs = [pf.PlannedRun("03_grpo_vs_dpo", "janus-pro-7b", grpo), pf.PlannedRun("03_grpo_vs_dpo", "janus-pro-7b", dpo),
            pf.PlannedRun("05_samples_per_prompt", None, preset("smoke", "grpo"))]
    evaluations = [("03_grpo_vs_dpo", "janus-pro-7b"), ("05_samples_per_prompt", None)]
    report = pf.assess(listed, pf.Facts(gpus=(H100,) * 8, files=files, packages={"deepspeed"}), runs, evaluations,
                       chapters=["01_base_model", "03_grpo_vs_dpo", "05_samples_per_prompt"])
    rows = {row["chapter"]: row for row in report.chapters}
    assert list(rows) == ["01_base_model", "03_grpo_vs_dpo", "05_samples_per_prompt"]
    assert rows["01_base_model"]["gpu_hours"] == 0 and rows["05_samples_per_prompt"]["gpu_hours"] == 0
    assert rows["05_samples_per_prompt"]["cpu_runs"] == 1 and rows["05_samples_per_prompt"]["gpu_runs"] == 0
    ch3 = rows["03_grpo_vs_dpo"]
    assert (ch3["gpu_runs"], ch3["gpu_evaluations"], ch3["fits"]) == (2, 1, True)
    steps = sum(estimate("janus-pro-7b", c.algorithm, num_gpus=8, strategy="zero2", gpu=H100, tiled_logprobs=True,
                         **({"beta": c.beta} if c.algorithm == "grpo" else {}))["step_s"] * c.max_steps * c.rounds
                for c in (grpo, dpo)) * 8 / 3600
    assert steps < ch3["gpu_hours"] < steps + 100  # plus one evaluation of 20,212 images
    assert report.setup["sized"] == "the chapters' Janus-Pro runs"
    assert "03_grpo_vs_dpo" in pf.format_preflight(report)


def test_reproduce_check_refuses_without_a_gpu_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)

    def no_work(*args, **kwargs):
        raise AssertionError("the preflight refused: nothing may run")

    monkeypatch.setattr("cotlab.experiments.reproduce.reproduce", no_work)
    for extra in (["--check"], []):  # the report alone, and the start of a real run
        code = cli.main(["reproduce", "--tier", "paper", "--root", str(ROOT), "--build-dir", str(tmp_path / "_build"),
                         "--chapter", "03_grpo_vs_dpo", *extra])
        out = capsys.readouterr().out
        assert code == 1
        assert "Verdict: REFUSED" in out and "no CUDA GPU found" in out and "hf download" in out
        assert "03_grpo_vs_dpo" in out  # the chapter's row in the cost table
        assert list(tmp_path.iterdir()) == []  # no build dir, no run store, no cache: nothing written


def test_check_belongs_to_the_paper_tier(capsys):
    assert cli.main(["reproduce", "--tier", "default", "--check"]) == 2
    err = capsys.readouterr().err
    assert "--check is the paper tier's preflight" in err and "--tier paper" in err
