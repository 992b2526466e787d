"""Experiments: tiers (smoke / default / paper), per-notebook parameter presets, and the reproduce pipeline."""

from cotlab.experiments.tiers import TIERS, notebook_parameters

__all__ = ["TIERS", "notebook_parameters"]
