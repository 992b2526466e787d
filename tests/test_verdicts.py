"""The verdict statistics of issue 18 on constructed data whose answers are known."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cotlab.experiments.verdicts import (DELTA, MIN_SEEDS, claim_record, decide, family, gain, holm,
                                         interval, paired_differences, pooled_claim, pooled_gap, power_at_delta,
                                         seeds_needed)


@pytest.mark.parametrize("estimate, se, seeds, verdict, why", [
    (0.10, 0.01, 5, "replicated", "paper's direction"),
    (-0.10, 0.01, 5, "contradicted", "against"),
    (0.00, 0.005, 10, "equivalent", "inside"),
    (0.02, 0.05, 5, "inconclusive", "more seeds"),
    (0.10, 0.01, MIN_SEEDS - 1, "inconclusive", "seed"),
    (0.05, 0.0, 3, "inconclusive", "zero variance"),
])
def test_every_verdict(estimate, se, seeds, verdict, why):
    got, reason = decide(estimate, se, seeds - 1, seeds, direction=+1)
    assert got == verdict and why in reason


def test_direction_is_required_and_flips_the_verdict():
    assert decide(-0.1, 0.01, 4, 5, direction=-1)[0] == "replicated"
    with pytest.raises(ValueError):
        decide(0.1, 0.01, 4, 5, direction=0)


def test_no_stated_direction_is_two_sided_and_never_contradicted():
    # direction None: the paper says a gap exists, not its sign; either side replicates, equivalence is against it.
    assert decide(0.1, 0.01, 4, 5, direction=None)[0] == "replicated"
    assert decide(-0.1, 0.01, 4, 5, direction=None)[0] == "replicated"
    verdict, why = decide(0.0, 0.005, 9, 10, direction=None)
    assert verdict == "equivalent" and "against the paper's claim" in why
    assert claim_record("gap", -0.1, 0.01, 4, 5, direction=None)["direction"] is None


def test_decision_matches_the_intervals():
    rng = np.random.default_rng(0)
    for est, se, df in zip(rng.normal(0, 0.05, 300), rng.uniform(0.001, 0.03, 300), rng.integers(2, 20, 300)):
        lo95, hi95 = interval(est, se, df, 0.95)
        lo90, hi90 = interval(est, se, df, 0.90)
        verdict = decide(est, se, df, 5, +1)[0]
        if lo95 > 0:
            assert verdict == "replicated"
        elif hi95 < 0:
            assert verdict == "contradicted"
        elif -DELTA < lo90 and hi90 < DELTA:
            assert verdict == "equivalent"
        else:
            assert verdict == "inconclusive"


def test_two_seeds_with_equal_differences_are_not_replicated():
    diffs = pd.DataFrame({"reward": ["a", "a"], "seed": [0, 1], "diff": [0.05, 0.05]})
    record = pooled_claim("gap", diffs, direction=+1)
    assert record["verdict"] == "inconclusive" and "seed" in record["why"]


def test_holm_on_the_textbook_case():
    # Holm (1979) as on Wikipedia's "Holm-Bonferroni method" example: p = .01, .04, .03, .005 at alpha = .05 rejects
    # H1 and H4 only; R's p.adjust(c(.01, .04, .03, .005), "holm") = .03 .06 .06 .02.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert list(holm([0.01, 0.04, 0.03, 0.005]) < 0.05) == [True, False, False, True]
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])     # capped at 1, monotone


def test_family_applies_holm():
    tests = [dict(claim=f"size {k}", estimate=0.05, se=0.021, df=9, seeds=10, direction=+1) for k in range(3)]
    alone = claim_record(**tests[0])
    assert alone["verdict"] == "replicated"                 # p ~ 0.04 on its own
    records = family(tests)
    assert all(r["verdict"] == "inconclusive" for r in records)   # 3 x 0.04 > 0.05 after Holm
    assert records[0]["p"] == pytest.approx(3 * records[0]["p_unadjusted"])


def test_power_against_known_cases():
    # G*Power 3, one-sample / paired t, d = 0.5, alpha = .05 two-sided, n = 34: "actual power" 0.8077775.
    assert power_at_delta(sd=1.0, n=34, delta=0.5) == pytest.approx(0.8077775, abs=1e-6)
    # Monte Carlo check of the noncentral-t formula at n = 5, sd = delta.
    rng = np.random.default_rng(1)
    x = rng.normal(DELTA, DELTA, (40_000, 5))
    t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(5))
    assert np.mean(np.abs(t) > stats.t.ppf(0.975, 4)) == pytest.approx(power_at_delta(DELTA, 5), abs=0.01)


def test_seeds_needed_by_hand():
    # Half-width t_{.975,n-1} sd/sqrt(n) <= delta with sd = delta: t_5/sqrt(6) = 2.571/2.449 = 1.05 > 1,
    # t_6/sqrt(7) = 2.447/2.646 = 0.925 <= 1, so 7 seeds.
    assert seeds_needed(DELTA) == 7
    # Three reward models pooled: t_{.975,3(n-1)} / sqrt(3n) <= 1 first at n = 3
    # (n = 2: t_3 / sqrt(6) = 3.182 / 2.449 = 1.30; n = 3: t_6 / 3 = 0.816).
    assert seeds_needed(DELTA, groups=3) == 3
    assert seeds_needed(0.0) == 2


def table(mu, taus, noise):
    return pd.DataFrame([{"reward": r, "seed": s, "diff": mu + tau + e}
                         for r, tau in zip("abc", taus) for s, e in enumerate(noise)])


def test_pooled_gap_without_noise_is_exact():
    p = pooled_gap(table(0.05, [-0.02, 0.0, 0.02], [0.0, 0.0, 0.0]))
    assert p["estimate"] == pytest.approx(0.05) and p["se"] < 1e-12
    assert p["F"] == math.inf and p["p_interaction"] == 0.0
    record = pooled_claim("gap", table(0.05, [-0.02, 0.0, 0.02], [0.0, 0.0, 0.0]), +1)
    assert record["verdict"] == "inconclusive" and "zero variance" in record["why"]


def test_pooled_gap_and_interaction_on_a_known_table():
    # Residuals +-0.01, 0 in each reward: SS_within = 3 * 2e-4, df = 9 - 3 = 6, MSE = 1e-4, se = sqrt(MSE * 3/3)/3;
    # MS_reward = 3 * (0.02^2 * 2) / 2 = 1.2e-3, F = 12 on (2, 6) df.
    p = pooled_gap(table(0.05, [-0.02, 0.0, 0.02], [0.01, -0.01, 0.0]))
    assert p["estimate"] == pytest.approx(0.05)
    assert p["df"] == 6 and p["sd"] == pytest.approx(0.01)
    assert p["se"] == pytest.approx(0.01 / 3)
    assert p["F"] == pytest.approx(12.0)
    assert p["p_interaction"] == pytest.approx(stats.f.sf(12.0, 2, 6))
    assert [r["estimate"] for r in p["per_reward"]] == pytest.approx([0.03, 0.05, 0.07])


def test_pooled_record_is_json_and_complete():
    record = pooled_claim("2. GRPO ahead OOD", table(0.05, [-0.02, 0.0, 0.02], [0.01, -0.01, 0.0]), +1)
    json.dumps(record, allow_nan=False)
    for key in ("estimate", "ci95", "ci90", "seeds", "delta", "power_at_delta", "verdict", "why",
                "interaction_p", "per_reward", "seeds_needed"):
        assert key in record
    assert record["verdict"] == "replicated"
    assert [r["verdict"] for r in record["per_reward"]] == ["replicated"] * 3


def test_paired_differences():
    results = pd.DataFrame({"algorithm": ["grpo", "dpo", "grpo", "dpo", "grpo"], "reward": ["a"] * 5,
                            "seed": [0, 0, 1, 1, 2], "value": [0.6, 0.5, 0.7, 0.4, 0.9]})
    d = paired_differences(results)
    assert list(d["seed"]) == [0, 1] and list(d["diff"]) == pytest.approx([0.1, 0.3])


def test_gain_carries_the_base_uncertainty():
    trained, se_base = [0.52, 0.55, 0.58], 0.02
    g = gain(trained, 0.40, se_base)
    v = np.var(trained, ddof=1) / 3
    assert g["estimate"] == pytest.approx(0.15) and g["se"] == pytest.approx(math.sqrt(v + se_base ** 2))
    assert g["df"] == pytest.approx(2 * (g["se"] ** 2 / v) ** 2)           # Welch-Satterthwaite, df_base = inf
    assert g["se"] > math.sqrt(v)
    # Equal trained seeds: the base's bootstrap SE is the only noise, a normal interval (df = inf); none at all: nan.
    assert gain([0.5, 0.5, 0.5], 0.4, 0.02)["df"] == math.inf
    assert math.isnan(gain([0.5, 0.5, 0.5], 0.4, 0.0)["df"])
