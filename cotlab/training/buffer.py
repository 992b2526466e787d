"""One rollout buffer for both algorithms: groups of G images per prompt, with tokens, log-probs and rewards.

GRPO uses every sample of a group with its group-relative advantage; DPO mines chosen/rejected pairs from the same
groups. Sampling is keyed per image (`row_seed`), so an image depends only on (seed, round, step, prompt index,
sample index) and the policy, not on how the batch is split across processes or accumulation steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cotlab.rewards import checked_rewards


def row_seed(seed: int, round_: int, step: int, prompt_index: int, sample: int) -> int:
    """A 63-bit seed for one sampled image, from its coordinates in the run."""
    return int(np.random.SeedSequence([seed, round_, step, prompt_index, sample]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class Groups:
    """`prompts` (P,) with `num_generations` rows each, prompt-major: tokens / old_logprobs (P*G, T), rewards (P*G,).
    `ref_logprobs` (P*G, T) when a reference was scored. `prompt_index` are the prompts' indices in the step."""

    prompts: list[str]
    num_generations: int
    tokens: torch.Tensor
    old_logprobs: torch.Tensor
    rewards: torch.Tensor
    prompt_index: list[int]
    ref_logprobs: torch.Tensor | None = None
    images: list = field(default_factory=list, repr=False)
    seconds: dict = field(default_factory=dict)  # {"sampling": s, "scoring": s} spent collecting
    components: dict = field(default_factory=dict)  # a composite reward's raw component values, name -> (P*G,)

    @property
    def row_prompts(self) -> list[str]:
        return [p for p in self.prompts for _ in range(self.num_generations)]

    def select(self, prompt_slice: slice) -> "Groups":
        """The groups of a contiguous range of prompts."""
        g = self.num_generations
        rows = slice(prompt_slice.start * g, prompt_slice.stop * g)
        return Groups(self.prompts[prompt_slice], g, self.tokens[rows], self.old_logprobs[rows], self.rewards[rows],
                      self.prompt_index[prompt_slice],
                      None if self.ref_logprobs is None else self.ref_logprobs[rows], self.images[rows], {},
                      {name: values[rows] for name, values in self.components.items()})

    def state(self) -> dict:
        """Tensors and lists to checkpoint (images are not kept: they are re-decodable from tokens)."""
        return {"prompts": self.prompts, "num_generations": self.num_generations, "tokens": self.tokens,
                "old_logprobs": self.old_logprobs, "rewards": self.rewards, "prompt_index": self.prompt_index,
                "ref_logprobs": self.ref_logprobs, "components": self.components}

    @classmethod
    def from_state(cls, state: dict) -> "Groups":
        return cls(**state)


def collect_groups(policy, reward_model, prompts: list[str], prompt_index: list[int], *, num_generations: int,
                   seed: int, round_: int, step: int, guidance_scale: float, temperature: float, top_k: int = 0,
                   logprob_mode: str | None = None, batch_images: int = 256) -> Groups:
    """Sample `num_generations` images for each prompt with `policy`, decode and score them once each."""
    g = num_generations
    per_call = max(1, batch_images // g)
    tokens, logprobs, images = [], [], []
    began = time.perf_counter()
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start:start + per_call]
        seeds = [row_seed(seed, round_, step, prompt_index[start + i], j) for i in range(len(chunk)) for j in range(g)]
        roll = policy.sample(chunk, g, guidance_scale=guidance_scale, temperature=temperature, top_k=top_k,
                             logprob_mode=logprob_mode, row_seeds=seeds)
        tokens.append(roll.image_tokens)
        logprobs.append(roll.logprobs)
        images.extend(roll.images)
    sampled = time.perf_counter()
    rows = [p for p in prompts for _ in range(g)]
    rewards = checked_rewards(reward_model, rows, images).to(tokens[0].device)
    seconds = {"sampling": sampled - began, "scoring": time.perf_counter() - sampled}
    components = {name: values.to(rewards.device)
                  for name, values in getattr(reward_model, "last_components", {}).items()}
    return Groups(list(prompts), g, torch.cat(tokens), torch.cat(logprobs), rewards, list(prompt_index),
                  images=images, seconds=seconds, components=components)


def mine_pairs(rewards: torch.Tensor, num_generations: int, selection: str = "best_worst",
               margin_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Chosen/rejected row indices from groups of `num_generations` (rows prompt-major).

    - ``best_worst``: per group, the highest-reward image against the lowest (first index on ties of the extreme);
    - ``all``: every pair (i, j) in a group with r_i > r_j;
    - ``margin``: those pairs with r_i - r_j > ``margin_threshold``.
    Pairs with equal rewards are never kept; ``stats["ties_dropped"]`` counts the candidate pairs dropped for a tie
    (a group with one reward throughout drops its best-vs-worst pair, or all its pairs).
    """
    groups = rewards.view(-1, num_generations)
    chosen, rejected, ties, below_margin = [], [], 0, 0
    for k, r in enumerate(groups.tolist()):
        base = k * num_generations
        if selection == "best_worst":
            best, worst = int(np.argmax(r)), int(np.argmin(r))
            if r[best] == r[worst]:
                ties += 1
            else:
                chosen.append(base + best)
                rejected.append(base + worst)
            continue
        for i in range(num_generations):
            for j in range(i + 1, num_generations):
                if r[i] == r[j]:
                    ties += 1
                    continue
                hi, lo = (i, j) if r[i] > r[j] else (j, i)
                if selection == "margin" and r[hi] - r[lo] <= margin_threshold:
                    below_margin += 1
                    continue
                chosen.append(base + hi)
                rejected.append(base + lo)
    device = rewards.device
    stats = {"pairs": len(chosen), "ties_dropped": ties, "below_margin_dropped": below_margin}
    return (torch.tensor(chosen, dtype=torch.long, device=device),
            torch.tensor(rejected, dtype=torch.long, device=device), stats)


__all__ = ["Groups", "collect_groups", "mine_pairs", "row_seed"]


def mean_reward(policy, reward_model, prompts: list[str], cfg, seed: int = 10_000) -> float:
    """The mean reward of `cfg.num_generations` images per prompt sampled with `cfg`'s settings (CFG, temperature,
    top-k), seeded per image from `seed` (apart from the training run's seeds): the training reward of a policy,
    comparable before and after training on the same prompts and seeds."""
    was_training = policy.model.training
    policy.model.eval()
    try:
        with torch.no_grad():
            groups = collect_groups(policy, reward_model, list(prompts), list(range(len(prompts))),
                                    num_generations=cfg.num_generations, seed=seed, round_=0, step=0,
                                    guidance_scale=cfg.guidance_scale, temperature=cfg.temperature, top_k=cfg.top_k,
                                    logprob_mode=cfg.logprob_mode, batch_images=cfg.sample_batch_images)
    finally:
        policy.model.train(was_training)
    return groups.rewards.mean().item()
