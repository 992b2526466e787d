"""The scale a chapter runs at: ShapeWorld, or the paper's benchmarks (Janus-Pro, the paper's reward models, the
official prompts and the benchmarks' scorers), with tiny random stand-ins in the `paper-tiny` tier.

Chapters 1-7 take a `scale` parameter, a dict (`cotlab.experiments.tiers` holds one per tier):

    {"world": "shapeworld"}                              smoke, default, full: everything as before
    {"world": "benchmarks", "policy": "janus-pro-7b",     paper: the RL preset whose checkpoint is the policy and whose
     "variants": ["janus-pro-1b"], "stand_ins": False,    settings the runs take (group 4, mu 1, offline DPO, CFG 5),
     "compbench_images": 10, "geneval_images": 4,         the evaluation protocol (T2I-CompBench val, 10 images per
     "rl": {}}                                            prompt; GenEval, 4), RL fields over the preset's
    the same with "stand_ins": True                       paper-tiny: every checkpoint replaced by a tiny random
                                                          stand-in in its published format (`stand_ins`), the
                                                          official prompt files from ../shared/benchmarks, a few steps

The functions here are what the chapters call where the two worlds differ; a chapter passes its `scale` and does not
look at its tier. At benchmark scale:

* RL runs are the chapter's own configs (`studies`) with `rl_fields(scale)` (the policy checkpoint, the training
  prompt files, the scale's RL fields) and each reward given its checkpoint (`reward_fields`), run and cached through
  the run store like every other run (`rl.rl_run`, the executor's nodes);
* evaluations (`benchmark_scores`, reached through `rl.evaluation_scores` when the evaluation options carry the scale)
  write each policy's images in the official harness layouts (`benchmarks.write_generations`) and score them with the
  transformers scorers (`GenEvalScorer`, `CompBenchScorer`), as rows of the same shape as ShapeWorld's, so that every
  table, plot and verdict of the chapters reads them unchanged. T2I-CompBench's numeracy and 3d_spatial have no
  transformers scorer (they need UniDet); they are left out here and scored with the official harness on the folders.

Nothing is ever scored with random weights outside `paper-tiny`: only a scale with "stand_ins": True builds them, and
`banner(scale)` and every evaluation's card say that its numbers mean nothing.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from cotlab import rewards, world
from cotlab.evaluation import guidance_sweep as shapeworld_sweep
from cotlab.evaluation import image_bootstrap_se
from cotlab.evaluation.benchmarks import policy_sampler, write_generations
from cotlab.evaluation.geneval import GENEVAL_CLIP_CHECKPOINT, GenEvalScorer
from cotlab.evaluation.t2i_compbench import (BLIP_VQA_CHECKPOINT, COMPBENCH_CLIP_CHECKPOINT, COMPBENCH_METRICS,
                                            CompBenchScorer)
from cotlab.evaluation.vision import MASK2FORMER_CHECKPOINT
from cotlab.experiments.calibration import arm_settings
from cotlab.experiments.calibration import provenance as shapeworld_provenance
from cotlab.experiments.preflight import ENV_COMPBENCH, ENV_GENEVAL
from cotlab.experiments.reward_eval import Samples
from cotlab.experiments.reward_eval import sample_base as shapeworld_sample_base
from cotlab.experiments.rl import SUITES, evaluation_scores, rl_run
from cotlab.experiments.rl import policy_samples as shapeworld_samples
from cotlab.experiments.stand_ins import build_stand_ins
from cotlab.policy import JanusPolicy
from cotlab.policy.pretrain import base_policy as shapeworld_base
from cotlab.prompt_files import COMPBENCH_CATEGORIES as BENCHMARK_CATEGORIES
from cotlab.prompt_files import load_compbench, load_geneval
from cotlab.rewards.real import JUDGE_CHECKPOINT, check_inputs
from cotlab.store import RunStore, code_version
from cotlab.training import PRESETS, load_policy
from cotlab.world import COMPBENCH_CATEGORIES as SHAPEWORLD_CATEGORIES

WORLDS = ("shapeworld", "benchmarks")
SCALE_KEYS = {"world", "policy", "variants", "stand_ins", "compbench_images", "geneval_images", "rl"}
SHAPEWORLD = {"world": "shapeworld"}
#: Where the official prompt files are for the stand-ins (the repository's sibling ../shared/benchmarks).
SHARED_BENCHMARKS = Path(__file__).resolve().parents[3] / "shared" / "benchmarks"
# T2I-CompBench reports scores, not verdicts; `accuracy` on it (the tables' second metric) is the fraction of images
# scoring at least this (as ShapeWorld's CompBench-style suite reports both).
COMPBENCH_PASS = 0.5
STAND_IN_TEST_SCALE = (64, 48)  # the stand-in detector's input size (mmdetection's is (1333, 800))
#: The paper's three learned reward families, as chapter reward dicts (their checkpoints: `reward_fields`).
PAPER_REWARDS = [{"name": "hps"}, {"name": "imagereward"}, {"name": "vlm_judge"}]
#: The benchmark's own metric as an RL reward (`CompBenchMetric`), the paper tier's "metric" reward.
METRIC_REWARD = "t2i_compbench"
STAND_IN_NOTE = ("**paper-tiny: every number below comes from tiny RANDOM stand-ins** of Janus-Pro, the reward models "
                 "and the benchmarks' scorers, on a few official prompts with one image each. It checks that the paper "
                 "tier's code path runs end to end; the numbers mean nothing.")


def check_scale(scale) -> dict:
    """`scale` if it is a valid scale dict (see the module docstring), else a ValueError naming the problem."""
    if not isinstance(scale, dict) or scale.get("world") not in WORLDS:
        raise ValueError(f"scale must be a dict with 'world' one of {', '.join(WORLDS)}; got {scale!r}")
    unknown = set(scale) - SCALE_KEYS
    if unknown:
        raise ValueError(f"scale has unknown keys {sorted(unknown)}; known: {', '.join(sorted(SCALE_KEYS))}")
    if scale["world"] == "benchmarks":
        missing = SCALE_KEYS - set(scale)
        if missing:
            raise ValueError(f"a benchmarks scale needs {sorted(missing)}; got {scale!r}")

        for name in (scale["policy"], *scale["variants"]):
            if name not in PRESETS:
                raise ValueError(f"scale policy {name!r} is not an RL preset; known: {', '.join(PRESETS)}")
    return scale


def is_benchmarks(scale) -> bool:
    """Whether `scale` runs the paper's benchmarks (else ShapeWorld)."""
    return scale is not None and check_scale(scale)["world"] == "benchmarks"


# -- where things are ---------------------------------------------------------------------------------------------

def stand_ins_dir() -> Path:
    """Where the stand-ins are built: under the run store (`$COTLAB_RUNS` or ./runs), so that every chapter and every
    executor worker of a book shares one set."""
    return RunStore().root / "stand-ins"


def prompt_dirs(scale) -> tuple[Path, Path]:
    """(T2I-CompBench's prompt directory, GenEval's evaluation_metadata.jsonl directory): ../shared/benchmarks for
    the stand-ins, else where the preflight looks ($COTLAB_T2I_COMPBENCH, $COTLAB_GENEVAL, or under ./benchmarks)."""
    if check_scale(scale)["stand_ins"]:
        return SHARED_BENCHMARKS / "t2i-compbench", SHARED_BENCHMARKS / "geneval"
    return (Path(os.environ.get(ENV_COMPBENCH) or "benchmarks/T2I-CompBench/examples/dataset"),
            Path(os.environ.get(ENV_GENEVAL) or "benchmarks/geneval/prompts"))


def checkpoints(scale) -> dict[str, str]:
    """Role -> checkpoint (a directory or a hub id) at `scale`: policy (and each variant's preset name -> its
    checkpoint), hps, imagereward, judge, mask2former, geneval_clip, compbench_clip, blip_vqa. The stand-ins are
    built on first use (`stand_ins.build_stand_ins`, cached per directory)."""
    scale = check_scale(scale)
    if scale["stand_ins"]:
        built = {k: str(v) for k, v in build_stand_ins(stand_ins_dir(), SHARED_BENCHMARKS).items()}
        found = {"policy": built["policy"], "hps": built["hps"], "imagereward": built["imagereward"],
                 "judge": built["judge"], "mask2former": built["mask2former"], "geneval_clip": built["clip"],
                 "compbench_clip": built["clip"], "blip_vqa": built["blip_vqa"]}
        return found | {name: built["policy"] for name in (scale["policy"], *scale["variants"])}
    return {"policy": PRESETS[scale["policy"]]["shared"]["policy"], "hps": "checkpoints/HPSv2.1",
            "imagereward": "checkpoints/ImageReward", "judge": JUDGE_CHECKPOINT, "mask2former": MASK2FORMER_CHECKPOINT,
            "geneval_clip": GENEVAL_CLIP_CHECKPOINT, "compbench_clip": COMPBENCH_CLIP_CHECKPOINT,
            "blip_vqa": BLIP_VQA_CHECKPOINT,
            **{name: PRESETS[name]["shared"]["policy"] for name in (scale["policy"], *scale["variants"])}}


# -- RL runs --------------------------------------------------------------------------------------------------------

def rl_fields(scale) -> dict:
    """RL config fields over the preset's at `scale`: none for ShapeWorld; at benchmark scale the scale's `rl` fields,
    and with stand-ins the stand-in policy and the official training prompt files of ../shared/benchmarks (the paper
    tier keeps its preset's: Janus-Pro from the hub cache, prompts "t2i-compbench" from $COTLAB_T2I_COMPBENCH)."""
    if not is_benchmarks(scale):
        return {}
    fields = dict(scale["rl"])
    if scale["stand_ins"]:
        fields |= {"policy": checkpoints(scale)["policy"], "prompts": str(prompt_dirs(scale)[0])}
    return fields


def base_policy(scale, base: str) -> str:
    """The RL config's `policy` for a chapter's base: ShapeWorld's base-policy tier as it is; at benchmark scale an RL
    preset name (the scale's policy or a variant, e.g. "janus-pro-1b") becomes its checkpoint."""
    if not is_benchmarks(scale):
        return base
    found = checkpoints(scale)
    if base not in (scale["policy"], *scale["variants"]):
        raise ValueError(f"base {base!r} is not this scale's policy or a variant ({scale['policy']}, "
                         f"{', '.join(scale['variants'])})")
    return found[base]


def reward_fields(scale, reward: dict) -> dict:
    """A chapter's reward dict with its checkpoint at `scale` (the paper's reward models: `path`; the judge, a short
    answer with the stand-ins); ShapeWorld's rewards and options already given are left as they are."""
    if not is_benchmarks(scale) or reward["name"] not in ("hps", "imagereward", "vlm_judge", METRIC_REWARD):
        return dict(reward)
    found = checkpoints(scale)
    if reward["name"] == METRIC_REWARD:
        return {"prompts": str(prompt_dirs(scale)[0]), "blip_path": found["blip_vqa"],
                "clip_path": found["compbench_clip"], "detector_path": found["mask2former"],
                "stand_ins": bool(scale["stand_ins"]), **reward}
    extra = {"path": found[{"vlm_judge": "judge"}.get(reward["name"], reward["name"])]}
    if reward["name"] == "vlm_judge" and scale["stand_ins"]:
        extra |= {"max_new_tokens": 4, "dtype": "float32"}
    return {**extra, **reward}


def reward_run_fields(scale, reward: dict) -> dict:
    """RL config fields a reward needs beyond its own options: the metric reward trains on the T2I-CompBench categories
    it can score (`CompBenchMetric`); nothing for the others."""
    if is_benchmarks(scale) and reward["name"] == METRIC_REWARD:
        return {"categories": tuple(COMPBENCH_METRICS)}
    return {}


class CompBenchMetric:
    """T2I-CompBench's own metric as an RL reward (the paper tier's metric reward, as ShapeWorld's exact scorer is
    ShapeWorld's): a prompt's reward is its category's score (`CompBenchScorer`: BLIP-VQA, CLIPScore, the spatial
    score or 3-in-1), the category found by the prompt's line in the official files under `prompts` (train, then val).
    A prompt of no scored category (numeracy and 3d_spatial need UniDet) is refused: train on `COMPBENCH_METRICS`'s
    categories (`reward_run_fields`). `stand_ins`: sized for the stand-ins' 32 px images (the paper-tiny tier only)."""

    def __init__(self, prompts, blip_path, clip_path, detector_path, *, stand_ins: bool = False,
                 device: str = "cpu", dtype="float32", name: str = METRIC_REWARD):
        self.name, self.category = name, {}
        for split in ("train", "val"):
            for category in COMPBENCH_METRICS:
                for p in load_compbench(prompts, category, split, expected=None):
                    self.category.setdefault(p.prompt, category)
        self.scorer = CompBenchScorer.from_pretrained(list(COMPBENCH_METRICS), blip_path=blip_path,
                                                      clip_path=clip_path, detector_path=detector_path, device=device,
                                                      dtype=dtype, local_files_only=stand_ins)
        if stand_ins:
            self.scorer.blip.image_size = None
            self.scorer.spatial.detector.test_scale = STAND_IN_TEST_SCALE

    def __call__(self, prompts, images, metadata=None):
        check_inputs(self.name, prompts, images)
        unknown = [p for p in prompts if p not in self.category]
        if unknown:
            raise ValueError(f"reward model {self.name!r}: prompt {unknown[0]!r} is in none of the T2I-CompBench "
                             f"categories it scores ({', '.join(sorted(set(self.category.values())))}); train on "
                             f"those categories (RL config categories=...)")
        out = torch.zeros(len(prompts))
        for category in dict.fromkeys(self.category[p] for p in prompts):
            rows = [i for i, p in enumerate(prompts) if self.category[p] == category]
            out[rows] = self.scorer(category, [prompts[i] for i in rows], [images[i] for i in rows]).float().cpu()
        return out


def _register_metric_reward() -> None:
    """Make `cotlab.rewards.get(METRIC_REWARD, ...)` build a `CompBenchMetric` (the trainers find rewards by name; the
    metric is registered here, since the rewards room comes before the evaluation room it scores with)."""
    if METRIC_REWARD not in rewards.available():
        rewards.register(METRIC_REWARD, CompBenchMetric)


_register_metric_reward()


def eval_options(scale) -> dict:
    """What a chapter adds to `before_after`'s evaluation options: nothing for ShapeWorld (its store keys stay as they
    were), the scale at benchmark scale (`rl.evaluation_scores` then calls `benchmark_scores`)."""
    return {"scale": check_scale(scale)} if is_benchmarks(scale) else {}


# -- evaluation -----------------------------------------------------------------------------------------------------

def _compbench_categories() -> list[str]:
    return list(COMPBENCH_METRICS)  # numeracy and 3d_spatial need UniDet: the official harness scores them


def benchmark_prompts(scale, prompts_per_category: int | None):
    """(T2I-CompBench val prompts of every category cotlab scores, GenEval prompts): the first `prompts_per_category`
    of each category and of each GenEval task (None: all; the paper tier's 300 per category and 553)."""
    compbench_dir, geneval_dir = prompt_dirs(scale)
    compbench = [p for c in _compbench_categories() for p in load_compbench(compbench_dir, c, "val")
                 [:prompts_per_category]]
    geneval, per_task = [], {}
    for p in load_geneval(geneval_dir):
        per_task[p.tag] = per_task.get(p.tag, 0) + 1
        if prompts_per_category is None or per_task[p.tag] <= prompts_per_category:
            geneval.append(p)
    return compbench, geneval


def _scorers(scale, suites):
    found, out = checkpoints(scale), {}
    if "compbench" in suites:
        out["compbench"] = CompBenchScorer.from_pretrained(
            _compbench_categories(), blip_path=found["blip_vqa"], clip_path=found["compbench_clip"],
            detector_path=found["mask2former"], local_files_only=scale["stand_ins"])
    if "geneval" in suites:
        out["geneval"] = GenEvalScorer.from_pretrained(found["mask2former"], found["geneval_clip"],
                                                       local_files_only=scale["stand_ins"])
    if scale["stand_ins"]:  # sized for the stand-ins' 32 px images (the real scorers resize to 480 and 1333 x 800)
        if "compbench" in out:
            out["compbench"].blip.image_size = None
            out["compbench"].spatial.detector.test_scale = STAND_IN_TEST_SCALE
        if "geneval" in out:
            out["geneval"].detector.test_scale = STAND_IN_TEST_SCALE
    return out


def card(scale, name: str, *, seeds, guidance_scale: float, temperature: float, prompts: dict) -> dict:
    """The eval card of a benchmark evaluation (as ShapeWorld's `EvalCard`, with the checkpoints and a warning)."""
    return {"policy": name, "world": "benchmarks", "stand_ins": bool(scale["stand_ins"]),
            "warning": STAND_IN_NOTE if scale["stand_ins"] else "",
            "seeds": list(seeds), "images_per_prompt": {"compbench": scale["compbench_images"],
                                                        "geneval": scale["geneval_images"]},
            "guidance_scale": guidance_scale, "temperature": temperature, "prompts": prompts,
            "scorers": "transformers (cotlab.evaluation.geneval, cotlab.evaluation.t2i_compbench); official layouts "
                       "written alongside for the official harnesses",
            "checkpoints": {k: v for k, v in checkpoints(scale).items()}, "code_version": code_version("cotlab")}


def benchmark_scores(policy_dir, name: str, scale, out: Path, *, suites, prompts_per_category: int | None = None,
                     seeds=(0,), guidance_scale: float = 5.0, temperature: float = 1.0, images_per_prompt=None,
                     progress: bool = True) -> list[dict]:
    """Rows {suite, category, value, continuous, accuracy, se} of the policy at `policy_dir` on the benchmarks:
    "compbench" is T2I-CompBench val (value: the category's mean score, `scale["compbench_images"]` images per
    prompt; accuracy: the fraction of images scoring at least `COMPBENCH_PASS`), "geneval" is GenEval (value: a
    task's accuracy, `scale["geneval_images"]` per prompt), and "overall" the
    mean over categories or tasks, as the benchmarks report them. Images are written under `out` in the official
    layouts (`out/seed-<s>/t2i-compbench/<category>/samples/`, `out/seed-<s>/geneval/<index>/`) for the official
    harnesses, per-image scores to `out/images.csv` and the eval card to `out/eval_card.json`. `images_per_prompt`
    (ShapeWorld's) is not used: the scale's protocol is."""
    scale = check_scale(scale)
    suites = [s for s, _ in suites]
    unknown = [s for s in suites if s not in ("compbench", "geneval")]
    if unknown:
        raise ValueError(f"benchmark evaluations score the suites compbench (T2I-CompBench val) and geneval; got "
                         f"{unknown}")
    compbench, geneval = benchmark_prompts(scale, prompts_per_category)
    policy = JanusPolicy.from_pretrained(policy_dir)
    scorers = _scorers(scale, suites)
    images = []
    for seed in seeds:
        sample = policy_sampler(policy, guidance_scale=guidance_scale, temperature=temperature, seed=seed)
        if "compbench" in suites:
            report = write_generations(sample, compbench, out / f"seed-{seed}" / "t2i-compbench",
                                       images_per_prompt=scale["compbench_images"], progress=progress)
            for folder in report.folders:
                table = scorers["compbench"].score_folder(folder, folder.name, progress=progress)
                images += [{"suite": "compbench", "seed": seed, "category": folder.name, "prompt": r.prompt,
                            "value": float(r.score), "correct": float(r.score >= COMPBENCH_PASS)}
                           for r in table.itertuples()]
        if "geneval" in suites:
            write_generations(sample, geneval, out / f"seed-{seed}" / "geneval",
                              images_per_prompt=scale["geneval_images"], progress=progress)
            table = scorers["geneval"].score_folder(out / f"seed-{seed}" / "geneval", progress=progress)
            images += [{"suite": "geneval", "seed": seed, "category": r.tag, "prompt": r.prompt,
                        "value": float(r.correct), "correct": float(r.correct)} for r in table.itertuples()]
    frame = pd.DataFrame(images)
    frame.to_csv(out / "images.csv", index=False)
    (out / "eval_card.json").write_text(json.dumps(card(scale, name, seeds=seeds, guidance_scale=guidance_scale,
                                                        temperature=temperature,
                                                        prompts={"compbench": len(compbench),
                                                                 "geneval": len(geneval)}), indent=1))
    rows = []
    for suite in suites:
        part = frame[frame["suite"] == suite]
        for category, group in part.groupby("category", sort=False):
            rows.append({"suite": suite, "category": category, "continuous": float(group["value"].mean()),
                         "accuracy": float(group["correct"].mean()), "value": float(group["value"].mean()),
                         "se": float(image_bootstrap_se(group["value"]))})
        table = [r for r in rows if r["suite"] == suite]
        rows.append({"suite": suite, "category": "overall",
                     **{k: float(np.mean([r[k] for r in table])) for k in ("continuous", "accuracy", "value")},
                     "se": float(image_bootstrap_se(part["value"], strata=part["category"]))})
    return rows


# -- what the chapters show -----------------------------------------------------------------------------------------

def description(scale) -> "pd.DataFrame":
    """The scale as a table: the policy, reward models, training prompts and evaluation a chapter uses."""
    scale = check_scale(scale)
    if scale["world"] == "shapeworld":
        rows = {"world": "ShapeWorld (procedural scenes, exact scorer)",
                "policy": "the small Janus trained on ShapeWorld (chapter 1)",
                "reward models": "the metric (the exact scorer) and learned ShapeWorld analogs (chapter 2)",
                "training prompts": "ShapeWorld's T2I-CompBench-style train split",
                "evaluation": "ShapeWorld's ID (CompBench-style val) and OOD (GenEval-style) suites, scored exactly"}
    else:
        compbench, geneval = prompt_dirs(scale)
        rows = {"world": "the paper's benchmarks" + (" on tiny RANDOM stand-ins (numbers mean nothing)"
                                                     if scale["stand_ins"] else ""),
                "policy": f"{scale['policy']} ({checkpoints(scale)['policy']})"
                          + (f"; variants {', '.join(scale['variants'])}" if scale["variants"] else ""),
                "reward models": "HPS v2.1, ImageReward, UnifiedReward (the judge); the benchmarks' scorers measure",
                "training prompts": f"T2I-CompBench's official train files ({compbench})",
                "evaluation": f"T2I-CompBench val ({scale['compbench_images']} images per prompt; the 6 categories "
                              f"with a transformers scorer) and GenEval ({scale['geneval_images']} per prompt, "
                              f"{geneval}); official layouts written alongside",
                "RL fields over the preset": json.dumps(scale["rl"]) if scale["rl"] else "none"}
    return pd.DataFrame({"": list(rows.values())}, index=list(rows)).rename_axis("scale")


def banner(scale) -> str:
    """Markdown a chapter shows first: at benchmark scale what runs (and, with stand-ins, that its numbers mean
    nothing); empty for ShapeWorld."""
    if not is_benchmarks(scale):
        return ""
    if scale["stand_ins"]:
        return STAND_IN_NOTE
    return (f"**Paper scale:** {scale['policy']} with the paper's reward models, trained on T2I-CompBench's official "
            f"train prompts and evaluated on T2I-CompBench val and GenEval with cotlab's transformers scorers (the "
            f"official harnesses can score the image folders each evaluation writes).")


def shapeworld_view(scale, what: str, why: str) -> bool:
    """True at ShapeWorld scale (the chapter shows `what`); at benchmark scale False, after showing why the chapter
    skips it (`why`: what makes it ShapeWorld's only)."""
    if not is_benchmarks(scale):
        return True
    from IPython.display import Markdown, display

    display(Markdown(f"*{what}: a ShapeWorld view, skipped at benchmark scale ({why}).*"))
    return False


def provenance(scale, configs) -> str:
    """Markdown: where the RL settings of a tier that does not calibrate come from."""
    if not is_benchmarks(scale):
        return shapeworld_provenance(configs)
    settings = arm_settings(configs)
    return (f"The runs use the `{scale['policy']}` preset: the paper's settings (group {configs[0].num_generations}, "
            f"mu {configs[0].num_iterations}, offline DPO from the base model's samples, CFG "
            f"{configs[0].guidance_scale:g}) and T2I-R1's where the paper is silent ({settings}; "
            f"{configs[0].max_steps} steps). No calibration grid runs at this scale.")


def policy_samples(scale, runs: dict, count: int, *, seed: int = 0) -> tuple[list, list[str]]:
    """One image per prompt for `count` prompts spread over the out-of-domain suite, from the base and each run of
    `runs` (name -> config): ShapeWorld's GenEval-style prompts titled by the exact scorer (`rl.policy_samples`), or
    GenEval's official prompts titled by the prompt."""
    if not is_benchmarks(scale):
        return shapeworld_samples(runs, world.evenly_spaced(world.load_suite("geneval"), count), seed=seed)

    every = load_geneval(prompt_dirs(scale)[1])
    prompts = [every[int(i)].prompt for i in np.linspace(0, len(every) - 1, count).round()]
    first = next(iter(runs.values()))
    policies = {"base": load_policy(first.policy)}
    policies |= {name: JanusPolicy.from_pretrained(rl_run(cfg, progress=False) / "policy")
                 for name, cfg in runs.items()}
    images, titles = [], []
    for name, policy in policies.items():
        images += policy.sample(prompts, 1, guidance_scale=first.guidance_scale,
                                generator=torch.Generator().manual_seed(seed)).images
        titles += [f"{name}: {p}" for p in prompts]
    return images, titles


__all__ = ["PAPER_REWARDS", "SHAPEWORLD", "SHARED_BENCHMARKS", "STAND_IN_NOTE", "banner", "base_policy",
           "benchmark_prompts", "benchmark_scores", "card", "check_scale", "checkpoints", "description",
           "eval_options", "is_benchmarks", "policy_samples", "prompt_dirs", "provenance", "reward_fields",
           "rl_fields", "shapeworld_view", "stand_ins_dir"]


# -- base samples for the reward-model chapters (2 and 4) ----------------------------------------------------------

def load_base(scale, base: str):
    """The base policy a chapter samples: ShapeWorld's base-policy tier `base` (trained once, cached), or at benchmark
    scale the checkpoint of the RL preset `base` (`base_policy`)."""
    if not is_benchmarks(scale):
        return shapeworld_base(base)[0]
    return load_policy(base_policy(scale, base))


@dataclass
class BenchmarkSamples(Samples):
    """`reward_eval.Samples` on the benchmarks: the images themselves, scored by the benchmarks' scorers (value:
    T2I-CompBench's score; correct: GenEval's verdict), and the benchmarks' overall (mean of category scores or
    of task accuracies)."""

    pictures: list = field(default_factory=list, repr=False)

    def images(self) -> list:
        return list(self.pictures)

    def overall(self, pick) -> float:
        rows = np.arange(len(self.prompts))
        per = self.metric()[rows, pick]
        categories = [p.category for p in self.prompts]
        return float(np.mean([per[[c == k for c in categories]].mean() for k in dict.fromkeys(categories)]))


def sample_base(scale, policy, which: str, *, prompts_per_category: int = 20, n: int = 4, seed: int = 0,
                guidance_scale: float = 5.0, progress: bool = True, batch_prompts: int = 8):
    """`n` samples per prompt from `policy` for the first `prompts_per_category` prompts of each category ("id":
    ShapeWorld's CompBench-style val, or T2I-CompBench val) or task ("ood": GenEval-style, or GenEval), scored by the
    world's scorer: `reward_eval.sample_base` at ShapeWorld scale, the benchmarks' transformers scorers otherwise
    (the same `Samples` interface, so `reward_eval`'s measures read both)."""
    if not is_benchmarks(scale):
        return shapeworld_sample_base(policy, which, prompts_per_category=prompts_per_category, n=n, seed=seed,
                                      guidance_scale=guidance_scale, progress=progress)
    if which not in ("id", "ood"):
        raise ValueError(f"unknown suite {which!r}; expected one of id, ood")
    if n < 2:
        raise ValueError(f"n must be at least 2 to compare samples, got {n}")
    compbench, geneval = benchmark_prompts(scale, prompts_per_category)
    scorer = _scorers(scale, ["compbench" if which == "id" else "geneval"])
    chosen = compbench if which == "id" else geneval
    prompts = [SimpleNamespace(text=p.prompt, category=p.category if which == "id" else p.tag,
                               suite="compbench" if which == "id" else "geneval", source=p) for p in chosen]
    generator = torch.Generator(device=policy.device).manual_seed(int(seed))
    images, tokens = [], []
    for start in range(0, len(prompts), batch_prompts):  # a few prompts per call: Janus-Pro-7B's memory
        roll = policy.sample([p.text for p in prompts[start:start + batch_prompts]], n, guidance_scale=guidance_scale,
                             generator=generator)
        images += roll.images
        tokens.append(roll.image_tokens.cpu().numpy())
    if which == "id":
        value = np.zeros(len(images))
        for category in dict.fromkeys(p.category for p in prompts):
            rows = [k for k, p in enumerate(prompts) for _ in range(n) if p.category == category]
            index = [k * n + j for k in dict.fromkeys(rows) for j in range(n)]
            value[index] = scorer["compbench"](category, [prompts[k].text for k in rows],
                                               [images[i] for i in index]).numpy()
        correct = value >= COMPBENCH_PASS
    else:
        verdicts = scorer["geneval"]([p.source for p in prompts for _ in range(n)], images)
        correct = np.array([v.correct for v in verdicts])
        value = correct.astype(float)
    shape = (len(prompts), n)
    return BenchmarkSamples(prompts, np.concatenate(tokens).reshape(*shape, -1), value.reshape(shape),
                            correct.reshape(shape), pictures=images)


# -- chapter 1 at benchmark scale, and the helpers every chapter shows -----------------------------------------------

def show_scale(scale) -> None:
    """At benchmark scale, show the banner (`banner`) and what the chapter runs (`description`); nothing for
    ShapeWorld, whose chapters say it themselves."""
    if not is_benchmarks(scale):
        return
    from IPython.display import Markdown, display

    display(Markdown(banner(scale)))
    display(description(scale))


def categories(scale) -> tuple[str, ...]:
    """The in-domain categories training prompts come in: ShapeWorld's, or T2I-CompBench's eight."""
    return tuple(BENCHMARK_CATEGORIES if is_benchmarks(scale) else SHAPEWORLD_CATEGORIES)


def base_scores(scale, base: str, *, guidance_scale: float, temperature: float = 1.0, prompts_per_category: int,
                seeds, progress: bool = False) -> dict:
    """The benchmark evaluation of the base policy (cached in the run store, `rl.evaluation_scores`): suite ->
    table of value and se per category (overall last), with "card", the eval card."""
    rows = evaluation_scores(base_policy(scale, base), f"base {base}", suites=SUITES, progress=progress,
                             scale=check_scale(scale), guidance_scale=guidance_scale, temperature=temperature,
                             prompts_per_category=prompts_per_category, seeds=list(seeds))
    frame = pd.DataFrame(rows)
    out = {suite: frame[frame["suite"] == suite].set_index("category")[["value", "se"]] for suite, _ in SUITES}
    compbench, geneval = benchmark_prompts(scale, prompts_per_category)
    out["card"] = pd.Series(card(scale, f"base {base}", seeds=seeds, guidance_scale=guidance_scale,
                                 temperature=temperature,
                                 prompts={"compbench": len(compbench), "geneval": len(geneval)})).astype(str).to_frame(
        "value")
    return out


def guidance_sweep(scale, policy, weights, *, seeds, base: str = "", temperature: float = 1.0,
                   prompts_per_category: int, images_per_prompt: int = 1, progress: bool = False):
    """One row per CFG weight, suite and seed ("CFG weight", suite, seed, overall): ShapeWorld's
    `evaluation.guidance_sweep` of `policy`, or the base `base`'s benchmark evaluation at each weight (cached)."""
    if not is_benchmarks(scale):
        return shapeworld_sweep(policy, weights, seeds=seeds, images_per_prompt=images_per_prompt,
                                temperature=temperature, prompts_per_category=prompts_per_category)
    rows = []
    for weight in weights:
        for seed in seeds:
            scores = evaluation_scores(base_policy(scale, base), f"base {base}", suites=SUITES, progress=progress,
                                       scale=check_scale(scale), guidance_scale=float(weight), temperature=temperature,
                                       prompts_per_category=prompts_per_category, seeds=[seed])
            rows += [{"CFG weight": weight, "suite": r["suite"], "seed": seed, "overall": r["value"]}
                     for r in scores if r["category"] == "overall"]
    return pd.DataFrame(rows)


def base_findings(scale, baseline: dict, sweep, guidance_scale: float) -> str:
    """Chapter 1's findings at benchmark scale, as Markdown."""
    cb, ge = baseline["compbench"], baseline["geneval"]
    best = sweep.groupby(["suite", "CFG weight"])["overall"].mean().unstack(0)
    return (f"## What this chapter found\n\n{banner(scale)}\n\n"
            f"* The base model ({scale['policy']}) scores **{cb.loc['overall', 'value']:.3f}** (± "
            f"{cb.loc['overall', 'se']:.3f} SE over images) on T2I-CompBench val (mean category score, "
            f"{scale['compbench_images']} images per prompt) and **{ge.loc['overall', 'value']:.3f}** (± "
            f"{ge.loc['overall', 'se']:.3f}) GenEval overall ({scale['geneval_images']} per prompt) at CFG "
            f"{guidance_scale}, by cotlab's transformers scorers.\n"
            f"* Weakest T2I-CompBench category: **{cb.drop('overall')['value'].idxmin()}**; weakest GenEval task: "
            f"**{ge.drop('overall')['value'].idxmin()}**.\n"
            f"* In the sweep, T2I-CompBench peaks at CFG {best['compbench'].idxmax()} and GenEval at CFG "
            f"{best['geneval'].idxmax()}; this tier samples at CFG {guidance_scale}, Janus-Pro's own weight.")


def reward_findings(scale, summary, table, n: int) -> str:
    """Chapter 2's findings at benchmark scale, as Markdown: each reward model's pairwise accuracy against the
    benchmarks' scorers and its Best-of-N."""
    lines = [f"* **{name}**: pairwise accuracy {row['id pairwise']:.2f} on T2I-CompBench val / "
             f"{row['ood pairwise']:.2f} on GenEval; Best-of-{n} {row[f'id best-of-{n}']:.3f} / "
             f"{row[f'ood best-of-{n}']:.3f}" for name, row in summary.iterrows()]
    return (f"## What this chapter found\n\n{banner(scale)}\n\n" + "\n".join(lines) +
            f"\n* References, Best-of-{n} on GenEval: random pick {table.loc['random pick', f'ood best-of-{n}']:.3f}, "
            f"oracle pick {table.loc['oracle pick', f'ood best-of-{n}']:.3f} (the benchmarks' own scorers).\n\n"
            "The scorers stand in for the paper's metric reward; pairwise accuracy is undefined (NaN) where no two "
            "samples of a prompt score differently.")


def world_name(scale) -> str:
    """Where a tier's numbers come from, for a sentence: "on ShapeWorld", "on the paper's benchmarks", or, with
    stand-ins, a phrase that says they mean nothing."""
    if not is_benchmarks(scale):
        return "on ShapeWorld"
    if scale["stand_ins"]:
        return "on tiny RANDOM stand-ins of the paper's models and scorers (numbers that mean nothing)"
    return "on the paper's benchmarks"
