"""GRPO and DPO losses against TRL on identical inputs, and their invariants.

TRL 1.16.0 (the pinned version) keeps these computations inside trainer methods, so the reference formulas are
written out here, each citing where it lives: `trl/trainer/grpo_trainer.py` (`_generate_and_score_completions` for
the advantages, `_compute_loss` for the loss) and `trl/trainer/dpo_trainer.py` (`_compute_loss`). TRL's own
`nanstd` is called directly.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from trl.trainer.utils import nanstd

from cotlab.losses import DPO_LOSS_TYPES, GRPO_LOSS_TYPES, dpo_loss, group_advantages, grpo_loss, k3_kl

G = 4


def trl_advantages(rewards, num_generations, scale_rewards):
    # trl/trainer/grpo_trainer.py (1.16.0), _generate_and_score_completions, "sum_then_normalize" branch
    mean = rewards.view(-1, num_generations).mean(dim=1).repeat_interleave(num_generations)
    if scale_rewards in ("group", "none"):
        std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    else:
        std = nanstd(rewards).expand_as(rewards)
    adv = rewards - mean
    if scale_rewards != "none":
        adv = adv / (std + 1e-4)
    return adv


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_group_advantages_match_trl(scale_rewards):
    rewards = torch.rand(6 * G, generator=torch.Generator().manual_seed(0))
    ours, _ = group_advantages(rewards, G, scale_rewards)
    torch.testing.assert_close(ours, trl_advantages(rewards, G, scale_rewards), rtol=0, atol=1e-6)


def test_equal_rewards_give_zero_advantages_and_are_counted():
    rewards = torch.tensor([0.5] * G + [0.1, 0.9, 0.3, 0.3] + [1.0] * G)
    adv, stats = group_advantages(rewards, G)
    assert torch.isfinite(adv).all()
    assert torch.equal(adv[:G], torch.zeros(G)) and torch.equal(adv[-G:], torch.zeros(G))
    assert stats["zero_std_groups"] == 2 and stats["zero_std_fraction"] == pytest.approx(2 / 3)
    assert adv[G:2 * G].sum().abs() < 1e-5 and adv[G + 1] > 0 > adv[G]


def trl_grpo_loss(logp, old, ref, adv, mask, eps_low, eps_high, beta, loss_type, max_len, num_items):
    # trl/trainer/grpo_trainer.py (1.16.0), _compute_loss, importance_sampling_level="token", one process,
    # no accumulation (current_gradient_accumulation_steps = 1, steps_per_generation = 1)
    coef_1 = torch.exp(logp - old)
    per_token_kl = torch.exp(ref - logp) - (ref - logp) - 1
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    adv = adv.unsqueeze(1)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_len)
    return (per_token_loss * mask).sum() / num_items  # dapo


def grpo_inputs(seed=0, n=8, t=12, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, t, generator=g) * 5
    logp = old + spread * torch.randn(n, t, generator=g)
    ref = old + spread * torch.randn(n, t, generator=g)
    adv = torch.randn(n, generator=g)
    mask = (torch.rand(n, t, generator=g) > 0.2).float()
    mask[:, 0] = 1
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
@pytest.mark.parametrize("beta,epsilon_high", [(0.0, None), (0.04, 0.28)])
def test_grpo_loss_matches_trl(loss_type, beta, epsilon_high):
    logp, old, ref, adv, mask = grpo_inputs()
    logp.requires_grad_(True)
    ours, stats = grpo_loss(logp, old, ref, adv, mask, epsilon=0.2, epsilon_high=epsilon_high, beta=beta,
                            loss_type=loss_type, num_items_in_batch=mask.sum(), max_length=12)
    theirs = trl_grpo_loss(logp, old, ref, adv, mask, 0.2, epsilon_high or 0.2, beta, loss_type, 12, mask.sum())
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    (g1,) = torch.autograd.grad(ours, logp)
    (g2,) = torch.autograd.grad(theirs, logp)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-7)
    assert 0 < stats["clip_fraction"] < 1 and stats["kl"] > 0


def test_the_four_grpo_aggregations_coincide_on_equal_lengths_without_a_mask():
    g = torch.Generator().manual_seed(3)
    logp, old, ref = (torch.randn(6, 10, generator=g) for _ in range(3))
    adv, ones = torch.randn(6, generator=g), torch.ones(6, 10)
    losses = [grpo_loss(logp, old, ref, adv, ones, beta=0.05, loss_type=t)[0] for t in GRPO_LOSS_TYPES]
    for loss in losses[1:]:
        torch.testing.assert_close(loss, losses[0])
    mask = ones.clone()
    mask[0, 5:] = 0  # one shorter sequence: grpo and bnpo weigh its tokens differently
    assert not torch.isclose(grpo_loss(logp, old, ref, adv, mask, loss_type="grpo")[0],
                             grpo_loss(logp, old, ref, adv, mask, loss_type="bnpo")[0])


def test_grpo_first_step_ratio_is_one_and_nothing_clips():
    logp, _, ref, adv, mask = grpo_inputs(spread=0.0)
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.1)
    assert stats["ratio_mean"] == 1.0 and stats["clip_fraction"] == 0.0 and stats["kl"] == 0.0
    # at ratio 1 the surrogate is -A per token: the loss is minus the mean advantage
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-6)


def test_k3_is_nonnegative_and_zero_only_at_equality():
    a, b = torch.randn(1000), torch.randn(1000)
    assert (k3_kl(a, b) >= 0).all() and torch.equal(k3_kl(a, a), torch.zeros(1000))


def trl_dpo_losses(pc, pr, rc, rr, beta, loss_type, ls, num_tokens):
    # trl/trainer/dpo_trainer.py (1.16.0), _compute_loss, f_divergence_type="reverse_kl", completion length
    # num_tokens for every sequence. TRL 1.16's "sigmoid" has no label smoothing; the smoothed form is TRL 0.x's
    # (trl/trainer/dpo_trainer.py 0.19, `dpo_loss`: -logsigmoid(beta h)(1 - ls) - logsigmoid(-beta h) ls), which
    # reduces to 1.16's at ls = 0.
    delta = (pc - rc) - (pr - rr)
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta) * (1 - ls) - F.logsigmoid(-beta * delta) * ls
    if loss_type == "hinge":
        return torch.relu(1 - beta * delta)
    if loss_type == "ipo":
        return ((pc - rc) / num_tokens - (pr - rr) / num_tokens - 1 / (2 * beta)) ** 2
    clean = -(1 - ls) * F.logsigmoid(beta * delta)
    flipped = -ls * F.logsigmoid(-beta * delta)
    return (clean - flipped) / (1 - 2 * ls)  # robust


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_dpo_loss_matches_trl(loss_type, label_smoothing):
    g = torch.Generator().manual_seed(3)
    pc, pr, rc, rr = (-(torch.rand(16, generator=g) * 100 + 50) for _ in range(4))
    pc.requires_grad_(True)
    ours, stats = dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type=loss_type, label_smoothing=label_smoothing,
                           num_tokens=64)
    theirs = trl_dpo_losses(pc, pr, rc, rr, 0.1, loss_type, label_smoothing, 64).mean()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.autograd.grad(ours, pc)[0], torch.autograd.grad(theirs, pc)[0])
    chosen, rejected = 0.1 * (pc - rc), 0.1 * (pr - rr)
    assert stats["rewards_accuracy"] == pytest.approx((chosen > rejected).float().mean().item())
    assert stats["rewards_margin"] == pytest.approx((chosen - rejected).mean().item(), abs=1e-5)


def test_dpo_at_initialisation_is_log_two():
    logp = -torch.rand(8) * 50
    loss, stats = dpo_loss(logp, logp.flip(0), logp, logp.flip(0), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert stats["rewards_margin"] == 0.0


def test_bad_loss_arguments_are_refused_with_the_known_names():
    logp, old, ref, adv, mask = grpo_inputs()
    with pytest.raises(ValueError, match="grpo, bnpo, dr_grpo, dapo"):
        grpo_loss(logp, old, ref, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="sigmoid, ipo, hinge, robust"):
        dpo_loss(logp[:, 0], old[:, 0], ref[:, 0], ref[:, 0], loss_type="kto")
    with pytest.raises(ValueError, match="beta"):
        grpo_loss(logp, old, ref, adv, mask, beta=-0.1)
    with pytest.raises(ValueError, match="epsilon"):
        grpo_loss(logp, old, ref, adv, mask, epsilon=-0.2)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logp, old, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="num_generations"):
        group_advantages(torch.rand(8), 1)
    with pytest.raises(ValueError, match="multiple of num_generations"):
        group_advantages(torch.rand(7), 4)
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(torch.rand(8), 4, "global")
