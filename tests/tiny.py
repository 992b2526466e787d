"""A tiny random ShapeWorld policy whose samples and rewards vary: the base of the trainer tests (built in code)."""
import torch

from cotlab.policy import build_shapeworld_policy


def tiny_policy(seed: int = 0):
    policy = build_shapeworld_policy("tiny", seed=seed)
    with torch.no_grad():  # a wider logit spread than random init, so that samples and rewards vary
        for p in policy.model.model.generation_head.parameters():
            p.mul_(5)
    return policy
