"""Reward models: one protocol, a registry, and checks on what a reward returns.

A reward model is a callable ``rm(prompts, images, metadata=None) -> torch.Tensor`` of shape (N,), float and finite,
with a ``name``. ``get(name, **options)`` builds a registered one; ``available()`` lists the names.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Protocol, runtime_checkable

import torch

from cotlab.world import score_batch


@runtime_checkable
class RewardModel(Protocol):
    name: str

    def __call__(self, prompts: list[str], images: list, metadata: list[dict] | None = None) -> torch.Tensor: ...


class MetricReward:
    """The exact in-domain metric as reward (the paper's "metric reward"): ShapeWorld's CompBench-style score, the
    prompt's family formula (binding product of phrase credits, spatial detector score, ...; see
    `cotlab.world.scoring`) on the objects parsed from the image's pixels. In [0, 1]."""

    name = "metric"

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        return torch.tensor([s.value for s in score_batch(list(prompts), list(images))], dtype=torch.float32)


_REGISTRY: dict[str, Callable[..., RewardModel]] = {"metric": MetricReward}


def register(name: str, factory: Callable[..., RewardModel]) -> None:
    """Make `get(name, **options)` build a reward model with `factory(**options)`."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def check(name: str, options: dict) -> None:
    """Refuse an unknown reward name, or options its factory does not take, naming them (cheap: nothing loads)."""
    import inspect

    if name not in _REGISTRY:
        raise ValueError(f"unknown reward model {name!r}; available: {', '.join(available())}")
    try:
        signature = inspect.signature(_REGISTRY[name])
    except (TypeError, ValueError):  # a factory without a signature: it checks its own options
        return
    try:
        signature.bind(**options)
    except TypeError:
        takes = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        known = ", ".join(p.name for p in takes if p.kind != inspect.Parameter.VAR_POSITIONAL) or "none"
        raise ValueError(f"reward model {name!r} does not take the options {sorted(options)}; its options: "
                         f"{known}") from None


def get(name: str, **options) -> RewardModel:
    check(name, options)
    return _REGISTRY[name](**options)


MAX_REWARD = 1e6  # float32 keeps 7 digits: beyond this, differences between rewards round away (and N x 1e30 overflows)


def checked_rewards(rm: RewardModel, prompts: list[str], images: list, metadata=None) -> torch.Tensor:
    """Call `rm` and insist on its contract: a real float tensor of shape (N,) with finite values of magnitude at most
    `MAX_REWARD` (so that the float32 mean and std the trainers take never overflow). The error names the reward
    model and, for a bad value, the prompt it was scoring."""
    name = getattr(rm, "name", type(rm).__name__)
    values = rm(prompts, images, metadata)
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"reward model {name!r} returned {type(values).__name__}; it must return a torch.Tensor")
    if values.shape != (len(prompts),):
        raise ValueError(f"reward model {name!r} returned shape {tuple(values.shape)} for {len(prompts)} images; "
                         f"it must return one reward per image, shape ({len(prompts)},)")
    if values.is_complex():
        i = int((values.imag != 0).nonzero()[0]) if (values.imag != 0).any() else 0
        raise ValueError(f"reward model {name!r} returned {values[i].item()} for prompt {prompts[i]!r} (row {i}); "
                         f"rewards must be real, not {values.dtype}")
    bad = (~torch.isfinite(values.double())).nonzero()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"reward model {name!r} returned {values[i].item()} for prompt {prompts[i]!r} (row {i}); "
                         f"rewards must be finite")
    big = (values.double().abs() > MAX_REWARD).nonzero()
    if len(big):
        i = int(big[0])
        raise ValueError(f"reward model {name!r} returned {values[i].item():g} for prompt {prompts[i]!r} (row {i}); "
                         f"rewards must be at most {MAX_REWARD:g} in magnitude (float32 loses the differences "
                         f"between larger ones, and their mean or std overflows)")
    return values.float()


from .compose import CachedReward, CompositeReward, composite  # noqa: E402  (compose imports get, checked_rewards)
from .learned import LearnedReward, learned_reward  # noqa: E402
from .paper_models import HPSv2, ImageReward, hps, imagereward  # noqa: E402  (models load on first use)
from .real import CLIPScore, VLMJudge, clipscore, vlm_judge  # noqa: E402  (transformers models load on first use)

register("composite", composite)
register("preference", partial(learned_reward, "preference"))
register("judge", partial(learned_reward, "judge"))
register("clipscore", clipscore)
register("vlm_judge", vlm_judge)
register("hps", hps)
register("imagereward", imagereward)


def cached(rm: RewardModel) -> RewardModel:
    """`rm` with repeated (prompt, image) pairs served from memory, unless its scores depend on the batch (a
    normalising composite, whose components are cached instead)."""
    return rm if isinstance(rm, (CachedReward, CompositeReward)) else CachedReward(rm)


__all__ = ["CLIPScore", "CachedReward", "CompositeReward", "HPSv2", "ImageReward", "LearnedReward", "MetricReward",
           "RewardModel", "VLMJudge", "available", "cached", "checked_rewards", "get", "register"]
