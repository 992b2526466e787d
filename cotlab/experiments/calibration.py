"""The calibration stage (issue 18, "fair by construction"): each algorithm's learning rate and beta, and the run
length, chosen on the in-domain dev split before any reported number is seen.

- **Grid**: per algorithm, every (learning rate, beta) of `GRID` at the same budget (the preset's aligned fields), on
  tuning seeds that no reported run uses (`TUNING_SEEDS`), each trained policy scored on ID dev (`DEV_SUITES`);
  the chosen setting maximises the mean dev score over tuning seeds among runs without a health warning (ties: the
  smaller learning rate, then the smaller beta). The whole grid is published with its picks.
- **Run length**: a pilot at each algorithm's chosen setting, trained for each of `lengths` steps (a run of L steps is
  the first L steps of a longer one: constant learning rate, prompts drawn in step order); the run length is the
  smallest L whose doubling adds less than delta / 2 to every algorithm's ID dev score (half the smallest effect of
  interest), or the longest pilot length when none does (and the table says so).
OOD prompts are never evaluated here.
"""
from __future__ import annotations

import pandas as pd

from cotlab.evaluation import mean_ci
from cotlab.experiments.rl import health_flag
from cotlab.experiments.studies import reward_config
from cotlab.training import ARMS, arm_of, arm_preset

GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "grpo": {"learning_rate": (5e-5, 1e-4, 2e-4, 4e-4), "beta": (0.0, 0.01, 0.04)},
    "dpo": {"learning_rate": (5e-5, 1e-4, 2e-4, 4e-4), "beta": (0.03, 0.1, 0.3)},
}
TUNING_SEEDS = (100, 101)  # never a reported run's seed
DEV_SUITES = (("compbench", "dev"),)


def check_grid(grid: dict) -> dict:
    """`grid` if it maps arms (cotlab.training.ARMS) to non-empty "learning_rate" and "beta" lists, else ValueError."""
    for arm, axes in grid.items():
        if arm not in ARMS:
            raise ValueError(f"calibration grid: unknown arm {arm!r}; known: {', '.join(ARMS)}")
        if set(axes) != {"learning_rate", "beta"} or not all(len(v) for v in axes.values()):
            raise ValueError(f"calibration grid of {arm}: give non-empty 'learning_rate' and 'beta' lists, got "
                             f"{sorted(axes)}")
    return grid


def grid_runs(rl_preset: str, seeds, reward: dict, grid: dict) -> tuple[list, list[dict]]:
    """The grid's configs and tags (arm, learning_rate, beta): every arm x learning rate x beta x tuning seed."""
    configs, tags = [], []
    for arm, axes in check_grid(grid).items():
        for lr in axes["learning_rate"]:
            for beta in axes["beta"]:
                for seed in seeds:
                    configs.append(arm_preset(rl_preset, arm, seed=seed, learning_rate=lr, beta=beta,
                                              **reward_config(reward)))
                    tags.append({"arm": arm, "learning_rate": lr, "beta": beta})
    return configs, tags


def _dev_scores(results: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and 95% t half-width over tuning seeds of the ID dev overall score per group of `by`, with health."""
    runs = results[(results["category"] == "overall") & (results["algorithm"] != "base")]
    rows = []
    for key, group in runs.groupby(by, sort=False):
        mean, half = mean_ci(group["value"])
        rows.append({**dict(zip(by, key)), "dev": mean, "dev ±95%": half, "seeds": group["seed"].nunique(),
                     "health": health_flag(group)})
    return pd.DataFrame(rows)


def grid_table(results: pd.DataFrame) -> pd.DataFrame:
    """The whole grid from `before_after(grid configs, tags=grid tags, suites=DEV_SUITES)`: one row per arm, learning
    rate and beta, with the dev score and a column `chosen` marking each arm's pick (`pick`)."""
    table = _dev_scores(results, ["arm", "learning_rate", "beta"])
    chosen = pick(table)
    table["chosen"] = [chosen[r.arm]["learning_rate"] == r.learning_rate and chosen[r.arm]["beta"] == r.beta
                       for r in table.itertuples()]
    return table


def pick(table: pd.DataFrame) -> dict[str, dict]:
    """Per arm, the healthy setting with the best mean dev score (ties: smaller learning rate, then smaller beta):
    {arm: {"learning_rate", "beta", "dev"}}. An arm whose every setting raised a health warning is refused."""
    out = {}
    for arm, rows in table.groupby("arm", sort=False):
        healthy = rows[rows["health"] == "ok"]
        if healthy.empty:
            raise ValueError(f"every calibration run of {arm} raised a health warning ({rows['health'].iloc[0]}): "
                             f"no setting to choose; widen the grid or lower the learning rates")
        best = healthy.sort_values(["dev", "learning_rate", "beta"], ascending=[False, True, True]).iloc[0]
        out[arm] = {"learning_rate": float(best["learning_rate"]), "beta": float(best["beta"]),
                    "dev": float(best["dev"])}
    return out


def pilot_runs(rl_preset: str, seeds, reward: dict, settings: dict[str, dict], lengths) -> tuple[list, list[dict]]:
    """Each arm at its chosen `settings` ({arm: {"learning_rate", "beta"}}) trained for each of `lengths` steps; tags:
    arm, steps."""
    lengths = sorted(lengths)
    if len(lengths) < 2:
        raise ValueError(f"pilot lengths {lengths}: give at least two run lengths to compare")
    configs, tags = [], []
    for arm, chosen in settings.items():
        for steps in lengths:
            for seed in seeds:
                configs.append(arm_preset(rl_preset, arm, seed=seed, max_steps=steps,
                                          learning_rate=chosen["learning_rate"], beta=chosen["beta"],
                                          **reward_config(reward)))
                tags.append({"arm": arm, "steps": steps})
    return configs, tags


def run_length(results: pd.DataFrame, delta: float) -> tuple[int, pd.DataFrame]:
    """The run length from the pilot's `before_after` table (tags arm, steps): the smallest L such that the next
    pilot length, paired by seed, adds less than delta / 2 to every arm's mean ID dev score. Returns (L, table of
    each arm's dev score per length and the gain of the next length); with no such L, the longest length."""
    table = _dev_scores(results, ["arm", "steps"]).sort_values(["arm", "steps"])
    table["gain of next"] = table.groupby("arm")["dev"].shift(-1) - table["dev"]
    lengths = sorted(table["steps"].unique())
    for steps in lengths[:-1]:
        if (table[table["steps"] == steps]["gain of next"] < delta / 2).all():
            return int(steps), table
    return int(lengths[-1]), table


def report(chosen: dict[str, dict], configs, length: int) -> str:
    """Markdown: each arm's pick against the setting the chapter's runs use, and the pilot's run length against
    theirs. `configs`: the chapter's runs."""
    used = {arm_of(c): c for c in configs}
    lines = [f"* **{arm.upper()}**: best on ID dev at learning rate {c['learning_rate']:g}, beta {c['beta']:g} "
             f"(dev {c['dev']:.3f}); the chapter's runs use {used[arm].learning_rate:g} and {used[arm].beta:g}"
             + (" (the same)" if (used[arm].learning_rate, used[arm].beta) == (c["learning_rate"], c["beta"]) else
                " (**differ**: the verdicts below are at the shared setting, not this arm's optimum)")
             for arm, c in chosen.items() if arm in used]
    steps = sorted({c.max_steps * c.rounds for c in configs})
    lines.append(f"* **Run length**: {length} steps (the pilot's rule); the chapter's runs take {steps[0]}"
                 + ("" if steps == [length] else " (**differ**)"))
    return "\n".join(lines)


def arm_settings(configs) -> str:
    """Each arm's learning rate and beta in `configs`, e.g. "GRPO learning rate 0.0002, beta 0.01; DPO ..."."""
    used = {arm_of(c): c for c in configs}
    return "; ".join(f"{arm.upper()} learning rate {c.learning_rate:g}, beta {c.beta:g}" for arm, c in used.items())


def provenance(configs) -> str:
    """Markdown for a tier that does not calibrate: where the chapter's settings come from."""
    settings = arm_settings(configs)
    return (f"This tier does not calibrate. The runs use the preset's settings ({settings}; {configs[0].max_steps} "
            f"steps): the learning rate was chosen from one GRPO run when the preset was written and is shared by "
            f"both algorithms, so no verdict here is at each algorithm's own optimum. The `full` tier runs the whole "
            f"grid (`cotlab.experiments.calibration.GRID`) and the run-length pilot on ID dev.")


__all__ = ["DEV_SUITES", "GRID", "TUNING_SEEDS", "arm_settings", "check_grid", "grid_runs", "grid_table", "pick", "pilot_runs",
           "provenance", "report", "run_length"]
