"""DPO on image tokens (Rafailov et al. 2023) from the same groups GRPO would sample.

At the start of each round, the groups of all the round's steps are sampled once with the current policy (round 1:
the reference, i.e. offline DPO from the base model's samples, the paper's setting) and scored once each; pairs are
mined per group (`mine_pairs`) and the reference's sequence log-probs (sums over image tokens) of the chosen and
rejected images are computed once, in inference mode. Step s of the round then trains on the pairs of step s's
prompts: the same prompts, images and reward calls a GRPO run with the same aligned fields spends.

`logprob_mismatch_max`, logged at the first step of each round only: the largest |log-prob recorded while sampling -
teacher-forced log-prob| over the tokens of that step's chosen and rejected images, the latter from the update's own
forward. Only there is it like for like: the round's groups were sampled by the policy as it is at its first step,
and every later step's policy has moved. (The reference's scoring at the round start would match the sampler only in
round 1 or with reference="round_start".) It stays at float rounding (~1e-6 on CPU fp32); a large value means the
update scores another distribution than the one sampled (CFG, low precision).
"""
from __future__ import annotations

import time

import torch

from cotlab.losses import dpo_loss

from .buffer import Groups, mine_pairs
from .config import DPOConfig
from .health import global_max
from .trainer import Trainer


class DPOTrainer(Trainer):
    cfg: DPOConfig

    def begin_round(self, round_: int) -> None:
        self.round_data = []
        self.round_sampling = {"images_sampled": 0, "reward_calls": 0, "seconds_sampling": 0.0,
                               "seconds_scoring": 0.0, "seconds_reference": 0.0}
        for step in range(self.cfg.max_steps):
            groups, row = self.collect(round_, step)
            for key in row:
                self.round_sampling[key] += row[key]
            began = time.perf_counter()
            chosen, rejected, pair_stats = mine_pairs(groups.rewards, self.cfg.num_generations,
                                                      self.cfg.pair_selection, self.cfg.margin_threshold)
            rows = torch.cat([chosen, rejected])
            ref = torch.zeros(0)
            if len(rows):
                ref = self.reference_logprobs([groups.row_prompts[i] for i in rows.tolist()],
                                              groups.tokens[rows]).sum(-1)
            self.round_sampling["seconds_reference"] += time.perf_counter() - began
            self.round_data.append({"groups": groups, "chosen": chosen, "rejected": rejected, "ref": ref,
                                    "pair_stats": pair_stats})

    def train_step(self, round_: int, step: int) -> dict:
        cfg = self.cfg
        data = self.round_data[step]
        groups, chosen, rejected, ref = data["groups"], data["chosen"], data["rejected"], data["ref"]
        began = time.perf_counter()
        local_pairs = len(chosen)
        global_pairs = self._global_sum(local_pairs)
        # The sampling of the whole round happened before step 1; its budget is logged there.
        row = dict(self.round_sampling) if step == 0 else dict.fromkeys(self.round_sampling, 0)
        stats, weights = [], []
        prompts = groups.row_prompts
        mismatch = float("-inf")
        for pairs, ctx in self.micro_batches(local_pairs):
            with ctx:
                c, r = chosen[pairs], rejected[pairs]
                n = len(c)
                # A micro-batch without pairs (all ties) still runs a forward, so that every process joins the
                # gradient all-reduce; its loss is zero.
                idx = torch.cat([c, r]) if n else torch.zeros(1, dtype=torch.long, device=chosen.device)
                token_logp = self.token_logprobs([prompts[j] for j in idx.tolist()], groups.tokens[idx])
                if step == 0 and n:  # the policy that sampled the round: see the module's docstring
                    mismatch = max(mismatch, (token_logp.detach().float() - groups.old_logprobs[idx].float())
                                   .abs().max().item())
                logp = token_logp.sum(-1)
                if n:
                    loss, s = dpo_loss(logp[:n], logp[n:], ref[:local_pairs][pairs], ref[local_pairs:][pairs],
                                       beta=cfg.beta, loss_type=cfg.loss_type, label_smoothing=cfg.label_smoothing,
                                       num_tokens=groups.tokens.shape[1])
                    s["loss"] = loss.item()
                    stats.append(s)
                    weights.append(n)
                    # the mean over the global batch of pairs: undo accelerate's average over processes
                    loss = loss * n * self.accelerator.num_processes / global_pairs
                else:
                    loss = logp.sum() * 0.0
                self.accelerator.backward(loss)
        grad_norm = self.optimizer_step()
        local = {key: sum(w * s[key] for w, s in zip(weights, stats)) for key in (stats[0] if stats else {})}
        means = {key: self._global_sum(v) / max(global_pairs, 1) for key, v in local.items()}
        pair_stats = {key: self._global_sum(v) for key, v in data["pair_stats"].items()}
        if step == 0:
            mismatch = global_max(self.accelerator, mismatch)
            if mismatch > float("-inf"):  # absent when no process kept a pair
                row["logprob_mismatch_max"] = mismatch
        return {**row, **self.reward_stats(groups),
                **means, "pairs_kept": pair_stats["pairs"], "ties_dropped": pair_stats["ties_dropped"],
                "below_margin_dropped": pair_stats["below_margin_dropped"], "grad_norm": grad_norm,
                "seconds_update": time.perf_counter() - began}

    def extra_state(self) -> dict:
        return {"round_sampling": self.round_sampling,
                "round_data": [{**d, "groups": d["groups"].state()} for d in self.round_data]}

    def load_extra_state(self, state: dict) -> None:
        if state:
            self.round_sampling = state["round_sampling"]
            self.round_data = [{**d, "groups": Groups.from_state(d["groups"])} for d in state["round_data"]]


__all__ = ["DPOTrainer"]
