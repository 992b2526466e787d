"""The statistics behind every claim's verdict (issue 18, "Decisive findings"): one vocabulary, one set of formulas.

A claim is a gap (e.g. GRPO - DPO on a suite score) with a direction stated before the data (+1: the paper says the
gap is positive, -1: negative). With the smallest effect of interest `DELTA` = 0.03:

- **replicated**: the 95% interval excludes 0 on the paper's side (two-sided t-test, p < 0.05);
- **contradicted**: the 95% interval excludes 0 on the other side;
- **equivalent**: the 90% interval lies inside +-delta, a real "no difference" (TOST, Schuirmann 1987: both one-sided
  p < 0.05);
- **inconclusive**: otherwise, and always with fewer than `MIN_SEEDS` seeds or a degenerate (zero-width) interval.

Where the paper says only that a gap exists, not its sign (direction None, e.g. the scaling claims), the test is
two-sided: **replicated** when the 95% interval excludes 0 on either side; "contradicted" is not defined, and
**equivalent** (no difference of interest) is the evidence against such a claim.

Within a family (the reward models of one claim, the scaling claims) both p-values are Holm-adjusted (Holm 1979) before
the same rules are applied; for a single test the rules are exactly "interval excludes 0" / "interval inside +-delta".
Every record is a plain JSON-able dict for `_build/findings.json`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

DELTA = 0.03      # smallest effect of interest, in score units (fractions, not percent)
MIN_SEEDS = 3     # fewer seeds than this and no verdict is given
ALPHA = 0.05      # 95% intervals for differences; 90% (two one-sided 5% tests) for equivalence
VERDICTS = ("replicated", "contradicted", "equivalent", "inconclusive")
TINY = 1e-9       # a standard error below this (score units) is rounding error: the interval is degenerate


def _degenerate(se: float) -> bool:
    return not (se > TINY and math.isfinite(se))


def holm(pvalues) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the input order.

    Sort p ascending, p_(1) <= ... <= p_(m); adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)). Rejecting where the
    adjusted p < alpha is Holm's procedure: it controls the family-wise error rate at alpha (same as R `p.adjust`)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def interval(estimate: float, se: float, df: float, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval: estimate +- t_{(1+level)/2, df} * se."""
    half = stats.t.ppf((1 + level) / 2, df) * se
    return estimate - half, estimate + half


def pvalues(estimate: float, se: float, df: float, delta: float = DELTA) -> tuple[float, float]:
    """(p of H0: gap = 0, two-sided; p of the TOST H0: |gap| >= delta).

    p_diff = 2 P(T_df > |est|/se); p_equiv = max(P(T_df > (est + delta)/se), P(T_df > (delta - est)/se)).
    p_diff < 0.05 iff the 95% interval excludes 0; p_equiv < 0.05 iff the 90% interval lies inside +-delta."""
    if _degenerate(se):
        return math.nan, math.nan
    p_diff = 2 * stats.t.sf(abs(estimate) / se, df)
    p_equiv = max(stats.t.sf((estimate + delta) / se, df), stats.t.sf((delta - estimate) / se, df))
    return float(p_diff), float(p_equiv)


def decide(estimate: float, se: float, df: float, seeds: int, direction: int | None, delta: float = DELTA,
           p_diff: float | None = None, p_equiv: float | None = None) -> tuple[str, str]:
    """(verdict, reason) of one gap. `p_diff`/`p_equiv` override the unadjusted p-values (pass Holm-adjusted ones).
    `direction`: +1 or -1 as the paper states it, None where the paper states a difference without a sign
    (two-sided: no "contradicted")."""
    if direction not in (1, -1, None):
        raise ValueError(f"direction must be +1, -1 or None (stated before the data), got {direction!r}")
    if seeds < MIN_SEEDS:
        return "inconclusive", f"only {seeds} seed(s); a verdict needs at least {MIN_SEEDS}"
    if _degenerate(se):
        return "inconclusive", "zero variance across seeds: the interval is degenerate, not precise"
    raw = pvalues(estimate, se, df, delta)
    p_diff = raw[0] if p_diff is None else p_diff
    p_equiv = raw[1] if p_equiv is None else p_equiv
    small = " (yet within +-delta: smaller than the effect of interest)" if p_equiv < ALPHA else ""
    if p_diff < ALPHA:
        if direction is None:
            return "replicated", (f"interval excludes 0 (p = {p_diff:.3g}): a difference, which is all the paper "
                                  f"states (two-sided){small}")
        if np.sign(estimate) == direction:
            return "replicated", f"interval excludes 0 in the paper's direction (p = {p_diff:.3g}){small}"
        return "contradicted", f"interval excludes 0 against the paper's direction (p = {p_diff:.3g}){small}"
    if p_equiv < ALPHA:
        against = ", against the paper's claim of a difference" if direction is None else ""
        return "equivalent", (f"90% interval inside +-{delta:g} (TOST p = {p_equiv:.3g}): no difference of "
                              f"interest{against}")
    return "inconclusive", (f"interval includes 0 (p = {p_diff:.3g}) and is wider than +-{delta:g} "
                            f"(TOST p = {p_equiv:.3g}): more seeds needed")


def power(se: float, df: float, delta: float = DELTA, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test at a true gap of delta: with c = t_{1-alpha/2, df} and noncentrality
    lambda = delta / se, power = P(T'_{df,lambda} > c) + P(T'_{df,lambda} < -c) (noncentral t, `scipy.stats.nct`)."""
    if _degenerate(se) or not df > 0:
        return math.nan
    c, lam = stats.t.ppf(1 - alpha / 2, df), delta / se
    return float(stats.nct.sf(c, df, lam) + stats.nct.cdf(-c, df, lam))


def power_at_delta(sd: float, n: int, delta: float = DELTA, alpha: float = ALPHA, groups: int = 1) -> float:
    """Power of the paired t-test with n seeds (per group) and SD `sd` of the paired difference: se = sd/sqrt(groups n),
    df = groups (n - 1) (groups = reward models pooled, see `pooled_gap`). groups=1: the textbook paired t-test."""
    return power(sd / math.sqrt(groups * n), groups * (n - 1), delta, alpha)


def seeds_needed(sd: float, delta: float = DELTA, alpha: float = ALPHA, groups: int = 1, most: int = 10_000) -> int:
    """Smallest n >= 2 with 95% half-width t_{1-alpha/2, groups(n-1)} sd / sqrt(groups n) <= delta ("decisive")."""
    if not (sd >= 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be finite and >= 0, got {sd}")
    for n in range(2, most + 1):
        if stats.t.ppf(1 - alpha / 2, groups * (n - 1)) * sd / math.sqrt(groups * n) <= delta:
            return n
    raise ValueError(f"more than {most} seeds needed for sd = {sd}")


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def claim_record(claim: str, estimate: float, se: float, df: float, seeds: int, direction: int | None,
                 delta: float = DELTA, sd: float | None = None, groups: int = 1,
                 p_diff: float | None = None, p_equiv: float | None = None, **extra) -> dict:
    """The JSON-able record of one claim: estimate, ci95, ci90, seeds, delta, power_at_delta, verdict, why (and
    seeds_needed when `sd`, the SD of the paired difference, is given). Non-finite numbers become None."""
    verdict, why = decide(estimate, se, df, seeds, direction, delta, p_diff, p_equiv)
    raw = pvalues(estimate, se, df, delta)
    record = {"claim": claim, "direction": None if direction is None else int(direction),
              "estimate": _num(estimate), "se": _num(se),
              "df": _num(df), "ci95": [_num(v) for v in interval(estimate, se, df, 0.95)],
              "ci90": [_num(v) for v in interval(estimate, se, df, 0.90)], "seeds": int(seeds), "delta": delta,
              "p": _num(raw[0] if p_diff is None else p_diff),
              "p_equivalence": _num(raw[1] if p_equiv is None else p_equiv),
              "power_at_delta": _num(power(se, df, delta)), "verdict": verdict, "why": why}
    if sd is not None:
        record["seeds_needed"] = seeds_needed(sd, delta, groups=groups) if math.isfinite(sd) else None
    return record | extra


def family(tests: list[dict], delta: float = DELTA) -> list[dict]:
    """Records of a family of tests, both p-values Holm-adjusted over the family (reward models of one claim, or the
    scaling claims). Each test: claim, estimate, se, df, seeds, direction (stated before the data), optional sd.
    Degenerate tests (zero se) enter Holm with p = 1, so they cannot help others be rejected."""
    raw = np.array([pvalues(t["estimate"], t["se"], t["df"], delta) for t in tests]).reshape(-1, 2)
    filled = np.where(np.isnan(raw), 1.0, raw)
    adj_diff, adj_equiv = holm(filled[:, 0]), holm(filled[:, 1])
    return [claim_record(delta=delta, p_diff=pd_, p_equiv=pe, p_unadjusted=_num(r[0]), **t)
            for t, pd_, pe, r in zip(tests, adj_diff, adj_equiv, raw)]


def paired_differences(results: pd.DataFrame, a: str = "grpo", b: str = "dpo", value: str = "value") -> pd.DataFrame:
    """Per (reward, seed) difference a - b from a long table with columns algorithm, reward, seed, `value`; seeds
    present for only one algorithm are dropped. Columns: reward, seed, diff."""
    wide = results.pivot_table(index=["reward", "seed"], columns="algorithm", values=value, aggfunc="mean")
    return (wide[a] - wide[b]).dropna().rename("diff").reset_index()


def pooled_gap(diffs: pd.DataFrame) -> dict:
    """Pooled gap over reward models, from the seeds x reward models table of paired differences (reward, seed, diff).

    Model (one-way fixed effects on the paired differences; Montgomery, Design and Analysis of Experiments, ch. 3):
    d_rs = mu + tau_r + e_rs, e_rs ~ N(0, sigma^2), r = 1..R reward models, s = 1..n_r seeds. Seed s under two reward
    models is two different runs, so seeds are replicates within a reward model. With dbar_r the reward means and
    N = sum n_r:
      estimate mu^ = (1/R) sum_r dbar_r (each reward model weighs the same),
      sigma^2^ = MSE = sum_rs (d_rs - dbar_r)^2 / (N - R),  se(mu^) = sqrt(MSE sum_r (1/n_r)) / R,  df = N - R.
    Reward-model interaction (algorithm x reward in the algorithm x reward layout = the reward effect on differences):
      F = [sum_r n_r (dbar_r - dbar)^2 / (R - 1)] / MSE on (R - 1, N - R) df, dbar the grand mean of all d_rs.
    Returns estimate, se, df, sd (= sqrt MSE), seeds (smallest n_r), rewards, F, p_interaction, and per_reward tests
    (paired t per reward model on its own seeds: se = s_r / sqrt(n_r), df = n_r - 1)."""
    g = diffs.groupby("reward", sort=True)["diff"]
    means, counts = g.mean(), g.count()
    R, N = len(means), int(counts.sum())
    ss_within = float(((diffs["diff"] - g.transform("mean")) ** 2).sum())
    df = N - R
    mse = ss_within / df if df > 0 else math.nan
    se = math.sqrt(mse * (1 / counts).sum()) / R if df > 0 else math.nan
    ms_reward = float((counts * (means - diffs["diff"].mean()) ** 2).sum()) / (R - 1) if R > 1 else math.nan
    if R > 1 and df > 0 and mse > TINY ** 2:
        F = ms_reward / mse
        p_int = float(stats.f.sf(F, R - 1, df))
    elif R > 1 and df > 0:      # no noise at all: any spread between reward models is exact
        F, p_int = (math.inf, 0.0) if ms_reward > TINY ** 2 else (math.nan, math.nan)
    else:
        F, p_int = math.nan, math.nan
    sds = g.std(ddof=1)
    per_reward = [{"claim": str(r), "estimate": float(means[r]), "se": float(sds[r] / math.sqrt(counts[r])),
                   "df": int(counts[r] - 1), "seeds": int(counts[r]), "sd": float(sds[r])} for r in means.index]
    return {"estimate": float(means.mean()), "se": se, "df": df, "sd": math.sqrt(mse) if df > 0 else math.nan,
            "seeds": int(counts.min()), "rewards": R, "F": F, "p_interaction": p_int, "per_reward": per_reward}


def pooled_claim(claim: str, diffs: pd.DataFrame, direction: int, delta: float = DELTA) -> dict:
    """The record of a claim pooled over reward models (`pooled_gap`), with the interaction test and the per-reward
    records (Holm-adjusted over the reward models). seeds_needed is per reward model, for the pooled half-width."""
    p = pooled_gap(diffs)
    per = [t | {"direction": direction} for t in p["per_reward"]]
    return claim_record(claim, p["estimate"], p["se"], p["df"], p["seeds"], direction, delta, sd=p["sd"],
                        groups=p["rewards"], rewards=p["rewards"], interaction_F=_num(p["F"]),
                        interaction_p=_num(p["p_interaction"]), per_reward=family(per, delta))


def gain(trained, base: float, se_base: float, df_base: float = math.inf) -> dict:
    """Gain = mean(trained) - base, with the base score's own standard error carried in.

    se = sqrt(s^2/n + se_base^2) (independent errors: trained seeds vs the base's per-image bootstrap or eval seeds);
    df by Welch-Satterthwaite: se^4 / ((s^2/n)^2/(n-1) + se_base^4/df_base) (df_base = inf for a bootstrap SE).
    Paired equivalent when both are scored on the same images: bootstrap the per-image differences instead.
    A difference of two gains against the same base (GRPO gain - DPO gain) does not need this: the base cancels."""
    x = np.asarray(trained, dtype=float)
    n = x.size
    v = x.var(ddof=1) / n if n > 1 else math.nan
    se = math.sqrt(v + se_base ** 2)
    denom = v ** 2 / (n - 1) + (se_base ** 4 / df_base if math.isfinite(df_base) else 0.0) if n > 1 else math.nan
    if denom > 0:
        df = se ** 4 / denom
    else:   # no spread over seeds: the base's bootstrap SE alone (df = inf), or nothing to estimate (se = 0)
        df = math.inf if se > 0 else math.nan
    return {"estimate": float(x.mean() - base), "se": se, "df": df, "seeds": n}
