"""Claim 3's learned reward models (issue 18): the set, its seeds (the same for Best-of-N and RL in every tier), its
planned runs, and the spread measures, on constructed data."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from cotlab.experiments import graph
from cotlab.experiments.findings import best_of_n_vs_rl, check_same_seeds
from cotlab.experiments.paper_tier import PAPER_REWARDS, is_benchmarks
from cotlab.experiments.reward_eval import ground_truth_samples, reference_rows, spread
from cotlab.plotting import spread_plot
from cotlab.experiments.studies import chapter_runs, comparison_runs, reward_seeds_of
from cotlab.experiments.tiers import TIERS, notebook_parameters
from cotlab.rewards.learned import SPREAD_SET, config_from_options
from cotlab.training import aligned
from test_findings import comparison

CHAPTER = "04_reward_to_rl"


def label(spec: dict) -> str:
    return f"{spec['name']}[{spec['breadth']}]"


def test_the_set_has_both_families_at_three_breadths_each_named_once():
    assert len(SPREAD_SET) >= 6
    assert len({s["name"] for s in SPREAD_SET}) >= 2 and len({s["breadth"] for s in SPREAD_SET}) >= 3
    assert {(s["name"], s["breadth"]) for s in SPREAD_SET} >= {(f, b) for f in ("preference", "judge")
                                                                for b in ("id", "captions", "id+captions")}
    assert len({label(s) for s in SPREAD_SET}) == len(SPREAD_SET)  # the tables' labels tell them apart
    for spec in SPREAD_SET:  # every spec is a valid registry spec
        config_from_options(spec["name"], {k: v for k, v in spec.items() if k != "name"})


SHAPEWORLD_TIERS = [t for t in TIERS if not is_benchmarks(notebook_parameters(CHAPTER, t)["scale"])]


@pytest.mark.parametrize("tier", SHAPEWORLD_TIERS)
def test_rl_and_best_of_n_read_the_same_reward_model_seeds_in_every_tier(tier):
    p = notebook_parameters(CHAPTER, tier)
    assert p["reward_seeds"] == p["seeds"]
    learned = [r for r in p["rewards"] if r["name"] != "metric"]
    assert len(learned) >= 6 and [r for r in p["rewards"] if r["name"] == "metric"]  # the oracle, shown apart
    configs, _, _ = chapter_runs(CHAPTER, tier)
    for cfg in configs:
        if cfg.reward != "metric":
            assert cfg.reward_options["seed"] == cfg.seed
    assert reward_seeds_of(configs) == {label(r): sorted(p["seeds"]) for r in learned}
    check_same_seeds(configs, p["reward_seeds"])
    assert {label(r) for r in learned} == {label(s) for s in SPREAD_SET}
    models = notebook_parameters("02_reward_models", tier)["reward_models"]
    assert all(s in models for s in SPREAD_SET)  # chapter 2 measures (and trains) the same models


@pytest.mark.parametrize("tier", [t for t in TIERS if t not in SHAPEWORLD_TIERS])
def test_the_paper_tiers_compare_the_papers_three_pretrained_reward_families(tier):
    # claim 3's learned set is ShapeWorld's; at paper scale the reward models are the published checkpoints
    p = notebook_parameters(CHAPTER, tier)
    assert p["rewards"] == PAPER_REWARDS and p["reward_seeds"] == p["seeds"]
    configs, _, _ = chapter_runs(CHAPTER, tier)
    assert {cfg.reward for cfg in configs} == {r["name"] for r in PAPER_REWARDS}
    assert reward_seeds_of(configs) == {}  # pretrained checkpoints: no reward-model seed to match


def test_the_default_tier_runs_fewer_algorithms_and_full_runs_both_with_more_seeds():
    default, full = notebook_parameters(CHAPTER, "default"), notebook_parameters(CHAPTER, "full")
    assert default["algorithms"] == ["grpo"] and len(default["seeds"]) >= 3
    assert full["algorithms"] == ["grpo", "dpo"] and len(full["seeds"]) > len(default["seeds"])


def test_check_same_seeds_refuses_rl_runs_on_other_reward_seeds():
    rewards = [{"name": "metric"}, {"name": "judge", "breadth": "id"}]
    configs, _ = comparison_runs("smoke", [0, 1], rewards, {"steps": 2})
    check_same_seeds(configs, [1, 0])
    with pytest.raises(ValueError, match="reward-model seeds"):
        check_same_seeds(configs, [0, 1, 2])
    stale = [c.replace(reward_options={**c.reward_options, "seed": 0}) if c.reward == "judge" else c
             for c in configs]
    with pytest.raises(ValueError, match="judge"):
        check_same_seeds(stale, [0, 1])


def test_comparison_runs_pair_reward_and_rl_seeds_and_keep_the_arms_aligned():
    configs, tags = comparison_runs("smoke", [0, 1, 2], [{"name": "preference", "breadth": "id"}], {"steps": 3},
                                    arms=("grpo", "dpo"))
    assert [(c.algorithm, c.seed, c.reward_options["seed"]) for c in configs] == [
        ("grpo", 0, 0), ("grpo", 1, 1), ("grpo", 2, 2), ("dpo", 0, 0), ("dpo", 1, 1), ("dpo", 2, 2)]
    assert all(c.reward_options["steps"] == 3 for c in configs) and len(tags) == 6
    assert all(aligned(g, d) for g, d in zip(configs[:3], configs[3:]))
    only_grpo, _ = comparison_runs("smoke", [0], [{"name": "metric"}], arms=("grpo",))
    assert [c.algorithm for c in only_grpo] == ["grpo"] and "seed" not in only_grpo[0].reward_options


def test_the_plan_of_chapter_4_holds_every_models_reward_and_rl_runs():
    p = notebook_parameters(CHAPTER, "smoke")
    g = graph.plan("smoke", [CHAPTER])
    labels = [n.label for n in g.nodes.values()]
    for spec in p["rewards"]:
        for seed in p["seeds"]:
            for algorithm in p["algorithms"]:
                assert f"{algorithm} seed {seed}, reward {spec['name'] if spec['name'] == 'metric' else label(spec)}" \
                    in labels
            if spec["name"] != "metric":
                assert f"{spec['name']} reward model, {spec['breadth']} data, seed {seed}" in labels
    counts = g.counts()
    assert counts["rl"] == len(p["rewards"]) * len(p["seeds"]) * len(p["algorithms"])
    assert counts["reward_model"] == (len(p["rewards"]) - 1) * len(p["seeds"])


def per_seed(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"reward model": name, "family": name.split("[")[0], "breadth": "id", "seed": s,
                          "ood pairwise": 0.5 + b / 2, "ood best-of-4": b}
                         for name, bs in values.items() for s, b in enumerate(bs)])


def test_spread_places_each_model_between_the_random_and_oracle_picks():
    refs = pd.DataFrame({"ood best-of-4": {"random pick": 0.4, "oracle pick": 0.6}})
    table = spread(per_seed({"judge[id]": [0.40, 0.42, 0.44], "preference[id]": [0.56, 0.58, 0.60]}), refs)
    assert list(table.index) == ["random pick", "judge[id]", "preference[id]", "oracle pick"]
    assert table["share"].tolist() == pytest.approx([0.0, 0.1, 0.9, 1.0])
    assert table.loc["judge[id]", "ood best-of-4"] == pytest.approx(0.42)
    assert table.loc["judge[id]", "ood best-of-4 ±"] > 0 and table.loc["judge[id]", "seeds"] == 3
    assert table.loc["preference[id]", "ood pairwise"] == pytest.approx(0.79)
    ax = spread_plot(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["judge[id]", "preference[id]"]
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_label().endswith("pick")) == [0.4, 0.6]


def test_ground_truth_candidates_are_scored_shuffled_and_deterministic():
    a = ground_truth_samples("ood", prompts_per_category=2, n=4, seed=3)
    b = ground_truth_samples("ood", prompts_per_category=2, n=4, seed=3)
    assert a.tokens.shape[:2] == a.correct.shape == (len(a.prompts), 4) and a.suite == "geneval"
    assert np.array_equal(a.tokens, b.tokens)
    assert a.correct.any(axis=1).all()  # the scene made for each prompt satisfies it (no artifacts)
    assert not a.correct[:, 0].all()  # shuffled: the first candidate (the random pick) is not always that scene
    refs = reference_rows({"ood": a})
    assert refs.loc["oracle pick", "ood best-of-4"] == 1.0 > refs.loc["random pick", "ood best-of-4"]
    with pytest.raises(ValueError, match="at least 2"):
        ground_truth_samples("id", n=1)


def test_best_of_n_points_with_one_algorithm():
    bon = pd.DataFrame([{"reward model": "metric", "seed": 0, "ood best-of-4": 0.4}])
    results = comparison(0.0, 0.2, noise=0.0, base_se=0.0)
    table, points = best_of_n_vs_rl(bon, results[results["algorithm"] != "dpo"], 4)
    assert list(table.index) == ["GRPO", "Best-of-4"] and points["algorithm"].tolist() == ["GRPO"]
