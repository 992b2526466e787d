"""Reward models: one protocol, a registry, and checks on what a reward returns (`registry`); the exact metric (here),
composites and a cache (`compose`), ShapeWorld's learned reward models (`learned`), and the paper-scale ones through
transformers (`real`, `paper_models`), each registered by name below.

A reward model is a callable ``rm(prompts, images, metadata=None) -> torch.Tensor`` of shape (N,), float and finite,
with a ``name``. ``get(name, **options)`` builds a registered one; ``available()`` lists the names.
"""
from __future__ import annotations

from functools import partial

import torch

from cotlab.world import score_batch

from .compose import CachedReward, CompositeReward, composite
from .learned import LearnedReward, learned_reward
from .paper_models import HPSv2, ImageReward, hps, imagereward  # models load on first use
from .real import CLIPScore, VLMJudge, clipscore, vlm_judge  # transformers models load on first use
from .registry import MAX_REWARD, RewardModel, available, check, checked_rewards, get, register


class MetricReward:
    """The exact in-domain metric as reward (the paper's "metric reward"): ShapeWorld's CompBench-style score, the
    prompt's family formula (binding product of phrase credits, spatial detector score, ...; see
    `cotlab.world.scoring`) on the objects parsed from the image's pixels. In [0, 1]."""

    name = "metric"

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        return torch.tensor([s.value for s in score_batch(list(prompts), list(images))], dtype=torch.float32)


register("metric", MetricReward)
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


__all__ = ["MAX_REWARD", "CLIPScore", "CachedReward", "CompositeReward", "HPSv2", "ImageReward", "LearnedReward",
           "MetricReward", "RewardModel", "VLMJudge", "available", "cached", "check", "checked_rewards", "get",
           "register"]
