"""Tiers and the parameters each notebook runs with in each tier.

- ``smoke``: CI-sized; checks that everything runs (and learns) in minutes.
- ``default``: the book, on a 2-core CPU.
- ``paper``: GPUs and real models.

``PRESETS[notebook][tier]`` is the full set of parameters papermill injects into ``notebooks/<notebook>.ipynb``: its
keys equal the names assigned in the notebook's ``parameters`` cell (tests/test_project.py checks it), so a preset can
neither miss a parameter nor invent one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TIERS: tuple[str, ...] = ("smoke", "default", "paper")

# CFG weights: the default ShapeWorld base samples best at 2 on both suites (chapter 1's sweep: 0.36 / 0.37 at 2 against
# 0.20 / 0.22 at Janus-Pro's 5), so the book uses 2, as Janus-Pro uses the weight that suits it. The smoke base is at
# chance at every weight; it keeps 5.

# The reward models chapter 2 compares: the metric and each learned family at two data breadths.
_REWARD_MODELS = [{"name": "metric"},
                  {"name": "preference", "breadth": "id"}, {"name": "preference", "breadth": "id+captions"},
                  {"name": "judge", "breadth": "id"}, {"name": "judge", "breadth": "id+captions"}]

# The reward models RL trains with in chapters 3 and 4: the paper's three families (metric, preference, judge).
_RL_REWARDS = [{"name": "metric"}, {"name": "preference", "breadth": "id"}, {"name": "judge", "breadth": "id+captions"}]
# CI-sized learned reward models (the smoke tier's chapters share them through the run store).
_SMOKE_REWARD = {"num_prompts": 60, "steps": 60, "width": 32, "layers": 1, "heads": 2}



def _scaling(smoke: dict, default: dict) -> dict[str, dict[str, Any]]:
    """A scaling chapter's presets: its sweep values per tier on top of the shared run and evaluation settings."""
    shared = {"reward": {"name": "metric"}}
    return {"smoke": {"rl_preset": "smoke", "seeds": [0, 1], **shared, **smoke, "images_per_prompt": 1,
                      "prompts_per_category": 2, "eval_seeds": [0]},
            **{tier: {"rl_preset": "default", "seeds": [0, 1, 2], **shared, **default, "images_per_prompt": 2,
                      "prompts_per_category": 30, "eval_seeds": [0]} for tier in ("default", "paper")}}


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "00_shapeworld": {
        "smoke": {"seed": 0, "examples_per_category": 2, "num_scenes": 200},
        "default": {"seed": 0, "examples_per_category": 3, "num_scenes": 2000},
        "paper": {"seed": 0, "examples_per_category": 3, "num_scenes": 2000},
    },
    "01_base_model": {
        "smoke": {"seed": 0, "pretrain_tier": "smoke", "guidance_scale": 5.0, "temperature": 1.0,
                  "images_per_prompt": 2, "prompts_per_category": 5, "eval_seeds": [0, 1],
                  "cfg_sweep": [1.0, 5.0], "sweep_prompts_per_category": 3},
        "default": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "temperature": 1.0,
                    "images_per_prompt": 4, "prompts_per_category": 50, "eval_seeds": [0, 1, 2],
                    "cfg_sweep": [1.0, 2.0, 3.0, 5.0, 7.5], "sweep_prompts_per_category": 10},
        # Paper scale runs Janus-Pro in chapter 8; here the paper tier reads the default base model.
        "paper": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "temperature": 1.0,
                  "images_per_prompt": 4, "prompts_per_category": 50, "eval_seeds": [0, 1, 2],
                  "cfg_sweep": [1.0, 2.0, 3.0, 5.0, 7.5], "sweep_prompts_per_category": 10},
    },
    "02_reward_models": {
        "smoke": {"seed": 0, "pretrain_tier": "smoke", "guidance_scale": 5.0, "samples_per_prompt": 4,
                  "prompts_per_category": 3, "reward_seeds": [0, 1], "reward_models": _REWARD_MODELS,
                  "reward_training": _SMOKE_REWARD},
        "default": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "samples_per_prompt": 4,
                    "prompts_per_category": 20, "reward_seeds": [0, 1, 2], "reward_models": _REWARD_MODELS,
                    "reward_training": {}},
        # The paper's own reward models are chapter 8's; here the paper tier reads the default ShapeWorld analogs.
        "paper": {"seed": 0, "pretrain_tier": "default", "guidance_scale": 2.0, "samples_per_prompt": 4,
                  "prompts_per_category": 20, "reward_seeds": [0, 1, 2], "reward_models": _REWARD_MODELS,
                  "reward_training": {}},
    },
    "03_grpo_vs_dpo": {
        "smoke": {"rl_preset": "smoke", "seeds": [0, 1], "rewards": _RL_REWARDS, "reward_training": _SMOKE_REWARD,
                  "images_per_prompt": 1, "prompts_per_category": 2, "eval_seeds": [0], "grid_prompts": 3},
        "default": {"rl_preset": "default", "seeds": [0, 1, 2], "rewards": _RL_REWARDS, "reward_training": {},
                    "images_per_prompt": 2, "prompts_per_category": 30, "eval_seeds": [0], "grid_prompts": 6},
        # ShapeWorld at the default tier; the paper-scale runs are chapter 8's.
        "paper": {"rl_preset": "default", "seeds": [0, 1, 2], "rewards": _RL_REWARDS, "reward_training": {},
                  "images_per_prompt": 2, "prompts_per_category": 30, "eval_seeds": [0], "grid_prompts": 6},
    },
    # The chapter-3 runs and evaluations (same parameters, so read from the run store) against Best-of-N.
    "04_reward_to_rl": {
        "smoke": {"rl_preset": "smoke", "seeds": [0, 1], "rewards": _RL_REWARDS, "reward_training": _SMOKE_REWARD,
                  "images_per_prompt": 1, "prompts_per_category": 2, "eval_seeds": [0], "best_of": 4,
                  "reward_seeds": [0, 1]},
        "default": {"rl_preset": "default", "seeds": [0, 1, 2], "rewards": _RL_REWARDS, "reward_training": {},
                    "images_per_prompt": 2, "prompts_per_category": 30, "eval_seeds": [0], "best_of": 4,
                    "reward_seeds": [0, 1, 2]},
        "paper": {"rl_preset": "default", "seeds": [0, 1, 2], "rewards": _RL_REWARDS, "reward_training": {},
                  "images_per_prompt": 2, "prompts_per_category": 30, "eval_seeds": [0], "best_of": 4,
                  "reward_seeds": [0, 1, 2]},
    },    # Scaling chapters: the metric reward, the chapter-3 preset; the paper tier is the default tier (ShapeWorld).
    "05_samples_per_prompt": _scaling(smoke={"group_sizes": [2, 4], "images_per_step": 32},
                                      default={"group_sizes": [2, 4, 8], "images_per_step": 32}),
    "06_data_scaling": _scaling(smoke={"category_counts": [1], "prompt_counts": [20]},
                                default={"category_counts": [1], "prompt_counts": [100]}),
    "07_iterative": _scaling(smoke={"rounds": [1, 2], "steps_per_round": 4},
                             default={"rounds": [1, 2, 3], "steps_per_round": 14}),
    # The paper-scale path on tiny stand-ins in every tier (no GPU run is part of the book).
    "08_paper_scale": {tier: {"presets": ["janus-pro-1b", "janus-pro-7b"], "gpu": "h100-80gb", "tiny_steps": 2,
                              "tiny_prompts_per_step": 2} for tier in TIERS},
    # Reads the runs of chapters 3-7 with their own parameters in the tier it names.
    "09_findings": {tier: {"tier": "default" if tier == "paper" else tier} for tier in TIERS},
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
           for tier in ("default", "paper")},
    },
}


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
