"""The findings chapter's claims, decided by `verdicts` on hand-made tables in the shape `before_after` returns."""
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

import cotlab.state_files
from cotlab.experiments import findings
from cotlab.experiments.findings import (SLOPE_DELTA, algorithm_claims, best_of_n_vs_rl, claims_table,
                                         findings_records, forest_plot, power_table, reward_claim, scaling_claims,
                                         write_findings_json)
from cotlab.experiments.rl import sweep_change
from cotlab.experiments.verdicts import claim_record, holm, power_at_delta, seeds_needed

CELLS = (("compbench", "overall"), ("geneval", "overall"), ("geneval", "colors"), ("geneval", "color_attr"))


def pattern(seeds: int, sd: float) -> np.ndarray:
    """A fixed per-seed wiggle with mean 0 and sample SD exactly `sd`."""
    z = np.resize([1.0, -1.0], seeds)
    z[-1] = 0.0 if seeds % 2 else z[-1]
    z = z - z.mean()
    return sd * z / z.std(ddof=1)


def comparison(id_gap=0.0, ood_gap=0.0, colour_gap=0.0, *, rewards=("metric",), seeds=5, noise=0.01, wiggle=None,
               other_gap=0.0, base_se=0.01, rng_seed=0):
    """A `before_after` table: base rows, then GRPO and DPO per reward model and seed on every cell of CELLS. GRPO -
    DPO on the headline `value` is the cell's gap plus noise (random with SD `noise`, or the per-seed `wiggle`); the
    other metric's gap is `other_gap`. Columns as `before_after` writes them (continuous, accuracy, se, health)."""
    rng = np.random.default_rng(rng_seed)
    gaps = dict(zip(CELLS, (id_gap, ood_gap, colour_gap, colour_gap)))
    rows = [{"algorithm": "base", "reward": "none", "policy": "tiny", "seed": None, "suite": suite, "category": cat,
             "value": 0.3, "continuous": 0.3, "accuracy": 0.3, "se": base_se, "health": None} for suite, cat in CELLS]
    for reward in rewards:
        errors = wiggle if wiggle is not None else noise * rng.standard_normal(seeds)
        for seed in range(seeds):
            for (suite, cat), gap in gaps.items():
                for algorithm, sign, error in (("grpo", 0.5, errors[seed]), ("dpo", -0.5, 0.0)):
                    headline, other = 0.5 + sign * gap + error, 0.4 + sign * other_gap + error
                    continuous, accuracy = (headline, other) if suite == "compbench" else (other, headline)
                    rows.append({"algorithm": algorithm, "reward": reward, "policy": "tiny", "seed": seed,
                                 "suite": suite, "category": cat, "value": headline, "continuous": continuous,
                                 "accuracy": accuracy, "se": 0.01, "health": "ok"})
    return pd.DataFrame(rows)


def by_id(records, role="primary"):
    return {r["id"]: r for r in records if r["role"] == role}


@pytest.mark.parametrize("kwargs, verdicts, why", [
    (dict(id_gap=-0.2, ood_gap=0.2), ("replicated", "replicated"), "paper's direction"),
    (dict(id_gap=0.2, ood_gap=-0.2), ("contradicted", "contradicted"), "against"),
    (dict(noise=0.002, seeds=8, rewards=("a", "b", "c")), ("equivalent", "equivalent"), "inside"),
    (dict(id_gap=0.02, ood_gap=0.02, noise=0.05, seeds=3), ("inconclusive", "inconclusive"), "more seeds"),
    (dict(id_gap=-0.2, ood_gap=0.2, seeds=2), ("inconclusive", "inconclusive"), "seed"),
    (dict(id_gap=-0.2, ood_gap=0.2, noise=0.0), ("inconclusive", "inconclusive"), "zero variance"),
])
def test_algorithm_claims_reach_every_verdict(kwargs, verdicts, why):
    records = by_id(algorithm_claims(comparison(**kwargs)))
    assert (records["1"]["verdict"], records["2"]["verdict"]) == verdicts
    assert why in records["1"]["why"] and why in records["2"]["why"]
    assert records["1"]["direction"] == -1 and records["2"]["direction"] == +1
    for r in records.values():
        assert {"seeds", "delta", "power_at_delta", "ci95", "ci90", "interaction_p", "per_reward"} <= set(r)


def test_one_pooled_estimate_with_the_interaction_and_holm_per_reward():
    # Three reward models, 10 seeds each, GRPO - DPO = 0.05 + a wiggle of SD 0.0615: each reward model alone has
    # t = 0.05 / (0.0615 / sqrt 10) = 2.57 on 9 df, p ~ 0.03; Holm over 3 makes that 0.09. Pooled (df 27) it is clear.
    wiggle = pattern(10, 0.05 * math.sqrt(10) / 2.57)
    record = by_id(algorithm_claims(comparison(ood_gap=0.05, wiggle=wiggle, seeds=10, rewards=("a", "b", "c"))))["2"]
    assert record["verdict"] == "replicated" and record["rewards"] == 3 and record["seeds"] == 10
    assert record["estimate"] == pytest.approx(0.05)
    per = record["per_reward"]
    assert [p["claim"] for p in per] == ["a", "b", "c"]
    assert all(0.02 < p["p_unadjusted"] < 0.05 for p in per)
    assert claim_record("alone", 0.05, 0.0615 / math.sqrt(10), 9, 10, +1)["verdict"] == "replicated"
    np.testing.assert_allclose([p["p"] for p in per], holm([p["p_unadjusted"] for p in per]))
    assert all(p["verdict"] == "inconclusive" for p in per)
    assert record["interaction_p"] == pytest.approx(1.0)          # equal gaps under every reward model


def test_interaction_reports_reward_models_that_disagree():
    table = pd.concat([comparison(ood_gap=gap, rewards=(r,), noise=0.005, rng_seed=i)
                       for i, (r, gap) in enumerate((("a", 0.0), ("b", 0.1), ("c", 0.2)))])
    table = table.drop_duplicates(subset=["algorithm", "reward", "seed", "suite", "category"])
    record = by_id(algorithm_claims(table))["2"]
    assert record["interaction_F"] > 100 and record["interaction_p"] < 1e-6
    assert [p["verdict"] for p in record["per_reward"]] == ["equivalent", "replicated", "replicated"]


def test_colour_claim_pools_tasks_per_run_and_holms_over_tasks_and_rewards():
    records = by_id(algorithm_claims(comparison(colour_gap=-0.2, rewards=("a", "b"))))
    colour = records["2b"]
    assert colour["verdict"] == "replicated" and colour["direction"] == -1
    assert colour["rewards"] == 2 and colour["seeds"] == 5        # one replicate per run, not per task
    assert sorted(p["claim"] for p in colour["per_reward"]) == ["color_attr / a", "color_attr / b", "colors / a",
                                                                "colors / b"]
    assert by_id(algorithm_claims(comparison(colour_gap=0.2)))["2b"]["verdict"] == "contradicted"


def test_the_other_metric_is_a_secondary_record():
    table = comparison(id_gap=-0.2, ood_gap=0.2, other_gap=0.2)
    records = algorithm_claims(table, "accuracy")
    id_accuracy = next(r for r in records if r["id"] == "1")
    assert id_accuracy["role"] == "secondary" and id_accuracy["metric"] == "accuracy"
    assert id_accuracy["verdict"] == "contradicted"               # GRPO ahead on ID accuracy in this table
    ood = next(r for r in records if r["id"] == "2")
    assert ood["role"] == "primary" and ood["metric"] == "accuracy"  # GenEval's headline is accuracy
    primary = by_id(algorithm_claims(table))
    assert primary["1"]["metric"] == "continuous" and primary["1"]["verdict"] == "replicated"
    with pytest.raises(ValueError, match="no column"):
        algorithm_claims(table.drop(columns="accuracy"), "accuracy")


def test_runs_from_several_base_models_or_unlabelled_arms_are_refused():
    several = comparison(id_gap=-0.2)
    several.loc[several["seed"] == 1, "policy"] = "other base"
    with pytest.raises(ValueError, match="base models"):   # claim 3's points need one base (claims 1-2b split them)
        best_of_n_vs_rl(pd.DataFrame([{"reward model": "metric", "seed": 0, "ood best-of-4": 0.4}]), several, 4)
    table = comparison(id_gap=-0.2)
    online = table[table["algorithm"] == "dpo"].assign(value=0.9)      # online DPO under the name "dpo"
    with pytest.raises(ValueError, match="algorithm label"):
        algorithm_claims(pd.concat([table, online]))
    assert by_id(algorithm_claims(pd.concat([table, online.assign(algorithm="dpo-online")])))["1"]["verdict"] == \
        "replicated"                                                   # a labelled arm is left out of GRPO - DPO
    bon = pd.DataFrame([{"reward model": "metric", "seed": 0, "ood best-of-4": 0.4}])
    with pytest.raises(ValueError, match="algorithm label"):
        best_of_n_vs_rl(bon, pd.concat([table, online]), 4)


def test_every_claim_names_the_runs_whose_training_was_flagged():
    table = comparison(-0.2, 0.2)
    assert {c["health"] for c in algorithm_claims(table)} == {"ok"}
    table.loc[(table["algorithm"] == "dpo") & (table["seed"] == 1), "health"] = "no_pairs"
    assert all(c["health"] == "flagged: dpo seed 1 (no_pairs)" for c in algorithm_claims(table))
    assert all(c["health"] == "unknown" for c in algorithm_claims(comparison(-0.2, 0.2).drop(columns="health")))


def test_best_of_n_table_has_the_reprinted_shape_and_gains_carry_the_base_se():
    bon = pd.DataFrame([{"reward model": "metric", "seed": 0, "ood best-of-4": 0.4}])
    table, points = best_of_n_vs_rl(bon, comparison(0.0, 0.2, noise=0.0, base_se=0.0), 4)
    assert list(table.index) == ["DPO", "GRPO", "Best-of-4"] and list(table.columns) == ["metric"]
    assert table.loc["GRPO", "metric"] == "60.0 ± 0.0" and table.loc["Best-of-4", "metric"] == "40.0 ± 0.0"
    assert points.set_index("algorithm")["RL OOD gain"].to_dict() == pytest.approx({"DPO": 0.1, "GRPO": 0.3})
    assert {"reward", "algorithm", "best-of-N", "best-of-N ±", "RL OOD gain", "RL OOD gain ±"} <= set(points)
    assert (points["RL OOD gain ±"] == 0).all()
    # Equal seeds, base bootstrap SE 0.02: the gain's interval is the base's alone, normal (df = inf).
    _, points = best_of_n_vs_rl(bon, comparison(0.0, 0.2, noise=0.0, base_se=0.02), 4)
    assert points["RL OOD gain ±"].tolist() == pytest.approx([stats.norm.ppf(0.975) * 0.02] * 2)


def points(bon, gains, *, half=0.01, seeds=5, oracle=None):
    """Chapter 4's points: per reward model (x, y, ...) Best-of-N and the GRPO and DPO OOD gains."""
    rows = [{"reward": f"r{i}", "algorithm": a, "best-of-N": b, "best-of-N ±": half, "RL OOD gain": g + shift,
             "RL OOD gain ±": 0.01, "seeds": seeds, "health": "ok"}
            for i, (b, g) in enumerate(zip(bon, gains)) for a, shift in (("GRPO", 0.01), ("DPO", -0.01))]
    if oracle:
        rows += [{"reward": "metric", "algorithm": a, "best-of-N": oracle[0], "best-of-N ±": 0.0,
                  "RL OOD gain": oracle[1], "RL OOD gain ±": 0.01, "seeds": seeds, "health": "ok"}
                 for a in ("GRPO", "DPO")]
    return pd.DataFrame(rows)


X = np.array([0.42, 0.47, 0.52, 0.57, 0.62])
WIGGLE = np.array([0.004, -0.003, -0.002, 0.003, -0.002])


def test_reward_claim_is_the_ols_slope_over_learned_models_with_the_oracle_apart():
    y = 0.8 * X + WIGGLE
    record = reward_claim(points(X, y, oracle=(0.64, -0.5)))       # the oracle would wreck the slope if included
    fit = stats.linregress(X, y)
    assert record["estimate"] == pytest.approx(fit.slope) and record["se"] == pytest.approx(fit.stderr)
    half = stats.t.ppf(0.975, 3) * fit.stderr
    assert record["ci95"] == pytest.approx([fit.slope - half, fit.slope + half])
    assert record["verdict"] == "replicated" and record["direction"] == +1 and record["delta"] == SLOPE_DELTA
    assert record["reward_models"] == 5 and record["seeds"] == 5
    assert [o["reward"] for o in record["oracle"]] == ["metric", "metric"]
    assert [p["reward"] for p in record["points"]] == [f"r{i}" for i in range(5)]
    assert {r["claim"] for r in record["per_algorithm"]} == {"GRPO", "DPO"}
    assert all(r["verdict"] == "replicated" for r in record["per_algorithm"])


@pytest.mark.parametrize("kwargs, verdict, why", [
    (dict(bon=X, gains=-0.8 * X + WIGGLE), "contradicted", "against"),
    (dict(bon=X, gains=0.1 + WIGGLE / 4), "equivalent", "inside"),
    (dict(bon=X[:2], gains=0.8 * X[:2]), "inconclusive", "only 2 learned reward model"),
    (dict(bon=[0.45, 0.451, 0.452], gains=[0.1, 0.2, 0.3]), "inconclusive", "degenerate spread"),
    (dict(bon=X, gains=0.8 * X + WIGGLE, seeds=2), "inconclusive", "RL seed"),
    (dict(bon=X, gains=0.8 * X), "inconclusive", "exactly on a line"),
])
def test_reward_claim_verdicts(kwargs, verdict, why):
    record = reward_claim(points(kwargs.pop("bon"), kwargs.pop("gains"), **kwargs))
    assert record["verdict"] == verdict and why in record["why"]
    json.dumps(record, allow_nan=False)


def sweep(variable, changes, *, seeds=5, levels=(2, 8)):
    """A sweep's `before_after` table: at the low level every run scores 0.5; at the high one GRPO's and DPO's runs
    move by changes[(algorithm, suite)] (a per-seed array, or 0)."""
    rows = [{"algorithm": "base", "reward": "none", "policy": "tiny", "seed": None, "suite": s, "category": "overall",
             "value": 0.3, "health": None} for s in ("compbench", "geneval")]
    for level in levels:
        for algorithm in ("grpo", "dpo"):
            for suite in ("compbench", "geneval"):
                move = np.broadcast_to(changes.get((algorithm, suite), 0.0), seeds)
                rows += [{"algorithm": algorithm, "reward": "metric", "policy": "tiny", "seed": s, "suite": suite,
                          "category": "overall", variable: level, "health": "ok",
                          "value": 0.5 + (move[s] if level == levels[-1] else 0.0)} for s in range(seeds)]
    return pd.DataFrame(rows)


STRATEGIES = {"samples per prompt": "G", "data diversity": "categories", "data volume": "prompts",
              "iterative training": "round"}


def sweeps(changes_of=lambda name: {}, **kwargs):
    return {name: (sweep(v, changes_of(name), **kwargs), v) for name, v in STRATEGIES.items()}


def test_one_significant_test_of_eight_under_no_effect_is_not_replicated():
    # Seven null tests (GRPO - DPO change = 0 +- a wiggle of SD 0.02) and one at t = 3.75 on 4 df (p ~ 0.02): the
    # old rule ("any of 8 excludes 0") called this replicated; Holm over the 8 does not.
    noise = pattern(5, 0.02)
    one = 3.75 * 0.02 / math.sqrt(5)
    records = scaling_claims(sweeps(lambda name: {("grpo", "compbench"): noise + (one if name == "data volume" else 0),
                                                   ("grpo", "geneval"): noise}))
    assert len(records) == 8 and all(r["direction"] is None for r in records)
    lone = next(r for r in records if r["strategy"] == "data volume" and r["suite"] == "ID")
    assert lone["p_unadjusted"] < 0.05 and lone["p"] == pytest.approx(8 * lone["p_unadjusted"])
    assert [r["verdict"] for r in records] == ["inconclusive"] * 8
    assert "G 2 -> 8" in records[0]["claim"]


@pytest.mark.parametrize("change, verdict", [(0.2, "replicated"), (-0.2, "replicated"), (0.0, "equivalent")])
def test_scaling_claims_are_two_sided_where_the_paper_states_no_direction(change, verdict):
    noise = pattern(5, 0.002)
    records = scaling_claims(sweeps(lambda name: {("grpo", s): change + noise for s in ("compbench", "geneval")}))
    assert [r["verdict"] for r in records] == [verdict] * 8


def test_a_stated_scaling_direction_can_be_contradicted(monkeypatch):
    monkeypatch.setitem(findings.SCALING_DIRECTIONS, "samples per prompt", +1)
    records = scaling_claims(sweeps(lambda name: {("dpo", "compbench"): 0.2 + pattern(5, 0.01)}))
    verdicts = {(r["strategy"], r["suite"]): r["verdict"] for r in records}
    assert verdicts[("samples per prompt", "ID")] == "contradicted"      # GRPO's change - DPO's = -0.2 < 0
    assert verdicts[("data volume", "ID")] == "replicated"               # two-sided: a difference either way


def test_scaling_needs_a_direction_stated_before_the_data_and_enough_seeds():
    with pytest.raises(ValueError, match="SCALING_DIRECTIONS"):
        scaling_claims({"learning rate": (sweep("lr", {}), "lr")})
    records = scaling_claims(sweeps(lambda name: {("grpo", "compbench"): 0.2}, seeds=2))
    assert all(r["verdict"] == "inconclusive" and "seed" in r["why"] for r in records)


def test_sweep_change_pairs_by_seed():
    lines = sweep_change(sweep("G", {("grpo", "compbench"): 0.2, ("grpo", "geneval"): 0.2 + pattern(5, 0.01),
                                     ("dpo", "compbench"): -0.2, ("dpo", "geneval"): -0.2 + pattern(5, 0.01)}), "G")
    assert "up" in lines[0] and "down" in lines[1] and "G 2 -> 8" in lines[0]


def full_records(tier="default"):
    comp = comparison(-0.2, 0.2, colour_gap=-0.1, rewards=("a", "b"), other_gap=0.05)
    return findings_records(comp, points(X, 0.8 * X + WIGGLE, oracle=(0.64, 0.3)),
                            sweeps(lambda name: {("grpo", "geneval"): 0.1 + pattern(5, 0.01)}), tier)


KEYS = ("claim", "paper", "estimate", "ci95", "ci90", "seeds", "delta", "power_at_delta", "verdict", "why", "health",
        "metric", "role", "tier")


def test_findings_records_cover_every_claim_in_order():
    records = full_records()
    assert [r["id"] for r in records] == ["1", "1", "2", "2", "2b", "2b", "3"] + ["4"] * 8
    assert [r["role"] for r in records[:6]] == ["primary", "secondary"] * 3
    assert [r["metric"] for r in records[:6]] == ["continuous", "accuracy", "accuracy", "continuous",
                                                  "accuracy", "continuous"]
    assert all(all(k in r for k in KEYS) and r["tier"] == "default" for r in records)
    assert all(len(r["per_reward"]) == 2 for r in records if r["id"] in ("1", "2"))


def test_findings_json_holds_the_records_and_is_written_atomically(tmp_path, monkeypatch):
    records = full_records("full")
    path = write_findings_json(records, tmp_path / "_build" / "findings.json")
    assert path == tmp_path / "_build" / "findings.json"
    assert json.loads(path.read_text()) == records
    first = json.loads(path.read_text())[0]
    assert first["verdict"] == "replicated" and first["tier"] == "full" and len(first["ci95"]) == 2
    assert first["per_reward"][0]["claim"] == "a" and "p_unadjusted" in first["per_reward"][0]

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(cotlab.state_files.os, "replace", crash)
    with pytest.raises(OSError):
        write_findings_json(records[:1], path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == records                 # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["findings.json"]   # no temp file left
    with pytest.raises(ValueError):
        write_findings_json([{"estimate": math.nan}], tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def test_forest_plot_draws_one_row_per_claim():
    records = full_records()
    fig = forest_plot(records)
    assert isinstance(fig, Figure)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert len(labels) == len(records)
    in_panels = [r for r in records if r["id"] != "3"] + [r for r in records if r["id"] == "3"]
    assert all(label.startswith(r["claim"]) for label, r in zip(labels, in_panels))
    assert [ax.get_xlabel() for ax in fig.axes] == ["GRPO - DPO (score)",
                                                    "slope: RL OOD gain per unit of Best-of-N OOD"]
    table = claims_table(records)
    assert len(table) == len(records) and set(table["verdict"]) <= {"replicated", "contradicted", "equivalent",
                                                                   "inconclusive"}


def test_power_table_from_the_measured_sd():
    sd = 0.04
    table = power_table(comparison(-0.2, 0.2, wiggle=pattern(4, sd), seeds=4, rewards=("a", "b", "c")))
    assert list(table["metric"]) == ["continuous", "accuracy", "accuracy", "continuous", "accuracy", "continuous"]
    row = table.iloc[0]
    assert row["SD of the paired gap"] == pytest.approx(sd) and row["seeds"] == 4 and row["reward models"] == 3
    assert row["power at delta"] == pytest.approx(power_at_delta(sd, 4, groups=3))
    assert row["seeds needed"] == seeds_needed(sd, groups=3)
    half = stats.t.ppf(0.975, 9) * sd / math.sqrt(12)               # df = 3 (4 - 1), se = sd / sqrt(3 x 4)
    assert row["95% half-width"] == pytest.approx(half)


# -- claim 2t: chapter 11's transfer verdicts -----------------------------------------------------------------------

PARTS = {"id": "compbench:val-seen", "ood": "geneval:test-seen", "ood-heldout": "geneval:test-heldout"}


def transfer_rows(ratios: dict, *, control_heldout=0.02, seeds=4, flagged=None):
    """A `transfer.transfer_results` table: per hold-out a base (0.3 on every part), GRPO and DPO runs with an
    in-domain gain of 0.2 and a held-out gain of ratio x 0.2 (ratios[(holdout, arm)] plus a per-seed wiggle), and a
    positive control at L2-above-below (in-domain gain 0.2, held-out gain `control_heldout`). `flagged`: a (holdout,
    arm, seed) whose training raised a health code."""
    rows, wiggle = [], pattern(seeds, 0.005)

    def part_rows(algorithm, holdout, seed, scores, **extra):
        return [{"algorithm": algorithm, "reward": "metric" if seed is not None else "none", "policy": "default",
                 "holdout": holdout, "level": holdout[:2], "seed": seed, "part": PARTS[role], "role": role,
                 "category": "overall", "value": score, "continuous": score, "accuracy": score - 0.05, "se": 0.01,
                 **extra} for role, score in scores.items()]

    for holdout in dict.fromkeys(h for h, _ in ratios):
        rows += part_rows("base", holdout, None, {role: 0.3 for role in PARTS})
        for arm in ("grpo", "dpo"):
            for seed in range(seeds):
                health = "zero_grad" if flagged == (holdout, arm, seed) else "ok"
                ratio = ratios[(holdout, arm)] + (wiggle[seed] if arm == "grpo" else 0.0)
                rows += part_rows(arm, holdout, seed, {"id": 0.5, "ood": 0.3 + 0.2 * ratio,
                                                       "ood-heldout": 0.3 + 0.2 * ratio}, health=health)
    rows += part_rows("grpo", "L2-above-below", 0, {"id": 0.5, "ood": 0.3 + control_heldout,
                                                    "ood-heldout": 0.3 + control_heldout},
                      health="ok", control="overfit", prompts=24, epochs=20.0)
    return pd.DataFrame(rows)


def test_transfer_claims_enter_the_findings_per_level_with_the_control_beside_them():
    results = transfer_rows({("L1-50", "grpo"): 0.9, ("L1-50", "dpo"): 0.3, ("L2-above-below", "grpo"): 0.5,
                             ("L2-above-below", "dpo"): 0.5}, flagged=("L1-50", "dpo", 2))
    records = findings_records(comparison(-0.2, 0.2, colour_gap=-0.1, rewards=("a", "b"), other_gap=0.05),
                               points(X, 0.8 * X + WIGGLE), sweeps(), "default", transfer_results=results)
    assert [r["id"] for r in records] == ["1", "1", "2", "2", "2b", "2b"] + ["2t"] * 4 + ["3"] + ["4"] * 8
    transfer = [r for r in records if r["id"] == "2t"]
    assert [(r["holdout"], r["role"]) for r in transfer] == [("L1-50", "primary"), ("L2-above-below", "primary"),
                                                             ("L1-50", "secondary"), ("L2-above-below", "secondary")]
    l1, l2 = transfer[:2]
    assert l1["verdict"] == "replicated" and l1["estimate"] == pytest.approx(0.6)
    assert l1["target"] == "ood-heldout" and l1["claim"].startswith("2t.") and "L1-50" in l1["claim"]
    assert l2["verdict"] == "equivalent" and l2["p"] >= l2["p_unadjusted"]  # Holm over the two levels
    assert l1["health"].startswith("flagged: dpo seed 2") and l2["health"] == "ok"
    assert all(r["control"] == "sees over-fitting" and r["unit"] == findings.TRANSFER_UNIT and r["tier"] == "default"
               and all(k in r for k in KEYS) for r in transfer)
    json.dumps(records, allow_nan=False)
    fig = forest_plot(records)
    assert [ax.get_xlabel() for ax in fig.axes] == ["GRPO - DPO (score)", findings.TRANSFER_UNIT,
                                                    "slope: RL OOD gain per unit of Best-of-N OOD"]
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert len(labels) == 4 and all(label.startswith("2t.") for label in labels)
    plt.close(fig)
    assert len(claims_table(records)) == len(records)


def test_a_blind_control_is_said_in_every_transfer_verdict():
    ratios = {("L2-above-below", "grpo"): 0.9, ("L2-above-below", "dpo"): 0.3}
    [record] = findings.transfer_claims(transfer_rows(ratios, control_heldout=0.2))
    assert record["control"] == "blind" and "positive control is blind" in record["why"]
    assert record["verdict"] == "replicated"  # the verdict stands; the caveat travels with it
    [record] = findings.transfer_claims(transfer_rows(ratios).query("control != 'overfit'"))
    assert "control" not in record and "positive control" not in record["why"]


def test_noisy_ratios_get_a_verdict_not_an_error():
    # ratios far apart between seeds: a 95% half-width of delta would take more seeds than seeds_needed counts
    results = transfer_rows({("L2-above-below", "grpo"): 0.5, ("L2-above-below", "dpo"): 0.5})
    held = (results["algorithm"] == "grpo") & (results["role"] == "ood-heldout") & results["control"].isna()
    results.loc[held, "value"] = 0.3 + np.resize([2.0, -2.0], held.sum())
    [record] = findings.transfer_claims(results)
    assert record["verdict"] == "inconclusive" and record["seeds_needed"] is None
