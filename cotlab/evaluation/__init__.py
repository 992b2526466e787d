"""Benchmark runners: ShapeWorld's suites scored exactly, with an eval card on every result."""
from .shapeworld import (EvalCard, EvalResult, chance_reports, evaluate_policy, first_per_category, headline_metric,
                         image_bootstrap_se, mean_ci)

__all__ = ["EvalCard", "EvalResult", "chance_reports", "evaluate_policy", "first_per_category", "headline_metric",
           "image_bootstrap_se", "mean_ci"]

# The paper's benchmarks at full scale (GenEval, T2I-CompBench): official prompt files, layouts, transformers scorers.
from .benchmark_scorers import (BlipVQAScorer, CompBenchCLIPScorer, CompBenchScorer, GenEvalScorer,
                                Mask2FormerDetector, SpatialScorer, geneval_summary)
from .benchmarks import (BenchmarkFileError, CompBenchPrompt, GenEvalPrompt, load_compbench, load_compbench_train,
                         load_complex_kinds, load_geneval, policy_sampler, write_generations)

__all__ += ["BenchmarkFileError", "BlipVQAScorer", "CompBenchCLIPScorer", "CompBenchPrompt", "CompBenchScorer",
            "GenEvalPrompt", "GenEvalScorer", "Mask2FormerDetector", "SpatialScorer", "geneval_summary",
            "load_compbench", "load_compbench_train", "load_complex_kinds", "load_geneval", "policy_sampler",
            "write_generations"]
