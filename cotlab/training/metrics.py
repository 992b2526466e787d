"""The names of what a training run logs: one row of ``metrics.jsonl`` per optimizer step, the same scalars in
TensorBoard (where the ``namespace/`` prefix groups them).

`METRICS` is the one list of names, each with one line of help; `book/glossary.md` explains each at length and
`tests/test_glossary.py` checks the page, this list and what the trainers log against each other. ``step`` and
``round`` are plain index keys (`INDEX`). Namespaces, as CleanRL's:

- ``loss/``: the objective; ``optim/``: the optimizer step; ``reward/``: the reward model's rewards of the step's
  images;
- ``policy/``: the policy's distribution against the sampler's, the old policy's and the reference's;
- ``dpo/``: DPO's pairs and implicit rewards; ``probe/``: the fixed probe; ``budget/``: images and reward calls;
- ``time/``: seconds per phase of the step; ``health/``: the training health check (`cotlab.training.health`).

Runs logged before the names had namespaces are read through `read_metrics` (or `current_names`), which renames
their keys by `LEGACY_METRIC_NAMES`: old run stores stay readable.
"""
from __future__ import annotations

import re
from pathlib import Path

from cotlab.store import read_jsonl

from .timing import PHASES

INDEX = {"step": "the optimizer step over the whole run (1-based)",
         "round": "the round (iterative training; 1-based)"}

METRICS = {
    "loss/total": "the step's loss: GRPO's clipped surrogate plus its KL penalty, or the DPO loss of the kept pairs",
    "optim/grad_norm": "global L2 norm of the gradient before clipping to max_grad_norm",
    "optim/learning_rate": "the learning rate of the step (after warm-up)",
    "reward/mean": "mean reward of the images the step trained on",
    "reward/std": "standard deviation of those rewards",
    "reward/<name>_mean": "mean of one reward component (<name> the reward model's name; a composite logs each)",
    "reward/zero_std_fraction": "GRPO: share of groups whose rewards are all equal (zero advantages)",
    "policy/kl_ref_k3": "GRPO: per-token KL(pi || ref), k3 estimator, the KL penalty's estimate (0 when beta is 0)",
    "policy/clip_fraction": "GRPO: share of tokens whose ratio pi / pi_old the clip stopped",
    "policy/ratio_mean": "GRPO: mean ratio pi / pi_old over tokens",
    "policy/entropy": "GRPO: mean per-token entropy of the policy over codes",
    "policy/logprob_mismatch_max": "largest |sampling log-prob - teacher-forced log-prob| over the step's tokens",
    "dpo/pairs_kept": "DPO: chosen / rejected pairs mined from the step's groups",
    "dpo/ties_dropped": "DPO: candidate pairs dropped for equal rewards",
    "dpo/below_margin_dropped": "DPO: candidate pairs dropped for a reward difference at most margin_threshold",
    "dpo/implicit_reward_chosen": "DPO: mean implicit reward beta log(pi / pi_ref) of the chosen images",
    "dpo/implicit_reward_rejected": "DPO: mean implicit reward of the rejected images",
    "dpo/implicit_reward_margin": "DPO: mean of chosen minus rejected implicit reward",
    "dpo/implicit_reward_accuracy": "DPO: share of pairs whose chosen image has the higher implicit reward",
    "probe/reward_mean": "every probe_every steps: mean reward of fresh samples on the fixed probe prompts",
    "probe/kl_base_k1": "at the same steps: KL(pi || base) per image, k1 estimator over the probe's samples",
    "budget/images_sampled": "images sampled this step",
    "budget/reward_calls": "reward calls this step",
    "budget/total_images_sampled": "images sampled so far in the run",
    "budget/total_reward_calls": "reward calls so far in the run",
    **{f"time/{phase}": f"seconds of the step's {phase} phase" if phase != "step" else
       "seconds of the whole step, the other phases included" for phase in PHASES},
    "health/ok": "1 while no health warning is active, else 0",
    "health/warnings": "the active health codes, comma-separated",
    "health/message": "the messages of the health codes raised at this step",
}

# A pattern's name stands for every key it matches (a composite reward logs one mean per component).
PATTERNS = {"reward/<name>_mean": re.compile(r"reward/.+_mean")}


def is_metric(key: str) -> bool:
    """Whether `key` is a name of `METRICS` or matches one of its patterns."""
    return key in METRICS or any(p.fullmatch(key) for p in PATTERNS.values())


# Names logged before the namespaces, old -> new. The one other old form, `reward_<name>_mean`, becomes
# `reward/<name>_mean` (`current_name`).
LEGACY_METRIC_NAMES = {
    "loss": "loss/total", "grad_norm": "optim/grad_norm", "lr": "optim/learning_rate",
    "reward_mean": "reward/mean", "reward_std": "reward/std", "zero_std_fraction": "reward/zero_std_fraction",
    "kl": "policy/kl_ref_k3", "clip_fraction": "policy/clip_fraction", "ratio_mean": "policy/ratio_mean",
    "entropy": "policy/entropy", "logprob_mismatch_max": "policy/logprob_mismatch_max",
    "pairs_kept": "dpo/pairs_kept", "ties_dropped": "dpo/ties_dropped",
    "below_margin_dropped": "dpo/below_margin_dropped", "rewards_chosen": "dpo/implicit_reward_chosen",
    "rewards_rejected": "dpo/implicit_reward_rejected", "rewards_margin": "dpo/implicit_reward_margin",
    "rewards_accuracy": "dpo/implicit_reward_accuracy",
    "probe_reward_mean": "probe/reward_mean", "probe_kl": "probe/kl_base_k1",
    "images_sampled": "budget/images_sampled", "reward_calls": "budget/reward_calls",
    "total_images_sampled": "budget/total_images_sampled", "total_reward_calls": "budget/total_reward_calls",
    **{f"seconds_{phase}": f"time/{phase}" for phase in PHASES},
}
_LEGACY_COMPONENT = re.compile(r"reward_(.+)_mean")


def current_name(key: str) -> str:
    """The name a metric logged as `key` has now (`key` itself when it is current or an index key)."""
    if key in LEGACY_METRIC_NAMES:
        return LEGACY_METRIC_NAMES[key]
    old = _LEGACY_COMPONENT.fullmatch(key)
    return f"reward/{old.group(1)}_mean" if old else key


def current_names(row: dict) -> dict:
    """A metrics row with its keys renamed to the current names (rows already current come back equal)."""
    return {current_name(key): value for key, value in row.items()}


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (`path`: the file or the run directory holding it), in order, with the
    current names whatever names the run logged."""
    path = Path(path)
    return [current_names(row) for row in read_jsonl(path / "metrics.jsonl" if path.is_dir() else path)]


__all__ = ["INDEX", "LEGACY_METRIC_NAMES", "METRICS", "PATTERNS", "current_name", "current_names", "is_metric",
           "read_metrics"]
