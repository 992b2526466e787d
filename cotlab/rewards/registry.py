"""The reward-model protocol, the registry of named reward models, and the contract every reward is checked against.

A reward model is a callable ``rm(prompts, images, metadata=None) -> torch.Tensor`` of shape (N,), float and finite,
with a ``name``. ``register(name, factory)`` adds one (`cotlab.rewards` registers the package's own),
``get(name, **options)`` builds it, ``available()`` lists the names.
"""
from __future__ import annotations

import inspect
from typing import Callable, Protocol, runtime_checkable

import torch


@runtime_checkable
class RewardModel(Protocol):
    name: str

    def __call__(self, prompts: list[str], images: list, metadata: list[dict] | None = None) -> torch.Tensor: ...


_REGISTRY: dict[str, Callable[..., RewardModel]] = {}


def register(name: str, factory: Callable[..., RewardModel]) -> None:
    """Make `get(name, **options)` build a reward model with `factory(**options)`."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def check(name: str, options: dict) -> None:
    """Refuse an unknown reward name, or options its factory does not take, naming them (cheap: nothing loads)."""
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


__all__ = ["MAX_REWARD", "RewardModel", "available", "check", "checked_rewards", "get", "register"]
