"""The sampler benchmark runs end to end on a tiny policy and returns a JSON-able report; the CLI knows the verb.
No timing assertions: wall-clock times depend on the machine and its load."""
import json
import math

import pytest

from cotlab import cli
from cotlab.bench import (LOGPROB_METHODS, STEP_PHASES, appendix_findings, bench_sampler, format_sampler, interleaved,
                          logprob_table, matmul_table, sampler_table, step_table)


def test_bench_sampler_reports_both_throughputs():
    result = bench_sampler(size="tiny", batch_prompts=2, num_samples=2, repeats=1, warmup=0)
    for key in ("model", "size", "batch_prompts", "num_samples", "rows", "guidance_scale", "repeats", "warmup",
                "image_tokens", "torch_threads", "device", "ours", "generate", "ratio"):
        assert key in result, key
    assert result["rows"] == 4 and result["image_tokens"] == 64 and result["device"] == "cpu"
    for name in ("ours", "generate"):
        assert len(result[name]["seconds"]) == 1
        assert math.isfinite(result[name]["tokens_per_s"]) and result[name]["tokens_per_s"] > 0
    for key in ("ratio", "ratio_min", "ratio_paired"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert json.loads(json.dumps(result)) == result
    assert "ratio ours/generate:" in format_sampler(result)


def test_cli_accepts_bench_sampler():
    args = cli.build_parser().parse_args(["bench", "sampler", "--size", "tiny"])
    assert args.what == "sampler" and args.size == "tiny" and callable(args.handler)
    assert not args.janus_pro_shaped and args.json is None
    args = cli.build_parser().parse_args(["bench", "sampler", "--janus-pro-shaped", "--batch-prompts", "2",
                                          "--num-samples", "1", "--cfg", "3", "--repeats", "2", "--json", "b.json"])
    assert args.janus_pro_shaped and (args.batch_prompts, args.num_samples, args.cfg, args.repeats) == (2, 1, 3.0, 2)


def test_bench_step_splits_grpo_and_dpo_steps_into_phases():
    from cotlab.bench import STEP_PHASES, bench_rl_step, format_rl_step

    result = bench_rl_step(tier="smoke", steps=1, repeats=2, compare_plain=True)
    assert result["ratio_update_tiled_over_plain_grpo"] > 0 and "full logits" in format_rl_step(result)
    for algorithm in ("grpo", "dpo", "grpo_plain", "dpo_plain"):
        r = result[algorithm]
        assert r["images_per_step"] == 32  # the smoke preset: 8 prompts x 4 images, equal for both
        assert all(r[p] >= 0 for p in STEP_PHASES) and r["sampling"] > 0 and r["update"] > 0
        # the median of two repeats is their mean, so the phases still fit in the total
        assert len(r["total_repeats"]) == 2 and r["total"] == pytest.approx(sum(r["total_repeats"]) / 2)
        assert sum(r[p] for p in STEP_PHASES) <= r["total"]
    assert result["grpo"]["reference"] == 0.0 < result["dpo"]["reference"]  # smoke GRPO has beta 0: no reference
    assert json.loads(json.dumps(result)) == result
    assert "ratio DPO/GRPO" in format_rl_step(result)
    args = cli.build_parser().parse_args(["bench", "step", "--tier", "smoke", "--steps", "2", "--repeats", "5"])
    assert (args.what, args.tier, args.steps, args.repeats) == ("step", "smoke", 2, 5)
    with pytest.raises(ValueError, match="steps and repeats must be at least 1"):
        bench_rl_step(tier="smoke", repeats=0)
    for algorithm in ("grpo", "dpo"):  # one profiled step each: a part of it is matrix products
        r = result[algorithm]
        assert 0 < r["matmul_share"] < 1 and r["matmul_flops"] > 0 and 0 < r["seconds_at_matmul_peak"] < r["total"]
    assert result["matmul_peak_gflops"] > 0 and "of the measured throughput" in format_rl_step(result)


def test_matmul_profile_counts_the_products_flops():
    import torch

    from cotlab.bench import matmul_profile

    a, b = torch.randn(64, 96), torch.randn(96, 32)
    found = matmul_profile(lambda: (a @ b, torch.addmm(torch.zeros(64, 32), a, b), a.exp()), torch.device("cpu"))
    assert found["matmul_flops"] == 2 * (2 * 64 * 96 * 32)  # mm and addmm; exp is not a product
    assert 0 < found["matmul_s"] <= found["wall_s"]


def test_bench_scaling_times_each_axis(tmp_path):
    from cotlab.bench import STEP_PHASES, bench_scaling, format_scaling
    from cotlab.plotting import scaling_plot

    result = bench_scaling(tier="smoke", group_sizes=(2, 4), prompts=(4,), grids=(4, 8), steps=1)
    rows = {(r["axis"], r["value"]): r for r in result["rows"]}
    assert set(rows) == {("num_generations", 2), ("num_generations", 4), ("prompts_per_step", 4),
                         ("image_tokens", 16), ("image_tokens", 64)}
    assert rows[("num_generations", 4)]["images"] == 32 and rows[("prompts_per_step", 4)]["images"] == 16
    for r in result["rows"]:
        assert r["seconds"] > 0 and all(r[p] >= 0 for p in STEP_PHASES)
    assert json.loads(json.dumps(result)) == result and "image_tokens" in format_scaling(result)
    assert len(scaling_plot(result).axes) == 3
    with pytest.raises(ValueError, match="group size must be at least 2"):
        bench_scaling(tier="smoke", group_sizes=(1,))


def test_interleaved_rotates_the_order_and_times_only_the_repeats():
    calls, kept, prepared = [], [], []

    def prepare(name):
        prepared.append(name)
        return lambda: calls.append(name) or name.upper()

    times = interleaved(prepare, ("a", "b", "c"), 2, warmup=1, keep=lambda name, out: kept.append((name, out)))
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"] == prepared
    assert kept == [(name, name.upper()) for name in calls]  # warmup included
    assert {name: len(seconds) for name, seconds in times.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(t >= 0 for seconds in times.values() for t in seconds)


def test_sampler_and_logprob_tables_put_one_result_or_method_a_row():
    sampler = {"model": "shapeworld default", "rows": 64, "image_tokens": 64, "ours": {"tokens_per_s": 3000.0},
               "generate": {"tokens_per_s": 1000.0}, "ratio": 3.0, "ratio_paired": 2.9}
    table = sampler_table([sampler, {**sampler, "model": "janus-pro-shaped", "rows": 2}])
    assert table["model"].tolist() == ["shapeworld default", "janus-pro-shaped"]
    assert table["rows (CFG doubles them)"].tolist() == [128, 4] and table["ours / generate"].tolist() == [3.0, 3.0]
    method = {"median_s": 0.5, "peak_bytes": 3 * 2**20, "time_ratio": 1.1, "memory_ratio": 0.2,
              "memory_ratio_without_gradients": 0.1, "max_abs_diff_vs_plain": 2e-7}
    result = {"hidden_size": 64, "trained_head": False, **{m: method for m in LOGPROB_METHODS}}
    table = logprob_table([result, {**result, "hidden_size": 2048, "trained_head": True}])
    assert len(table) == 2 * len(LOGPROB_METHODS) and table["method"].tolist()[:3] == list(LOGPROB_METHODS)
    assert table["head"].tolist() == ["frozen"] * 3 + ["trained"] * 3
    assert table["peak MiB"].iloc[0] == 3.0 and table["max |diff| vs plain (1e-6)"].iloc[0] == pytest.approx(0.2)


def test_step_and_matmul_tables_read_a_bench_step_result():
    def run(total):
        return {**{p: total / 4 for p in STEP_PHASES}, "total": total, "images_per_step": 32.0, "matmul_share": 0.25,
                "matmul_gflops": 10.0, "matmul_peak_fraction": 0.1, "matmul_flops": 4e9, "seconds_at_matmul_peak": 0.4}
    result = {"grpo": run(2.0), "dpo": run(1.0), "grpo_plain": run(3.0), "dpo_plain": run(1.5)}
    steps = step_table(result)
    assert steps.index.tolist() == ["GRPO", "DPO", "GRPO, full logits", "DPO, full logits"]
    assert steps.index.name == "seconds per step" and list(steps.columns) == [*STEP_PHASES, "total", "images"]
    assert steps.loc["DPO, full logits", "total"] == 1.5 and steps.loc["GRPO", "update"] == 0.5
    assert step_table({"grpo": run(2.0), "dpo": run(1.0)}).index.tolist() == ["GRPO", "DPO"]  # no plain runs
    matmul = matmul_table(result)
    assert list(matmul.columns) == ["GRPO", "DPO"]
    assert matmul.loc["GFLOP per step", "GRPO"] == 4.0 and matmul.loc["step seconds / that", "GRPO"] == 5.0
    assert matmul.loc["step seconds / that", "DPO"] == 2.5


def test_appendix_findings_read_each_result_and_say_whether_each_goal_is_met():
    samplers = [{"ratio": 2.5}, {"ratio": 1.5}]
    logprobs = [{"hidden_size": 64, "trained_head": False, "tiled": {"memory_ratio": 0.2, "time_ratio": 1.1},
                 "goal_met": True},
                {"hidden_size": 2048, "trained_head": True, "tiled": {"memory_ratio": 0.4, "time_ratio": 1.3},
                 "goal_met": False}]
    step = {"grpo": {"total": 2.0, "matmul_share": 0.2, "matmul_peak_fraction": 0.1},
            "dpo": {"total": 1.0, "matmul_share": 0.3, "matmul_peak_fraction": 0.05}}
    scaling = {"rows": [{"axis": "num_generations", "value": 2, "images": 16, "seconds": 1.0},
                        {"axis": "prompts_per_step", "value": 4, "images": 16, "seconds": 9.0},
                        {"axis": "num_generations", "value": 8, "images": 64, "seconds": 3.0}]}
    throughput = {"runs": 4, "sequential": {"seconds": 100.0}, "executor": {"seconds": 40.0}, "workers": 2,
                  "speedup": 2.5}
    text = appendix_findings(samplers, logprobs, step, scaling, throughput, "small")
    heading, blank, *lines = text.split("\n")
    assert (heading, blank) == ("## What this appendix found", "") and len(lines) == 4
    assert lines[0] == ("* **Sampler**: 2.50x `generate` on ShapeWorld's small policy and 1.50x on the "
                        "Janus-Pro-shaped one; the goal of 2x is met on ShapeWorld.")
    assert lines[1] == ("* **Log-probs**, tiled peak memory and time against plain (goal: <= 25% at <= 1.2x): hidden "
                        "size 64, head frozen: 20% at 1.10x (met); hidden size 2048, head trained: 40% at 1.30x "
                        "(not met).")
    assert lines[2].startswith("* **Steps**: GRPO 2.00 s, DPO 1.00 s per step; matrix products are 20% (GRPO) and "
                               "30% (DPO) of a step, at 10% and 5% of the machine's measured matmul throughput: most")
    assert lines[2].endswith("From group size 2 to 8 (4x the images) a GRPO step takes 3.00x the time.")
    assert lines[3] == ("* **Throughput**: 4 runs with their evaluations took 100 s one after another and 40 s on 2 "
                        "workers: 2.50x the runs per hour (the goal for the whole study is 4x).")
    one = appendix_findings(samplers[:1], logprobs, {a: {**r, "matmul_share": 0.6} for a, r in step.items()},
                            scaling, throughput)
    assert "on ShapeWorld's default policy; the goal" in one and "a step is mostly matrix products" in one
