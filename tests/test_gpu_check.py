"""`cotlab gpu-check`: it refuses without CUDA having done nothing; its pieces give sane numbers on a tiny model on
the CPU (the dry run `--device cpu --size tiny`, end to end through the command line). It has not run on a GPU here."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from cotlab import cli
from cotlab.experiments import gpu_check as gc
from cotlab.experiments.plan import GPUS, GIB, estimate
from cotlab.world import sample_captions


def test_refuses_without_cuda_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_work(*args, **kwargs):
        raise AssertionError("no check may run without a GPU")

    monkeypatch.setattr(gc, "gpu_check", no_work)
    report = tmp_path / "report.json"
    assert cli.main(["gpu-check", "--json", str(report)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cotlab gpu-check: needs a CUDA GPU and found none") and "Nothing was run" in err
    assert not report.exists()
    with pytest.raises(gc.CheckError, match="needs a CUDA GPU"):
        gc.check_device("cuda:0", "janus-pro-1b")


def test_bad_input_is_named(capsys):
    with pytest.raises(ValueError, match="unknown size 'huge'; known: janus-pro-1b, tiny"):
        gc.check_device("cpu", "huge")
    with pytest.raises(ValueError, match="device 'meta': expected cuda, cuda:N or cpu"):
        gc.check_device("meta", "tiny")
    assert cli.main(["gpu-check", "--device", "cpu", "--size", "tiny", "--steps", "0"]) == 2
    assert "steps must be at least 1, got 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_policy():
    return gc.build_policy("tiny", "cpu", seed=0, head_scale=5.0)


def test_sampler_parity_on_a_tiny_model(tiny_policy):
    found = gc.sampler_parity(tiny_policy, sample_captions(3), "fp32")
    assert found["identical_rows"] == found["rows"] == 3 and found["token_agreement"] == 1.0
    assert found["first_difference"] == [None] * 3 and found["passed"]
    assert found["distinct_tokens"] >= 3  # paths that depend on the prompt and the tokens so far, not a constant
    assert found["logprob_max_abs_diff"] < 1e-5
    with pytest.raises(ValueError, match="dtype must be fp32 or bf16"):
        gc.sampler_parity(tiny_policy, sample_captions(3), "fp16")


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_the_kernel_check_agrees_with_plain_log_softmax(dtype):
    found = gc.kernel_check("cpu", images=2, tokens=16, hidden_size=32, codebook_size=300, dtype=dtype)
    for head in ("frozen", "trained"):
        torch_path = found["backends"][f"torch/{head}"]
        assert torch_path["passed"] and torch_path["logprob_max_abs_diff"] < 1e-4
        assert torch_path["grad_max_rel_diff"] < 1e-4 and torch_path["seconds"] > 0
        assert found["backends"][f"triton/{head}"] == {"skipped": "needs CUDA and the triton package"}


def test_brightness_reward_orders_images():
    images = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 0), (128, 128, 128), (255, 255, 255))]
    assert gc.BrightnessReward()(["a", "b", "c"], images).tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_the_cost_model_comparison():
    measured = {"algorithm": "grpo", "prompts_per_step": 8, "num_generations": 4, "prompt_tokens": 20,
                "tiled_logprobs": True, "gradient_checkpointing": True, "sample_batch_images": 256, "beta": 0.01,
                "step_s": 10.0, "peak_gib": 30.0}
    gpu = GPUS["h100-80gb"]
    found = gc.against_cost_model(measured, "janus-pro-1b", gpu, missing_params=375_000_000)
    row = estimate("janus-pro-1b", "grpo", gpu=gpu, prompt_tokens=20, tiled_logprobs=True)
    assert found["estimate_peak_gib"] == pytest.approx(row["total_gib"])
    # GRPO with beta > 0 keeps a reference: the missing parameters' bf16 weights count twice
    assert found["estimate_peak_gib_adjusted"] == pytest.approx(row["total_gib"] - 2 * 2 * 375_000_000 / GIB)
    assert found["peak_ratio"] == pytest.approx(row["total_gib"] / 30.0)
    assert found["step_ratio"] == pytest.approx(row["step_s"] / 10.0)
    cpu_run = {**measured, "peak_gib": None}  # no CUDA allocator statistics: no memory ratio
    assert "peak_ratio" not in gc.against_cost_model(cpu_run, "janus-pro-1b", gpu)


def test_the_cpu_dry_run_end_to_end(tmp_path):
    out = tmp_path / "gpu-check.json"
    command = [sys.executable, "-m", "cotlab", "gpu-check", "--device", "cpu", "--size", "tiny", "--steps", "2",
               "--json", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verdict: passed" in done.stdout and "sampler vs generate" in done.stdout
    report = json.loads(out.read_text())
    assert report["size"] == "tiny" and report["device"] == "cpu" and report["passed"]
    assert [p["dtype"] for p in report["parity"]] == ["fp32", "bf16"]
    assert report["parity"][0]["identical_rows"] == report["parity"][0]["rows"]
    assert 0.5 < report["parity"][1]["token_agreement"] <= 1  # bf16 rounds differently: measured, not required
    assert [k["dtype"] for k in report["kernel"]] == ["fp32", "bf16"]
    assert [r["algorithm"] for r in report["rl"]] == ["grpo", "dpo"]
    for run in report["rl"]:
        assert run["steps"] == 2 and run["mixed_precision"] == "bf16" and run["loss_finite"]
        assert run["step_s"] > 0 and run["images_per_s"] > 0 and run["peak_gib"] is None
        assert run["sampling_s"] + run["update_s"] <= run["step_s"] * 1.01
    assert "cost_model" not in report  # the cost model describes Janus-Pro, not the tiny stand-in
