"""Several base models (issue 18): base tiers by pretraining seed, chapter 3's `full` tier on 3 bases, and claims
1, 2 and 2b per base and pooled over bases."""
from collections import Counter

import pandas as pd
import pytest

from cotlab.checks import ConfigError
from cotlab.experiments import graph
from cotlab.experiments.findings import ALGORITHM_CLAIMS, algorithm_claims, power_table
from cotlab.experiments.studies import chapter_runs, comparison_runs
from cotlab.experiments.tiers import PRESETS, notebook_parameters
from cotlab.experiments.verdicts import pooled_claim
from cotlab.policy.pretrain import BASE_SEEDS, BASE_TIERS, PRETRAIN_TIERS, base_key, holdout_tier
from cotlab.training import arm_preset

from test_findings import comparison

SEED_BASES = [f"default-seed{k}" for k in BASE_SEEDS]


def two_bases(gap_a=-0.2, gap_b=0.1, **kwargs):
    """A `before_after` table from two bases: base "default" with ID gap `gap_a`, "default-seed1" with `gap_b`."""
    a = comparison(id_gap=gap_a, ood_gap=0.2, **kwargs).assign(policy="default")
    b = comparison(id_gap=gap_b, ood_gap=0.2, rng_seed=1, **kwargs).assign(policy="default-seed1")
    return a, b, pd.concat([a, b], ignore_index=True)


def test_seed_bases_differ_from_the_default_only_in_their_seed_and_have_l3_variants():
    for k, name in zip(BASE_SEEDS, SEED_BASES):
        assert BASE_TIERS[name].seed == k
        assert {**base_key(BASE_TIERS[name]), "seed": 0} == base_key(BASE_TIERS["default"])
        assert holdout_tier(name, "L3-above-below") == f"{name}-L3-above-below" in PRETRAIN_TIERS
        held = PRETRAIN_TIERS[f"{name}-L3-above-below"]
        assert held.seed == k and held.captions.holdout == "L3-above-below"
        assert holdout_tier(name, "L0") == name
        with pytest.raises(ConfigError, match="pretrained on it"):   # an L3 run from the seed base itself is refused
            arm_preset("default", "grpo", policy=name, holdout="L3-above-below")
    assert base_key(BASE_TIERS["default"])["seed"] == 0


def test_one_base_gives_todays_records():
    table = comparison(-0.2, 0.2, rewards=("a", "b"), seeds=4).assign(policy="default")
    records = algorithm_claims(table)
    assert [r["id"] for r in records] == ["1", "2", "2b"] and not any("base" in r or "bases" in r for r in records)
    for spec, record in zip(ALGORITHM_CLAIMS, records):   # the same dicts as the one-base computation by hand
        rows = table[(table["suite"] == spec["suite"]) & table["category"].isin(spec["categories"])]
        if len(spec["categories"]) == 1:
            wide = rows.pivot_table(index=["reward", "seed"], columns="algorithm", values="value")
            expect = pooled_claim(spec["claim"], (wide["grpo"] - wide["dpo"]).rename("diff").reset_index(),
                                  spec["direction"])
            assert {k: record[k] for k in expect} == expect
    without = algorithm_claims(table.drop(columns="policy"))
    assert without == records


def test_several_bases_give_a_record_per_base_and_one_pooled_over_base_x_reward_cells():
    a, b, both = two_bases(rewards=("a", "b"), seeds=4)
    records = algorithm_claims(both)
    ids = [r["id"] for r in records]
    assert ids == ["1", "1@default", "1@default-seed1", "2", "2@default", "2@default-seed1",
                   "2b", "2b@default", "2b@default-seed1"]
    got = {r["id"]: r for r in records}
    for base, alone in (("default", a), ("default-seed1", b)):   # a base's record is that base's table alone
        for one in algorithm_claims(alone):
            mine = got[f"{one['id']}@{base}"]
            assert mine["base"] == base and mine["claim"].endswith(f"[base {base}]")
            assert {k: v for k, v in mine.items() if k not in ("id", "base", "claim")} == \
                {k: v for k, v in one.items() if k not in ("id", "claim")}
    pooled = got["1"]
    assert pooled["bases"] == ["default", "default-seed1"] and pooled["rewards"] == 4   # 2 bases x 2 reward models
    assert pooled["estimate"] == pytest.approx((got["1@default"]["estimate"] + got["1@default-seed1"]["estimate"]) / 2)
    assert pooled["df"] == 2 * 2 * 4 - 4
    assert {p["claim"] for p in pooled["per_reward"]} == {f"{x} / {r}" for x in ("default", "default-seed1")
                                                           for r in ("a", "b")}
    assert pooled["interaction_p"] < 0.05              # the bases disagree (-0.2 vs +0.1): the F-test says so
    assert got["1@default"]["verdict"] == "replicated" and got["1@default-seed1"]["verdict"] == "contradicted"
    assert {p["claim"].split(" / ")[0] for p in got["2b"]["per_reward"]} == {"default", "default-seed1"}
    assert power_table(both).set_index("claim").loc[ALGORITHM_CLAIMS[0]["claim"], "reward models"].iloc[0] == 4


def test_full_tier_runs_chapter_3_from_three_bases_and_the_others_from_one():
    assert PRESETS["03_grpo_vs_dpo"]["full"]["bases"] == ["default", *SEED_BASES]
    for tier in ("smoke", "default", "paper"):
        p = notebook_parameters("03_grpo_vs_dpo", tier)
        assert len(p["bases"]) == 1
        configs, _ = comparison_runs(p["rl_preset"], p["seeds"], p["rewards"], p["reward_training"], p["arms"],
                                     p["arm_rewards"], scale=p["scale"])
        assert chapter_runs("03_grpo_vs_dpo", tier)[0] == configs   # one base: the runs of before
    configs = chapter_runs("03_grpo_vs_dpo", "full")[0]
    assert Counter(c.policy for c in configs) == {b: len(configs) // 3 for b in ("default", *SEED_BASES)}
    with pytest.raises(ValueError, match="distinct"):
        comparison_runs("default", [0], [{"name": "metric"}], bases=["default", "default"])


@pytest.mark.parametrize("tier, bases, rl", [("smoke", 1, 19), ("default", 1, 32), ("full", 3, 336)])
def test_planned_base_policies_of_chapter_3(tier, bases, rl):
    kinds = Counter(n.kind for n in graph.plan(tier, ["03_grpo_vs_dpo"]).nodes.values())
    assert kinds["base_policy"] == bases and kinds["rl"] == rl


def test_whole_book_plans_of_smoke_and_default_are_unchanged():
    for tier, total, bases in (("smoke", 202, 2), ("default", 259, 1)):
        nodes = graph.plan(tier, list(PRESETS)).nodes.values()
        assert len(nodes) == total and Counter(n.kind for n in nodes)["base_policy"] == bases
