"""One rollout buffer for both algorithms: groups of G images per prompt, with tokens, log-probs and rewards.

GRPO uses every sample of a group with its group-relative advantage; DPO mines chosen/rejected pairs from the same
groups. Sampling is keyed per image (`row_seed`), so an image depends only on (seed, round, step, prompt index,
sample index) and the policy, not on how the batch is split across processes or accumulation steps.

Runs that start from one base draw identical samples: offline DPO samples its whole round from the base, so one seed
under three reward models samples the same images three times, and GRPO's first step and `mean_reward`'s
before-training call do so too. `collect_groups` therefore keeps (`ROLLOUTS`) the tokens and log-probs of calls made
with weights not changed since the process first sampled with that model, keyed by a digest of the weights and of
everything else the sampler's output depends on (prompts, seeds, sampling settings, batch split, tokenizer, torch
threads and autocast): in memory always, and across processes in the directory `$COTLAB_ROLLOUT_CACHE` when set.
A hit returns the tokens and log-probs sampling would give (its images decoded from them, its rewards scored by the
run's own reward model) in a few milliseconds.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
import weakref
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch

from cotlab.rewards import checked_rewards
from cotlab.store import code_version

from .timing import PhaseTimer


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
    components: dict = field(default_factory=dict)  # a composite reward's raw component values, name -> (P*G,)

    @property
    def row_prompts(self) -> list[str]:
        return [p for p in self.prompts for _ in range(self.num_generations)]

    def state(self) -> dict:
        """Tensors and lists to checkpoint (images are not kept: they are re-decodable from tokens)."""
        return {"prompts": self.prompts, "num_generations": self.num_generations, "tokens": self.tokens,
                "old_logprobs": self.old_logprobs, "rewards": self.rewards, "prompt_index": self.prompt_index,
                "ref_logprobs": self.ref_logprobs, "components": self.components}

    @classmethod
    def from_state(cls, state: dict) -> "Groups":
        return cls(**state)


class RolloutCache:
    """Tokens and log-probs of sampling calls, for a model whose weights are unchanged since this process first
    sampled with it (its parameters' version counters tell: every in-place update, an optimizer step included,
    bumps them). A model on another device than the CPU, or in training mode, is never cached."""

    def __init__(self, entries: int = 256):
        self.entries = entries
        self.memory: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.models = weakref.WeakKeyDictionary()  # model -> (versions when first seen, weights digest)
        self.hits = self.misses = 0
        self.enabled = True

    @contextlib.contextmanager
    def off(self):
        """No reuse for the duration (benchmarks time real sampling)."""
        was, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = was

    def key(self, policy, request: dict) -> str | None:
        """The cache key of a sampling call `request` with `policy`, or None when it is not to be cached."""
        if not self.enabled:
            return None
        model = policy.model
        tensors = list(model.state_dict(keep_vars=True).items())
        if model.training or any(t.device.type != "cpu" or t.is_inference() for _, t in tensors):
            return None  # dropout would draw from the global generator; inference tensors have no versions
        versions = tuple((t.data_ptr(), t._version) for _, t in tensors)
        if model not in self.models:
            self.models[model] = (versions, weights_digest(tensors))
        first, digest = self.models[model]
        if versions != first:  # updated since: its samples will not recur
            return None
        context = {"weights": digest, "spec": asdict(policy.spec), "vocab": vocab_digest(policy.tokenizer),
                   "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "autocast": [torch.is_autocast_enabled("cpu"), str(torch.get_autocast_dtype("cpu"))]}
        text = json.dumps({**context, **request}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()

    def get(self, key: str):
        if key in self.memory:
            self.memory.move_to_end(key)
            tokens, logprobs = self.memory[key]
            self.hits += 1
            return tokens.clone(), logprobs.clone()
        path = self.path(key)
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            try:
                found = load_file(path)
                self._remember(key, found["tokens"], found["logprobs"])
                self.hits += 1
                return found["tokens"].clone(), found["logprobs"].clone()
            except Exception:  # noqa: BLE001 (an unreadable entry is a miss; sampling rewrites it)
                path.unlink(missing_ok=True)
        self.misses += 1
        return None

    def put(self, key: str, tokens: torch.Tensor, logprobs: torch.Tensor) -> None:
        self._remember(key, tokens.clone(), logprobs.clone())
        path = self.path(key)
        if path is not None and not path.is_file():
            from safetensors.torch import save_file

            partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file({"tokens": tokens.contiguous(), "logprobs": logprobs.contiguous()}, partial)
                os.replace(partial, path)  # whole or absent, whoever reads it
            except OSError as e:  # a full or read-only disk costs the reuse, not the run
                warnings.warn(f"rollout cache: could not write {path}: {e}", stacklevel=2)

    def _remember(self, key, tokens, logprobs) -> None:
        self.memory[key] = (tokens, logprobs)
        while len(self.memory) > self.entries:
            self.memory.popitem(last=False)

    @staticmethod
    def path(key: str) -> Path | None:
        """The entry's file under `$COTLAB_ROLLOUT_CACHE` (keys there also hash cotlab's sources), or None."""
        root = os.environ.get(ROLLOUT_CACHE_ENV)
        if not root:
            return None
        key = hashlib.blake2b(f"{key}{sources_digest()}".encode(), digest_size=20).hexdigest()
        return Path(root).expanduser() / key[:2] / f"{key}.safetensors"


ROLLOUT_CACHE_ENV = "COTLAB_ROLLOUT_CACHE"
ROLLOUTS = RolloutCache()


def weights_digest(named_tensors) -> str:
    h = hashlib.blake2b(digest_size=20)
    for name, t in named_tensors:
        t = t.detach().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def vocab_digest(tokenizer) -> str:
    return hashlib.blake2b(json.dumps(sorted(tokenizer.get_vocab().items())).encode(), digest_size=16).hexdigest()


@cache
def sources_digest() -> str:
    return code_version(["cotlab"])


def collect_groups(policy, reward_model, prompts: list[str], prompt_index: list[int], *, num_generations: int,
                   seed: int, round_: int, step: int, guidance_scale: float, temperature: float, top_k: int = 0,
                   logprob_mode: str | None = None, batch_images: int = 256,
                   timer: PhaseTimer | None = None) -> Groups:
    """Sample `num_generations` images for each prompt with `policy`, decode and score them once each, timed as the
    phases "sampling" and "scoring" of `timer`. A call that recurs with unchanged weights reads its tokens and
    log-probs from `ROLLOUTS` instead of sampling."""
    g = num_generations
    per_call = max(1, batch_images // g)
    timer = PhaseTimer() if timer is None else timer
    with timer("sampling"):
        key = ROLLOUTS.key(policy, {"prompts": list(prompts), "prompt_index": [int(i) for i in prompt_index],
                                    "num_generations": g, "seed": seed, "round": round_, "step": step,
                                    "guidance_scale": guidance_scale, "temperature": temperature, "top_k": top_k,
                                    "logprob_mode": logprob_mode or policy.spec.logprob_mode, "per_call": per_call})
        found = ROLLOUTS.get(key) if key is not None else None
        if found is not None:
            tokens, logprobs = (t.to(policy.device) for t in found)
            images = policy.decode(tokens)
        else:
            tokens, logprobs, images = [], [], []
            for start in range(0, len(prompts), per_call):
                chunk = prompts[start:start + per_call]
                seeds = [row_seed(seed, round_, step, prompt_index[start + i], j)
                         for i in range(len(chunk)) for j in range(g)]
                roll = policy.sample(chunk, g, guidance_scale=guidance_scale, temperature=temperature, top_k=top_k,
                                     logprob_mode=logprob_mode, row_seeds=seeds)
                tokens.append(roll.image_tokens)
                logprobs.append(roll.logprobs)
                images.extend(roll.images)
            tokens, logprobs = torch.cat(tokens), torch.cat(logprobs)
            if key is not None:
                ROLLOUTS.put(key, tokens, logprobs)
    with timer("scoring"):
        rows = [p for p in prompts for _ in range(g)]
        rewards = checked_rewards(reward_model, rows, images).to(tokens.device)
    components = {name: values.to(rewards.device)
                  for name, values in getattr(reward_model, "last_components", {}).items()}
    return Groups(list(prompts), g, tokens, logprobs, rewards, list(prompt_index), images=images,
                  components=components)


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


__all__ = ["ROLLOUTS", "Groups", "RolloutCache", "collect_groups", "mine_pairs", "row_seed"]


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
