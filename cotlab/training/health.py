"""Training health: a named warning for runs that train on nothing while looking healthy.

A reward that gives one value (a composite of weight 0, a scorer that fails silently) makes every GRPO advantage 0
and leaves DPO no pair: the run exits 0 with loss 0 and grad norm 0. `TrainingHealth` reads each step's metrics row
and raises, with its cause named, one of these codes:

- ``constant_rewards`` (GRPO): every group's rewards tied (``reward/zero_std_fraction`` 1) for `CONSTANT_STEPS` steps
  in a row: every advantage is 0, so the reward moves nothing;
- ``no_pairs`` (DPO): no pair kept (``dpo/pairs_kept`` 0) for `CONSTANT_STEPS` steps in a row;
- ``zero_grad``: a gradient norm of exactly 0 for `CONSTANT_STEPS` steps in a row: the weights have not moved
  (tied rewards, or weights that do not reach the loss);
- ``reward_collapse``: ``reward/std`` below `COLLAPSE_FRACTION` of its mean over the first `BASELINE_STEPS` steps for
  `COLLAPSE_STEPS` steps in a row: the policy draws one image per prompt, or the reward saturated.

Its state is the rows it has seen and nothing else, so a resumed run rebuilds it from its restored history
(`TrainingHealth.replay`), and `run_health` gives the same verdict from a run's ``metrics.jsonl`` (the book's flag),
whatever names it logged (`metrics.current_names`).
"""
from __future__ import annotations

import sys
import warnings

from .metrics import current_names

CONSTANT_STEPS = 3  # one tied step is chance with coarse rewards (0/1 at 10% success, 4 groups of 4: p~0.2); 3: ~0.01
BASELINE_STEPS = 3  # the spread's reference level: reward/std over the first steps, before training moved much
COLLAPSE_FRACTION = 0.1  # below a tenth of its starting spread, the group-relative signal is mostly gone
COLLAPSE_STEPS = 3  # as CONSTANT_STEPS: one narrow step is chance, three in a row a trend
CODES = ("constant_rewards", "no_pairs", "zero_grad", "reward_collapse")
KEYS = ("step", "reward/mean", "reward/std", "reward/zero_std_fraction", "dpo/pairs_kept", "dpo/ties_dropped",
        "dpo/below_margin_dropped", "optim/grad_norm")  # what the checks read of a row


class TrainingHealthWarning(UserWarning):
    """A run's rewards or gradients give the policy nothing to learn from (see `cotlab.training.health`)."""


def _tail(rows: list[dict], key: str, n: int) -> list | None:
    """The last `n` values of `key`, or None if fewer than `n` rows carry it."""
    values = [r.get(key) for r in rows[-n:]]
    return values if len(values) == n and all(v is not None for v in values) else None


def _tied(row: dict) -> bool:
    """Whether the step's rewards gave no learning signal: all groups tied (GRPO) or no pair kept (DPO)."""
    return row.get("reward/zero_std_fraction") == 1.0 or row.get("dpo/pairs_kept") == 0


def diagnose(rows: list[dict], reward: str | None = None) -> dict[str, str]:
    """The codes active at the last of `rows` (a run's metrics rows in order), each with its message."""
    if not rows:
        return {}
    last, found = rows[-1], {}
    where = f"step {last.get('step', len(rows))}"
    name = f"reward {reward!r}" if reward else "the reward"
    one_value = _tail(rows, "reward/std", CONSTANT_STEPS)
    one_value = one_value is not None and not any(one_value)
    value = last.get("reward/mean")
    cause = (f"{name} gave {value:.4g} to every image" if one_value and value is not None
             else f"{name} ties the images of every prompt")
    tied = _tail(rows, "reward/zero_std_fraction", CONSTANT_STEPS)
    if tied is not None and all(v == 1.0 for v in tied):
        found["constant_rewards"] = (f"{where}: every group's rewards have been constant for {CONSTANT_STEPS} steps "
                                     f"({cause}); every GRPO advantage is 0, so the policy gets no gradient from it")
    pairs = _tail(rows, "dpo/pairs_kept", CONSTANT_STEPS)
    if pairs is not None and not any(pairs):
        why = cause if last.get("dpo/ties_dropped") or not last.get("dpo/below_margin_dropped") else \
            "every pair's reward margin is below margin_threshold"
        found["no_pairs"] = (f"{where}: DPO has kept no pair for {CONSTANT_STEPS} steps ({why}); these steps train "
                             f"on nothing")
    norms = _tail(rows, "optim/grad_norm", CONSTANT_STEPS)
    if norms is not None and not any(norms):
        why = "the rewards gave no signal" if all(_tied(r) for r in rows[-CONSTANT_STEPS:]) else \
            "although the rewards varied: check that the trainable weights reach the loss"
        found["zero_grad"] = (f"{where}: the gradient norm has been exactly 0 for {CONSTANT_STEPS} steps ({why}); "
                              f"the weights have not moved")
    spread = _tail(rows, "reward/std", COLLAPSE_STEPS)
    start = [r.get("reward/std") for r in rows[:BASELINE_STEPS]]
    if (spread is not None and len(rows) >= BASELINE_STEPS + COLLAPSE_STEPS and None not in start
            and sum(start) > 0):
        level = sum(start) / len(start)
        if all(s < COLLAPSE_FRACTION * level for s in spread):
            found["reward_collapse"] = (
                f"{where}: the reward spread has collapsed to {spread[-1]:.3g}, below {COLLAPSE_FRACTION:g} x its "
                f"level over the first {BASELINE_STEPS} steps ({level:.3g}), for {COLLAPSE_STEPS} steps; the policy "
                f"may draw one image per prompt, or {name} saturated, so little gradient is left")
    return {code: found[code] for code in CODES if code in found}


class TrainingHealth:
    """Per-step health checks over a run's metrics rows.

    `update(row)` takes the row `Trainer.train` built for a step and returns the fields to add to it:
    ``health/warnings`` (the active codes, comma-separated; "" when healthy), ``health/ok`` (1 or 0) and
    ``health/message`` (the messages of the codes raised at this step; ""). A code that becomes active is also
    warned (`TrainingHealthWarning`, on stderr) when `emit`. `reward` names the reward model in the messages.
    """

    def __init__(self, reward: str | None = None, emit: bool = True):
        self.reward, self.emit, self.rows = reward, emit, []

    @classmethod
    def replay(cls, history: list[dict], reward: str | None = None, emit: bool = True) -> "TrainingHealth":
        """The monitor after the rows of `history` (a resumed run's restored history, or a run's metrics rows under
        any names it logged), without warning again."""
        monitor = cls(reward, emit)
        monitor.rows = [{k: r[k] for k in KEYS if k in r} for r in map(current_names, history)]
        return monitor

    def update(self, row: dict) -> dict:
        before = diagnose(self.rows, self.reward)
        self.rows.append({k: row[k] for k in KEYS if k in row})
        now = diagnose(self.rows, self.reward)
        raised = [message for code, message in now.items() if code not in before]
        if self.emit:
            for message in raised:
                warnings.warn(message, TrainingHealthWarning, stacklevel=2)
            sys.stderr.flush()
        return {"health/warnings": ",".join(now), "health/ok": int(not now), "health/message": " | ".join(raised)}

    def seen(self) -> list[str]:
        """The codes active at any step so far, in `CODES` order."""
        codes, prefix = set(), []
        for row in self.rows:
            prefix.append(row)
            codes.update(diagnose(prefix))
        return [code for code in CODES if code in codes]


def run_health(rows: list[dict]) -> str:
    """A finished run's verdict from its metrics rows: "ok", or the codes raised at any step ("no_pairs,zero_grad").
    Recomputed from the rows, so it holds for runs logged before the trainer recorded its health or named its metrics
    in namespaces."""
    return ",".join(TrainingHealth.replay(rows, emit=False).seen()) or "ok"


__all__ = ["BASELINE_STEPS", "CODES", "COLLAPSE_FRACTION", "COLLAPSE_STEPS", "CONSTANT_STEPS", "TrainingHealth",
           "TrainingHealthWarning", "diagnose", "run_health"]
