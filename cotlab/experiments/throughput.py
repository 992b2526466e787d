"""`cotlab bench throughput`: the study's work per hour, as the book used to do it and with the graph executor.

One fixed batch of work, the unit of every RL chapter: GRPO and DPO runs of a preset over `seeds`, each evaluated
as `before_after` evaluates it (the base policy once). It is executed twice, side by side in one invocation, each time
into a fresh run store so that nothing is reused:

(a) ``sequential``: one process, torch's default threads, runs and evaluations one after another (the notebooks'
    way before the executor);
(b) ``executor``: the same nodes through `execute_local` with `workers` processes of one thread each (and, for the
    scaling curve, with each count of `worker_counts`).

Runs per hour = runs / seconds x 3600 (a run counts with its evaluation); ``speedup`` = (b)'s / (a)'s, (b) at
`workers`. Per run, the seconds of sampling, scoring, reference and update (from its metrics) and of its evaluation. The base policy is
trained (or reused) beforehand in the usual run store and passed to both as a checkpoint directory: it is shared by
every run of a study, not part of its per-run cost.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from cotlab.experiments.executor import check_workers, execute_local
from cotlab.experiments.graph import Graph, add_runs
from cotlab.experiments.reproduce import environment_variables
from cotlab.experiments.rl import base_dir, evaluation_options, evaluation_scores, rl_run
from cotlab.machine import machine_record
from cotlab.store import RL_CODE, RunStore, artifact_key
from cotlab.training import preset
from cotlab.training.metrics import read_metrics

PHASES = ("sampling", "scoring", "reference", "update")


def _phases(run_dir: Path) -> dict[str, float]:
    rows = read_metrics(run_dir)
    return {phase: sum(r.get(f"time/{phase}", 0.0) for r in rows) for phase in PHASES}


def _configs(tier: str, seeds, base: str, max_steps: int | None):
    extra = {"max_steps": max_steps} if max_steps else {}
    return [preset(tier, algorithm, seed=seed, policy=base, **extra) for algorithm in ("grpo", "dpo") for seed in seeds]


def _sequential(configs, eval_options: dict, root: Path) -> tuple[float, list[dict]]:
    store, eval_options = RunStore(root), evaluation_options(configs, eval_options)
    began = time.perf_counter()
    evaluation_scores(configs[0].policy, "base", store=store, progress=False, **eval_options)
    runs = []
    for cfg in configs:
        path = rl_run(cfg, store=store, progress=False)
        evaluated = time.perf_counter()
        evaluation_scores(path / "policy", cfg.algorithm, store=store, progress=False, **eval_options)
        runs.append({"algorithm": cfg.algorithm, "seed": cfg.seed, **_phases(path),
                     "evaluation": time.perf_counter() - evaluated})
    return time.perf_counter() - began, runs


def _executor(configs, eval_options: dict, root: Path, workers: int | None) -> tuple[float, list[dict]]:
    graph = Graph()
    ids = add_runs(graph, configs, eval_options)
    began = time.perf_counter()
    with environment_variables({"COTLAB_RUNS": str(root)}):
        report = execute_local(graph, workers=workers, log_dir=root / "logs")
    seconds = time.perf_counter() - began
    if not report.ok:
        raise RuntimeError(f"the executor's batch failed: {report.failed}")
    runs = []
    for cfg, (run, evaluation) in zip(configs, ids):
        path = RunStore(root).path("rl", artifact_key("rl", graph.nodes[run].kwargs["config"], RL_CODE))
        runs.append({"algorithm": cfg.algorithm, "seed": cfg.seed, **_phases(path),
                     "evaluation": report.seconds[evaluation]})
    return seconds, runs


def bench_throughput(tier: str = "default", seeds=(0, 1), workers: int | None = None,
                     max_steps: int | None = None, images_per_prompt: int = 2, prompts_per_category: int = 30,
                     eval_seeds=(0,), policy: str | None = None, worker_counts=()) -> dict:
    """Runs per hour of the batch (GRPO and DPO of preset `tier` over `seeds`, each evaluated with these options),
    (a) sequentially in this process and (b) by the executor; see the module docstring. `policy`: the base (a
    pretraining tier or a checkpoint directory) instead of the preset's."""
    workers = check_workers(workers)

    base = str(base_dir(policy or preset(tier, "grpo").policy))  # trained or reused beforehand, untimed
    configs = _configs(tier, seeds, base, max_steps)
    eval_options = {"images_per_prompt": images_per_prompt, "prompts_per_category": prompts_per_category,
                    "seeds": list(eval_seeds)}
    result = {"tier": tier, "base": base, "runs": len(configs), "seeds": list(seeds), "workers": workers,
              "threads_sequential": torch.get_num_threads(), "eval_options": eval_options,
              "machine": machine_record(torch.device("cpu"))}
    counts = sorted({check_workers(w) for w in worker_counts} - {workers})
    with tempfile.TemporaryDirectory(prefix="cotlab-throughput-") as tmp:
        ways = [("executor", lambda root: _executor(configs, eval_options, root, workers)),
                ("sequential", lambda root: _sequential(configs, eval_options, root))]
        ways += [(f"executor_{w}", lambda root, w=w: _executor(configs, eval_options, root, w)) for w in counts]
        for name, run in ways:
            seconds, runs = run(Path(tmp) / name)
            result[name] = {"seconds": seconds, "runs_per_hour": len(configs) / seconds * 3600, "per_run": runs}
    result["scaling"] = sorted([{"workers": workers, "runs_per_hour": result["executor"]["runs_per_hour"]}]
                               + [{"workers": w, "runs_per_hour": result.pop(f"executor_{w}")["runs_per_hour"]}
                                  for w in counts], key=lambda row: row["workers"])
    result["speedup"] = result["executor"]["runs_per_hour"] / result["sequential"]["runs_per_hour"]
    return result


def format_throughput(result: dict) -> str:
    """A table of both ways, with the mean seconds per run in each phase."""
    lines = [f"{result['runs']} runs ({result['tier']} preset, GRPO and DPO, seeds {result['seeds']}) with their "
             f"evaluations; {result['machine']['device_name'] or 'cpu'}",
             f"{'way':<12} {'seconds':>8} {'runs/hour':>10} " + " ".join(f"{p:>10}" for p in (*PHASES, "evaluation"))]
    for name, label in (("sequential", f"sequential ({result['threads_sequential']} threads)"),
                        ("executor", f"executor ({result['workers']} workers x 1 thread)")):
        r = result[name]
        means = [sum(run[p] for run in r["per_run"]) / len(r["per_run"]) for p in (*PHASES, "evaluation")]
        lines.append(f"{name:<12} {r['seconds']:8.1f} {r['runs_per_hour']:10.1f} "
                     + " ".join(f"{m:10.2f}" for m in means) + f"   {label}")
    lines.append("workers: " + ", ".join(f"{row['workers']}: {row['runs_per_hour']:.1f} runs/hour"
                                         for row in result["scaling"]))
    lines.append(f"speedup (executor / sequential runs per hour): {result['speedup']:.2f}x")
    return "\n".join(lines)


def throughput_table(result: dict):
    """A `bench_throughput` result as a table, one row per way (sequential, executor): seconds, runs per hour and the
    mean seconds per run of each phase and of the evaluation."""
    phases = (*PHASES, "evaluation")
    return pd.DataFrame({
        way: {"seconds": result[way]["seconds"], "runs per hour": result[way]["runs_per_hour"],
              **{p: sum(run[p] for run in result[way]["per_run"]) / len(result[way]["per_run"]) for p in phases}}
        for way in ("sequential", "executor")}).T


__all__ = ["bench_throughput", "format_throughput", "throughput_table"]
