"""The RL runs each chapter makes, as (configs, tags) for `before_after`: one place that chapters 3-7 and the findings
chapter (9) build them from, so that the findings read exactly the chapters' runs back from the run store."""
from __future__ import annotations

from cotlab.training import aligned, arm_of, arm_preset, preset

LEARNED = ("preference", "judge")


def reward_config(reward: dict, reward_training: dict | None = None, seed: int | None = None) -> dict:
    """`preset` fields for a reward given as {"name": ..., **options}; learned models get `reward_training` too, and
    `seed` as their own training seed when given (`comparison_runs`: the reward model of RL seed s is trained with
    seed s, so that Best-of-N over reward-model seeds s reads the very models the RL runs used)."""
    options = {k: v for k, v in reward.items() if k != "name"}
    if reward["name"] in LEARNED:
        options |= reward_training or {}
        if seed is not None:
            options["seed"] = int(seed)
    return {"reward": reward["name"], "reward_options": options}


def reward_seeds_of(configs) -> dict[str, list[int]]:
    """Per reward (as the tables name it, `rl.reward_label`), the reward-model seeds its learned runs used, sorted;
    rewards that are not learned models are left out. Chapter 4 checks them against its Best-of-N seeds."""
    from cotlab.experiments.rl import reward_label

    out: dict[str, set[int]] = {}
    for cfg in configs:
        if cfg.reward in LEARNED:
            out.setdefault(reward_label(cfg), set()).add(int(cfg.reward_options.get("seed", 0)))
    return {k: sorted(v) for k, v in out.items()}


def aligned_runs(rl_preset: str, seeds, variants, arms=("grpo", "dpo"), scale=None) -> tuple[list, list[dict]]:
    """Runs of every arm (`cotlab.training.ARMS`, GRPO and DPO by default) for every (tag, fields) variant and seed,
    arm by arm in the order given; every arm's run of a seed is aligned with the first arm's (same prompts, images
    sampled and reward calls). At a benchmarks `scale` (`cotlab.experiments.paper_tier`) the scale's RL fields come
    first (`paper_tier.rl_fields`: its checkpoint, prompt files and steps), then the variant's."""
    from cotlab.experiments.paper_tier import rl_fields

    configs, tags = [], []
    at_scale = rl_fields(scale)
    for tag, fields in variants:
        runs = [[arm_preset(rl_preset, arm, seed=seed, **{**at_scale, **fields}) for seed in seeds] for arm in arms]
        for arm_runs in runs:
            bad = [cfg.seed for cfg, first in zip(arm_runs, runs[0]) if not aligned(cfg, first)]
            if bad:
                raise ValueError(f"{arm_of(arm_runs[0])} and {arm_of(runs[0][0])} runs of {tag} (seeds {bad}) spend "
                                 f"different budgets")
            configs += arm_runs
            tags += [dict(tag) for _ in arm_runs]
    return configs, tags


def comparison_runs(rl_preset: str, seeds, rewards: list[dict], reward_training: dict | None = None,
                    arms=("grpo", "dpo"), arm_rewards: list[dict] = (), bases=None, scale=None):
    """Chapter 3 (and 4): `arms[:2]` (GRPO and DPO by default) under each reward model, and all of `arms` (e.g. with
    online DPO and GRPO with CFG log-probs, `cotlab.training.ARMS`) under the rewards of `arm_rewards` (each one of
    `rewards`). A learned reward model is trained with the RL run's seed (`reward_config`): seed s of every arm
    reads reward-model seed s, and the runs of a seed stay aligned.

    `bases` (base-policy tiers, e.g. ["default", "default-seed1", "default-seed2"]) repeats all of it from each base,
    base by base (the RL config's `policy`); None runs from the preset's own base, as one base equal to it does.
    At a benchmarks `scale` a base is an RL preset name (the scale's policy or a variant, `paper_tier.base_policy`) and
    each reward gets its checkpoint (`paper_tier.reward_fields`)."""
    from cotlab.experiments.paper_tier import base_policy, reward_fields, reward_run_fields

    unknown = [r for r in arm_rewards if r not in rewards]
    if unknown:
        raise ValueError(f"arm_rewards {unknown} are not among the rewards {rewards}; give rewards the chapter runs")
    if bases is not None and (not bases or len(set(bases)) != len(bases)):
        raise ValueError(f"bases {list(bases)}: give one or more distinct base-policy tiers")
    configs, tags = [], []
    for base in (None,) if bases is None else bases:
        where = {} if base is None else {"policy": base_policy(scale, base)}
        for reward in rewards:
            chosen = tuple(arms) if reward in arm_rewards else tuple(arms)[:2]
            per_seed = [aligned_runs(rl_preset, [seed],
                                     [({}, {**reward_config(reward_fields(scale, reward), reward_training, seed),
                                            **reward_run_fields(scale, reward), **where})], chosen, scale)
                        for seed in seeds]
            for k in range(len(chosen)):  # arm by arm, seeds in order (as `aligned_runs` orders them)
                configs += [runs[0][k] for runs in per_seed]
                tags += [runs[1][k] for runs in per_seed]
    return configs, tags


def group_size_runs(rl_preset: str, seeds, reward: dict, group_sizes, images_per_step: int, scale=None):
    """Chapter 5: G images per prompt for images_per_step / G prompts per step, the same images per run."""
    bad = [g for g in group_sizes if images_per_step % g]
    if bad:
        raise ValueError(f"images_per_step {images_per_step} is not a multiple of the group sizes {bad}")
    from cotlab.experiments.paper_tier import reward_fields

    return aligned_runs(rl_preset, seeds, [({"G": g}, {**reward_config(reward_fields(scale, reward)),
                                                       "num_generations": g, "prompts_per_step": images_per_step // g})
                                           for g in group_sizes], scale=scale)


def data_runs(rl_preset: str, seeds, reward: dict, category_counts, prompt_counts, scale=None):
    """Chapter 6: every training prompt of the first k categories (diversity) or the first n prompts of all
    categories (volume), at the same number of prompt draws per run; the run on all the data tops both sweeps.

    A run draws `consumed` = rounds x max_steps x prompts_per_step prompts in order, so it sees min(n, consumed)
    distinct prompts: a volume level is only real when it is at most `consumed` (a larger one is refused), and the
    run on all the data sees `consumed` of them, one epoch, which makes it the volume sweep's top level. Tags: sweep,
    categories, prompts (distinct prompts the run trains on), epochs (consumed / prompts). At a benchmarks `scale`
    the categories are T2I-CompBench's eight, 700 official train prompts each."""
    from cotlab.experiments.paper_tier import is_benchmarks, reward_fields, rl_fields

    if is_benchmarks(scale):
        from cotlab.prompt_files import COMPBENCH_CATEGORIES, COMPBENCH_SPLITS

        per_category = COMPBENCH_SPLITS["train"]
    else:
        from cotlab.world import COMPBENCH_CATEGORIES, load_suite

        per_category = len(load_suite("compbench", "train")) // len(COMPBENCH_CATEGORIES)
    every = len(COMPBENCH_CATEGORIES)
    first = preset(rl_preset, "grpo", **rl_fields(scale))
    consumed = first.rounds * first.max_steps * first.prompts_per_step
    too_many = [n for n in prompt_counts if n >= min(consumed, per_category * every)]
    if too_many:
        raise ValueError(f"prompt_counts {too_many}: a {rl_preset!r} run draws only {consumed} prompts, and the run on "
                         f"all the data already sees that many; give volume levels below {consumed}")

    def seen(available: int) -> dict:
        distinct = min(available, consumed)
        return {"prompts": distinct, "epochs": round(consumed / distinct, 2)}

    base = reward_config(reward_fields(scale, reward))
    variants = [({"sweep": "full", "categories": every, **seen(per_category * every)}, base)]
    variants += [({"sweep": "diversity", "categories": k, **seen(per_category * k)},
                  {**base, "categories": tuple(COMPBENCH_CATEGORIES[:k])}) for k in category_counts if k < every]
    variants += [({"sweep": "volume", "categories": every, **seen(n)}, {**base, "num_prompts": n})
                 for n in prompt_counts]
    return aligned_runs(rl_preset, seeds, variants, scale=scale)


DATA_SWEEPS = {"diversity": "categories", "volume": "prompts"}  # chapter 6's two sweeps and the tag each varies


def data_sweeps(results) -> dict:
    """Chapter 6's results (`before_after` of `data_runs`, with its `sweep` tag) split into its two sweeps: name ->
    (table, swept column) for "diversity" (categories) and "volume" (prompts), each table the base rows, that sweep's
    runs and the run on all the data ("full", which tops both)."""
    import pandas as pd

    base = results[results["algorithm"] == "base"]
    return {name: (pd.concat([base, results[results["sweep"].isin([name, "full"])]]), variable)
            for name, variable in DATA_SWEEPS.items()}


def round_runs(rl_preset: str, seeds, reward: dict, rounds, total_steps: int, scale=None):
    """Chapter 7: R rounds of total_steps / R steps each, so every run takes the same number of optimizer steps and
    samples the same images (iteration, not more training); the reference is reset to the policy at each round's
    start (DPO regenerates its pairs from it). Tags: round, steps per round."""
    uneven = [r for r in rounds if total_steps % r]
    if uneven:
        raise ValueError(f"total_steps {total_steps} does not split into {uneven} equal rounds; pick a multiple of "
                         f"every round count")
    from cotlab.experiments.paper_tier import reward_fields

    return aligned_runs(rl_preset, seeds, [({"round": r, "steps per round": total_steps // r},
                                            {**reward_config(reward_fields(scale, reward)), "rounds": r,
                                             "max_steps": total_steps // r, "reference": "round_start"})
                                           for r in rounds], scale=scale)


EVAL_KEYS = ("images_per_prompt", "prompts_per_category")  # a chapter's evaluation parameters (and eval_seeds)
RL_CHAPTERS = ("03_grpo_vs_dpo", "04_reward_to_rl", "05_samples_per_prompt", "06_data_scaling", "07_iterative")


def chapter_runs(chapter: str, tier: str) -> tuple[list, list[dict], dict]:
    """(configs, tags, evaluation options) of an RL chapter with its own parameters in `tier`: what its notebook
    passes to `before_after`, for the findings chapter and the planner (`cotlab.experiments.graph`)."""
    from cotlab.experiments.tiers import notebook_parameters

    from cotlab.experiments.paper_tier import eval_options

    p = notebook_parameters(chapter, tier)
    scale = p.get("scale")
    if chapter in ("03_grpo_vs_dpo", "04_reward_to_rl"):
        configs, tags = comparison_runs(p["rl_preset"], p["seeds"], p["rewards"], p["reward_training"],
                                        p.get("arms", p.get("algorithms", ("grpo", "dpo"))), p.get("arm_rewards", ()),
                                        p.get("bases"), scale)
    elif chapter == "05_samples_per_prompt":
        configs, tags = group_size_runs(p["rl_preset"], p["seeds"], p["reward"], p["group_sizes"],
                                        p["images_per_step"], scale)
    elif chapter == "06_data_scaling":
        configs, tags = data_runs(p["rl_preset"], p["seeds"], p["reward"], p["category_counts"], p["prompt_counts"],
                                  scale)
    elif chapter == "07_iterative":
        configs, tags = round_runs(p["rl_preset"], p["seeds"], p["reward"], p["rounds"], p["total_steps"], scale)
    else:
        raise ValueError(f"chapter {chapter!r} makes no RL runs; those that do: {', '.join(RL_CHAPTERS)}")
    return configs, tags, {"seeds": p["eval_seeds"], **{k: p[k] for k in EVAL_KEYS}, **eval_options(scale)}


__all__ = ["DATA_SWEEPS", "RL_CHAPTERS", "aligned_runs", "chapter_runs", "comparison_runs", "data_runs",
           "data_sweeps", "group_size_runs", "reward_config", "reward_seeds_of", "round_runs"]
