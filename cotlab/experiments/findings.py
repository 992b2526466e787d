"""Chapter 9: each claim of the paper against our numbers, read back from the chapters' runs in the run store.

Every claim is decided by `cotlab.experiments.verdicts`, one vocabulary everywhere: **replicated** (the 95% interval
excludes 0 in the paper's direction), **contradicted** (it excludes 0 the other way), **equivalent** (the 90% interval
lies inside +-delta: TOST, Schuirmann 1987), **inconclusive** otherwise, and always with fewer than 3 seeds or a
degenerate interval. Families of tests are Holm-adjusted (Holm 1979) before the same rules apply.

- Claims 1, 2 and 2b: GRPO - DPO, paired by seed, one primary estimate pooled over reward models
  (`verdicts.pooled_claim`) with the reward-model interaction F-test and Holm-adjusted per-reward verdicts; on each
  suite's headline metric (`value`: primary) and on its other metric (secondary). From several base models (the
  `full` tier's), one record per base and one pooled over base x reward model cells (`algorithm_claims`).
- Claim 3: the OLS slope of RL OOD gain on Best-of-N OOD generalisation over the learned reward models; the metric
  reward (the evaluator's own scorer) is an oracle, shown apart and left out of the slope.
- Claim 4: per scaling strategy and suite, GRPO's change minus DPO's, with the direction stated before the data
  (`SCALING_DIRECTIONS`), Holm over the family of tests.
- Claim 2t (chapter 11): claim 2 against distance, per hold-out level: GRPO's transfer ratio minus DPO's on the level's
  farthest part, paired by seed, Holm over the levels (`transfer.transfer_claim`), with the positive control's verdict
  beside it (`transfer_claims`).

`findings_records` gathers every claim's record (a JSON-able dict), `write_findings_json` writes them to
`_build/findings.json`, `forest_plot` draws them and `power_table` says how many seeds each pooled gap needs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cotlab.experiments import studies, transfer
from cotlab.experiments.rl import before_after, health_flag
from cotlab.experiments.verdicts import (DELTA, MIN_SEEDS, TINY, claim_record, family, gain, paired_differences,
                                         pooled_claim, pooled_gap, power_at_delta, seeds_needed)

#: Where the findings chapter writes its records: `_build/` under the repository root, wherever the notebook runs.
FINDINGS_FILE = Path(__file__).resolve().parents[2] / "_build" / "findings.json"

SUITE_NAMES = {"compbench": "ID", "geneval": "OOD"}
#: What `value` is on each suite, as each benchmark reports it; the other of `METRICS` is the secondary record.
HEADLINE_METRIC = {"compbench": "continuous", "geneval": "accuracy"}
METRICS = ("continuous", "accuracy")

GAP_UNIT = "GRPO - DPO (score)"
SLOPE_UNIT = "slope: RL OOD gain per unit of Best-of-N OOD"
TRANSFER_UNIT = "GRPO - DPO (transfer ratio)"
#: Claim 2t: claim 2 read against distance, one record per hold-out level of chapter 11 (`transfer_claims`).
TRANSFER_CLAIM = {"id": "2t", "claim": "2t. GRPO's gain carries farther out of domain than DPO's",
                  "paper": "claim 2 read against distance: GRPO's OOD advantage, the larger the farther from the "
                           "training domain; the paper measures one gap (T2I-CompBench to GenEval), no levels"}

#: Claims 1, 2, 2b: GRPO - DPO on `categories` of `suite`; direction = the sign of GRPO - DPO the paper states.
ALGORITHM_CLAIMS = (
    {"id": "1", "claim": "1. DPO is better in domain (T2I-CompBench)", "suite": "compbench",
     "categories": ("overall",), "direction": -1, "paper": "DPO ahead; one summary quotes +11.53% average"},
    {"id": "2", "claim": "2. GRPO generalises better out of domain (GenEval overall)", "suite": "geneval",
     "categories": ("overall",), "direction": +1,
     "paper": "GRPO ahead under every reward model (77.3/77.7/80.0 DPO vs 79.2/79.3/81.0 GRPO)"},
    {"id": "2b", "claim": "2b. DPO still leads on GenEval Colors and Color Attr (a reviewer's note)",
     "suite": "geneval", "categories": ("colors", "color_attr"), "direction": -1,
     "paper": "DPO ahead on both tasks"},
)

#: Claim 3. The metric reward is the evaluator's own parser: its Best-of-N is an oracle, not a reward model's
#: generalisation, so it is shown apart and kept out of the slope.
ORACLE_REWARDS = ("metric",)
MIN_REWARD_MODELS = 3   # a slope with its interval needs at least 3 points (df = k - 2 >= 1)
#: Smallest slope of interest, stated before the data: DELTA (0.03) of RL gain across a Best-of-N span of 0.2, about
#: the random-to-oracle interval of a reward model's Best-of-4 (0.41 to 0.64 in issue 18's build).
SLOPE_DELTA = DELTA / 0.2

#: Claim 4: the sign of (GRPO's change minus DPO's change) from the smallest to the largest setting, per strategy,
#: stated before the data. PAPER.md (finding 4) says only that the strategies "act differently on each paradigm",
#: over-fitting being the risk; it states no sign for any of them (their numbers were not recoverable). So every
#: strategy is None: a two-sided test whose verdicts are replicated (a difference either way), equivalent (no
#: difference of interest: evidence against the claim) or inconclusive; "contradicted" is not defined for them.
#: A sign recovered from the paper would go here, as +1 or -1, before the book is built again.
SCALING_DIRECTIONS: dict[str, int | None] = {
    "samples per prompt": None,
    "data diversity": None,
    "data volume": None,
    "iterative training": None,
}

VERDICT_COLOURS = {"replicated": "tab:green", "contradicted": "tab:red", "equivalent": "tab:blue",
                   "inconclusive": "tab:gray"}


def chapter_results(chapter: str, tier: str, progress: bool = False) -> pd.DataFrame:
    """`before_after` of a chapter's runs with the chapter's own parameters in `tier` (cached: nothing retrains);
    for the domain-gap chapter (`transfer.CHAPTER`), its `transfer.transfer_results`, parts and control included."""
    if chapter == transfer.CHAPTER:
        configs, tags, eval_options = transfer.chapter_runs(tier)
        return transfer.transfer_results(configs, tags, twin_free=transfer.TWIN_FREE, progress=progress,
                                         **eval_options)
    configs, tags, eval_options = studies.chapter_runs(chapter, tier)
    return before_after(configs, tags=tags, progress=progress, **eval_options)


def tier_scale(tier: str) -> dict:
    """The scale the RL chapters of `tier` run at (`cotlab.experiments.paper_tier`; chapter 3's `scale`)."""
    from cotlab.experiments.tiers import notebook_parameters

    return notebook_parameters("03_grpo_vs_dpo", tier)["scale"]


def domain_gap_results(tier: str, progress: bool = False) -> pd.DataFrame | None:
    """Chapter 11's results for the findings (`chapter_results`), or None where the tier's chapters run the paper's
    benchmarks: the domain-gap chapter's hold-outs are ShapeWorld's prompt meanings and have no paper-scale analog."""
    from cotlab.experiments.paper_tier import is_benchmarks

    return None if is_benchmarks(tier_scale(tier)) else chapter_results(transfer.CHAPTER, tier, progress=progress)


def findings_file(tier: str) -> Path:
    """Where the findings chapter writes its records: `FINDINGS_FILE`, the book's, except for a tier whose book is not
    built (`tiers.NO_BOOK`: paper-tiny, whose numbers mean nothing), which writes into the run store under its own
    name, never beside the book's."""
    from cotlab.experiments.tiers import NO_BOOK
    from cotlab.store import RunStore

    return RunStore().root / f"findings-{tier}.json" if tier in NO_BOOK else FINDINGS_FILE


def _flags(cells) -> str:
    """One health cell from several `health_flag` cells: "ok" when all are, else the others joined."""
    bad = list(dict.fromkeys(c for c in cells if c != "ok"))
    return "; ".join(bad) if bad else "ok"


def _number(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _metric_name(suite: str, metric: str) -> str:
    return HEADLINE_METRIC[suite] if metric == "value" else metric


def _pairs(results: pd.DataFrame, suites, categories, metric: str, swept: tuple[str, ...] = ()) -> pd.DataFrame:
    """The GRPO and DPO rows of `categories` of `suites`, checked: the metric column present, one base model, and one
    run per algorithm, reward model, seed (and `swept` setting), so that no two runs are averaged into one."""
    if metric not in results:
        raise ValueError(f"the results have no column {metric!r}; they have {', '.join(results.columns)}")
    rows = results[results["suite"].isin(suites) & results["category"].isin(categories)
                   & results["algorithm"].isin(("grpo", "dpo"))]
    if "policy" in rows and rows["policy"].nunique() > 1:
        raise ValueError(f"runs from {rows['policy'].nunique()} base models; these claims pair seeds of one base "
                         f"(give the rows of one base: `algorithm_claims` splits a table by base itself)")
    repeated = rows.duplicated(["algorithm", "reward", "seed", "suite", "category", *swept], keep=False)
    if repeated.any():
        raise ValueError(f"{int(repeated.sum())} rows share an algorithm, reward model, seed and setting with another "
                         f"(arms such as online DPO labelled 'dpo'?); each arm needs its own algorithm label")
    return rows


def _differences(rows: pd.DataFrame, spec: dict, metric: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """From a claim's rows (`_pairs`): (per-run table reward, seed, diff of GRPO - DPO; per-cell table for a claim
    over several categories, else None).

    Over several categories (claim 2b) a run's differences are averaged over them: a run scored on two tasks is one
    replicate, not two. The cells (category / reward) keep the per-task differences for the sub-records."""
    per = {c: paired_differences(rows[rows["category"] == c], "grpo", "dpo", metric) for c in spec["categories"]}
    if any(d.empty for d in per.values()):
        raise ValueError(f"claim {spec['id']}: no seed with both a GRPO and a DPO run on {spec['suite']} "
                         f"{'/'.join(c for c, d in per.items() if d.empty)}")
    if len(per) == 1:
        return next(iter(per.values())), None
    both = pd.concat(per.values()).groupby(["reward", "seed"])["diff"].agg(["mean", "count"])
    runs = both[both["count"] == len(per)]["mean"].rename("diff").reset_index()
    cells = pd.concat([d.assign(reward=f"{c} / " + d["reward"]) for c, d in per.items()], ignore_index=True)
    return runs, cells


def _bases(results: pd.DataFrame) -> list:
    """The base models of a table's GRPO and DPO rows (its `policy` column), sorted; [None] without the column."""
    if "policy" not in results:
        return [None]
    return sorted(results.loc[results["algorithm"].isin(("grpo", "dpo")), "policy"].dropna().unique()) or [None]


def _base_differences(results: pd.DataFrame, spec: dict, metric: str):
    """(rows, runs, cells) of a claim (`_pairs`, `_differences`) over every base of `results`: with several bases,
    each base's differences with its reward labels prefixed by the base ("default-seed1 / metric"), so that a base x
    reward model cell is one level of the factor `verdicts.pooled_gap` pools over."""
    bases = _bases(results)
    if len(bases) == 1:
        rows = _pairs(results, (spec["suite"],), spec["categories"], metric)
        return (rows, *_differences(rows, spec, metric))
    rows, runs, cells = [], [], []
    for base in bases:
        r = _pairs(results[results["policy"] == base], (spec["suite"],), spec["categories"], metric)
        d, c = _differences(r, spec, metric)
        rows.append(r)
        runs.append(d.assign(reward=f"{base} / " + d["reward"]))
        if c is not None:
            cells.append(c.assign(reward=f"{base} / " + c["reward"]))
    return pd.concat(rows), pd.concat(runs, ignore_index=True), pd.concat(cells, ignore_index=True) if cells else None


def _algorithm_record(spec: dict, rows: pd.DataFrame, runs: pd.DataFrame, cells, metric: str, claim: str) -> dict:
    record = pooled_claim(claim, runs, spec["direction"])
    if cells is not None:
        record["per_reward"] = family([t | {"direction": spec["direction"]} for t in pooled_gap(cells)["per_reward"]])
    name = _metric_name(spec["suite"], metric)
    return record | {
        "id": spec["id"], "paper": spec["paper"], "suite": SUITE_NAMES[spec["suite"]], "metric": name,
        "role": "primary" if name == HEADLINE_METRIC[spec["suite"]] else "secondary", "unit": GAP_UNIT,
        "health": health_flag(rows)}


def algorithm_claims(results: pd.DataFrame, metric: str = "value") -> list[dict]:
    """Records of claims 1, 2 and 2b (`ALGORITHM_CLAIMS`) on `metric`, a column of `before_after`'s table.

    Each: GRPO - DPO per (reward model, seed), pooled over reward models by `verdicts.pooled_claim` (one-way layout of
    the paired differences with reward model as a factor: estimate = mean of the reward-model means, se from the
    within-reward MSE; the interaction F-test of algorithm x reward), with per-reward verdicts Holm-adjusted (claim
    2b: per task x reward model). Role "primary" on the suite's headline metric (`value`), else "secondary".

    Runs from several base models (the table's `policy` column; issue 18, the `full` tier's bases) give, per claim,
    one record per base (id "<id>@<base>", "base": its name), pooled over that base's reward models as above, and
    first the pooled record (its own id, "bases": their names), pooled over bases by the same one-way layout with the
    base x reward model cells as the factor (`verdicts.pooled_gap`: d_cs = mu + tau_c + e_cs, estimate = the mean of
    the C cell means, se = sqrt(MSE sum_c 1/n_c) / C, df = N - C): every base and reward model weighs the same, the
    seeds are replicates within a cell, and the interaction F-test asks whether the gap differs between cells (bases
    or reward models). Its per-reward parts are the cells, Holm-adjusted. Bases are fixed effects: the interval is
    about these bases, not a population of bases. With one base the records are exactly those of one base alone."""
    out = []
    bases = _bases(results)
    for spec in ALGORITHM_CLAIMS:
        rows, runs, cells = _base_differences(results, spec, metric)
        record = _algorithm_record(spec, rows, runs, cells, metric, spec["claim"])
        if len(bases) == 1:
            out.append(record)
            continue
        out.append(record | {"bases": [str(b) for b in bases]})
        for base in bases:
            r, d, c = _base_differences(results[results["policy"] == base], spec, metric)
            out.append(_algorithm_record(spec, r, d, c, metric, f"{spec['claim']} [base {base}]")
                       | {"id": f"{spec['id']}@{base}", "base": str(base)})
    return out


def _base_se(base_row: pd.Series, metric: str) -> float:
    """The base evaluation's per-image bootstrap SE of `metric` (column "se" for `value`, "<metric>_se" otherwise);
    0 for a table without it (evaluated before per-image SEs were logged: the base is then treated as exact)."""
    se = base_row.get("se" if metric == "value" else f"{metric}_se")
    return float(se) if se is not None and pd.notna(se) else 0.0


def _half_width(se: float, df: float) -> float:
    """95% t half-width t_{0.975, df} se (0 for an exact number)."""
    return 0.0 if se == 0 else float(stats.t.ppf(0.975, df) * se)


def best_of_n_vs_rl(bon: pd.DataFrame, results: pd.DataFrame, best_of: int,
                    metric: str = "value") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reprinted table's shape and the points of chapter 4's figure.

    `bon`: `compare_reward_models` rows (one per reward model and training seed); `results`: `before_after` of the
    chapter-4 runs; `metric`: the column RL is scored on. Returns (table: rows DPO, GRPO (those that ran), Best-of-N,
    columns reward models, GenEval-style overall x100 as "mean ± 95%"; points: per reward model and algorithm,
    Best-of-N OOD with its 95% half-width over reward-model seeds, and the RL OOD gain over the base with its 95%
    half-width, which carries the base evaluation's own SE (`verdicts.gain`: se = sqrt(s^2/n + se_base^2),
    Welch-Satterthwaite df), seeds and health)."""
    from cotlab.evaluation import mean_ci

    ood = results[(results["category"] == "overall") & (results["suite"] == "geneval")]
    _pairs(ood, ("geneval",), ("overall",), metric)    # refuses several bases, or arms under one label
    base_rows = ood[ood["algorithm"] == "base"]
    if len(base_rows) != 1:
        raise ValueError(f"{len(base_rows)} base evaluations out of domain; these points need exactly one base model")
    base, base_se = float(base_rows[metric].iloc[0]), _base_se(base_rows.iloc[0], metric)
    algorithms = [a for a in ("dpo", "grpo") if (ood["algorithm"] == a).any()]
    cells, points = {}, []
    for reward in bon["reward model"].unique():
        b = mean_ci(bon[bon["reward model"] == reward][f"ood best-of-{best_of}"])
        cells.setdefault(f"Best-of-{best_of}", {})[reward] = b
        for algorithm in algorithms:
            runs = ood[(ood["reward"] == reward) & (ood["algorithm"] == algorithm)]
            cells.setdefault(algorithm.upper(), {})[reward] = mean_ci(runs[metric])
            g = gain(runs[metric], base, base_se)
            points.append({"reward": reward, "algorithm": algorithm.upper(), "best-of-N": b[0], "best-of-N ±": b[1],
                           "RL OOD gain": g["estimate"], "RL OOD gain ±": _half_width(g["se"], g["df"]),
                           "seeds": g["seeds"], "health": health_flag(runs)})
    rows = [a.upper() for a in algorithms] + [f"Best-of-{best_of}"]
    table = pd.DataFrame({row: {r: f"{100 * m:.1f} ± {100 * h:.1f}" for r, (m, h) in v.items()}
                          for row, v in cells.items()}).T.loc[rows]
    return table, pd.DataFrame(points)


def check_same_seeds(configs, reward_seeds) -> None:
    """Refuse chapter-4 runs whose learned reward models were trained with other seeds than the Best-of-N selectors'
    (`reward_seeds`): each point of claim 3 must read the same reward models on both axes (issue 18)."""
    used = studies.reward_seeds_of(configs)
    wrong = {label: seeds for label, seeds in used.items() if seeds != sorted(int(s) for s in reward_seeds)}
    if wrong:
        raise ValueError(f"the RL runs of {', '.join(wrong)} use reward-model seeds {list(wrong.values())[0]} but "
                         f"Best-of-N reads seeds {sorted(reward_seeds)}; give reward_seeds equal to the RL seeds")


def reward_points(rl_preset: str, seeds, rewards: list[dict], reward_training: dict, algorithms, best_of: int,
                  reward_seeds, images_per_prompt: int, prompts_per_category: int, eval_seeds,
                  progress: bool = False, scale=None) -> dict:
    """Chapter 4 from the run store, with the chapter's parameters (`tiers.PRESETS["04_reward_to_rl"]`; chapter 9
    passes its tier's): the base model's samples (`samples`), Best-of-N per reward model and seed (`bon`,
    `compare_reward_models`), the RL results (`results`, `before_after`), and `best_of_n_vs_rl`'s `table` and
    `points`. Best-of-N's reward-model seeds are checked to be the RL runs' (`check_same_seeds`). At a benchmarks
    `scale` (`cotlab.experiments.paper_tier`) the samples are scored by the benchmarks' scorers and the runs are the
    paper's (`studies.comparison_runs` with the scale)."""
    from cotlab.experiments import paper_tier
    from cotlab.experiments.reward_eval import compare_reward_models
    from cotlab.training import load_policy

    configs, tags = studies.comparison_runs(rl_preset, seeds, rewards, reward_training, algorithms, scale=scale)
    check_same_seeds(configs, reward_seeds)
    base = load_policy(configs[0].policy)
    samples = {which: paper_tier.sample_base(scale, base, which, prompts_per_category=prompts_per_category,
                                             n=best_of, guidance_scale=configs[0].guidance_scale, progress=progress)
               for which in ("id", "ood")}
    selectors = [dict(r, **reward_training) if r["name"] in studies.LEARNED else paper_tier.reward_fields(scale, r)
                 for r in rewards]
    bon = compare_reward_models(samples, selectors, reward_seeds, progress=progress)
    results = before_after(configs, tags=tags, images_per_prompt=images_per_prompt,
                           prompts_per_category=prompts_per_category, seeds=eval_seeds, progress=progress,
                           **paper_tier.eval_options(scale))
    table, points = best_of_n_vs_rl(bon, results, best_of)
    return {"samples": samples, "bon": bon, "results": results, "table": table, "points": points}


def ols_slope(x, y) -> dict:
    """OLS slope of y on x with its t-interval ingredients: b = Sxy / Sxx, s^2 = RSS / (k - 2),
    se(b) = sqrt(s^2 / Sxx), df = k - 2 (the slope's t-interval b +- t_{0.975, k-2} se(b)). Returns estimate, se, df and
    seeds (= k, the number of points); se is nan with fewer than 3 points or no spread in x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    k = x.size
    xc = x - x.mean() if k else x
    sxx = float((xc ** 2).sum())
    slope = float((xc * (y - y.mean())).sum() / sxx) if sxx > 0 else math.nan
    df = k - 2
    rss = float(((y - y.mean() - slope * xc) ** 2).sum()) if sxx > 0 else math.nan
    se = math.sqrt(rss / df / sxx) if df > 0 and sxx > 0 else math.nan
    return {"estimate": slope, "se": se, "df": df, "seeds": k}


def _slope_caveat(bon: pd.DataFrame, rl_seeds: int, se: float) -> str | None:
    """Why a slope over the learned reward models `bon` (columns best-of-N, best-of-N ±) cannot be decided, or None."""
    k = len(bon)
    if k < MIN_REWARD_MODELS:
        return (f"only {k} learned reward model(s); a slope needs at least {MIN_REWARD_MODELS} "
                f"(issue 18 asks for 6 spanning random to oracle)")
    top, bottom = bon["best-of-N"].idxmax(), bon["best-of-N"].idxmin()
    spread = bon.loc[top, "best-of-N"] - bon.loc[bottom, "best-of-N"]
    noise = math.hypot(bon.loc[top, "best-of-N ±"], bon.loc[bottom, "best-of-N ±"])
    if not spread > max(noise, TINY):
        return (f"degenerate spread: the learned reward models' Best-of-N span {spread:.3f}, within its own noise "
                f"(±{noise:.3f}); there is no range of generalisation to regress on")
    if rl_seeds < MIN_SEEDS:
        return f"only {rl_seeds} RL seed(s) per reward model; a verdict needs at least {MIN_SEEDS}"
    if not se > TINY:
        return "the points lie exactly on a line: the interval is degenerate, not precise"
    return None


def reward_claim(points: pd.DataFrame, metric: str = "value") -> dict:
    """Finding 3 from chapter 4's points (`best_of_n_vs_rl`): the OLS slope of RL OOD gain (mean of GRPO's and
    DPO's) on Best-of-N OOD over the learned reward models, direction +1, smallest slope of interest `SLOPE_DELTA`;
    per-algorithm slopes as sub-records, Holm-adjusted. The oracle rewards (`ORACLE_REWARDS`) are listed apart.

    Inconclusive, saying why, with fewer than `MIN_REWARD_MODELS` learned models, a degenerate spread (the extreme
    models' Best-of-N differ by no more than their combined 95% half-widths sqrt(h_max^2 + h_min^2)), fewer than
    `MIN_SEEDS` RL seeds per point, or points exactly on a line. A base-score shift moves every gain alike, so the
    slope does not depend on the base evaluation's noise."""
    oracle = points["reward"].isin(ORACLE_REWARDS)
    learned = points[~oracle]
    gains = learned.pivot_table(index="reward", columns="algorithm", values="RL OOD gain").dropna()
    bon = learned.groupby("reward")[["best-of-N", "best-of-N ±"]].first().loc[gains.index]
    rl_seeds = int(learned["seeds"].min()) if len(learned) else 0
    x = bon["best-of-N"]

    def decided(record: dict) -> dict:
        caveat = _slope_caveat(bon, rl_seeds, record["se"] if record["se"] is not None else math.nan)
        return record | {"seeds": rl_seeds, "reward_models": len(bon)} | (
            {"verdict": "inconclusive", "why": caveat} if caveat else {})

    record = decided(claim_record("3. Reward models that generalise better make RL generalise better",
                                  direction=+1, delta=SLOPE_DELTA, **ols_slope(x, gains.mean(axis=1))))
    per = family([ols_slope(x, gains[a]) | {"claim": a, "direction": +1} for a in gains.columns], SLOPE_DELTA)
    return record | {
        "id": "3", "paper": "Best-of-4 order HPS < ImageReward < UnifiedReward, mirrored by DPO and GRPO",
        "suite": "OOD", "metric": _metric_name("geneval", metric), "role": "primary", "unit": SLOPE_UNIT,
        "per_algorithm": [decided(r) for r in per],
        "points": [{"reward": r, "best-of-N": _number(bon.loc[r, "best-of-N"]),
                    **{f"{a} gain": _number(gains.loc[r, a]) for a in gains.columns}} for r in gains.index],
        "oracle": [{"reward": p["reward"], "algorithm": p["algorithm"], "best-of-N": _number(p["best-of-N"]),
                    "RL OOD gain": _number(p["RL OOD gain"])} for p in points[oracle].to_dict("records")],
        "health": _flags(points["health"])}


def scaling_claims(sweeps: dict[str, tuple[pd.DataFrame, str]], metric: str = "value") -> list[dict]:
    """Finding 4: per strategy (a key of `SCALING_DIRECTIONS`) and suite, GRPO's change minus DPO's from the smallest
    to the largest setting of the swept variable, paired by seed: d_s = (g_s(high) - g_s(low)) - (p_s(high) -
    p_s(low)), a one-sample t on the d_s; one record each, both p-values Holm-adjusted over the whole family
    (`verdicts.family`). `sweeps`: strategy -> (`before_after` table with the swept column, its name); one reward
    model per sweep."""
    unknown = [name for name in sweeps if name not in SCALING_DIRECTIONS]
    if unknown:
        raise ValueError(f"no direction stated for {unknown}; state it in SCALING_DIRECTIONS (before the data): "
                         f"{', '.join(SCALING_DIRECTIONS)}")
    tests, about = [], []
    for name, (results, variable) in sweeps.items():
        overall = _pairs(results, tuple(SUITE_NAMES), ("overall",), metric, swept=(variable,))
        low, high = overall[variable].min(), overall[variable].max()
        for suite, label in SUITE_NAMES.items():
            runs = overall[overall["suite"] == suite]
            change = {a: runs[runs["algorithm"] == a].pivot_table(index="seed", columns=variable, values=metric)
                      for a in ("grpo", "dpo")}
            d = ((change["grpo"][high] - change["grpo"][low]) - (change["dpo"][high] - change["dpo"][low])).dropna()
            n = len(d)
            sd = float(d.std(ddof=1)) if n > 1 else math.nan
            tests.append({"claim": f"4. {name}, {label}: GRPO's change minus DPO's ({variable} {low:g} -> {high:g})",
                          "estimate": float(d.mean()) if n else math.nan, "se": sd / math.sqrt(n) if n else math.nan,
                          "df": n - 1, "seeds": n, "sd": sd, "direction": SCALING_DIRECTIONS[name]})
            about.append({"id": "4", "strategy": name, "suite": label, "metric": _metric_name(suite, metric),
                          "role": "primary", "unit": GAP_UNIT, "health": health_flag(runs),
                          "paper": "the strategies act differently on each paradigm; no direction stated "
                                   "(two-sided), numbers not recoverable"})
    return [record | extra for record, extra in zip(family(tests), about)]


def transfer_claims(results: pd.DataFrame, metric: str = "value") -> list[dict]:
    """Claim 2t from chapter 11's `transfer.transfer_results` table: one record per reward model and hold-out level,
    `transfer.transfer_claim`'s verdict on GRPO's transfer ratio minus DPO's (paired by seed, Holm over the levels)
    on `metric` ("value": primary; "accuracy": secondary), with the health of the level's runs and, where the table
    holds the positive control, its verdict (`transfer.control_verdict`: control, control_why; and where the table
    has the skill score, the control's verdict on it: control_skill, control_skill_why). The verdict stands as
    decided; a control that is "blind" or learned nothing is said in `why` (ratios then are no evidence of transfer,
    or untested)."""
    check = skill = None
    if "control" in results and (results["control"] == transfer.CONTROL).any():
        check = transfer.control_verdict(results, metric=metric)
        if transfer.SKILL in results:  # the control on the held-out skill alone (chapter 11), beside every record
            skill = transfer.control_verdict(results, metric=transfer.SKILL)
    caveat = {"blind": "; the positive control is blind (the measurement cannot see over-fitting here, so a ratio "
                       "near 1 is no evidence of transfer)",
              "no in-domain gain": "; the positive control did not learn in domain, so the measurement is untested"}
    plain = results[results["control"].isna()] if "control" in results else results
    out = []
    for record in transfer.transfer_claim(transfer.transfer_table(results), metric=metric):
        runs = plain[(plain["holdout"] == record["holdout"]) & plain["algorithm"].isin(record["arms"])]
        extra = {} if check is None else {"control": check["verdict"], "control_why": check["why"],
                                          "why": record["why"] + caveat.get(check["verdict"], "")}
        if skill is not None:
            extra |= {"control_skill": skill["verdict"], "control_skill_why": skill["why"]}
        out.append(record | extra | {
            "id": TRANSFER_CLAIM["id"], "paper": TRANSFER_CLAIM["paper"],
            "claim": f"{TRANSFER_CLAIM['claim']}: {record['holdout']} ({record['target']})",
            "test": record["claim"], "suite": "OOD" if record["target"].startswith("ood") else "ID",
            "metric": "headline value" if metric == "value" else metric,
            "role": "primary" if metric == "value" else "secondary", "unit": TRANSFER_UNIT,
            "health": health_flag(runs)})
    return out


def findings_records(comparison: pd.DataFrame, points: pd.DataFrame, sweeps: dict[str, tuple[pd.DataFrame, str]],
                     tier: str, transfer_results: pd.DataFrame | None = None) -> list[dict]:
    """Every claim's record for `_build/findings.json`, in claim order: claims 1, 2, 2b on the headline metric
    (primary) and on the other metric where the table has its column (secondary), claim 2t per hold-out level from
    chapter 11's `transfer_results` when given (`transfer_claims`: value primary, accuracy secondary), claim 3 from
    chapter 4's `points`, claim 4 from `sweeps` (see `scaling_claims`). Each record: claim, paper, estimate, ci95,
    ci90, seeds, delta, power_at_delta, verdict, why, health, metric, role, unit, tier, and its sub-records
    (per_reward, per_algorithm)."""
    secondary = [r for m in METRICS if m in comparison for r in algorithm_claims(comparison, m)
                 if r["role"] == "secondary"]
    records = algorithm_claims(comparison) + secondary + [reward_claim(points)] + scaling_claims(sweeps)
    if transfer_results is not None:
        records += [r for m in transfer.METRICS for r in transfer_claims(transfer_results, m)]
    return sorted((r | {"tier": tier} for r in records), key=lambda r: r["id"])


def write_findings_json(records: list[dict], path: str | Path = FINDINGS_FILE) -> Path:
    """Write `records` as JSON to `path` atomically (`atomic_write_text`: a temp file, fsync, rename; a reader sees
    the old file or the new one, never half of one). Non-finite numbers are refused (records hold None instead)."""
    from cotlab.state_files import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(records, indent=1, allow_nan=False) + "\n")
    return path


def claims_table(records: list[dict]) -> pd.DataFrame:
    """One row per record, for reading: estimate with its 95% interval, power at delta, seeds, verdict and why, the
    reward-model interaction p and the per-reward (or per-algorithm) verdicts, health."""
    def interval(ci):
        return "n/a" if None in ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"

    rows = []
    for r in records:
        parts = r.get("per_reward", r.get("per_algorithm", []))
        rows.append({"claim": r["claim"], "metric": f"{r['metric']} ({r['role']})",
                     "estimate": "n/a" if r["estimate"] is None else f"{r['estimate']:+.3f}",
                     "95% interval": interval(r["ci95"]), "90% interval": interval(r["ci90"]),
                     "delta": f"±{r['delta']:.3g}", "seeds": r["seeds"],
                     "power at delta": "n/a" if r["power_at_delta"] is None else f"{r['power_at_delta']:.2f}",
                     "verdict": r["verdict"], "why": r["why"],
                     "interaction p": "" if r.get("interaction_p") is None else f"{r['interaction_p']:.3g}",
                     "parts (Holm)": "; ".join(f"{p['claim']}: {p['verdict']}" for p in parts),
                     "health": r["health"]})
    return pd.DataFrame(rows)


def forest_plot(records: list[dict]):
    """Every record as one row: its estimate (dot), 90% interval (thick) and 95% interval (thin), coloured by
    verdict, against 0 and a grey band of ±delta; one panel per unit (gaps; claim 2t's transfer ratios; claim 3's
    slope). Returns the figure, made with pyplot so that a notebook's inline backend draws it at the end of the cell
    (end the cell with `;`): a bare `Figure` as a cell's value renders as text until pyplot has drawn a figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    units = list(dict.fromkeys(r["unit"] for r in records))
    groups = [[r for r in records if r["unit"] == u] for u in units]
    fig = plt.figure(figsize=(11, 0.4 * len(records) + 1.1 * len(units) + 0.6), layout="constrained")
    axes = fig.subplots(len(units), 1, squeeze=False, gridspec_kw={"height_ratios": [len(g) for g in groups]})[:, 0]
    for ax, unit, group in zip(axes, units, groups):
        rows = range(len(group) - 1, -1, -1)     # the first record on top
        for y, r in zip(rows, group):
            colour = VERDICT_COLOURS[r["verdict"]]
            ax.fill_betweenx([y - 0.4, y + 0.4], -r["delta"], r["delta"], color="0.9", lw=0)
            for key, width in (("ci95", 1.2), ("ci90", 4.0)):
                if None not in r[key]:
                    ax.plot(r[key], [y, y], color=colour, lw=width, solid_capstyle="butt")
            if r["estimate"] is not None:
                ax.plot(r["estimate"], y, "o", color=colour, mec="black", mew=0.5, ms=6)
        labels = [f"{r['claim']} [{r['metric']}{', secondary' if r['role'] == 'secondary' else ''}]" for r in group]
        ax.set_yticks(list(rows), labels, fontsize=8)
        ax.set_ylim(-0.6, len(group) - 0.4)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(unit)
    handles = [Line2D([], [], marker="o", ls="", color=c, mec="black", mew=0.5, label=v)
               for v, c in VERDICT_COLOURS.items()]
    handles += [Line2D([], [], color="black", lw=4.0, label="90% interval"),
                Line2D([], [], color="black", lw=1.2, label="95% interval"), Patch(color="0.9", label="±delta")]
    axes[0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[0].set_title("Each claim against 0 and ±delta, coloured by verdict", fontsize=10)
    return fig


def power_table(results: pd.DataFrame) -> pd.DataFrame:
    """For each pooled gap of claims 1, 2, 2b (chapter 3's table), on the headline metric and the secondary one where
    present: reward models R (with several bases, the base x reward model cells `algorithm_claims` pools over),
    seeds n, the measured seed-to-seed SD of the paired GRPO - DPO difference (sqrt of the within-reward MSE,
    `verdicts.pooled_gap`), the 95% half-width now, the power at delta with the current seeds
    (`verdicts.power_at_delta`, noncentral t with df = R(n - 1)) and the seeds per reward model needed for a 95%
    half-width of at most delta (`verdicts.seeds_needed`)."""
    rows = []
    for spec in ALGORITHM_CLAIMS:
        for metric in ("value", *(m for m in METRICS if m in results)):
            name = _metric_name(spec["suite"], metric)
            if metric != "value" and name == HEADLINE_METRIC[spec["suite"]]:
                continue    # the headline metric under its own name: already in the table as `value`
            p = pooled_gap(_base_differences(results, spec, metric)[1])  # several bases: base x reward cells
            finite = math.isfinite(p["sd"])
            rows.append({"claim": spec["claim"], "metric": name, "reward models": p["rewards"], "seeds": p["seeds"],
                         "SD of the paired gap": p["sd"], "95% half-width": _half_width(p["se"], p["df"]),
                         "delta": DELTA,
                         "power at delta": power_at_delta(p["sd"], p["seeds"], groups=p["rewards"]) if finite
                         else math.nan,
                         "seeds needed": seeds_needed(p["sd"], groups=p["rewards"]) if finite else None})
    return pd.DataFrame(rows)


__all__ = ["ALGORITHM_CLAIMS", "FINDINGS_FILE", "HEADLINE_METRIC", "ORACLE_REWARDS", "SCALING_DIRECTIONS",
           "SLOPE_DELTA", "TRANSFER_CLAIM", "algorithm_claims", "best_of_n_vs_rl", "chapter_results", "claims_table",
           "findings_records", "forest_plot", "ols_slope", "power_table", "reward_claim", "scaling_claims",
           "transfer_claims", "write_findings_json"]
