"""Benchmark runners: ShapeWorld's suites scored exactly, with an eval card on every result."""
from .shapeworld import EvalCard, EvalResult, chance_reports, evaluate_policy, first_per_category, mean_ci

__all__ = ["EvalCard", "EvalResult", "chance_reports", "evaluate_policy", "first_per_category", "mean_ci"]
