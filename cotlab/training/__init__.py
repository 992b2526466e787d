"""RL trainers for Janus policies: GRPO and DPO sharing one rollout buffer, on accelerate.

    from cotlab.training import preset, train
    cfg = preset("smoke", "grpo", output_dir="runs/grpo-smoke")
    policy = train(cfg)
"""
from .buffer import Groups, collect_groups, mean_reward, mine_pairs, row_seed
from .config import (ALIGNED_FIELDS, ARMS, CONFIGS, PRESETS, DPOConfig, GRPOConfig, RLConfig, aligned, arm_of,
                     arm_preset, preset)
from .dpo import DPOTrainer
from .grpo import GRPOTrainer
from .trainer import Trainer, load_policy, training_prompts

TRAINERS = {"grpo": GRPOTrainer, "dpo": DPOTrainer}


def trainer_for(cfg: RLConfig, **kwargs) -> Trainer:
    """The trainer of `cfg`'s algorithm; kwargs as `Trainer` (policy, reward_model, prompts, accelerator, progress)."""
    return TRAINERS[cfg.algorithm](cfg, **kwargs)


def train(cfg: RLConfig, resume_from=None, overwrite: bool = False, **kwargs):
    """Train (or resume, with `resume_from` a checkpoint or "latest") and return the trained policy. A non-empty
    output_dir is refused unless resuming or `overwrite` (which empties it first)."""
    return trainer_for(cfg, **kwargs).train(resume_from=resume_from, overwrite=overwrite)


__all__ = ["ALIGNED_FIELDS", "ARMS", "CONFIGS", "DPOConfig", "DPOTrainer", "GRPOConfig", "GRPOTrainer", "Groups", "PRESETS",
           "RLConfig", "TRAINERS", "Trainer", "aligned", "arm_of", "arm_preset", "collect_groups", "load_policy", "mean_reward", "mine_pairs", "preset",
           "row_seed", "train", "trainer_for", "training_prompts"]
