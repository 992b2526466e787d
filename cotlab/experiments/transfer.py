"""Transfer against distance (issue 19): how far out of domain does each algorithm's gain carry?

A run trains with a hold-out (`cotlab.world.HOLDOUTS`: L0 today's split, L1 held-out attribute bindings, L2 a skill
held out of RL, L3 the same skill held out of pretraining too) and is evaluated on the parts of the suites the
hold-out defines (`holdout_suites`), each part under a role:

* "id": in domain and seen, CompBench-style "val-seen" (L0: all of "val");
* "id-heldout": the CompBench-style val prompts that touch the hold-out ("val-heldout");
* "ood": the GenEval-style prompts that do not ("test-seen"; L0: all of "test");
* "ood-heldout": GenEval-style prompts that touch it ("test-heldout");
* "ood-twin-free" (with `twin_free=True`): the "ood" prompts without a meaning twin among the training prompts.

The transfer ratio of a run on a part p (`transfer_table`), per metric (the headline value and accuracy, and the
skill score):

    gain_p = score_p(trained) - score_p(base),     ratio_p = gain_p / gain_id,

the base being the policy the run started from (evaluated under the same hold-out). A ratio of 1: the gain carried
to p in full; 0: none of it. It is defined only where the in-domain gain is a gain worth carrying, gain_id >=
`MIN_ID_GAIN` (= `verdicts.DELTA`, the smallest effect of interest): below it (near 0, or negative) the ratio is
reported as undefined (NaN, `defined` False), never divided out, and a level with an undefined seed gets no verdict.

The claim (`transfer_claim`; the paper's claim 2: GRPO generalises better, more so the farther from the training
domain): per level, GRPO's ratio minus DPO's on the level's farthest part ("ood-heldout"; L0 holds nothing out, so
its farthest part is "ood", today's ID/OOD contrast), paired by seed, d_s = ratio_s(GRPO) - ratio_s(DPO):

    estimate = mean_s d_s,   se = sd(d) / sqrt(n),   df = n - 1,   direction +1,

decided in `cotlab.experiments.verdicts`' vocabulary (replicated / contradicted / equivalent / inconclusive) with both
p-values Holm-adjusted over the levels (`verdicts.family`).

The positive control (`overfit_control`, `control_verdict`): a run of many epochs over a few dozen prompts should
gain in domain without gaining on the held-out part; if the measurement shows the held-out gain as large as the
in-domain one there too, it cannot see over-fitting, and a ratio near 1 is no evidence of transfer.

The skill score (`SKILL`, `cotlab.evaluation.skill_score`): the held-out skill alone, given its prerequisites. A
held-out prompt is mostly prerequisites (draw the named objects right) that every run learns; a GenEval-style
position check then passes by layout priors. The skill score of an image is whether its relation holds given both
named objects drawn right (a held-out relation), whether its count is exact given its kind drawn (a held-out count),
whether its attributes are bound right given each is drawn (held-out combinations); an image whose prerequisites fail
is excluded, so it is a conditional accuracy over `skill_n` images, with its bootstrap SE `skill_se`. The chance
level (`skill_chance_table`): a policy that draws the objects right and leaves the skill to chance (e.g. places them
at random).

Meaning twins (`overlap_table`, `twin_free_prompts`): the share of OOD prompts that mean exactly what some training
prompt means, per task, and the OOD prompts without such a twin.

The chapter (notebooks/11_domain_gap.ipynb) makes `chapter_configs`' runs; `chapter_runs(tier)` gives them with the
chapter's own parameters, for the findings chapter and the planner, which builds exactly `evaluation_calls`'
evaluations of each run; `transfer_plot`, `twin_free_table` and `heldout_samples` draw what the chapter shows.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cotlab.experiments.verdicts import DELTA
from cotlab.store import RunStore, read_jsonl

MIN_ID_GAIN = DELTA  # an in-domain gain below this has no transfer ratio (module docstring)
# (suite, split) -> role; the seen and held-out parts of each suite, L0's whole splits.
ROLES = {("compbench", "val"): "id", ("compbench", "val-seen"): "id", ("compbench", "val-heldout"): "id-heldout",
         ("geneval", "test"): "ood", ("geneval", "test-seen"): "ood", ("geneval", "test-heldout"): "ood-heldout"}
TARGETS = ("id-heldout", "ood", "ood-twin-free", "ood-heldout")  # the roles a gain can transfer to
FARTHEST = ("ood-heldout", "ood", "id-heldout")  # the part a level's claim is on: the first of these it has
METRICS = ("value", "accuracy")  # the claims' metrics (chapter 9 carries both)
SKILL = "skill"  # the skill score (module docstring), a third metric where the rows have it
CONTROL_METRICS = (*METRICS, SKILL)  # what the positive control is judged on (`control_verdicts`)
CONTROL = "overfit"  # the control run's tag value (column "control")


def level_of(holdout: str) -> str:
    """A hold-out's level: "L0", "L1", "L2" or "L3" (the part of its name before the first "-")."""
    return holdout.split("-")[0]


def farthest(roles) -> str:
    """The farthest of `roles` from the training prompts: "ood-heldout", else "ood" (L0), else "id-heldout"."""
    for role in FARTHEST:
        if role in set(roles):
            return role
    raise ValueError(f"no part to transfer to among {sorted(set(roles))}; expected one of {', '.join(FARTHEST)}")


# -- the evaluation parts -------------------------------------------------------------------------------------------

def holdout_suites(holdout: str) -> list[tuple[str, str]]:
    """The (suite, split) parts a run with `holdout` is evaluated on: ("compbench", "val-seen"), ("compbench",
    "val-heldout"), ("geneval", "test-seen"), ("geneval", "test-heldout"), without those the hold-out leaves empty;
    L0, which holds nothing out: ("compbench", "val") and ("geneval", "test")."""
    from cotlab.world import check_holdout, load_suite

    if check_holdout(holdout).empty:
        return [("compbench", "val"), ("geneval", "test")]
    parts = []
    for suite, split in (("compbench", "val-seen"), ("compbench", "val-heldout"), ("geneval", "test-seen"),
                         ("geneval", "test-heldout")):
        try:
            load_suite(suite, split, holdout=holdout)
        except ValueError:  # the hold-out leaves this part empty
            continue
        parts.append((suite, split))
    return parts


def _calls(holdout: str) -> list[list[tuple[str, str | None]]]:
    """`holdout_suites` grouped into evaluation calls with one split per suite each, so that a row's suite names its
    part: the seen parts, then the held-out ones. L0's one call is `rl.SUITES` as chapters 3-7 spell it (geneval's
    split None, i.e. "test"), so L0 reads their evaluations back from the run store."""
    from cotlab.experiments.rl import SUITES

    parts = holdout_suites(holdout)
    if parts == [("compbench", "val"), ("geneval", "test")]:
        return [list(SUITES)]
    return [group for group in ([p for p in parts if not p[1].endswith("heldout")],
                                [p for p in parts if p[1].endswith("heldout")]) if group]


def evaluation_calls(holdout: str, *, twin_free: bool = False, **eval_options) -> list[tuple[list, dict, str]]:
    """The `rl.evaluation_scores` calls `part_scores` makes for a policy trained with `holdout`, as (suites, options,
    label): one split per suite each (`_calls`), `holdout=` in the options unless L0 (so L0's evaluation keys stay
    those of chapters 3-7), and with `twin_free` one more call, the "ood" part without its meaning twins
    (`twin_free=True` to `evaluate_policy`; label "+twin-free"). The planner (`cotlab.experiments.graph`) builds
    exactly these evaluations, so the chapter finds them in the run store."""
    options = dict(eval_options) if holdout == "L0" else {**eval_options, "holdout": holdout}
    calls = [(call, options, "") for call in _calls(holdout)]
    if twin_free:
        ood = [p for p in holdout_suites(holdout) if ROLES[p] == "ood"]
        calls.append((ood, {**options, "twin_free": True}, "+twin-free"))
    return calls


def part_scores(policy_dir, name: str, holdout: str, *, twin_free: bool = False, store=None, progress: bool = True,
                **eval_options) -> list[dict]:
    """`rl.evaluation_scores` rows of `policy_dir` on every part of `holdout` (`holdout_suites`), each with the part
    it scores: {suite, split, part ("compbench:val-seen"), role, category, value, continuous, accuracy, se, skill,
    skill_n, skill_se} (`EvalResult.scores`).
    Each call gets one split per suite (its rows are keyed by suite), and `holdout=` in `eval_options` unless L0
    (so L0's evaluation keys stay those of chapters 3-7). `twin_free`: one more call, the "ood" part without its
    meaning twins (`twin_free=True` to `evaluate_policy`, which must take it; part "geneval:test-seen+twin-free",
    role "ood-twin-free"). The calls are `evaluation_calls`'."""
    from cotlab.experiments import rl

    rows = []
    for call, call_options, label in evaluation_calls(holdout, twin_free=twin_free, **eval_options):
        splits = {suite: split or "test" for suite, split in call}
        for r in rl.evaluation_scores(policy_dir, name, suites=call, store=store, progress=progress,
                                      **call_options):
            split = splits[r["suite"]]
            role = ROLES[(r["suite"], split)] + ("-twin-free" if label else "")
            rows.append({**r, "split": split, "part": f"{r['suite']}:{split}{label}", "role": role})
    return rows


# -- runs -------------------------------------------------------------------------------------------------------------

def transfer_runs(rl_preset: str, seeds, reward: dict, holdouts, arms=("grpo", "dpo", "dpo-online")):
    """(configs, tags) for `rl.before_after`-style studies: every arm (`cotlab.training.ARMS`) at every hold-out and
    seed, each arm's run of a seed aligned with the first arm's (`studies.aligned_runs`). An L3 hold-out's runs start
    from the base pretrained without it (`cotlab.policy.pretrain.holdout_tier`). Tags: holdout, level."""
    from cotlab.experiments.studies import aligned_runs, reward_config
    from cotlab.policy.pretrain import holdout_tier
    from cotlab.training import preset
    from cotlab.world import check_holdout

    holdouts = list(holdouts)
    for h in holdouts:
        check_holdout(h)
    policy = preset(rl_preset, "grpo").policy
    variants = [({"holdout": h, "level": level_of(h)},
                 {**reward_config(reward), "holdout": h, "policy": holdout_tier(policy, h)}) for h in holdouts]
    return aligned_runs(rl_preset, seeds, variants, arms=arms)


def overfit_control(rl_preset: str, seed: int, reward: dict, holdout: str, *, arm: str = "grpo",
                    num_prompts: int = 24, epochs: int = 20):
    """(config, tag) of the positive control: `arm` in `rl_preset` with `holdout`, on the first `num_prompts` training
    prompts (after the seed's shuffle) for at least `epochs` passes over them: max_steps = ceil(epochs x num_prompts
    / prompts_per_step) per round. It should over-fit: gain in domain, not on the held-out part (`control_verdict`).
    Tag: holdout, level, control ("overfit"), prompts, epochs (prompt draws / prompts, as `studies.data_runs`)."""
    from cotlab.experiments.studies import reward_config
    from cotlab.policy.pretrain import holdout_tier
    from cotlab.training import arm_preset, preset

    first = preset(rl_preset, "grpo")
    steps = math.ceil(epochs * num_prompts / first.prompts_per_step)
    cfg = arm_preset(rl_preset, arm, seed=seed, holdout=holdout, policy=holdout_tier(first.policy, holdout),
                     num_prompts=num_prompts, max_steps=steps, **reward_config(reward))
    draws = cfg.rounds * cfg.max_steps * cfg.prompts_per_step
    return cfg, {"holdout": holdout, "level": level_of(holdout), "control": CONTROL, "prompts": num_prompts,
                 "epochs": round(draws / num_prompts, 2)}


def transfer_results(configs, tags=None, *, twin_free: bool = False, store=None, progress: bool = True,
                     **eval_options) -> pd.DataFrame:
    """Train each config (cached, `rl.rl_run`) and evaluate its base and the trained policy on the parts of its
    hold-out (`part_scores`). A long table like `rl.before_after`'s, one row per (policy, part, category, with
    "overall"): algorithm (the arm; "base" for a starting policy), reward, policy, holdout, level, seed, the tags,
    suite, split, part, role, category, value, continuous, accuracy, se, skill, skill_n, skill_se (the skill score,
    its number of conditioned images and its SE), and for trained runs run and health. The
    base of each (policy, hold-out) is evaluated once; every policy gets the same `eval_options` (the CFG weight
    defaults to the runs', `rl.evaluation_options`); `twin_free` adds the twin-free OOD part (`part_scores`)."""
    from cotlab.experiments import rl
    from cotlab.training import arm_of
    from cotlab.training.health import run_health

    store = store or RunStore()
    configs = list(configs)
    eval_options = rl.evaluation_options(configs, eval_options)
    tags = list(tags) if tags is not None else [{}] * len(configs)
    if len(tags) != len(configs):
        raise ValueError(f"{len(tags)} tags for {len(configs)} configs; give one dict per config")
    rows, bases = [], set()
    for cfg, tag in zip(configs, tags):
        where = {"policy": cfg.policy, "holdout": cfg.holdout, "level": level_of(cfg.holdout)}
        if (cfg.policy, cfg.holdout) not in bases:
            bases.add((cfg.policy, cfg.holdout))
            rows += [{"algorithm": "base", "reward": "none", **where, "seed": None, **r}
                     for r in part_scores(rl.base_dir(cfg.policy, store), f"base {cfg.policy}", cfg.holdout,
                                          twin_free=twin_free, store=store, progress=progress, **eval_options)]
        path = rl.rl_run(cfg, store=store, progress=progress)
        metrics = read_jsonl(path / "metrics.jsonl")
        trained = part_scores(path / "policy", f"{arm_of(cfg)} {cfg.holdout} seed {cfg.seed}", cfg.holdout,
                              twin_free=twin_free, store=store, progress=progress, **eval_options)
        rows += [{"algorithm": arm_of(cfg), "reward": rl.reward_label(cfg), **where, "seed": cfg.seed, **tag, **r,
                  "run": str(path), "health": run_health(metrics)} for r in trained]
    return pd.DataFrame(rows)


# -- transfer ratios --------------------------------------------------------------------------------------------------

def _overall(rows) -> pd.DataFrame:
    rows = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if "reward" not in rows:
        rows = rows.assign(reward="none")
    return rows[rows["category"] == "overall"]


def transfer_table(rows, metrics=None, min_id_gain: float = MIN_ID_GAIN) -> pd.DataFrame:
    """Per arm, reward, hold-out, seed, metric and target part (every role of `TARGETS` the hold-out has): the gain
    over the base on the target (gain), in domain (id_gain, the "id" part) and the transfer ratio gain / id_gain
    (module docstring), NaN with `defined` False where id_gain < `min_id_gain` (or where the skill score conditions
    on no image, NaN). `metrics`: `METRICS`, and `SKILL` where the rows have it, by default; for the skill score,
    n and base_n are the numbers of images it conditions on in the target part (NaN for the other metrics).
    `rows`: `transfer_results`'s table (a DataFrame or its records); the base of a run is the "base" row of the same
    policy, hold-out and part. A control run (column "control" set) is left out: `control_verdict` reads it."""
    overall = _overall(rows)
    if metrics is None:
        metrics = CONTROL_METRICS if SKILL in overall else METRICS
    if "control" in overall:
        overall = overall[overall["control"].isna()]
    base = {(r["policy"], r["holdout"], r["part"]): r
            for r in overall[overall["algorithm"] == "base"].to_dict("records")}
    runs = overall[overall["algorithm"] != "base"]
    out = []
    for (arm, reward, policy, holdout, seed), run in runs.groupby(["algorithm", "reward", "policy", "holdout", "seed"],
                                                                 sort=False):
        by_role = {r["role"]: r for r in run.to_dict("records")}
        if "id" not in by_role:
            raise ValueError(f"{arm} {holdout} seed {seed}: no in-domain ('id') part to measure transfer against")
        for metric in metrics:
            def gain(role):
                r = by_role[role]
                key = (policy, holdout, r["part"])
                if key not in base:
                    raise ValueError(f"no base row for policy {policy!r}, hold-out {holdout!r}, part {r['part']!r}")
                return float(r[metric]) - float(base[key][metric])

            id_gain = gain("id")
            defined = id_gain >= min_id_gain
            for role in (t for t in TARGETS if t in by_role):
                g = gain(role)
                r = by_role[role]
                n = (float(r[f"{SKILL}_n"]), float(base[(policy, holdout, r["part"])][f"{SKILL}_n"])) \
                    if metric == SKILL else (math.nan, math.nan)
                out.append({"algorithm": arm, "reward": reward, "policy": policy, "holdout": holdout,
                            "level": level_of(holdout), "seed": _plain(seed), "metric": metric, "target": role,
                            "part": r["part"], "id_gain": id_gain, "gain": g,
                            "ratio": g / id_gain if defined else math.nan, "defined": bool(defined),
                            "n": n[0], "base_n": n[1]})
    return pd.DataFrame(out)


def transfer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm, reward, hold-out, target and metric: seeds, mean and 95% t-interval half-width over seeds of the
    in-domain gain, the target's gain and the transfer ratio (over the seeds where it is defined), and the seeds
    whose ratio is undefined (in-domain gain below `MIN_ID_GAIN`)."""
    from cotlab.evaluation import mean_ci

    out = []
    keys = ["algorithm", "reward", "holdout", "level", "target", "metric"]
    for key, group in table.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row["seeds"] = int(group["seed"].nunique())
        for column in ("id_gain", "gain", "ratio"):
            values = group.loc[group["defined"], column] if column == "ratio" else group[column]
            row[column], row[f"{column} ±95%"] = mean_ci(values) if len(values) else (math.nan, math.nan)
        row["undefined seeds"] = [_plain(s) for s in group.loc[~group["defined"], "seed"]]
        out.append(row)
    return pd.DataFrame(out)


def _plain(value):
    """A seed as given: an int where pandas made it a float (next to the base rows' None) or a numpy int."""
    if isinstance(value, np.integer) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return value


def transfer_claim(table: pd.DataFrame, delta: float = DELTA, metric: str = "value", a: str = "grpo",
                   b: str = "dpo") -> list[dict]:
    """Per reward and level (hold-out): the verdict on ratio(a) - ratio(b) on the level's farthest part (`farthest`),
    paired by seed, direction +1 (the paper's claim 2), Holm-adjusted over the levels of a reward (module docstring;
    `verdicts.family`). A level where some seed's ratio is undefined (either arm's in-domain gain below
    `MIN_ID_GAIN`) is "inconclusive" and enters Holm with p = 1; its estimate is over the defined seeds. Records are
    `verdicts.claim_record`s plus reward, holdout, level, target, metric, arms and undefined_seeds."""
    from cotlab.experiments.verdicts import family

    rows = table[(table["metric"] == metric) & table["algorithm"].isin([a, b])]
    records = []
    for reward, by_reward in rows.groupby("reward", sort=False):
        tests, undefined = [], []
        for holdout, group in by_reward.groupby("holdout", sort=False):
            target = farthest(group["target"])
            part = group[group["target"] == target]
            arms = part.groupby("seed")["algorithm"].agg(set)
            paired = [s for s in arms.index if {a, b} <= arms[s]]  # seeds run by both arms
            if not paired:
                continue
            ratio = part.set_index(["seed", "algorithm"])["ratio"].unstack().loc[paired]
            diffs = (ratio[a] - ratio[b]).dropna()
            bad = sorted(_plain(s) for s in ratio.index.difference(diffs.index))
            n = len(diffs)
            sd = float(diffs.std(ddof=1)) if n > 1 else math.nan
            tests.append({"claim": f"transfer ratio {a} - {b}, {holdout} ({target}, {metric})",
                          "estimate": float(diffs.mean()) if n else math.nan,
                          "se": math.nan if bad else sd / math.sqrt(n), "df": n - 1, "seeds": n, "direction": 1,
                          "sd": _countable_sd(sd, delta), "reward": reward, "holdout": holdout,
                          "level": level_of(holdout), "target": target, "metric": metric, "arms": [a, b],
                          "undefined_seeds": bad})
            undefined.append(bad)
        for record, bad in zip(family(tests, delta), undefined):
            if bad:
                record.update(verdict="inconclusive",
                              why=f"seeds {bad}: an in-domain gain too small to divide by (below transfer_table's "
                                  f"min_id_gain), so no transfer ratio; the level gets no verdict (estimate over "
                                  f"the other seeds)")
            records.append(record)
    return records


def _countable_sd(sd: float, delta: float) -> float:
    """`sd` for `verdicts.claim_record`'s seeds_needed, or NaN (seeds_needed None) where a 95% half-width of delta
    would take more seeds than `verdicts.seeds_needed` counts to: ratios are noisy where an in-domain gain is
    small, and a record must say "too many to count", not fail."""
    from cotlab.experiments.verdicts import seeds_needed

    if not math.isfinite(sd):
        return sd
    try:
        seeds_needed(sd, delta)
    except ValueError:
        return math.nan
    return sd


# -- the positive control ---------------------------------------------------------------------------------------------

def control_verdict(rows, metric: str = "value", z: float = 1.96) -> dict:
    """Whether the measurement can see over-fitting on `metric`, from the control run's rows and its base's
    (`transfer_results` on `overfit_control`'s config; control rows are those tagged control = "overfit", else every
    non-base row).

    Gains over the base, averaged over the control's seeds, in domain (g_id) and on the farthest part (g_far), each
    with se = sqrt(mean_s se_s^2 / n + se_base^2) from the per-image bootstrap SEs (`se`, of the headline value, used
    for accuracy too; the skill score's own `skill_se`). For the skill score the record also gives the images it
    conditions on (id_n, n: the control's, mean over seeds; base_id_n, base_n: the base's) and the scores themselves
    (id_base, id_trained, base, trained). Verdicts:
    * "no in-domain gain": g_id - z se_id <= 0: the control did not learn in domain, so it tests nothing;
    * "sees over-fitting": g_id - g_far > z sqrt(se_id^2 + se_far^2): the held-out gain is clearly below the
      in-domain one, as over-fitting should leave it;
    * "blind": otherwise: the control's gain showed on the held-out part as much as in domain, so the measurement
      cannot tell over-fitting from transfer, and the chapter must say so;
    * "not measured": a score is NaN (the skill score conditioned on no image, or fewer than two, of some part)."""
    overall = _overall(rows)
    is_control = (overall["control"] == CONTROL) if "control" in overall else overall["algorithm"] != "base"
    runs = overall[is_control & (overall["algorithm"] != "base")]
    if runs.empty:
        raise ValueError("no control run among the rows; evaluate overfit_control's config with transfer_results")
    (policy, holdout), *others = runs[["policy", "holdout"]].drop_duplicates().itertuples(index=False)
    if others:
        raise ValueError(f"rows of several control runs' hold-outs or policies: {[(policy, holdout), *others]}")
    base = overall[(overall["algorithm"] == "base") & (overall["policy"] == policy) & (overall["holdout"] == holdout)]
    target = farthest(runs["role"])

    if metric not in runs:
        raise ValueError(f"no {metric!r} column in the rows; metrics there: "
                         f"{[m for m in CONTROL_METRICS if m in runs]}")
    se_column = f"{SKILL}_se" if metric == SKILL else "se"
    levels = {}

    def gain(role):
        trained, before = runs[runs["role"] == role], base[base["role"] == role]
        if before.empty:
            raise ValueError(f"no base row for policy {policy!r}, hold-out {holdout!r}, role {role!r}")
        n = trained["seed"].nunique()
        se = math.sqrt(float((trained[se_column] ** 2).mean()) / n + float(before[se_column].iloc[0]) ** 2)
        levels[role] = (float(before[metric].iloc[0]), float(trained[metric].mean()))
        if metric == SKILL:
            levels[role] += (float(before[f"{SKILL}_n"].iloc[0]), float(trained[f"{SKILL}_n"].mean()))
        return float(trained[metric].mean() - before[metric].iloc[0]), se

    (g_id, se_id), (g_far, se_far) = gain("id"), gain(target)
    record = {"holdout": holdout, "target": target, "metric": metric, "seeds": int(runs["seed"].nunique()),
              "id_gain": g_id, "id_se": se_id, "gain": g_far, "se": se_far,
              "ratio": g_far / g_id if g_id >= MIN_ID_GAIN else math.nan,
              "id_base": levels["id"][0], "id_trained": levels["id"][1],
              "base": levels[target][0], "trained": levels[target][1]}
    if metric == SKILL:
        record.update(base_id_n=levels["id"][2], id_n=levels["id"][3], base_n=levels[target][2],
                      n=levels[target][3])
    gap, gap_se = g_id - g_far, math.hypot(se_id, se_far)
    if not all(math.isfinite(x) for x in (g_id, g_far, se_id, se_far)):
        verdict = "not measured"
        why = (f"the {metric} score or its SE is undefined on the in-domain or the {target} part (it conditions on "
               f"fewer than two images there), so the control says nothing on it")
    elif g_id - z * se_id <= 0:
        verdict = "no in-domain gain"
        why = (f"in-domain gain {g_id:+.3f} ± {z * se_id:.3f} does not exclude 0: the control did not learn in "
               f"domain, so it cannot test the measurement (train it longer or faster)")
    elif gap > z * gap_se:
        verdict = "sees over-fitting"
        why = (f"in-domain gain {g_id:+.3f}, {target} gain {g_far:+.3f}: the gap {gap:+.3f} ± {z * gap_se:.3f} "
               f"excludes 0, so the measurement tells a gain that does not carry from one that does")
    else:
        verdict = "blind"
        why = (f"in-domain gain {g_id:+.3f}, {target} gain {g_far:+.3f}: the gap {gap:+.3f} ± {z * gap_se:.3f} "
               f"does not put the held-out gain clearly below the in-domain one; even an over-fitting run looks as if "
               f"it transferred, so transfer ratios near 1 are no evidence of transfer")
    return {**record, "verdict": verdict, "why": why}


def control_verdicts(rows, metrics=None, z: float = 1.96) -> pd.DataFrame:
    """`control_verdict` on every metric (`CONTROL_METRICS` that the rows have, by default: value, accuracy, skill),
    one row each: whether the measurement is blind to over-fitting on that metric."""
    overall = _overall(rows)
    metrics = [m for m in CONTROL_METRICS if m in overall] if metrics is None else list(metrics)
    return pd.DataFrame([control_verdict(rows, m, z) for m in metrics])


def skill_table(rows) -> pd.DataFrame:
    """The skill score beside the other metrics, per policy and part (overall rows of `transfer_results`): algorithm
    ("base" for a starting policy; the control marked "(control)"), hold-out, seed, role, part, value, accuracy,
    skill, skill_n (the images the skill score conditions on) and skill_se, each policy's parts in `ROLES` order."""
    overall = _overall(rows)
    if SKILL not in overall:
        raise ValueError("no skill score in the rows; evaluate with this version of cotlab.evaluation")
    control = overall["control"].eq(CONTROL) if "control" in overall else pd.Series(False, index=overall.index)
    out = overall.assign(algorithm=overall["algorithm"].where(~control, overall["algorithm"] + " (control)"),
                         seed=[_plain(s) if s == s and s is not None else "" for s in overall["seed"]])
    order = {role: k for k, role in enumerate(dict.fromkeys([*ROLES.values(), "ood-twin-free"]))}
    out = out.assign(_order=out["role"].map(order)).sort_values(["holdout", "_order"], kind="stable")
    columns = ["algorithm", "holdout", "seed", "role", "part", "value", "accuracy", SKILL, f"{SKILL}_n",
               f"{SKILL}_se"]
    return out[columns].set_index(["holdout", "role", "algorithm", "seed"])


def skill_chance_table(holdout: str, *, prompts_per_category: int | None = None, images_per_prompt: int = 8,
                       seed: int = 0) -> pd.DataFrame:
    """The skill score's chance level on every part of `holdout` (`holdout_suites`;
    `cotlab.evaluation.skill_chance`: every named object drawn right, the held-out skill left to chance, e.g. the
    objects placed at random): per part, its role, the chance level (skill), the scenes it conditions on (skill_n)
    and the bootstrap SE (skill_se), over the same prompts an evaluation with `prompts_per_category` scores."""
    from cotlab.evaluation import skill_chance

    out = []
    for suite, split in holdout_suites(holdout):
        overall = skill_chance(suite, split, holdout=holdout, images_per_prompt=images_per_prompt,
                               prompts_per_category=prompts_per_category, seed=seed).loc["overall"]
        out.append({"holdout": holdout, "part": f"{suite}:{split}", "role": ROLES[(suite, split)],
                    "chance": float(overall["skill"]), "chance_n": int(overall["skill_n"]),
                    "chance_se": float(overall["skill_se"])})
    return pd.DataFrame(out)


# -- meaning twins ----------------------------------------------------------------------------------------------------

def twin_free_prompts(holdout: str = "L0") -> list:
    """The OOD prompts a run with `holdout` is evaluated on as seen ("test-seen"; L0: all of "test") that have no
    meaning twin (`cotlab.world.meaning_twins`) among the training prompts of that hold-out (compbench "train")."""
    from cotlab.world import check_holdout, load_suite, meaning_twins

    split = "test" if check_holdout(holdout).empty else "test-seen"
    ood = load_suite("geneval", split, holdout=holdout)
    twins = meaning_twins(ood, load_suite("compbench", "train", holdout=holdout))
    return [p for p, twin in zip(ood, twins) if not twin]


def overlap_table(holdouts=None) -> pd.DataFrame:
    """Per hold-out, evaluated part and task (and "overall"): how many prompts, the share with a meaning twin among
    the hold-out's training prompts (`cotlab.world.twin_overlap`) and how many have none. Parts: every part of
    `holdout_suites` (the ID val parts for comparison: the issue measured 25% twins on ID val, 37% on OOD)."""
    from cotlab.world import HOLDOUTS, load_suite, meaning_twins, twin_overlap

    out = []
    for holdout in (holdouts if holdouts is not None else HOLDOUTS):
        train = load_suite("compbench", "train", holdout=holdout)
        for suite, split in holdout_suites(holdout):
            prompts = load_suite(suite, split, holdout=holdout)
            shares = twin_overlap(prompts, train)
            twins = np.array(meaning_twins(prompts, train))
            tasks = np.array([p.category for p in prompts])
            for task, share in shares.items():
                mask = np.ones(len(prompts), bool) if task == "overall" else tasks == task
                out.append({"holdout": holdout, "level": level_of(holdout), "part": f"{suite}:{split}",
                            "role": ROLES[(suite, split)], "task": task, "prompts": int(mask.sum()),
                            "twin share": share, "twin-free": int((~twins[mask]).sum())})
    return pd.DataFrame(out)



# -- the chapter (notebooks/11_domain_gap.ipynb) ----------------------------------------------------------------------

CHAPTER = "11_domain_gap"
# The control's hold-out: a skill RL never sees (above/below), so a run that over-fits its few prompts has a held-out
# part to fail on; at L2 the base has seen the skill in pretraining, so the control needs no base of its own.
CONTROL_HOLDOUT = "L2-above-below"
TWIN_FREE = True  # the chapter evaluates the "ood" part without its meaning twins too (`part_scores`)


def chapter_configs(rl_preset: str, seeds, reward: dict, holdouts, arms, control: bool = True):
    """(configs, tags) of the chapter: `transfer_runs` of every arm at every hold-out and seed, and with `control`
    the positive control last (`overfit_control`: GRPO, the first seed, `CONTROL_HOLDOUT`)."""
    configs, tags = transfer_runs(rl_preset, seeds, reward, holdouts, arms)
    if control:
        cfg, tag = overfit_control(rl_preset, list(seeds)[0], reward, CONTROL_HOLDOUT)
        configs, tags = configs + [cfg], tags + [tag]
    return configs, tags


def chapter_runs(tier: str) -> tuple[list, list[dict], dict]:
    """(configs, tags, evaluation options) of the chapter with its own parameters in `tier`: what its notebook passes
    to `transfer_results` (with twin_free=`TWIN_FREE`), for the findings chapter and the planner."""
    from cotlab.experiments.tiers import notebook_parameters

    p = notebook_parameters(CHAPTER, tier)
    configs, tags = chapter_configs(p["rl_preset"], p["seeds"], p["reward"], p["holdouts"], p["arms"], p["control"])
    return configs, tags, {"seeds": p["eval_seeds"], "images_per_prompt": p["images_per_prompt"],
                           "prompts_per_category": p["prompts_per_category"]}


def transfer_plot(summary: pd.DataFrame, metric: str = "value"):
    """The transfer ratio against the hold-out (x in `cotlab.world.HOLDOUTS` order: the gap grows to the right), one
    line per arm (and reward) with its 95% interval over seeds (`transfer_summary`), one panel per target part, with
    the lines of full transfer (1) and none (0). Returns the figure, made with pyplot so that a notebook's inline
    backend draws it at the end of the cell (end the cell with `;`)."""
    import matplotlib.pyplot as plt

    from cotlab.world import HOLDOUTS

    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no {metric!r} rows in the summary; metrics there: {sorted(set(summary['metric']))}")
    targets = [t for t in TARGETS if t in set(rows["target"])]
    order = [h for h in HOLDOUTS if h in set(rows["holdout"])]
    several = rows["reward"].nunique() > 1
    fig = plt.figure(figsize=(3.4 * len(targets) + 1.4, 3.6), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True)[0]
    for ax, target in zip(axes, targets):
        lines = rows[rows["target"] == target].groupby(["algorithm", "reward"], sort=False)
        for k, ((arm, reward), line) in enumerate(lines):
            line = line.assign(x=[order.index(h) for h in line["holdout"]]).sort_values("x")
            shift = 0.08 * (k - (lines.ngroups - 1) / 2)  # side by side, so the intervals do not hide each other
            ax.errorbar(line["x"] + shift, line["ratio"], yerr=line["ratio ±95%"].fillna(0.0), marker="o", capsize=3,
                        label=f"{arm} ({reward})" if several else arm)
        ax.axhline(1, color="black", lw=0.8, ls="--")
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=8)
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("hold-out (gap grows to the right)", fontsize=8)
    axes[0].set_ylabel(f"transfer ratio ({metric})")
    axes[-1].legend(fontsize=8, loc="best")
    return fig


def claims_frame(records: list[dict]) -> pd.DataFrame:
    """`transfer_claim`'s records for reading, one row per level: hold-out, the part the claim is on, metric, seeds,
    the GRPO - DPO ratio difference with its 95% interval, power at delta, verdict and why."""
    def number(x, fmt="+.3f"):
        return "n/a" if x is None else format(x, fmt)

    return pd.DataFrame([{"level": r["level"], "holdout": r["holdout"], "reward": r["reward"], "part": r["target"],
                          "metric": r["metric"], "seeds": r["seeds"], "estimate": number(r["estimate"]),
                          "95% interval": "n/a" if None in r["ci95"] else
                          f"[{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]",
                          "power at delta": number(r["power_at_delta"], ".2f"), "verdict": r["verdict"],
                          "why": r["why"]} for r in records])


def twin_free_table(summary: pd.DataFrame, metric: str = "value") -> pd.DataFrame:
    """Per arm, reward and hold-out: the gain and transfer ratio (mean and 95% half-width over seeds) on the seen OOD
    part ("ood") beside the same part without its meaning twins ("ood-twin-free"), from `transfer_summary`."""
    rows = summary[(summary["metric"] == metric) & summary["target"].isin(["ood", "ood-twin-free"])]
    if rows.empty:
        raise ValueError("no OOD rows in the summary; evaluate with transfer_results(..., twin_free=True)")
    columns = ["gain", "gain ±95%", "ratio", "ratio ±95%"]
    return rows.set_index(["algorithm", "reward", "holdout", "target"])[columns].unstack("target")


def heldout_samples(configs, tags, holdout: str, *, arms=("grpo", "dpo"), num_prompts: int = 6, seed: int = 0):
    """Images of `num_prompts` held-out OOD prompts of `holdout` (its "test-heldout" part, evenly spaced; L0: "test")
    from the base and from the first seed's run of each of `arms` there (never the control), one row per policy,
    each titled with the exact scorer's verdict (`rl.policy_samples`). Returns (images, titles); trains nothing the
    chapter has not."""
    from cotlab.experiments import rl
    from cotlab.training import arm_of
    from cotlab.world import check_holdout, evenly_spaced, load_suite

    runs = {}
    for cfg, tag in zip(configs, tags):
        if cfg.holdout == holdout and tag.get("control") is None and arm_of(cfg) in arms:
            runs.setdefault(arm_of(cfg), cfg)
    missing = [a for a in arms if a not in runs]
    if missing:
        raise ValueError(f"no run of {missing} at hold-out {holdout!r} among the configs")
    prompts = load_suite("geneval", "test" if check_holdout(holdout).empty else "test-heldout", holdout=holdout)
    return rl.policy_samples(runs, evenly_spaced(prompts, num_prompts), seed=seed)


__all__ = ["CHAPTER", "CONTROL", "CONTROL_HOLDOUT", "CONTROL_METRICS", "FARTHEST", "METRICS", "MIN_ID_GAIN", "ROLES",
           "SKILL", "TARGETS", "TWIN_FREE", "chapter_configs", "chapter_runs", "claims_frame", "control_verdict",
           "control_verdicts", "evaluation_calls", "farthest", "heldout_samples", "holdout_suites", "level_of",
           "overfit_control", "overlap_table", "part_scores", "skill_chance_table", "skill_table", "transfer_claim",
           "transfer_plot", "transfer_results", "transfer_runs", "transfer_summary", "transfer_table",
           "twin_free_prompts", "twin_free_table"]
