"""GRPO on image tokens (Shao et al. 2024; T2I-R1's recipe for Janus): on-policy groups, group-relative advantages,
a clipped surrogate and a k3 KL penalty to the reference. One step:

1. sample G images for each of the step's prompts with the current policy, score them once each;
2. reference log-probs once (inference mode) when beta > 0; A = group_advantages(rewards of every process);
3. `num_iterations` (mu) passes over the batch, each one optimizer step over its accumulation micro-batches. With
   mu = 1 the old log-probs are the current ones detached (ratio exactly 1, as TRL); with mu > 1 they are scored
   teacher-forced before the first pass and kept.

`policy/logprob_mismatch_max` is the largest |log-prob recorded while sampling - teacher-forced log-prob| over the
step's tokens, both under the policy that sampled (the first pass's with mu = 1, the old log-probs' scoring with
mu > 1). The two compute one distribution by two paths (a KV-cached sampling loop; one teacher-forced forward), so it
stays at float rounding (~1e-6 on CPU fp32); a large value is the known Janus RL failure of CFG or low precision scoring
another distribution than the one sampled.
"""
from __future__ import annotations

import torch

from cotlab.losses import group_advantages, grpo_loss

from .buffer import Groups
from .config import GRPOConfig
from .distributed import gather, global_max, global_mean, process_share
from .trainer import Trainer


class GRPOTrainer(Trainer):
    cfg: GRPOConfig

    @property
    def needs_reference(self) -> bool:
        return self.cfg.beta > 0

    def train_step(self, round_: int, step: int) -> dict:
        groups, budget = self.collect(round_, step)
        return {**budget, **self.update(groups)}

    def update(self, groups: Groups) -> dict:
        """`num_iterations` optimizer steps on this process's share of a step's groups."""
        cfg, acc = self.cfg, self.accelerator
        prompts, share = groups.row_prompts, len(groups.rewards)
        if cfg.beta > 0:
            with self.timer("reference"):
                groups.ref_logprobs = torch.cat([self.reference_logprobs(prompts[s], groups.tokens[s])
                                                 for s, _ in self.micro_batches(share)])
        with self.timer("update"):
            all_rewards = gather(acc, groups.rewards)
            advantages, adv_stats = group_advantages(all_rewards, cfg.num_generations, cfg.scale_rewards)
            advantages = advantages[process_share(acc, len(all_rewards))].to(groups.tokens.device)
            sampled, mismatch = groups.old_logprobs, float("-inf")  # the log-probs recorded while sampling
            if cfg.num_iterations > 1:
                with torch.no_grad():
                    groups.old_logprobs = torch.cat([self.token_logprobs(prompts[s], groups.tokens[s])
                                                     for s, _ in self.micro_batches(share)])
                mismatch = (groups.old_logprobs.float() - sampled.float()).abs().max().item()
            # dapo: every token of the global batch weighs the same; accumulation and the process average undo below
            global_tokens = len(all_rewards) * groups.tokens.shape[1]
            per_micro = global_tokens / (acc.num_processes * cfg.gradient_accumulation_steps)
            stats, grad_norms = [], []
            for _ in range(cfg.num_iterations):
                for rows, ctx in self.micro_batches(share):
                    with ctx:
                        logprobs, entropy = self.token_logprobs(prompts[rows], groups.tokens[rows], with_entropy=True)
                        old = logprobs.detach() if cfg.num_iterations == 1 else groups.old_logprobs[rows]
                        if cfg.num_iterations == 1 and len(old):
                            mismatch = max(mismatch, (old.float() - sampled[rows].float()).abs().max().item())
                        ref = groups.ref_logprobs[rows] if groups.ref_logprobs is not None else None
                        loss, s = grpo_loss(logprobs, old, ref, advantages[rows], torch.ones_like(logprobs),
                                            epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, beta=cfg.beta,
                                            loss_type=cfg.loss_type, num_items_in_batch=per_micro)
                        acc.backward(loss / cfg.gradient_accumulation_steps)
                        stats.append({**s, "loss": loss.item(), "entropy": entropy.mean().item()})
                grad_norms.append(self.optimizer_step())
        mean = {k: global_mean(acc, sum(s[k] for s in stats) / len(stats)) for k in stats[0]}
        return {**self.reward_stats(groups), "loss/total": mean["loss"], "policy/kl_ref_k3": mean["kl"],
                "policy/clip_fraction": mean["clip_fraction"], "policy/ratio_mean": mean["ratio_mean"],
                "policy/entropy": mean["entropy"], "reward/zero_std_fraction": adv_stats["zero_std_fraction"],
                "optim/grad_norm": grad_norms[-1], "policy/logprob_mismatch_max": global_max(acc, mismatch)}


__all__ = ["GRPOTrainer"]
