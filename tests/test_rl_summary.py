"""`summarize_runs` on a constructed `before_after` table: each group's mean, t-interval and gain over the base."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cotlab.experiments.rl import summarize_runs

BASE = {"compbench": 0.30, "geneval": 0.20}
VALUES = {("grpo", "compbench"): [0.50, 0.54, 0.58], ("grpo", "geneval"): [0.25, 0.25, 0.25],
          ("dpo", "compbench"): [0.40, 0.44], ("dpo", "geneval"): [0.10, 0.30]}


def results(*tags: dict) -> pd.DataFrame:
    """`before_after`'s table: the base model once, then every run of each tag (a swept value), scored overall and
    in a category (which summaries do not read); a tag's scores are VALUES plus its "shift"."""
    rows = [{"algorithm": "base", "reward": "none", "seed": None, "suite": s, "category": "overall", "value": v}
            for s, v in BASE.items()]
    rows += [{"algorithm": "base", "reward": "none", "seed": None, "suite": "compbench", "category": "color",
              "value": 0.9}]
    for tag in tags or ({},):
        tag = dict(tag)
        shift = tag.pop("shift", 0.0)
        for (algorithm, suite), values in VALUES.items():
            for seed, value in enumerate(values):
                common = {"algorithm": algorithm, "reward": "metric", "seed": seed, "suite": suite, "health": "ok"}
                rows.append({**common, "category": "overall", "value": value + shift, **tag})
                rows.append({**common, "category": "color", "value": 0.0, **tag})
    return pd.DataFrame(rows)


def half_width(values) -> float:
    values = np.asarray(values)
    return stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))


def test_summarize_runs_gives_each_groups_mean_interval_and_gain_over_the_base():
    summary = summarize_runs(results()).set_index("algorithm")
    assert list(summary.index) == ["grpo", "dpo"] and set(summary["reward"]) == {"metric"}
    assert summary["seeds"].to_dict() == {"grpo": 3, "dpo": 2}
    for algorithm in ("grpo", "dpo"):
        row = summary.loc[algorithm]
        for suite, name in (("compbench", "ID"), ("geneval", "OOD")):
            values = VALUES[(algorithm, suite)]
            assert row[name] == pytest.approx(np.mean(values))
            assert row[f"{name} ±95%"] == pytest.approx(half_width(values))
            assert row[f"{name} gain"] == pytest.approx(np.mean(values) - BASE[suite])
            assert row[f"{name} gain ±95%"] == pytest.approx(row[f"{name} ±95%"])  # the base is a constant
        assert row["health"] == "ok"
    assert summary.loc["grpo", "OOD ±95%"] == 0  # equal values: no spread


def test_summarize_runs_groups_by_a_swept_column_and_gives_its_values_back_as_given():
    table = results({"G": 2}, {"G": 8, "shift": 0.1})
    assert table["G"].dtype == float  # the base rows leave G empty
    summary = summarize_runs(table, by=("G", "algorithm"))
    assert list(zip(summary["G"], summary["algorithm"])) == [(2, "grpo"), (2, "dpo"), (8, "grpo"), (8, "dpo")]
    assert all(type(g) is int for g in summary["G"])
    rows = summary.set_index(["G", "algorithm"])
    assert rows.loc[(2, "dpo"), "ID"] == pytest.approx(0.42) and rows.loc[(8, "dpo"), "ID"] == pytest.approx(0.52)
    assert rows.loc[(8, "grpo"), "OOD gain"] == pytest.approx(0.25 + 0.1 - BASE["geneval"])
