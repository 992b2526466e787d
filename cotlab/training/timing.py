"""Where a training step's wall-clock time goes, logged per step as ``time/<phase>`` (seconds)."""
from __future__ import annotations

import contextlib
import time

PHASES = ("sampling", "scoring", "reference", "update", "step")  # `step`: all of train_step, the others included


class PhaseTimer:
    """Seconds per phase, summed over every `with timer(phase):` block since the last `pop`. Phases may nest (one
    block inside another counts in both), never inside themselves."""

    def __init__(self, phases: tuple[str, ...] = PHASES):
        self.phases = phases
        self.seconds = dict.fromkeys(phases, 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - began

    def pop(self) -> dict[str, float]:
        """``{"time/<phase>": seconds}`` for every phase (0.0 for one that did not run), and start again from zero."""
        metrics = {f"time/{phase}": s for phase, s in self.seconds.items()}
        self.seconds = dict.fromkeys(self.phases, 0.0)
        return metrics


__all__ = ["PHASES", "PhaseTimer"]
