"""`cotlab bench throughput` on a tiny batch: both ways build the same runs, and the report has what it promises
(the speed itself is measured by the benchmark, never asserted here)."""
import json

import pytest

from cotlab.experiments.throughput import PHASES, bench_throughput, format_throughput, throughput_table


@pytest.mark.slow
def test_both_ways_run_the_batch_and_report_runs_per_hour(tmp_path, monkeypatch):
    monkeypatch.setenv("COTLAB_RUNS", str(tmp_path / "runs"))
    result = bench_throughput("smoke", seeds=(0,), workers=2, max_steps=1, images_per_prompt=1,
                              prompts_per_category=1, policy="tiny", worker_counts=[1, 2])
    assert list(result)[-1] == "speedup"
    for way in ("sequential", "executor"):
        r = result[way]
        assert [(run["algorithm"], run["seed"]) for run in r["per_run"]] == [("grpo", 0), ("dpo", 0)]
        assert all(run["sampling"] > 0 and run["evaluation"] > 0 and set(PHASES) <= set(run) for run in r["per_run"])
        assert r["runs_per_hour"] == 2 / r["seconds"] * 3600
    assert [row["workers"] for row in result["scaling"]] == [1, 2]
    assert result["speedup"] == result["executor"]["runs_per_hour"] / result["sequential"]["runs_per_hour"]
    text = format_throughput(result)
    assert "speedup" in text.splitlines()[-1] and "2 workers x 1 thread" in text
    json.dumps(result)


def test_throughput_table_gives_each_way_its_seconds_rate_and_mean_phase_seconds():
    def way(seconds, evaluation):
        per_run = [{**{p: 1.0 for p in PHASES}, "evaluation": evaluation},
                   {**{p: 3.0 for p in PHASES}, "evaluation": evaluation + 2}]
        return {"seconds": seconds, "runs_per_hour": 2 / seconds * 3600, "per_run": per_run}
    table = throughput_table({"runs": 2, "sequential": way(100.0, 10.0), "executor": way(50.0, 4.0)})
    assert table.index.tolist() == ["sequential", "executor"]
    assert list(table.columns) == ["seconds", "runs per hour", *PHASES, "evaluation"]
    assert table.loc["executor", "runs per hour"] == 144.0 and table.loc["sequential", "update"] == 2.0
    assert table.loc["sequential", "evaluation"] == 11.0 and table.loc["executor", "evaluation"] == 5.0
