"""Benchmark runners: ShapeWorld's suites scored exactly, with an eval card on every result."""
from .shapeworld import (SKILLS, EvalCard, EvalResult, chance_reports, conditional_bootstrap_se, evaluate_policy,
                         first_per_category, guidance_sweep, headline_metric, image_bootstrap_se, mean_ci, prompt_skill,
                         skill_chance, skill_kinds, skill_score)

__all__ = ["SKILLS", "EvalCard", "EvalResult", "chance_reports", "conditional_bootstrap_se", "evaluate_policy",
           "first_per_category", "guidance_sweep", "headline_metric", "image_bootstrap_se", "mean_ci", "prompt_skill",
           "skill_chance", "skill_kinds", "skill_score"]

# The paper's benchmarks at full scale (GenEval, T2I-CompBench): layouts and transformers scorers (their official prompt
# files: `cotlab.prompt_files`).
from .benchmarks import policy_sampler, write_generations
from .geneval import GenEvalScorer, geneval_summary
from .t2i_compbench import BlipVQAScorer, CompBenchCLIPScorer, CompBenchScorer, SpatialScorer
from .vision import Mask2FormerDetector

__all__ += ["BlipVQAScorer", "CompBenchCLIPScorer", "CompBenchScorer", "GenEvalScorer", "Mask2FormerDetector",
            "SpatialScorer", "geneval_summary", "policy_sampler", "write_generations"]
