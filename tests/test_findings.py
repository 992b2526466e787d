"""The findings chapter's verdicts, on hand-made results tables in the shape `before_after` returns."""
import numpy as np
import pandas as pd
import pytest

from cotlab.experiments.findings import algorithm_claims, best_of_n_vs_rl, reward_claim, scaling_claim
from cotlab.experiments.rl import algorithm_gaps, sweep_change


def results(values, **tag_values):
    """Rows of a `before_after` table: values[(algorithm, suite, category)] = per-seed list (base: one value)."""
    rows = []
    for (algorithm, suite, category), xs in values.items():
        for seed, x in enumerate(xs):
            rows.append({"algorithm": algorithm, "reward": "none" if algorithm == "base" else "metric",
                         "seed": None if algorithm == "base" else seed, "suite": suite, "category": category,
                         "value": x, **tag_values})
    return pd.DataFrame(rows)


def comparison(id_gap: float, ood_gap: float, colour_gap: float = 0.0, noise: float = 0.01):
    rng = np.random.default_rng(0)
    seeds = 3
    base = {("base", s, c): [0.3] for s, c in (("compbench", "overall"), ("geneval", "overall"),
                                              ("geneval", "colors"), ("geneval", "color_attr"))}
    trained = {}
    for algorithm, sign in (("grpo", 0.5), ("dpo", -0.5)):
        for (suite, category), gap in ((("compbench", "overall"), id_gap), (("geneval", "overall"), ood_gap),
                                       (("geneval", "colors"), colour_gap), (("geneval", "color_attr"), colour_gap)):
            trained[(algorithm, suite, category)] = list(0.5 + sign * gap + noise * rng.standard_normal(seeds))
    return results({**base, **trained})


@pytest.mark.parametrize("id_gap, ood_gap, verdicts", [
    (-0.2, 0.2, ["replicated", "replicated"]),  # DPO ahead ID, GRPO ahead OOD: the paper's direction
    (0.2, -0.2, ["contradicted", "contradicted"]),
    (0.0, 0.0, ["inconclusive", "inconclusive"]),
])
def test_algorithm_claims_follow_the_paired_intervals(id_gap, ood_gap, verdicts):
    claims = algorithm_claims(comparison(id_gap, ood_gap, noise=0.0 if id_gap else 0.05))
    assert [c["verdict"] for c in claims[:2]] == verdicts
    gaps = algorithm_gaps(comparison(id_gap, ood_gap))
    assert gaps.set_index("suite")["GRPO - DPO"].to_dict() == pytest.approx({"ID": id_gap, "OOD": ood_gap}, abs=0.05)


def test_colour_claim_reads_the_two_tasks():
    assert algorithm_claims(comparison(0, 0, colour_gap=-0.3))[2]["verdict"] == "replicated"
    assert algorithm_claims(comparison(0, 0, colour_gap=0.3))[2]["verdict"] == "contradicted"


def test_reward_claim_needs_a_ranking_to_mirror():
    def points(bon, gains, half=0.01):
        return pd.DataFrame([{"reward": r, "algorithm": a, "best-of-N": b, "best-of-N ±": half, "RL OOD gain": g[a],
                              "RL OOD gain ±": 0.01} for r, b, g in zip("xyz", bon, gains) for a in ("GRPO", "DPO")])

    up = [{"GRPO": 0.1, "DPO": 0.0}, {"GRPO": 0.2, "DPO": 0.1}, {"GRPO": 0.3, "DPO": 0.2}]
    assert reward_claim(points([0.1, 0.2, 0.3], up))["verdict"] == "replicated"
    assert reward_claim(points([0.3, 0.2, 0.1], up))["verdict"] == "contradicted"
    assert reward_claim(points([0.1, 0.2, 0.3], up, half=0.5))["verdict"] == "inconclusive"


def test_best_of_n_table_has_the_reprinted_shape():
    bon = pd.DataFrame([{"reward model": "metric", "seed": 0, "ood best-of-4": 0.4}])
    table, points = best_of_n_vs_rl(bon, comparison(0.0, 0.2, noise=0.0), 4)
    assert list(table.index) == ["DPO", "GRPO", "Best-of-4"] and list(table.columns) == ["metric"]
    assert table.loc["GRPO", "metric"] == "60.0 ± 0.0" and table.loc["Best-of-4", "metric"] == "40.0 ± 0.0"
    assert points.set_index("algorithm")["RL OOD gain"].to_dict() == pytest.approx({"DPO": 0.1, "GRPO": 0.3})


def test_scaling_claim_and_sweep_change_pair_by_seed():
    def sweep(grpo_change, dpo_change):
        tables = []
        for g in (2, 8):
            values = {("base", "compbench", "overall"): [0.3], ("base", "geneval", "overall"): [0.3]}
            for algorithm, change in (("grpo", grpo_change), ("dpo", dpo_change)):
                for suite in ("compbench", "geneval"):
                    values[(algorithm, suite, "overall")] = [0.5 + (change if g == 8 else 0) + 0.01 * s
                                                            for s in range(3)]
            tables.append(results(values, G=g))
        return pd.concat(tables)

    assert scaling_claim({"G": (sweep(0.2, -0.2), "G")})["verdict"] == "replicated"
    assert scaling_claim({"G": (sweep(0.1, 0.1), "G")})["verdict"] == "inconclusive"
    lines = sweep_change(sweep(0.2, -0.2), "G")
    assert "up" in lines[0] and "down" in lines[1] and "G 2 -> 8" in lines[0]


def test_every_claim_names_the_runs_whose_training_was_flagged():
    table = comparison(-0.2, 0.2)
    table["health"] = np.where(table["algorithm"] == "base", None, "ok")
    assert {c["health"] for c in algorithm_claims(table)} == {"ok"}
    table.loc[(table["algorithm"] == "dpo") & (table["seed"] == 1), "health"] = "no_pairs"
    claims = algorithm_claims(table)
    assert all(c["health"] == "flagged: dpo seed 1 (no_pairs)" for c in claims)
    assert all(c["health"] == "unknown" for c in algorithm_claims(comparison(-0.2, 0.2)))  # logged before health
