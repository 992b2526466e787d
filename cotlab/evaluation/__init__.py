"""Benchmark runners: ShapeWorld's suites scored exactly, with an eval card on every result."""
from .shapeworld import EvalCard, EvalResult, evaluate_policy, mean_ci

__all__ = ["EvalCard", "EvalResult", "evaluate_policy", "mean_ci"]
