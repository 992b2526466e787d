"""Tiers and the parameters each notebook runs with in each tier.

- ``smoke``: CI-sized; checks that everything runs (and learns) in minutes.
- ``default``: the book, on a 2-core CPU: the headline comparison (chapters 3 and 4) sized for claims 1 and 2 (issue 18:
  pooled 95% half-width at most delta = 0.03), the scaling chapters at the power their budget allows.
- ``full``: every claim powered at delta = 0.03: more seeds everywhere, the large evaluation in every chapter, every arm
  under every reward model. Hours of CPU: run it with ``--workers`` on many cores or ``--executor ray``.
- ``paper``: the paper's experiment in chapters 1-7 and the findings, from the same notebooks: Janus-Pro-7B (the
  1B as the named variant `janus-pro-1b`), HPS v2.1, ImageReward and the UnifiedReward judge as the learned reward
  families, T2I-CompBench's official train prompts, evaluation on T2I-CompBench val (10 images per prompt; the six
  categories with a transformers scorer) and GenEval (553 prompts, 4 images each) with cotlab's transformers scorers,
  the official harness layouts written alongside; the paper's settings (group 4, mu 1, offline DPO from the base
  model's samples, CFG 5; T2I-R1's where it is silent: the `janus-pro-7b` RL preset). GPUs: `cotlab reproduce --tier
  paper --check` prints the preflight first. The metric reward is T2I-CompBench's own scorers
  (`paper_tier.CompBenchMetric`, chapter 3, on the six categories they score); chapters 2 and 4 compare the learned
  families, as ShapeWorld's compare the learned analogs.
- ``paper-tiny``: the paper tier's code path end to end on the CPU, in the tests: every checkpoint replaced by a tiny
  random stand-in in its published format (`cotlab.experiments.stand_ins`), the official prompt files of
  ../shared/benchmarks (one prompt per category or task, one image each), two RL steps, one seed. Its numbers mean
  nothing, and every chapter says so.

What a chapter runs at each tier's scale is its `scale` parameter (`cotlab.experiments.paper_tier`), so that a chapter
branches on its parameters, never on its tier. Chapters with no paper-scale analog keep ShapeWorld at the paper tiers:
the ShapeWorld tour (0) and the domain-gap chapter (11, whose hold-outs are ShapeWorld's prompt meanings) at the
default tier's settings under `paper` and smoke's under `paper-tiny`; the benchmarks appendix (10) measures this
machine. Chapter 8 (paper scale: presets, the cost model, a tiny run) is the same in every tier. `paper-tiny` runs
:data:`PAPER_CHAPTERS` (`cotlab reproduce --tier paper-tiny`) and builds no book: it checks the path, nothing more.

The chapter registry: ``PRESETS[notebook][tier]`` is the full set of parameters papermill injects into
``notebooks/<notebook>.ipynb`` (its keys equal the names assigned in the notebook's ``parameters`` cell:
tests/test_project.py checks it, so a preset can neither miss a parameter nor invent one); the order of ``PRESETS`` is
the book's reading order; ``DEPENDS`` says what each chapter reads from earlier ones and ``APPENDIX`` which chapters
close the book. `cotlab.experiments.reproduce` executes the chapters in that order and writes the book's table of
contents from it, so adding a chapter is its notebook plus its entries here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from cotlab.experiments.calibration import GRID, TUNING_SEEDS
from cotlab.experiments.paper_tier import METRIC_REWARD, PAPER_REWARDS, SHAPEWORLD
from cotlab.rewards.learned import SPREAD_SET

TIERS: tuple[str, ...] = ("smoke", "default", "full", "paper", "paper-tiny")
#: The chapters that run the paper's experiment at the paper tiers (the others keep ShapeWorld there).
PAPER_CHAPTERS: tuple[str, ...] = ("01_base_model", "02_reward_models", "03_grpo_vs_dpo", "04_reward_to_rl",
                                   "05_samples_per_prompt", "06_data_scaling", "07_iterative", "09_findings")
#: The tiers whose book is not built (`cotlab reproduce` executes their chapters only).
NO_BOOK: tuple[str, ...] = ("paper-tiny",)

# Each tier's scale (`cotlab.experiments.paper_tier`): ShapeWorld, or the paper's benchmarks, with stand-ins in
# paper-tiny. paper-tiny keeps the `janus-pro-7b` preset's settings (bf16, gradient checkpointing, tiled log-probs,
# group 4) and runs two steps of two prompts.
_SHAPEWORLD = copy.deepcopy(SHAPEWORLD)
_PAPER_SCALE = {"world": "benchmarks", "policy": "janus-pro-7b", "variants": ["janus-pro-1b"], "stand_ins": False,
                "compbench_images": 10, "geneval_images": 4, "rl": {}}
_TINY_SCALE = {**_PAPER_SCALE, "stand_ins": True, "compbench_images": 1, "geneval_images": 1,
               "rl": {"max_steps": 2, "prompts_per_step": 2}}
# The paper's learned reward families and its evaluation: all 300 val prompts of each T2I-CompBench category and all
# of GenEval's tasks (at most 100 prompts each), 4 GenEval images per prompt (T2I-CompBench's 10 are the scale's);
# paper-tiny, one prompt and one image of each.
_PAPER_REWARDS = copy.deepcopy(PAPER_REWARDS)
_PAPER_METRIC = {"name": METRIC_REWARD}  # T2I-CompBench's own scorers as the RL reward (chapter 3)
_PAPER_EVAL = {"images_per_prompt": 4, "prompts_per_category": 300, "eval_seeds": [0]}
_TINY_EVAL = {"images_per_prompt": 1, "prompts_per_category": 1, "eval_seeds": [0]}
# Seeds: the paper tier's sized by the cost model (a Janus-Pro-7B run of 1,600 steps is ~23 GPU-hours on 8 x H100, so
# 3 seeds of every arm, reward and sweep level come to ~2,200 GPU-hours; `cotlab reproduce --tier paper --check`
# prints them per chapter); paper-tiny, one.
_PAPER_SEEDS = {"paper": [0, 1, 2], "paper-tiny": [0]}

# CFG weights: the default ShapeWorld base samples best at 2 on both suites (chapter 1's sweep: 0.36 / 0.37 at 2 against
# 0.20 / 0.22 at Janus-Pro's 5), so the book uses 2, as Janus-Pro uses the weight that suits it. The smoke base is at
# chance at every weight; it keeps 5.

# The reward models chapter 2 compares and chapter 4 trains RL with: the metric (the evaluator's own scorer, an oracle)
# and claim 3's set of learned models, both families at three data breadths, spread upward from about a random pick
# (`cotlab.rewards.learned.SPREAD_SET`; chapter 2 trains them, chapter 4 reads them from the run store).
_REWARD_MODELS = [{"name": "metric"}, *SPREAD_SET]

# The reward models RL trains with in chapter 3: the paper's three families (metric, preference, judge).
_RL_REWARDS = [{"name": "metric"}, {"name": "preference", "breadth": "id"}, {"name": "judge", "breadth": "id+captions"}]
# CI-sized learned reward models (the smoke tier's chapters share them through the run store).
_SMOKE_REWARD = {"num_prompts": 60, "steps": 60, "width": 32, "layers": 1, "heads": 2}



# Evaluations (issue 18). The headline's: 100 prompts per CompBench-style category and all 553 GenEval-style prompts
# (every task has at most 100), 4 images each, the same draws for every policy; measured gap SDs put evaluation noise
# at 60-90% of the seed-to-seed variance at the old 30 x 2, so images buy power more cheaply than seeds. The scaling
# chapters' default evaluation stays small to fit the 2-core budget; `full` uses the large one everywhere.
_LARGE_EVAL = {"images_per_prompt": 4, "prompts_per_category": 100, "eval_seeds": [0]}
_SMALL_EVAL = {"images_per_prompt": 2, "prompts_per_category": 30, "eval_seeds": [0]}
_SMOKE_EVAL = {"images_per_prompt": 1, "prompts_per_category": 2, "eval_seeds": [0]}
# Seeds per tier: the headline's default count comes from the power analysis chapter 9 prints (pooled over 3 reward
# models, 4 seeds give a 95% half-width near 0.015 at the measured SDs); `full` doubles it for per-reward verdicts.
_SEEDS = {"smoke": [0, 1], "default": [0, 1, 2, 3], "full": list(range(8))}
_SCALING_SEEDS = {"smoke": [0, 1], "default": [0, 1, 2], "full": list(range(8))}
# Chapter 3's arms (`cotlab.training.ARMS`): online DPO and GRPO with CFG log-probs under the metric reward in the
# default tier (their budget), under every reward model in `full`.
_ARMS = ["grpo", "dpo", "dpo-online", "grpo-cfg"]
# Chapter 3's base models (issue 18): `full` repeats the comparison from 3 bases, pretrained with seeds 0, 1, 2
# (`cotlab.policy.pretrain.BASE_SEEDS`), for a verdict per base and pooled over them; the other tiers run from their
# preset's one base, and their verdicts are conditional on it.
_BASES = {"smoke": ["smoke"], "default": ["default"], "full": ["default", "default-seed1", "default-seed2"]}
# Chapter 3's calibration stage (`cotlab.experiments.calibration`): the whole grid and the run-length pilot in `full`
# (hours), a CI-sized one in `smoke`; the default tier cannot afford it and says where its settings come from.
_CALIBRATION = {
    "smoke": {"calibration_grid": {"grpo": {"learning_rate": [1e-3, 2e-3], "beta": [0.0]},
                                   "dpo": {"learning_rate": [1e-3], "beta": [0.1]}},
              "tuning_seeds": [100], "pilot_steps": [4, 8]},
    "default": {"calibration_grid": {}, "tuning_seeds": [], "pilot_steps": []},
    "full": {"calibration_grid": {arm: {k: list(v) for k, v in axes.items()} for arm, axes in GRID.items()},
             "tuning_seeds": list(TUNING_SEEDS), "pilot_steps": [40, 80, 160]},
}


def _comparison(tier: str, **more) -> dict[str, Any]:
    """Chapters 3 and 4's shared run and evaluation parameters in `tier` (the same runs, read from the run store)."""
    if tier == "smoke":
        return {"rl_preset": "smoke", "seeds": _SEEDS["smoke"], "rewards": _RL_REWARDS,
                "reward_training": _SMOKE_REWARD, **_SMOKE_EVAL, "scale": _SHAPEWORLD, **more}
    if tier in _PAPER_SEEDS:
        return {"rl_preset": "janus-pro-7b", "seeds": _PAPER_SEEDS[tier], "rewards": _PAPER_REWARDS,
                "reward_training": {}, **(_PAPER_EVAL if tier == "paper" else _TINY_EVAL),
                "scale": _PAPER_SCALE if tier == "paper" else _TINY_SCALE, **more}
    return {"rl_preset": "default", "seeds": _SEEDS["full" if tier == "full" else "default"], "rewards": _RL_REWARDS,
            "reward_training": {}, **_LARGE_EVAL, "scale": _SHAPEWORLD, **more}


def _scaling(smoke: dict, default: dict, paper: dict, tiny: dict) -> dict[str, dict[str, Any]]:
    """A scaling chapter's presets: its sweep values per tier on top of the shared run and evaluation settings; the
    paper tiers scale Janus-Pro under HPS v2.1 (the paper's human-preference reward)."""
    shared = {"reward": {"name": "metric"}, "scale": _SHAPEWORLD}
    on_paper = {"rl_preset": "janus-pro-7b", "reward": {"name": "hps"}}
    return {"smoke": {"rl_preset": "smoke", "seeds": _SCALING_SEEDS["smoke"], **shared, **smoke, **_SMOKE_EVAL},
            "default": {"rl_preset": "default", "seeds": _SCALING_SEEDS["default"], **shared, **default, **_SMALL_EVAL},
            "full": {"rl_preset": "default", "seeds": _SCALING_SEEDS["full"], **shared, **default, **_LARGE_EVAL},
            "paper": {"seeds": _PAPER_SEEDS["paper"], **on_paper, **paper, **_PAPER_EVAL, "scale": _PAPER_SCALE},
            "paper-tiny": {"seeds": _PAPER_SEEDS["paper-tiny"], **on_paper, **tiny, **_TINY_EVAL,
                           "scale": _TINY_SCALE}}


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "00_shapeworld": {
        "smoke": {"seed": 0, "examples_per_category": 2, "num_scenes": 200},
        "default": {"seed": 0, "examples_per_category": 3, "num_scenes": 2000},
        "paper": {"seed": 0, "examples_per_category": 3, "num_scenes": 2000},
        "paper-tiny": {"seed": 0, "examples_per_category": 2, "num_scenes": 200},
    },
    "01_base_model": {
        "smoke": {"seed": 0, "pretrain_tier": "smoke", "guidance_scale": 5.0, "temperature": 1.0,
                  "images_per_prompt": 2, "prompts_per_category": 5, "eval_seeds": [0, 1],
                  "cfg_sweep": [1.0, 5.0], "sweep_prompts_per_category": 3, "scale": _SHAPEWORLD},
        "default": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "temperature": 1.0,
                    "images_per_prompt": 4, "prompts_per_category": 50, "eval_seeds": [0, 1, 2],
                    "cfg_sweep": [1.0, 2.0, 3.0, 5.0, 7.5], "sweep_prompts_per_category": 10, "scale": _SHAPEWORLD},
        # The paper tiers' base is Janus-Pro (`pretrain_tier` names the RL preset whose checkpoint it is), at CFG 5.
        "paper": {"seed": 0, "pretrain_tier": "janus-pro-7b", "guidance_scale": 5.0, "temperature": 1.0,
                  **_PAPER_EVAL, "cfg_sweep": [3.0, 5.0, 7.5], "sweep_prompts_per_category": 20,
                  "scale": _PAPER_SCALE},
        "paper-tiny": {"seed": 0, "pretrain_tier": "janus-pro-7b", "guidance_scale": 5.0, "temperature": 1.0,
                       **_TINY_EVAL, "cfg_sweep": [3.0, 5.0], "sweep_prompts_per_category": 1, "scale": _TINY_SCALE},
    },
    "02_reward_models": {
        "smoke": {"seed": 0, "pretrain_tier": "smoke", "guidance_scale": 5.0, "samples_per_prompt": 4,
                  "prompts_per_category": 3, "reward_seeds": [0, 1], "reward_models": _REWARD_MODELS,
                  "reward_training": _SMOKE_REWARD, "scale": _SHAPEWORLD},
        "default": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "samples_per_prompt": 4,
                    "prompts_per_category": 20, "reward_seeds": [0, 1, 2], "reward_models": _REWARD_MODELS,
                    "reward_training": {}, "scale": _SHAPEWORLD},
        # The paper's reward models on Janus-Pro's samples, judged by the benchmarks' scorers (nothing is trained:
        # one reward-model seed).
        "paper": {"seed": 0, "pretrain_tier": "janus-pro-7b", "guidance_scale": 5.0, "samples_per_prompt": 4,
                  "prompts_per_category": 20, "reward_seeds": [0], "reward_models": _PAPER_REWARDS,
                  "reward_training": {}, "scale": _PAPER_SCALE},
        "paper-tiny": {"seed": 0, "pretrain_tier": "janus-pro-7b", "guidance_scale": 5.0, "samples_per_prompt": 2,
                       "prompts_per_category": 1, "reward_seeds": [0], "reward_models": _PAPER_REWARDS,
                       "reward_training": {}, "scale": _TINY_SCALE},
    },
    "03_grpo_vs_dpo": {
        "smoke": _comparison("smoke", arms=_ARMS, arm_rewards=[{"name": "metric"}], grid_prompts=3,
                             bases=_BASES["smoke"], **_CALIBRATION["smoke"]),
        "default": _comparison("default", arms=_ARMS, arm_rewards=[{"name": "metric"}], grid_prompts=6,
                               bases=_BASES["default"], **_CALIBRATION["default"]),
        "full": _comparison("full", arms=_ARMS, arm_rewards=_RL_REWARDS, grid_prompts=6, bases=_BASES["full"],
                            **_CALIBRATION["full"]),
        # The paper: GRPO and offline DPO under the metric (T2I-CompBench's own scorers) and every learned family, and
        # every arm under the metric, as the default tier; no calibration grid (the preset's settings).
        "paper": _comparison("paper", rewards=[_PAPER_METRIC, *_PAPER_REWARDS], arms=_ARMS,
                             arm_rewards=[_PAPER_METRIC], grid_prompts=6, bases=["janus-pro-7b"],
                             **_CALIBRATION["default"]),
        "paper-tiny": _comparison("paper-tiny", rewards=[_PAPER_METRIC, *_PAPER_REWARDS], arms=["grpo", "dpo"],
                                  arm_rewards=[], grid_prompts=2, bases=["janus-pro-7b"], **_CALIBRATION["default"]),
    },
    # Claim 3 (issue 18): RL under the metric and every model of claim 3's set, the RL run of seed s with reward-model
    # seed s, and Best-of-N over the same reward-model seeds (reward_seeds == seeds). `full` runs GRPO and DPO with
    # its 8 seeds; the default tier, within its budget, GRPO only with 3 seeds (the chapter prints the slope's power);
    # smoke, GRPO on CI-sized models. Runs shared with chapter 3 (same reward, seed and arm) are read from the store.
    **{"04_reward_to_rl": {
        tier: {**_comparison(tier), "seeds": seeds,
               "rewards": _PAPER_REWARDS if tier in _PAPER_SEEDS else [{"name": "metric"}, *SPREAD_SET],
               "algorithms": algorithms, "best_of": 4, "reward_seeds": list(seeds)}
        for tier, seeds, algorithms in (("smoke", _SEEDS["smoke"], ["grpo"]), ("default", [0, 1, 2], ["grpo"]),
                                        ("full", _SEEDS["full"], ["grpo", "dpo"]),
                                        ("paper", _PAPER_SEEDS["paper"], ["grpo", "dpo"]),
                                        ("paper-tiny", _PAPER_SEEDS["paper-tiny"], ["grpo"]))}},
    # Scaling chapters: the metric reward, the chapter-3 preset (paper tiers: Janus-Pro under HPS v2.1).
    "05_samples_per_prompt": _scaling(smoke={"group_sizes": [2, 4], "images_per_step": 32},
                                      default={"group_sizes": [2, 4, 8], "images_per_step": 32},
                                      # 64 images a step: every G leaves at least 8 prompts, one per GPU of 8
                                      paper={"group_sizes": [2, 4, 8], "images_per_step": 64},
                                      tiny={"group_sizes": [2, 4], "images_per_step": 8}),
    # The paper tier's run draws 1,600 x 8 prompts, more than the 5,600 official train prompts: volume levels below.
    "06_data_scaling": _scaling(smoke={"category_counts": [1], "prompt_counts": [20]},
                                default={"category_counts": [1], "prompt_counts": [100]},
                                paper={"category_counts": [1, 4], "prompt_counts": [700, 2800]},
                                tiny={"category_counts": [1], "prompt_counts": [2]}),
    # Equal total steps: R rounds of total_steps / R (iteration, not more training).
    "07_iterative": _scaling(smoke={"rounds": [1, 2], "total_steps": 4},
                             default={"rounds": [1, 2, 3], "total_steps": 42},
                             paper={"rounds": [1, 2, 4], "total_steps": 1600},
                             tiny={"rounds": [1, 2], "total_steps": 2}),
    # The paper-scale path on tiny stand-ins in every tier (no GPU run is part of the book).
    "08_paper_scale": {tier: {"presets": ["janus-pro-1b", "janus-pro-7b"], "gpu": "h100-80gb", "tiny_steps": 2,
                              "tiny_prompts_per_step": 2} for tier in TIERS},
    # Transfer against distance (issue 19): every arm at graded hold-outs, and the over-fitting control. The default
    # tier runs L1 and L2 only: L3 needs a base pretrained without its skill, another 2,000-step base (about 20
    # minutes on 2 cores), so it is `full`'s; smoke runs every kind of level on the smoke bases.
    "11_domain_gap": {
        "smoke": {"rl_preset": "smoke", "seeds": _SCALING_SEEDS["smoke"], "reward": {"name": "metric"},
                  "holdouts": ["L0", "L1-50", "L2-above-below", "L3-above-below"],
                  "arms": ["grpo", "dpo", "dpo-online"], **_SMOKE_EVAL, "control": True},
        "default": {"rl_preset": "default", "seeds": _SCALING_SEEDS["default"], "reward": {"name": "metric"},
                    "holdouts": ["L1-50", "L2-above-below"], "arms": ["grpo", "dpo"], **_SMALL_EVAL,
                    "control": True},
        "full": {"rl_preset": "default", "seeds": _SCALING_SEEDS["full"], "reward": {"name": "metric"},
                 "holdouts": ["L0", "L1-20", "L1-50", "L2-above-below", "L2-count-four", "L3-above-below"],
                 "arms": ["grpo", "dpo", "dpo-online"], **_LARGE_EVAL, "control": True},
        "paper": {"rl_preset": "default", "seeds": _SCALING_SEEDS["default"], "reward": {"name": "metric"},
                  "holdouts": ["L1-50", "L2-above-below"], "arms": ["grpo", "dpo"], **_SMALL_EVAL,
                  "control": True},
    },
    # Reads the runs of chapters 3-7 and 11 with their own parameters in the tier it names.
    "09_findings": {tier: {"tier": tier} for tier in TIERS},
    # The appendix measures this machine; the paper tier's book runs on the same ShapeWorld settings as default.
    "10_benchmarks": {
        "smoke": {"tier": "smoke", "timings_file": "", "sampler_size": "tiny", "sampler_repeats": 1,
                  "janus_pro_shaped_sampler": False, "logprob_hidden_sizes": [16], "logprob_heads": ["frozen", "trained"],
                  "logprob_sequences": 1,
                  "logprob_repeats": 1, "step_tier": "smoke", "step_steps": 1, "step_repeats": 1, "scaling_steps": 1,
                  "group_sizes": [2, 4], "prompt_counts": [4, 8], "token_grids": [4, 8],
                  "throughput_seeds": [0], "throughput_max_steps": 2, "throughput_workers": [1, 2]},
        **{tier: {"tier": tier, "timings_file": "", "sampler_size": "default", "sampler_repeats": 5,
                  "janus_pro_shaped_sampler": True, "logprob_hidden_sizes": [64, 2048], "logprob_heads": ["frozen", "trained"],
                  "logprob_sequences": 1,
                  "logprob_repeats": 3, "step_tier": "default", "step_steps": 3, "step_repeats": 3, "scaling_steps": 2,
                  "group_sizes": [2, 4, 8], "prompt_counts": [4, 8, 16], "token_grids": [4, 6, 8, 11],
                  "throughput_seeds": [0, 1], "throughput_max_steps": 10, "throughput_workers": [1, 2]}
           for tier in ("default", "full", "paper")},
    },
}
# The ShapeWorld chapters at paper-tiny: the smoke tier's settings (the appendix measures this machine as smoke does).
for _chapter in ("10_benchmarks", "11_domain_gap"):
    PRESETS[_chapter]["paper-tiny"] = copy.deepcopy(PRESETS[_chapter]["smoke"])
# `full` changes only what decides the claims (the RL chapters); the world, the base model and the reward models are
# the default tier's, read from the run store.
for _chapter in ("00_shapeworld", "01_base_model", "02_reward_models"):
    PRESETS[_chapter] = {tier: copy.deepcopy(PRESETS[_chapter]["default" if tier == "full" else tier])
                         for tier in TIERS}
# Every chapter's presets in the order of TIERS.
for _chapter in PRESETS:
    PRESETS[_chapter] = {tier: PRESETS[_chapter][tier] for tier in TIERS}


#: What each chapter reads from earlier ones (base model, reward models, runs): a change upstream reruns it. The
#: appendix reports every chapter's execution time, so it follows all of them.
DEPENDS: dict[str, list[str]] = {
    "00_shapeworld": [],
    "01_base_model": [],
    "02_reward_models": ["01_base_model"],
    "03_grpo_vs_dpo": ["01_base_model", "02_reward_models"],
    "04_reward_to_rl": ["02_reward_models", "03_grpo_vs_dpo"],
    "05_samples_per_prompt": ["01_base_model"],
    "06_data_scaling": ["01_base_model"],
    "07_iterative": ["01_base_model"],
    "08_paper_scale": [],
    "11_domain_gap": ["01_base_model"],
    "09_findings": ["03_grpo_vs_dpo", "04_reward_to_rl", "05_samples_per_prompt", "06_data_scaling",
                    "07_iterative", "11_domain_gap"],
    "10_benchmarks": [chapter for chapter in PRESETS if chapter != "10_benchmarks"],
}
#: The chapters in the book's Appendix part (the others are its Experiments).
APPENDIX: tuple[str, ...] = ("10_benchmarks",)


def check_tier(tier: str) -> str:
    """Return ``tier`` if it is a known tier, else raise ValueError naming the valid ones."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; valid tiers: {', '.join(TIERS)}")
    return tier


def notebook_parameters(notebook: str | Path, tier: str) -> dict[str, Any]:
    """The parameters of ``notebook`` (a stem such as ``"00_shapeworld"`` or a path to it) in ``tier``, as a new dict."""
    check_tier(tier)
    stem = Path(notebook).stem
    if stem not in PRESETS:
        raise ValueError(f"no parameter presets for notebook {stem!r}; known notebooks: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[stem][tier])
