"""Reward models built from other reward models: a weighted sum with per-component normalisation, and a cache.

    r(x) = sum_i w_i * norm_i(r_i(x)),   norm in {raw, zscore, rank} over the batch being scored:
      raw:    r_i
      zscore: (r_i - mean(r_i)) / (std(r_i) + eps), std the population std of the batch (0 for a single image)
      rank:   (rank(r_i) - 1) / (N - 1) in [0, 1], ties sharing their mean rank (0.5 for a single image)
"""
from __future__ import annotations

import hashlib

import torch

from cotlab.rewards.registry import checked_rewards, get

NORMALIZATIONS = ("raw", "zscore", "rank")


def normalize(values: torch.Tensor, how: str, eps: float = 1e-6) -> torch.Tensor:
    """One component's rewards normalised over the batch (see the module docstring)."""
    if how == "raw":
        return values
    n = len(values)
    if how == "zscore":
        centred = values - values.mean()
        return centred / (values.std(unbiased=False) + eps) if n > 1 else torch.zeros_like(values)
    if how == "rank":
        if n == 1:
            return torch.full_like(values, 0.5)
        below = (values[None, :] < values[:, None]).sum(1).float()
        ties = (values[None, :] == values[:, None]).sum(1).float()
        return (below + (ties - 1) / 2) / (n - 1)
    raise ValueError(f"unknown normalization {how!r}; known: {', '.join(NORMALIZATIONS)}")


class CompositeReward:
    """A weighted sum of reward models, itself a reward model. `components`: (reward model, weight, normalization)
    triples. After each call, `last_components` holds every component's raw rewards, for logging."""

    def __init__(self, components):
        self.components = []
        for rm, weight, how in components:
            if how not in NORMALIZATIONS:
                raise ValueError(f"unknown normalization {how!r} for reward model {rm.name!r}; known: "
                                 f"{', '.join(NORMALIZATIONS)}")
            self.components.append((rm, float(weight), how))
        if not self.components:
            raise ValueError("a composite reward needs at least one component")
        names = [rm.name for rm, _, _ in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"composite reward components must have distinct names, got {names}")
        self.name = "+".join(f"{w:g}*{how}({rm.name})" if how != "raw" else f"{w:g}*{rm.name}"
                             for rm, w, how in self.components)
        self.last_components: dict[str, torch.Tensor] = {}

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        total = torch.zeros(len(prompts))
        for rm, weight, how in self.components:
            raw = checked_rewards(rm, prompts, images, metadata)
            self.last_components[rm.name] = raw
            total = total + weight * normalize(raw.cpu(), how)
        return total


def composite(components: list[dict]) -> CompositeReward:
    """The registry's "composite": `components` is a list of {"name", "weight" (1), "normalization" ("raw"),
    "options" ({})} mappings, each built with `cotlab.rewards.get(name, **options)` and cached (`CachedReward`)."""
    built = []
    for spec in components:
        unknown = set(spec) - {"name", "weight", "normalization", "options"}
        if unknown or "name" not in spec:
            raise ValueError(f"a composite component is {{name, weight, normalization, options}}, got {spec}")
        built.append((CachedReward(get(spec["name"], **spec.get("options", {}))), spec.get("weight", 1.0),
                      spec.get("normalization", "raw")))
    return CompositeReward(built)


def image_key(prompt: str, image) -> bytes:
    """A digest of (prompt, image pixels) for caching."""
    digest = hashlib.sha256(prompt.encode())
    digest.update(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.digest()


class CachedReward:
    """Scores each distinct (prompt, image) once per run: repeated pairs (GRPO groups often repeat an image, DPO's
    rounds re-score) are served from memory. Counts `hits` and `misses`. Not for rewards that depend on the batch
    (a z-scored or ranked composite): those are refused."""

    def __init__(self, rm):
        if isinstance(rm, CompositeReward) and any(how != "raw" for _, _, how in rm.components):
            raise ValueError(f"reward {rm.name!r} normalises over the batch, so a cached score would depend on "
                             f"which batch it came from; cache its components instead")
        self.rm, self.name = rm, rm.name
        self._values: dict[bytes, float] = {}
        self.hits = self.misses = 0

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        keys = [image_key(p, im) for p, im in zip(prompts, images)]
        first: dict[bytes, int] = {}  # each unseen pair once, even when it repeats within the batch
        for i, key in enumerate(keys):
            if key not in self._values:
                first.setdefault(key, i)
        todo = list(first.values())
        if todo:
            fresh = self.rm([prompts[i] for i in todo], [images[i] for i in todo],
                            None if metadata is None else [metadata[i] for i in todo])
            if not isinstance(fresh, torch.Tensor) or fresh.shape != (len(todo),):
                shape = tuple(fresh.shape) if isinstance(fresh, torch.Tensor) else type(fresh).__name__
                raise ValueError(f"reward model {self.name!r} returned {shape} for {len(todo)} images; it must "
                                 f"return one reward per image, shape ({len(todo)},)")
            # Values are checked (finite) by the caller, `checked_rewards`, which names the row.
            self._values.update({keys[i]: float(v) for i, v in zip(todo, fresh)})
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return torch.tensor([self._values[k] for k in keys], dtype=torch.float32)


__all__ = ["CachedReward", "CompositeReward", "NORMALIZATIONS", "composite", "image_key", "normalize"]
