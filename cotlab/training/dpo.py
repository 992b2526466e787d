"""DPO on image tokens (Rafailov et al. 2023) from the same groups GRPO would sample, offline or online.

A step mines chosen/rejected pairs from the groups of its prompts (`mine_pairs`), scores the reference's sequence
log-probs (sums over image tokens) of the chosen and rejected images once, in inference mode (`pairs`), and takes one
optimizer step on the DPO loss (`update`). `DPOConfig.sampling` says when those groups are sampled:

- "offline" (the default; the paper's setting): at the start of each round, the groups of all the round's steps are
  sampled once with the current policy (round 1: the base, i.e. DPO from the base model's samples), scored once each
  and paired; step s of the round then updates on step s's pairs.
- "online": at each step, the step's groups are sampled by the current policy with `Trainer.collect(round, step)`,
  the call GRPO makes (same prompts, same per-image seeds: the same images as GRPO's while the two policies agree),
  then paired and used at once.

Either way the run spends the images and reward calls of a GRPO run with the same aligned fields. Three comparisons,
each changing one thing:

- GRPO vs online DPO: the loss (the data are the same: each step's groups, sampled by the current policy);
- online vs offline DPO: the freshness of the data (the loss is the same: pairs from the current policy, or from the
  policy at the round's start);
- GRPO with logprob_mode="cond" vs "cfg": the policy definition (optimise the conditional distribution, or the
  guided one that is sampled); `aligned` treats them as one budget.

`policy/logprob_mismatch_max`: the largest |log-prob recorded while sampling - teacher-forced log-prob| over the tokens
of a step's chosen and rejected images, the latter from the update's own forward. It is logged where that is like for
like, i.e. where the policy being updated is the one that sampled: at every step online; offline at the first step of
each round only, since every later step's policy has moved. (The reference's scoring at the round start would match the
sampler only in round 1 or with reference="round_start".) It stays at float rounding (~1e-6 on CPU fp32); a large value
means the update scores another distribution than the one sampled (CFG, low precision).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cotlab.losses import dpo_loss

from .buffer import Groups, mine_pairs
from .config import DPOConfig
from .distributed import global_max, global_sum
from .trainer import Trainer


@dataclass
class Pairs:
    """The pairs mined from this process's share of a step's groups: `chosen[i]` beat `rejected[i]` (rows of
    `groups`); `ref`, the reference's sequence log-probs of the chosen rows, then of the rejected ones; `pair_stats`,
    the counts of `mine_pairs` (pairs kept, ties and below-margin pairs dropped)."""

    groups: Groups
    chosen: torch.Tensor
    rejected: torch.Tensor
    ref: torch.Tensor
    pair_stats: dict

    def state(self) -> dict:
        return {**vars(self), "groups": self.groups.state()}

    @classmethod
    def from_state(cls, state: dict) -> "Pairs":
        return cls(**{**state, "groups": Groups.from_state(state["groups"])})


class DPOTrainer(Trainer):
    cfg: DPOConfig
    round_data: list[Pairs]  # offline: the pairs of each step of the round, sampled at its start (online: none)
    round_images: int  # offline: the images (each one reward call) the round's sampling cost

    def begin_round(self, round_: int) -> None:
        """Offline: sample, score and pair the groups of every step of the round now. Online: nothing to do."""
        self.round_data, self.round_images = [], 0
        if self.cfg.sampling == "online":
            return
        for step in range(self.cfg.max_steps):
            groups, budget = self.collect(round_, step)
            self.round_data.append(self.pairs(groups))
            self.round_images += budget["budget/images_sampled"]

    def pairs(self, groups: Groups) -> Pairs:
        """The pairs of this process's share of a step's groups, with the reference's log-probs of their images."""
        chosen, rejected, pair_stats = mine_pairs(groups.rewards, self.cfg.num_generations, self.cfg.pair_selection,
                                                  self.cfg.margin_threshold)
        rows = torch.cat([chosen, rejected])
        ref = torch.zeros(0)
        if len(rows):
            with self.timer("reference"):
                ref = self.reference_logprobs([groups.row_prompts[i] for i in rows.tolist()],
                                              groups.tokens[rows]).sum(-1)
        return Pairs(groups, chosen, rejected, ref, pair_stats)

    def train_step(self, round_: int, step: int) -> dict:
        if self.cfg.sampling == "online":
            groups, budget = self.collect(round_, step)
            return {**budget, **self.update(self.pairs(groups), sampled_by_this_policy=True)}
        # The sampling of the whole round happened before step 1; its budget is logged there.
        images = self.round_images if step == 0 else 0
        return {"budget/images_sampled": images, "budget/reward_calls": images,
                **self.update(self.round_data[step], sampled_by_this_policy=step == 0)}

    def update(self, pairs: Pairs, sampled_by_this_policy: bool) -> dict:
        """One optimizer step on the DPO loss of `pairs`; with `sampled_by_this_policy`, the log-prob mismatch is
        logged too (see the module's docstring)."""
        cfg, acc = self.cfg, self.accelerator
        groups, chosen, rejected, ref = pairs.groups, pairs.chosen, pairs.rejected, pairs.ref
        prompts, local_pairs = groups.row_prompts, len(chosen)
        with self.timer("update"):
            global_pairs = global_sum(acc, local_pairs)
            stats, weights, mismatch = [], [], float("-inf")
            for batch, ctx in self.micro_batches(local_pairs):
                with ctx:
                    c, r = chosen[batch], rejected[batch]
                    n = len(c)
                    # A micro-batch without pairs (all ties) still runs a forward, so that every process joins the
                    # gradient all-reduce; its loss is zero.
                    idx = torch.cat([c, r]) if n else torch.zeros(1, dtype=torch.long, device=chosen.device)
                    token_logp = self.token_logprobs([prompts[j] for j in idx.tolist()], groups.tokens[idx])
                    if sampled_by_this_policy and n:
                        mismatch = max(mismatch, (token_logp.detach().float() - groups.old_logprobs[idx].float())
                                       .abs().max().item())
                    logp = token_logp.sum(-1)
                    if n:
                        loss, s = dpo_loss(logp[:n], logp[n:], ref[:local_pairs][batch], ref[local_pairs:][batch],
                                           beta=cfg.beta, loss_type=cfg.loss_type, label_smoothing=cfg.label_smoothing,
                                           num_tokens=groups.tokens.shape[1])
                        stats.append({**s, "loss": loss.item()})
                        weights.append(n)
                        # the mean over the global batch of pairs: undo accelerate's average over processes
                        loss = loss * n * acc.num_processes / global_pairs
                    else:
                        loss = logp.sum() * 0.0
                    acc.backward(loss)
            grad_norm = self.optimizer_step()
        local = {key: sum(w * s[key] for w, s in zip(weights, stats)) for key in (stats[0] if stats else {})}
        means = {key: global_sum(acc, v) / max(global_pairs, 1) for key, v in local.items()}
        pair_stats = {key: global_sum(acc, v) for key, v in pairs.pair_stats.items()}
        row = {}
        if sampled_by_this_policy:
            mismatch = global_max(acc, mismatch)
            if mismatch > float("-inf"):  # absent when no process kept a pair
                row["policy/logprob_mismatch_max"] = mismatch
        names = {"loss": "loss/total", "rewards_chosen": "dpo/implicit_reward_chosen",  # dpo_loss's stats (TRL's)
                 "rewards_rejected": "dpo/implicit_reward_rejected", "rewards_margin": "dpo/implicit_reward_margin",
                 "rewards_accuracy": "dpo/implicit_reward_accuracy"}
        return {**row, **self.reward_stats(groups), **{names[k]: v for k, v in means.items()},
                "dpo/pairs_kept": pair_stats["pairs"], "dpo/ties_dropped": pair_stats["ties_dropped"],
                "dpo/below_margin_dropped": pair_stats["below_margin_dropped"], "optim/grad_norm": grad_norm}

    def extra_state(self) -> dict:
        """The round's pairs and what sampling them cost (offline; online has none: each step samples its own)."""
        return {"round_sampling": {"images_sampled": self.round_images, "reward_calls": self.round_images},
                "round_data": [pairs.state() for pairs in self.round_data]}

    def load_extra_state(self, state: dict) -> None:
        self.round_images = state["round_sampling"]["images_sampled"]
        self.round_data = [Pairs.from_state(d) for d in state["round_data"]]


__all__ = ["DPOTrainer", "Pairs"]
