"""The arms of chapter 3 (issue 18): GRPO, offline DPO, online DPO and GRPO with logprob_mode="cfg" sample the same
prompts with the same budgets, so that their differences are the loss, the data's freshness or the policy definition."""
import copy

import pytest
import torch

from cotlab.training import DPOConfig, GRPOConfig, aligned, trainer_for
from tiny import tiny_policy

PROMPTS = ["a red circle", "two blue squares", "a green cross left of a yellow diamond", "a small striped triangle",
           "a large dotted circle", "a purple cross", "three white circles", "an orange square below a pink circle"]


@pytest.fixture(scope="module")
def base():
    return tiny_policy()


def make(cfg, base):
    return trainer_for(cfg, policy=copy.deepcopy(base), prompts=PROMPTS, progress=False)


def tiny(cls, **fields):
    values = dict(policy="tiny", max_steps=2, prompts_per_step=4, num_generations=4, learning_rate=1e-3, beta=0.1,
                  report_to=())
    return cls(**{**values, **fields})


def recording(trainer):
    """Record the groups each `collect` call returns."""
    seen, collect = [], trainer.collect

    def record(round_, step):
        groups, row = collect(round_, step)
        seen.append(groups)
        return groups, row

    trainer.collect = record
    return seen


def test_sampling_is_a_dpo_field_outside_the_aligned_ones():
    assert DPOConfig().sampling == "offline"
    with pytest.raises(ValueError, match="unknown sampling 'on-policy' .when DPO samples its pairs.; known: offline, "
                                         "online"):
        DPOConfig(sampling="on-policy")
    grpo, offline, online = tiny(GRPOConfig), tiny(DPOConfig), tiny(DPOConfig, sampling="online")
    assert aligned(grpo, online) and aligned(offline, online)
    assert grpo.budget() == offline.budget() == online.budget()
    assert offline.diff(online) == {"sampling": ("offline", "online")}


def test_online_dpo_samples_each_step_what_grpo_samples_with_the_same_weights(base):
    """Online DPO's step k trains on the groups `collect(0, k)` gives a GRPO trainer holding its weights: step 0 from
    the base, as GRPO's step 0; its logged training reward is of those on-policy samples. Offline DPO's step 1 is of
    the round buffer, sampled by the base."""
    online = make(tiny(DPOConfig, sampling="online"), base)
    grpo = make(tiny(GRPOConfig), base)
    seen = recording(online)
    online.begin_round(0)
    assert seen == []  # online sampling happens at the steps
    rows, expected = [], []
    for step in range(2):
        grpo.policy.model.load_state_dict(online.policy.model.state_dict())  # the weights online DPO samples with
        expected.append(grpo.collect(0, step)[0])
        rows.append(online.train_step(0, step))
    assert len(seen) == 2
    for step, (got, want) in enumerate(zip(seen, expected)):
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.rewards, want.rewards), step
        assert rows[step]["reward/mean"] == pytest.approx(want.rewards.mean().item())
        assert rows[step]["policy/logprob_mismatch_max"] < 1e-5  # logged at every step online: the sampling policy
    offline = make(tiny(DPOConfig), base)
    offline.begin_round(0)
    buffered = offline.round_data[1].groups
    from_base = make(tiny(GRPOConfig), base).collect(0, 1)[0]
    assert torch.equal(buffered.tokens, from_base.tokens)  # offline: round 1 sampled by the base
    offline.train_step(0, 0)
    assert offline.train_step(0, 1)["reward/mean"] == pytest.approx(buffered.rewards.mean().item())
    assert not torch.equal(seen[1].tokens, from_base.tokens)  # online's step 1: the policy after one update


def test_online_dpo_and_grpo_sample_the_same_tokens_while_their_policies_agree(base):
    """With lr 0 both policies stay the base: every step's groups are identical, token for token."""
    tokens = []
    for cfg in (tiny(GRPOConfig, learning_rate=0.0), tiny(DPOConfig, sampling="online", learning_rate=0.0)):
        trainer = make(cfg, base)
        seen = recording(trainer)
        trainer.train()
        tokens.append([g.tokens for g in seen])
    assert len(tokens[0]) == len(tokens[1]) == 2
    assert all(torch.equal(a, b) for a, b in zip(*tokens))


def test_the_three_arms_spend_equal_budgets(base):
    """GRPO, offline and online DPO (2 rounds of 2 steps): the same images sampled and reward calls, as budget()
    says; online DPO spends them per step like GRPO, offline DPO at each round's first step."""
    configs = {"grpo": tiny(GRPOConfig, rounds=2), "offline": tiny(DPOConfig, rounds=2),
               "online": tiny(DPOConfig, rounds=2, sampling="online")}
    per_step = {}
    for name, cfg in configs.items():
        trainer = make(cfg, base)
        trainer.train()
        history = trainer.history
        assert ((history[-1]["budget/total_images_sampled"], history[-1]["budget/total_reward_calls"])
                == tuple(cfg.budget().values()))
        assert sum(r["budget/reward_calls"] for r in history) == cfg.budget()["reward_calls"]
        per_step[name] = [r["budget/images_sampled"] for r in history]
    assert per_step["online"] == per_step["grpo"] == [16, 16, 16, 16]
    assert per_step["offline"] == [32, 0, 32, 0]


def test_grpo_with_cfg_log_probs_trains_on_the_distribution_it_samples(base):
    """The policy-definition control: GRPO optimising the guided distribution trains, its sampled and teacher-forced
    log-probs agree to float rounding, and it is aligned with (the same budget as) the conditional-mode run."""
    cond = tiny(GRPOConfig, logprob_mode="cond", guidance_scale=3.0, max_steps=1)
    cfg = cond.replace(logprob_mode="cfg")
    assert aligned(cond, cfg) and cond.budget() == cfg.budget()
    trainer = make(cfg, base)
    before = {n: p.clone() for n, p in trainer.policy.model.named_parameters() if p.requires_grad}
    row = trainer.train_step(0, 0)
    assert row["policy/logprob_mismatch_max"] < 1e-5 and row["budget/images_sampled"] == 16
    assert torch.isfinite(torch.tensor(row["loss/total"])) and row["optim/grad_norm"] > 0
    assert any(not torch.equal(p, before[n]) for n, p in trainer.policy.model.named_parameters() if n in before)
