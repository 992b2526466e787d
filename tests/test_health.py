"""Training health: the checks on synthetic metrics rows, on real tiny runs, the log-prob mismatch both trainers log,
the rewards `checked_rewards` refuses, and the book's flag on the tables built from `before_after`."""
import copy
import warnings

import pandas as pd
import pytest
import torch

from cotlab.experiments.rl import algorithm_gaps, summarize_runs, sweep_change
from cotlab.rewards import MAX_REWARD, checked_rewards
from cotlab.training import DPOConfig, GRPOConfig, trainer_for
from cotlab.training.health import CONSTANT_STEPS, TrainingHealth, TrainingHealthWarning, run_health
from cotlab.training.metrics import LEGACY_METRIC_NAMES
from tiny import tiny_policy

PROMPTS = ["a red circle", "two blue squares", "a green cross left of a yellow diamond", "a small striped triangle",
           "a large dotted circle", "a purple cross", "three white circles", "an orange square below a pink circle"]


def grpo_row(step, std=0.2, zero_std=0.0, grad=1.0, mean=0.5):
    return {"step": step, "reward/mean": mean, "reward/std": std, "reward/zero_std_fraction": zero_std,
            "optim/grad_norm": grad, "loss/total": 0.0, "time/step": 0.1 * step}


def dpo_row(step, pairs=4, ties=0, below=0, std=0.2, grad=1.0):
    return {"step": step, "reward/mean": 0.5, "reward/std": std, "dpo/pairs_kept": pairs, "dpo/ties_dropped": ties,
            "dpo/below_margin_dropped": below, "optim/grad_norm": grad}


def feed(rows, reward="metric"):
    """Each row with its health fields, and the health warnings raised."""
    monitor, out = TrainingHealth(reward), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for row in rows:
            out.append({**row, **monitor.update(row)})
    return out, [str(w.message) for w in caught if issubclass(w.category, TrainingHealthWarning)]


# -- the checks on synthetic rows --------------------------------------------------------------------------------

def test_a_healthy_run_raises_nothing():
    rows, raised = feed([grpo_row(s, std=0.2 + 0.01 * s) for s in range(1, 11)])
    assert raised == [] and all(r["health/ok"] == 1 and r["health/warnings"] == "" for r in rows)
    assert run_health(rows) == "ok"


def test_constant_rewards_warn_once_after_three_steps_naming_the_reward():
    rows, raised = feed([grpo_row(s, std=0.0, zero_std=1.0, grad=0.0) for s in range(1, 6)])
    assert [r["health/ok"] for r in rows] == [1] * (CONSTANT_STEPS - 1) + [0] * (6 - CONSTANT_STEPS)
    assert rows[CONSTANT_STEPS - 1]["health/warnings"] == "constant_rewards,zero_grad"
    assert rows[-1]["health/message"] == ""  # still active, not raised again
    assert len(raised) == 2 and raised[0] == rows[CONSTANT_STEPS - 1]["health/message"].split(" | ")[0]
    assert raised[0].startswith("step 3: every group's rewards have been constant for 3 steps (reward 'metric' "
                                "gave 0.5 to every image)")
    assert "no gradient" in raised[0] and "exactly 0 for 3 steps" in raised[1]
    assert run_health(rows) == "constant_rewards,zero_grad"


def test_chance_ties_and_a_recovery_do_not_flag():
    pattern = [1.0, 1.0, 0.5, 1.0, 1.0, 0.0]  # never three tied steps in a row
    rows, raised = feed([grpo_row(s, zero_std=z, grad=0.0 if z == 1 else 1.0) for s, z in enumerate(pattern, 1)])
    assert raised == [] and run_health(rows) == "ok"


def test_dpo_without_pairs_names_ties_or_the_margin():
    rows, raised = feed([dpo_row(s, pairs=0, ties=4, std=0.0, grad=0.0) for s in range(1, 4)], reward="constant")
    assert rows[-1]["health/warnings"] == "no_pairs,zero_grad"
    assert "DPO has kept no pair for 3 steps (reward 'constant' gave 0.5 to every image)" in raised[0]
    _, raised = feed([dpo_row(s, pairs=0, below=6, grad=0.0) for s in range(1, 4)])
    assert "below margin_threshold" in raised[0]


def test_zero_grad_with_varied_rewards_points_at_the_weights():
    rows, raised = feed([grpo_row(s, grad=0.0) for s in range(1, 4)])
    assert rows[-1]["health/warnings"] == "zero_grad" and "trainable weights reach the loss" in raised[0]


def test_reward_spread_collapse_is_measured_against_the_first_steps():
    stds = [0.3, 0.3, 0.3, 0.2, 0.02, 0.02, 0.01]
    rows, raised = feed([grpo_row(s, std=x) for s, x in enumerate(stds, 1)])
    assert [r["health/warnings"] for r in rows][-2:] == ["", "reward_collapse"]
    assert "reward spread has collapsed to 0.01" in raised[0] and "(0.3)" in raised[0]


def test_rows_logged_under_the_old_names_get_the_same_verdict():
    """A run logged before the metric names had namespaces (`reward_std`, `pairs_kept`, ...) is read by the
    legacy map: its verdict is the one of the same rows under the current names."""
    old = {v: k for k, v in LEGACY_METRIC_NAMES.items()}
    for rows in ([grpo_row(s, std=0.0, zero_std=1.0, grad=0.0) for s in range(1, 5)],
                 [dpo_row(s, pairs=0, ties=4, std=0.0, grad=0.0) for s in range(1, 4)],
                 [grpo_row(s, std=x) for s, x in enumerate([0.3, 0.3, 0.3, 0.2, 0.02, 0.02, 0.01], 1)]):
        legacy = [{old.get(k, k): v for k, v in row.items()} for row in rows]
        assert "reward_std" in legacy[0] and "reward/std" not in legacy[0]
        assert run_health(legacy) == run_health(rows) != "ok"


def test_replay_of_a_resumed_history_rebuilds_the_same_state():
    """The monitor's state is its rows: replaying the first k rows (with their health fields) and continuing gives
    the rows of an uninterrupted run, without warning again for what was raised before the resume."""
    raw = [grpo_row(s, std=0.0, zero_std=1.0, grad=0.0) for s in range(1, 4)] + [grpo_row(s) for s in range(4, 8)]
    whole, _ = feed(raw)
    for k in range(len(raw)):
        monitor = TrainingHealth.replay(whole[:k], reward="metric")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            continued = [{**row, **monitor.update(row)} for row in raw[k:]]
        assert whole[:k] + continued == whole
        assert len(caught) == sum(len(r["health/message"].split(" | ")) for r in whole[k:] if r["health/message"])


# -- real tiny runs ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base():
    return tiny_policy()


def tiny(cls, **fields):
    values = dict(policy="tiny", max_steps=2, prompts_per_step=4, num_generations=4, learning_rate=1e-3)
    return cls(**{**values, **fields})


def make(cfg, base, **kwargs):
    return trainer_for(cfg, policy=copy.deepcopy(base), prompts=PROMPTS, progress=False, **kwargs)


class ConstantReward:
    name = "constant"

    def __call__(self, prompts, images, metadata=None):
        return torch.ones(len(prompts))


@pytest.mark.parametrize("cls, code", [(GRPOConfig, "constant_rewards"), (DPOConfig, "no_pairs")])
def test_a_constant_reward_run_is_diagnosed_from_its_history(base, cls, code):
    trainer = make(tiny(cls, max_steps=CONSTANT_STEPS), base, reward_model=ConstantReward())
    trainer.train()
    assert all(r["optim/grad_norm"] == 0.0 for r in trainer.history)
    assert run_health(trainer.history) == f"{code},zero_grad"


@pytest.mark.parametrize("cls, code", [(GRPOConfig, "constant_rewards"), (DPOConfig, "no_pairs")])
def test_the_trainer_records_and_warns_a_constant_reward(base, tmp_path, cls, code):
    import json

    cfg = tiny(cls, max_steps=CONSTANT_STEPS, output_dir=str(tmp_path))
    trainer = make(cfg, base, reward_model=ConstantReward())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    last = trainer.history[-1]
    assert last["health/warnings"] == f"{code},zero_grad" and last["health/ok"] == 0
    raised = [str(w.message) for w in caught if issubclass(w.category, TrainingHealthWarning)]
    assert len(raised) == 2 and "reward 'constant' gave 1 to every image" in raised[0]
    assert last["health/message"] == " | ".join(raised) and trainer.history[0]["health/ok"] == 1
    logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert logged[-1]["health/warnings"] == f"{code},zero_grad"


@pytest.mark.parametrize("mode", ["cond", "cfg"])
@pytest.mark.parametrize("cls, fields", [(GRPOConfig, {}), (GRPOConfig, {"num_iterations": 2}), (DPOConfig, {})])
def test_sampled_and_teacher_forced_logprobs_agree_to_rounding(base, cls, fields, mode):
    """On CPU fp32 the log-probs recorded while sampling and the update's teacher-forced ones differ by rounding
    only; DPO logs it at each round's first step (its groups' sampler), not after the policy has moved."""
    trainer = make(tiny(cls, logprob_mode=mode, guidance_scale=3.0, **fields), base)
    trainer.train()
    first, second = trainer.history
    assert 0 <= first["policy/logprob_mismatch_max"] < 1e-4
    if cls is GRPOConfig:
        assert 0 <= second["policy/logprob_mismatch_max"] < 1e-4
    else:
        assert "policy/logprob_mismatch_max" not in second


def test_the_mismatch_sees_log_probs_of_another_distribution(base):
    trainer = make(tiny(GRPOConfig, max_steps=1), base)
    groups, _ = trainer.collect(0, 0)
    groups.old_logprobs = groups.old_logprobs.clone()
    groups.old_logprobs[3, 5] -= 0.5
    assert trainer.update(groups)["policy/logprob_mismatch_max"] == pytest.approx(0.5, abs=1e-4)


# -- rewards refused -----------------------------------------------------------------------------------------------

class Returns:
    name = "odd"

    def __init__(self, values):
        self.values = values

    def __call__(self, prompts, images, metadata=None):
        return self.values


@pytest.mark.parametrize("values, match", [
    (torch.tensor([0.5, 1 + 2j, 0.1]), r"'odd' returned \(1\+2j\) for prompt 'b' \(row 1\); rewards must be real"),
    (torch.tensor([0.5, 0.2, 1e30]), r"'odd' returned 1e\+30 for prompt 'c' \(row 2\); rewards must be at most 1e\+06"),
    (torch.tensor([1e300, 0.2, 0.1], dtype=torch.float64), r"returned 1e\+300 for prompt 'a' \(row 0\)"),
    (torch.tensor([0.5, float("inf"), 0.1]), r"returned inf for prompt 'b' \(row 1\); rewards must be finite"),
])
def test_complex_and_huge_rewards_are_refused_like_nan(values, match):
    with pytest.raises(ValueError, match=match):
        checked_rewards(Returns(values), ["a", "b", "c"], [None] * 3)


def test_large_but_safe_rewards_pass():
    values = checked_rewards(Returns(torch.tensor([MAX_REWARD, -MAX_REWARD, 0.0])), ["a", "b", "c"], [None] * 3)
    assert values.dtype == torch.float32 and torch.isfinite(torch.stack([values.mean(), values.std()])).all()


# -- the book's flag -----------------------------------------------------------------------------------------------

def table(flagged=(("grpo", 1, "constant_rewards,zero_grad"),), **tag):
    rows = [{"algorithm": "base", "reward": "none", "seed": None, "suite": s, "category": "overall", "value": 0.3}
            for s in ("compbench", "geneval")]
    for algorithm in ("grpo", "dpo"):
        for seed in range(3):
            health = dict(((a, s), h) for a, s, h in flagged).get((algorithm, seed), "ok")
            rows += [{"algorithm": algorithm, "reward": "metric", "seed": seed, "suite": s, "category": "overall",
                      "value": 0.5 + 0.01 * seed, "health": health, **tag} for s in ("compbench", "geneval")]
    return pd.DataFrame(rows)


def test_tables_name_the_flagged_runs():
    summary = summarize_runs(table()).set_index("algorithm")["health"]
    assert summary.to_dict() == {"grpo": "flagged: grpo seed 1 (constant_rewards,zero_grad)", "dpo": "ok"}
    gaps = algorithm_gaps(table())
    assert list(gaps["health"]) == ["flagged: grpo seed 1 (constant_rewards,zero_grad)"] * 2
    assert set(algorithm_gaps(table(flagged=()))["health"]) == {"ok"}
    lines = sweep_change(pd.concat([table(G=2), table(flagged=(("dpo", 0, "no_pairs"),), G=8)]), "G")
    assert lines[0].endswith("**Health: flagged: grpo G 2 seed 1 (constant_rewards,zero_grad).**")
    assert lines[1].endswith("**Health: flagged: dpo G 8 seed 0 (no_pairs).**")
