"""The RL runs each chapter makes, as (configs, tags) for `before_after`: one place that chapters 3-7 and the findings
chapter (9) build them from, so that the findings read exactly the chapters' runs back from the run store."""
from __future__ import annotations

from cotlab.training import aligned, preset

LEARNED = ("preference", "judge")


def reward_config(reward: dict, reward_training: dict | None = None) -> dict:
    """`preset` fields for a reward given as {"name": ..., **options}; learned models get `reward_training` too."""
    options = {k: v for k, v in reward.items() if k != "name"}
    if reward["name"] in LEARNED:
        options |= reward_training or {}
    return {"reward": reward["name"], "reward_options": options}


def _runs(rl_preset: str, seeds, variants) -> tuple[list, list[dict]]:
    """GRPO and DPO runs for every (tag, fields) variant and seed, GRPO first; each GRPO run aligned with its DPO."""
    configs, tags = [], []
    for tag, fields in variants:
        pair = []
        for algorithm in ("grpo", "dpo"):
            for seed in seeds:
                configs.append(preset(rl_preset, algorithm, seed=seed, **fields))
                tags.append(dict(tag))
            pair.append(configs[-len(seeds):])
        assert all(aligned(g, d) for g, d in zip(*pair)), f"GRPO and DPO runs of {tag} spend different budgets"
    return configs, tags


def comparison_runs(rl_preset: str, seeds, rewards: list[dict], reward_training: dict | None = None):
    """Chapter 3 (and 4): GRPO and DPO under each reward model."""
    return _runs(rl_preset, seeds, [({}, reward_config(r, reward_training)) for r in rewards])


def group_size_runs(rl_preset: str, seeds, reward: dict, group_sizes, images_per_step: int):
    """Chapter 5: G images per prompt for images_per_step / G prompts per step, the same images per run."""
    bad = [g for g in group_sizes if images_per_step % g]
    if bad:
        raise ValueError(f"images_per_step {images_per_step} is not a multiple of the group sizes {bad}")
    return _runs(rl_preset, seeds, [({"G": g}, {**reward_config(reward), "num_generations": g,
                                                "prompts_per_step": images_per_step // g}) for g in group_sizes])


def data_runs(rl_preset: str, seeds, reward: dict, category_counts, prompt_counts):
    """Chapter 6: every training prompt of the first k categories (diversity) or the first n prompts of all
    categories (volume); the run on all the data tops both sweeps. Tags: sweep, categories, prompts."""
    from cotlab.world import COMPBENCH_CATEGORIES, load_suite

    every = len(COMPBENCH_CATEGORIES)
    per_category = len(load_suite("compbench", "train")) // every
    base = reward_config(reward)
    variants = [({"sweep": "full", "categories": every, "prompts": per_category * every}, base)]
    variants += [({"sweep": "diversity", "categories": k, "prompts": per_category * k},
                  {**base, "categories": tuple(COMPBENCH_CATEGORIES[:k])}) for k in category_counts if k < every]
    variants += [({"sweep": "volume", "categories": every, "prompts": n}, {**base, "num_prompts": n})
                 for n in prompt_counts if n < per_category * every]
    return _runs(rl_preset, seeds, variants)


def round_runs(rl_preset: str, seeds, reward: dict, rounds, steps_per_round: int):
    """Chapter 7: R rounds of `steps_per_round` steps, the reference reset to the policy at each round's start (DPO
    regenerates its pairs from it)."""
    return _runs(rl_preset, seeds, [({"round": r}, {**reward_config(reward), "rounds": r, "max_steps": steps_per_round,
                                                    "reference": "round_start"}) for r in rounds])


EVAL_KEYS = ("images_per_prompt", "prompts_per_category")  # a chapter's evaluation parameters (and eval_seeds)
RL_CHAPTERS = ("03_grpo_vs_dpo", "04_reward_to_rl", "05_samples_per_prompt", "06_data_scaling", "07_iterative")


def chapter_runs(chapter: str, tier: str) -> tuple[list, list[dict], dict]:
    """(configs, tags, evaluation options) of an RL chapter with its own parameters in `tier`: what its notebook
    passes to `before_after`, for the findings chapter and the planner (`cotlab.experiments.graph`)."""
    from cotlab.experiments.tiers import notebook_parameters

    p = notebook_parameters(chapter, tier)
    if chapter in ("03_grpo_vs_dpo", "04_reward_to_rl"):
        configs, tags = comparison_runs(p["rl_preset"], p["seeds"], p["rewards"], p["reward_training"])
    elif chapter == "05_samples_per_prompt":
        configs, tags = group_size_runs(p["rl_preset"], p["seeds"], p["reward"], p["group_sizes"],
                                        p["images_per_step"])
    elif chapter == "06_data_scaling":
        configs, tags = data_runs(p["rl_preset"], p["seeds"], p["reward"], p["category_counts"], p["prompt_counts"])
    elif chapter == "07_iterative":
        configs, tags = round_runs(p["rl_preset"], p["seeds"], p["reward"], p["rounds"], p["steps_per_round"])
    else:
        raise ValueError(f"chapter {chapter!r} makes no RL runs; those that do: {', '.join(RL_CHAPTERS)}")
    return configs, tags, {"seeds": p["eval_seeds"], **{k: p[k] for k in EVAL_KEYS}}


__all__ = ["RL_CHAPTERS", "chapter_runs", "comparison_runs", "data_runs", "group_size_runs", "reward_config",
           "round_runs"]
