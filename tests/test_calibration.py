"""The calibration stage on constructed dev scores: the grid, the pick, the run length rule, bad grids."""
import pandas as pd
import pytest

from cotlab.experiments import calibration as cal
from cotlab.training import arm_of


def rows(settings):
    """A before_after-shaped table: one ID dev overall row per (tags, seed, value) plus a base row."""
    out = [{"algorithm": "base", "seed": None, "suite": "compbench", "category": "overall", "value": 0.3,
            "health": None}]
    for tags, seed, value, *health in settings:
        out.append({"algorithm": tags["arm"], "seed": seed, "suite": "compbench", "category": "overall",
                    "value": value, "health": health[0] if health else "ok", **tags})
    return pd.DataFrame(out)


def test_grid_runs_cover_every_setting_on_tuning_seeds_at_one_budget():
    grid = {"grpo": {"learning_rate": [1e-4, 2e-4], "beta": [0.0, 0.04]}, "dpo": {"learning_rate": [1e-4],
                                                                               "beta": [0.1, 0.3]}}
    configs, tags = cal.grid_runs("smoke", cal.TUNING_SEEDS, {"name": "metric"}, grid)
    assert len(configs) == (4 + 2) * len(cal.TUNING_SEEDS)
    assert {(t["arm"], c.learning_rate, c.beta) for c, t in zip(configs, tags)} == {
        ("grpo", 1e-4, 0.0), ("grpo", 1e-4, 0.04), ("grpo", 2e-4, 0.0), ("grpo", 2e-4, 0.04),
        ("dpo", 1e-4, 0.1), ("dpo", 1e-4, 0.3)}
    assert {arm_of(c) for c in configs} == {"grpo", "dpo"} and {c.seed for c in configs} == set(cal.TUNING_SEEDS)
    assert len({(c.max_steps, c.prompts_per_step, c.num_generations) for c in configs}) == 1


def test_the_pick_is_the_best_healthy_dev_score_with_ties_to_the_smaller_learning_rate():
    g = lambda lr, beta: {"arm": "grpo", "learning_rate": lr, "beta": beta}  # noqa: E731
    d = lambda lr, beta: {"arm": "dpo", "learning_rate": lr, "beta": beta}  # noqa: E731
    results = rows([(g(1e-4, 0.0), 100, 0.40), (g(1e-4, 0.0), 101, 0.42),
                    (g(2e-4, 0.0), 100, 0.50), (g(2e-4, 0.0), 101, 0.52),
                    (g(4e-4, 0.0), 100, 0.60, "zero_grad"), (g(4e-4, 0.0), 101, 0.62),  # best, but flagged
                    (d(1e-4, 0.1), 100, 0.45), (d(1e-4, 0.1), 101, 0.45),
                    (d(2e-4, 0.1), 100, 0.45), (d(2e-4, 0.1), 101, 0.45)])
    table = cal.grid_table(results)
    assert cal.pick(table) == {"grpo": {"learning_rate": 2e-4, "beta": 0.0, "dev": pytest.approx(0.51)},
                               "dpo": {"learning_rate": 1e-4, "beta": 0.1, "dev": pytest.approx(0.45)}}
    assert table["chosen"].sum() == 2 and len(table) == 5
    with pytest.raises(ValueError, match="every calibration run of grpo raised a health warning"):
        cal.pick(cal.grid_table(rows([(g(1e-4, 0.0), 100, 0.4, "zero_grad")])))


def test_run_length_is_where_doubling_adds_less_than_half_delta():
    a = lambda arm, steps: {"arm": arm, "steps": steps}  # noqa: E731
    gains = {"grpo": {40: 0.40, 80: 0.45, 160: 0.46}, "dpo": {40: 0.40, 80: 0.41, 160: 0.41}}
    results = rows([(a(arm, s), seed, v + 0.001 * seed) for arm, by in gains.items() for s, v in by.items()
                    for seed in (100, 101)])
    length, table = cal.run_length(results, delta=0.03)
    assert length == 80  # GRPO gains 0.05 from 40 to 80 (more than 0.015), 0.01 from 80 to 160
    assert table.loc[(table["arm"] == "grpo") & (table["steps"] == 40), "gain of next"].item() == pytest.approx(0.05)
    still_rising = rows([(a("grpo", s), seed, 0.1 * i) for i, s in enumerate((40, 80)) for seed in (100, 101)])
    assert cal.run_length(still_rising, delta=0.03)[0] == 80  # the longest pilot when none settles
    with pytest.raises(ValueError, match="at least two run lengths"):
        cal.pilot_runs("smoke", [100], {"name": "metric"}, {"grpo": {"learning_rate": 1e-3, "beta": 0.0}}, [8])


def test_pilot_runs_are_the_chosen_settings_at_each_length():
    configs, tags = cal.pilot_runs("smoke", [100], {"name": "metric"},
                                   {"grpo": {"learning_rate": 1e-3, "beta": 0.0},
                                    "dpo": {"learning_rate": 5e-4, "beta": 0.3}}, [8, 4])
    assert [(t["arm"], c.max_steps, c.learning_rate, c.beta) for c, t in zip(configs, tags)] == [
        ("grpo", 4, 1e-3, 0.0), ("grpo", 8, 1e-3, 0.0), ("dpo", 4, 5e-4, 0.3), ("dpo", 8, 5e-4, 0.3)]


@pytest.mark.parametrize("grid, message", [
    ({"ppo": {"learning_rate": [1e-4], "beta": [0.0]}}, "unknown arm 'ppo'"),
    ({"grpo": {"learning_rate": [1e-4]}}, "non-empty 'learning_rate' and 'beta'"),
    ({"grpo": {"learning_rate": [], "beta": [0.0]}}, "non-empty 'learning_rate' and 'beta'"),
])
def test_bad_grids_are_named(grid, message):
    with pytest.raises(ValueError, match=message):
        cal.grid_runs("smoke", [100], {"name": "metric"}, grid)
