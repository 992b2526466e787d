"""GRPO and DPO losses on image-token sequences: small pure functions, named as TRL names them.

Shapes: per-token tensors are (N, T) with N sequences of T image tokens and a (N, T) mask (1 = a token that counts);
sequence log-probs are (P,) sums over a sequence's image tokens. Every function returns ``(loss, stats)`` where
``stats`` holds detached scalars for logging.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE_REWARDS = ("group", "batch", "none")
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


def _one_of(name: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")


def group_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group",
                     eps: float = 1e-4) -> tuple[torch.Tensor, dict]:
    """Group-relative advantages (GRPO, Shao et al. 2024, eq. 3; TRL `GRPOTrainer._generate_and_score_completions`).

    ``rewards`` (N,) is ordered group by group (N = groups x num_generations).
    A_i = (r_i - mean_group(r)) / (std + eps), where std is the unbiased standard deviation of the group
    (``"group"``), of the whole batch (``"batch"``), or the division is skipped (``"none"``, Dr. GRPO).
    A group whose rewards are all equal gets zero advantages (never NaN); ``stats["zero_std_fraction"]`` counts them.
    """
    _one_of("scale_rewards", scale_rewards, SCALE_REWARDS)
    if num_generations < 2:
        raise ValueError(f"num_generations must be at least 2 for group advantages, got {num_generations}")
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.ndim != 1 or rewards.numel() % num_generations:
        raise ValueError(f"rewards must be a flat tensor whose length is a multiple of num_generations="
                         f"{num_generations}, got shape {tuple(rewards.shape)}")
    groups = rewards.view(-1, num_generations)
    centred = groups - groups.mean(dim=1, keepdim=True)
    group_std = groups.std(dim=1, keepdim=True)  # unbiased, as TRL's nanstd
    if scale_rewards == "group":
        advantages = centred / (group_std + eps)
    elif scale_rewards == "batch":
        advantages = centred / ((rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())) + eps)
    else:
        advantages = centred
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std)).squeeze(1)
    advantages = advantages.flatten()
    stats = {"zero_std_fraction": zero_std.float().mean().item(), "zero_std_groups": int(zero_std.sum()),
             "reward_std_within_group": group_std.mean().item()}
    return advantages, stats


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman 2020), >= 0, unbiased for KL(pi||ref)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, *, epsilon: float = 0.2, epsilon_high: float | None = None,
              beta: float = 0.0, loss_type: str = "grpo", num_items_in_batch: int | float | None = None,
              max_length: int | None = None) -> tuple[torch.Tensor, dict]:
    """Clipped surrogate with a k3 KL penalty (GRPO, Shao et al. 2024, eq. 3; TRL `GRPOTrainer._compute_loss`).

    Per token: l_t = -min(r_t A, clip(r_t, 1 - epsilon, 1 + epsilon_high) A) + beta k3_t, with
    r_t = exp(logp_t - old_logp_t), A the sequence's advantage and epsilon_high = epsilon unless given (DAPO's
    clip-higher). Aggregation (``loss_type``):

    - ``grpo``: mean over each sequence's tokens, then mean over sequences;
    - ``bnpo``: sum over all tokens / number of tokens in this batch;
    - ``dr_grpo``: sum / (sequences x ``max_length``) (Dr. GRPO; ``max_length`` defaults to T);
    - ``dapo``: sum / ``num_items_in_batch``, the number of tokens in the global batch across processes and
      accumulation steps (defaults to this batch's token count), so every token weighs the same.

    The four differ only in how they weigh sequences of different lengths. When every sequence has the same length T
    and the mask is all ones, they coincide: each is sum / (N T), the mean of the per-token losses (``dr_grpo`` with
    ``max_length`` T, its default; ``dapo`` with ``num_items_in_batch`` N T, its default, and what the GRPO trainer
    passes when its micro-batches are of equal size). That is the case here: every image is T tokens and the trainer
    passes a mask of ones, so ``loss_type`` does not change the loss.
    """
    _one_of("loss_type", loss_type, GRPO_LOSS_TYPES)
    if epsilon < 0 or (epsilon_high is not None and epsilon_high < 0):
        raise ValueError(f"epsilon and epsilon_high must be >= 0, got {epsilon} and {epsilon_high}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logprobs is None:
        raise ValueError("beta > 0 needs ref_logprobs (the reference policy's per-token log-probs)")
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logprobs.dtype)
    advantages = advantages.to(logprobs.dtype).view(-1, 1)
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    kl = k3_kl(logprobs, ref_logprobs) if ref_logprobs is not None else torch.zeros_like(logprobs)
    if beta > 0:
        per_token = per_token + beta * kl
    tokens = mask.sum().clamp(min=1.0)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / tokens
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.shape[0] * (max_length or per_token.shape[1]))
    else:
        loss = (per_token * mask).sum() / (num_items_in_batch if num_items_in_batch is not None else tokens)
    with torch.no_grad():
        low = (ratio < 1 - epsilon) & (advantages < 0)
        high = (ratio > 1 + epsilon_high) & (advantages > 0)
        stats = {"kl": ((kl * mask).sum() / tokens).item(),
                 "clip_fraction": (((low | high).to(mask.dtype) * mask).sum() / tokens).item(),
                 "ratio_mean": ((ratio * mask).sum() / tokens).item()}
    return loss, stats


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, *, beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             num_tokens: int | float | None = None) -> tuple[torch.Tensor, dict]:
    """Direct preference optimisation on sequence log-probs (Rafailov et al. 2023, eq. 7; TRL `DPOTrainer`).

    With h = (logp_c - ref_c) - (logp_r - ref_r), the log-ratio margin of chosen over rejected, per pair:

    - ``sigmoid``: -(1 - ls) log sigma(beta h) - ls log sigma(-beta h) (conservative DPO's label smoothing ls);
    - ``ipo``: (h / num_tokens - 1 / (2 beta))^2 (Azar et al. 2023, eq. 17; per-token average as TRL >= 1.0, which
      confirmed it with the IPO authors; ``num_tokens=None`` keeps the raw sequence margin);
    - ``hinge``: relu(1 - beta h) (SLiC);
    - ``robust``: (-(1 - ls) log sigma(beta h) + ls log sigma(-beta h)) / (1 - 2 ls) (Chowdhury et al. 2024).

    The loss is the mean over pairs. Stats: the implicit rewards beta (logp - ref) of chosen and rejected, their
    margin, and the accuracy (fraction of pairs whose chosen reward is higher).
    """
    _one_of("loss_type", loss_type, DPO_LOSS_TYPES)
    if beta <= 0:
        raise ValueError(f"beta must be > 0 for DPO, got {beta}")
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h / (num_tokens or 1) - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        losses = (-(1 - label_smoothing) * F.logsigmoid(beta * h)
                  + label_smoothing * F.logsigmoid(-beta * h)) / (1 - 2 * label_smoothing)
    with torch.no_grad():
        chosen_reward, rejected_reward = beta * chosen_ratio, beta * rejected_ratio
        stats = {"rewards_chosen": chosen_reward.mean().item(), "rewards_rejected": rejected_reward.mean().item(),
                 "rewards_accuracy": (chosen_reward > rejected_reward).float().mean().item(),
                 "rewards_margin": (chosen_reward - rejected_reward).mean().item()}
    return losses.mean(), stats

__all__ = ["DPO_LOSS_TYPES", "GRPO_LOSS_TYPES", "SCALE_REWARDS", "dpo_loss", "group_advantages", "grpo_loss",
           "k3_kl"]
