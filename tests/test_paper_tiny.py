"""The paper tier's path on tiny random stand-ins (`paper-tiny`): the stand-ins load through the real checkpoints'
code, the scale descriptions drive the chapters' runs, and `cotlab reproduce --tier paper-tiny` executes every paper
chapter end to end, so that the paper path cannot silently rot."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from cotlab import rewards
from cotlab.experiments import paper_tier
from cotlab.experiments.stand_ins import BUILDERS, STAND_INS_FILE, build_stand_ins, prompt_words
from cotlab.experiments.studies import chapter_runs
from cotlab.experiments.tiers import NO_BOOK, PAPER_CHAPTERS, TIERS, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
needs_prompts = pytest.mark.skipif(not paper_tier.SHARED_BENCHMARKS.is_dir(),
                                   reason="the official prompt files (../shared/benchmarks) are not here")


def test_scales_are_checked_and_shapeworld_adds_nothing():
    shapeworld = {"world": "shapeworld"}
    assert not paper_tier.is_benchmarks(shapeworld) and not paper_tier.is_benchmarks(None)
    assert paper_tier.rl_fields(shapeworld) == {} and paper_tier.eval_options(shapeworld) == {}
    assert paper_tier.reward_fields(shapeworld, {"name": "hps"}) == {"name": "hps"}
    assert paper_tier.base_policy(shapeworld, "default") == "default"
    with pytest.raises(ValueError, match="'world' one of shapeworld, benchmarks"):
        paper_tier.check_scale({"world": "mars"})
    with pytest.raises(ValueError, match="unknown keys"):
        paper_tier.check_scale({"world": "shapeworld", "bogus": 1})
    tiny = notebook_parameters("03_grpo_vs_dpo", "paper-tiny")["scale"]
    with pytest.raises(ValueError, match="not an RL preset"):
        paper_tier.check_scale({**tiny, "policy": "janus-pro-99b"})


def test_every_tier_names_its_scale_and_the_paper_tier_runs_janus_pro_on_the_official_protocol():
    assert "paper-tiny" in TIERS and "paper-tiny" in NO_BOOK
    for chapter in PAPER_CHAPTERS[:-1]:
        for tier in ("smoke", "default", "full"):
            assert notebook_parameters(chapter, tier)["scale"] == {"world": "shapeworld"}
        paper = notebook_parameters(chapter, "paper")["scale"]
        assert paper["world"] == "benchmarks" and paper["policy"] == "janus-pro-7b" and not paper["stand_ins"]
        assert (paper["compbench_images"], paper["geneval_images"]) == (10, 4) and paper["variants"] == ["janus-pro-1b"]
        assert notebook_parameters(chapter, "paper-tiny")["scale"]["stand_ins"]
    configs, _, options = chapter_runs("03_grpo_vs_dpo", "paper")
    assert {c.policy for c in configs} == {"deepseek-community/Janus-Pro-7B"}
    assert {c.reward for c in configs} == {"t2i_compbench", "hps", "imagereward", "vlm_judge"}
    metric = [c for c in configs if c.reward == paper_tier.METRIC_REWARD]
    assert {c.categories for c in metric} == {("color", "shape", "texture", "spatial", "non_spatial", "complex")}
    assert {(c.num_generations, c.guidance_scale) for c in configs} == {(4, 5.0)}
    assert {c.num_iterations for c in configs if c.algorithm == "grpo"} == {1}
    assert {c.sampling for c in configs if c.algorithm == "dpo" and c.reward != "t2i_compbench"} == {"offline"}
    assert options["scale"]["world"] == "benchmarks"


def test_stand_ins_are_built_once_per_directory_and_load_through_the_real_loaders(tmp_path):
    built = build_stand_ins(tmp_path)
    assert set(built) == set(BUILDERS) and (tmp_path / STAND_INS_FILE).is_file()
    stamp = (built["hps"] / "HPS_v2.1_compressed.pt").stat().st_mtime_ns
    assert build_stand_ins(tmp_path) == built  # cached: nothing rebuilt
    assert (built["hps"] / "HPS_v2.1_compressed.pt").stat().st_mtime_ns == stamp
    prompts, images = ["a red car", "two dogs"], [Image.new("RGB", (32, 32), (200, 0, 0))] * 2
    for name, options in (("hps", {"path": built["hps"]}), ("imagereward", {"path": built["imagereward"]}),
                          ("vlm_judge", {"path": built["judge"], "max_new_tokens": 2, "dtype": "float32"})):
        scores = rewards.get(name, **options)(prompts, images)
        assert scores.shape == (2,) and scores.isfinite().all()


@needs_prompts
def test_the_stand_in_policy_reads_every_official_prompt(tmp_path):
    words = prompt_words(paper_tier.SHARED_BENCHMARKS)
    assert {"bench", "photo", "giraffe"} <= set(words)
    from cotlab.experiments.stand_ins import tiny_janus_pro
    from cotlab.policy import JanusPolicy

    policy = JanusPolicy.from_pretrained(tiny_janus_pro(tmp_path / "janus", words=words))
    ids, _ = policy.encode_prompts(["a photo of a bench and a giraffe, next to a toothbrush."])
    assert (ids != policy.unk_id).all()


@pytest.mark.slow
@needs_prompts
def test_reproduce_paper_tiny_executes_every_paper_chapter(tmp_path, monkeypatch):
    """`cotlab reproduce --tier paper-tiny`: the run graph (Janus-Pro-format RL runs under HPS, ImageReward and the
    judge, benchmark evaluations), then every paper chapter with papermill, and no book."""
    from cotlab.experiments.reproduce import reproduce

    runs = tmp_path / "runs"
    monkeypatch.setenv("COTLAB_RUNS", str(runs))
    out = reproduce("paper-tiny", root=ROOT, build_dir=tmp_path / "_build")
    assert out == tmp_path / "_build" / "book_src" / "notebooks"
    assert not (tmp_path / "_build" / "html").exists()
    for chapter in PAPER_CHAPTERS:
        executed = nbformat.read(out / f"{chapter}.ipynb", as_version=4)
        code = [c for c in executed.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), f"{chapter}: a code cell did not run"
        text = json.dumps([c.outputs for c in code])
        assert "RANDOM stand-ins" in text, f"{chapter}: no banner saying its numbers mean nothing"
    cards = [json.loads(p.read_text()) for p in runs.glob("evaluation/*/eval_card.json")]
    assert cards and all(card["stand_ins"] and "mean nothing" in card["warning"] for card in cards)
    evaluation = next(runs.glob("evaluation/*/seed-0"))  # the official harnesses' layouts, written alongside
    assert (evaluation / "geneval" / "00000" / "metadata.jsonl").is_file()
    assert list((evaluation / "t2i-compbench" / "color" / "samples").glob("*_000000.png"))
    assert json.loads((runs / "findings-paper-tiny.json").read_text())  # in the store, never beside the book's
    trained = {json.loads(p.read_text())["config"]["reward"] for p in runs.glob("rl/*/run.json")}
    assert trained == {"t2i_compbench", "hps", "imagereward", "vlm_judge"}


@needs_prompts
def test_the_metric_reward_is_each_prompts_category_score_and_refuses_what_it_cannot_score(tmp_path, monkeypatch):
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path))  # the stand-ins are built in the run store
    from cotlab.evaluation.t2i_compbench import CompBenchScorer
    from cotlab.prompt_files import load_compbench

    tiny = notebook_parameters("03_grpo_vs_dpo", "paper-tiny")["scale"]
    options = paper_tier.reward_fields(tiny, {"name": paper_tier.METRIC_REWARD})
    rm = rewards.get(options.pop("name"), **options)
    shared = paper_tier.SHARED_BENCHMARKS / "t2i-compbench"
    colour = load_compbench(shared, "color", "train")[0].prompt
    spatial = load_compbench(shared, "spatial", "train")[0].prompt
    images = [Image.new("RGB", (32, 32), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
    scores = rm([colour, spatial], images)
    assert scores.shape == (2,) and scores.isfinite().all()
    assert scores[0].item() == pytest.approx(rm.scorer("color", [colour], images[:1]).item(), abs=1e-6)
    assert isinstance(rm.scorer, CompBenchScorer)
    numeracy = load_compbench(shared, "numeracy", "train")[0].prompt
    with pytest.raises(ValueError, match="in none of the T2I-CompBench categories it scores"):
        rm([numeracy], images[:1])
