"""Speed benchmarks: our CFG sampler (`JanusPolicy.sample`) against transformers' `generate(generation_mode="image")`.

Both sample the same batch the same way: classifier-free guidance with weight `guidance_scale` (conditional and
unconditional rows in one forward batch), temperature 1, no top-k (`top_k=0` in `generate`, which otherwise applies a
hidden top-50), `num_samples` images per prompt (`generate` gets the prompts repeated, prompt-major, as `sample`
builds its rows). Only the image tokens are timed: the VQ / patch decode is off (`decode=False`).

Timings are wall-clock seconds of whole calls, measured interleaved in one process, alternating which of the two goes
first in each repeat (ours, generate, generate, ours, ...), so that a background load drifting over the run hits both
alike; the reported throughput is image tokens per second at the median time. Weights are random: speed does not
depend on training.

`janus_pro_shaped=True` benchmarks a random Janus with Janus-Pro-1B's image side (16384 codes, 576 tokens on a 24x24
grid at 384 px, hidden 2048, 16 heads) but only a couple of layers and a small MLP, so that it runs on a CPU.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cotlab.kernels import TOKEN_CHUNK, VOCAB_CHUNK, logprobs_from_hidden
from cotlab.machine import machine_record, synchronize
from cotlab.policy import SHAPEWORLD_SIZES, build_shapeworld_policy
from cotlab.policy.configs import JANUS_PRO_CODEBOOK, JANUS_PRO_GRID
from cotlab.policy.shapeworld import build_janus_pro_shaped_policy
from cotlab.rewards import MetricReward
from cotlab.training import PRESETS, preset, trainer_for
from cotlab.training.buffer import ROLLOUTS
from cotlab.world import sample_captions

# Defaults of `bench_sampler` where an argument is left as None: ShapeWorld's policies vs the Janus-Pro-shaped one.
# A Janus-Pro-shaped call streams ~0.36 GB of fp32 weights per image token, 576 times: over half a minute on a CPU,
# so one warmup pair and one timed pair (2-3 minutes on a quiet 2-core machine); pass more repeats for a median.
# The warmup is not optional there: a first call in a process that grows a DynamicCache by concatenation page-faults
# on every step (glibc serves each ever-larger buffer with a fresh mmap), ~30% slower than later calls.
DEFAULTS = {
    "shapeworld": {"batch_prompts": 16, "num_samples": 4, "repeats": 5, "warmup": 1},
    "janus_pro_shaped": {"batch_prompts": 2, "num_samples": 1, "repeats": 1, "warmup": 1},
}


def _summary(seconds: list[float], tokens: int) -> dict:
    median = statistics.median(seconds)
    return {"seconds": seconds, "median_s": median, "min_s": min(seconds), "max_s": max(seconds),
            "tokens_per_s": tokens / median if median > 0 else math.inf}


def interleaved(prepare: Callable[[str], Callable[[], Any]], names: Sequence[str], repeats: int, *, warmup: int = 0,
                device: torch.device | None = None, keep: Callable[[str, Any], None] | None = None,
                verbose: bool = False) -> dict[str, list[float]]:
    """Wall-clock seconds of `prepare(name)()` for each of `names`, over `warmup` + `repeats` rounds in one process,
    the order rotating by one each round (a, b, c; b, c, a; ...) so that a background load drifting over the run hits
    all alike. `prepare(name)` (untimed) returns the call to time; `keep(name, output)` sees every call's output,
    warmup included. Returns each name's seconds in the timed rounds, in order."""
    names = list(names)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + repeats):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            call = prepare(name)
            synchronize(device)
            start = time.perf_counter()
            out = call()
            synchronize(device)
            elapsed = time.perf_counter() - start
            if keep is not None:
                keep(name, out)
            if i >= warmup:
                times[name].append(elapsed)
            if verbose:
                tag = "warmup" if i < warmup else f"repeat {i - warmup + 1}/{repeats}"
                print(f"  [{tag}] {name:8s} {elapsed:8.3f} s", flush=True)
    return times


def bench_sampler(size: str = "default", batch_prompts: int | None = None, num_samples: int | None = None,
                  guidance_scale: float = 5.0, repeats: int | None = None, warmup: int | None = None, seed: int = 0,
                  janus_pro_shaped: bool = False, device: str | None = None, threads: int | None = None,
                  verbose: bool = False) -> dict:
    """Image tokens per second of `JanusPolicy.sample` and of transformers' `generate`, same batch, same CFG, sampling.

    `size` names a ShapeWorld policy ("tiny", "smoke", "default"); `janus_pro_shaped` benchmarks the Janus-Pro-1B
    shaped one instead (`size` is then ignored). `batch_prompts`, `num_samples`, `repeats` and `warmup` left as None
    take `DEFAULTS` (16 x 4, 5 repeats after 1 warmup for ShapeWorld; 2 x 1, 1 repeat after 1 warmup for
    Janus-Pro-shaped).
    `threads` sets torch's intra-op threads for the run (restored afterwards; 1 is steadier on a busy machine).

    Returns a JSON-able dict; `ratio` is ours / generate in image tokens per second at the median times (above 1:
    ours is faster). Two contention-robust companions: `ratio_min` (at the fastest times) and `ratio_paired` (median
    over repeats of generate's time / ours in the same repeat)."""
    if not janus_pro_shaped and size not in SHAPEWORLD_SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SHAPEWORLD_SIZES)}")
    kind = "janus_pro_shaped" if janus_pro_shaped else "shapeworld"
    batch_prompts = DEFAULTS[kind]["batch_prompts"] if batch_prompts is None else batch_prompts
    num_samples = DEFAULTS[kind]["num_samples"] if num_samples is None else num_samples
    repeats = DEFAULTS[kind]["repeats"] if repeats is None else repeats
    warmup = DEFAULTS[kind]["warmup"] if warmup is None else warmup
    if batch_prompts < 1 or num_samples < 1:
        raise ValueError(f"batch_prompts and num_samples must be at least 1, got {batch_prompts} and {num_samples}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    if guidance_scale < 1:
        raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {guidance_scale}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_sampler(size, batch_prompts, num_samples, guidance_scale, repeats, warmup, seed,
                              janus_pro_shaped, device, verbose)
    finally:
        torch.set_num_threads(previous_threads)


def _bench_sampler(size, batch_prompts, num_samples, guidance_scale, repeats, warmup, seed, janus_pro_shaped, device,
                   verbose) -> dict:
    pol = build_janus_pro_shaped_policy(seed) if janus_pro_shaped else build_shapeworld_policy(size, seed=seed)
    if device is not None:
        pol.model.to(device)
    dev = pol.device
    prompts = sample_captions(batch_prompts, seed)
    rows_prompts = [p for p in prompts for _ in range(num_samples)]  # prompt-major, as `sample` builds its rows
    rows, t_img = len(rows_prompts), pol.num_image_tokens
    tokens = rows * t_img
    generator = torch.Generator(dev).manual_seed(seed)

    def ours():
        return pol.sample(prompts, num_samples, guidance_scale=guidance_scale, temperature=1.0, top_k=0,
                          generator=generator, decode=False).image_tokens

    def theirs():
        ids, mask = pol.encode_prompts(rows_prompts)
        return pol.model.generate(input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=True,
                                  temperature=1.0, top_k=0, guidance_scale=guidance_scale)

    def check(name, out):
        if tuple(out.shape) != (rows, t_img):
            raise RuntimeError(f"{name} returned tokens of shape {tuple(out.shape)}, expected {(rows, t_img)}")

    runners = {"ours": ours, "generate": theirs}
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    torch.manual_seed(seed)
    with torch.inference_mode():
        times = interleaved(runners.get, runners, repeats, warmup=warmup, device=dev, keep=check, verbose=verbose)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    text = pol.model.config.text_config
    result = {
        "benchmark": "sampler",
        "model": "janus-pro-shaped" if janus_pro_shaped else f"shapeworld-{size}",
        "size": None if janus_pro_shaped else size,
        "janus_pro_shaped": janus_pro_shaped,
        "hidden_size": text.hidden_size,
        "num_layers": text.num_hidden_layers,
        "num_heads": text.num_attention_heads,
        "intermediate_size": text.intermediate_size,
        "codebook_size": pol.model.config.vq_config.num_embeddings,
        "image_tokens": t_img,
        "parameters": sum(p.numel() for p in pol.model.parameters()),
        "batch_prompts": batch_prompts,
        "num_samples": num_samples,
        "rows": rows,  # images per call; with guidance the forward batch is twice this
        "forward_rows": 2 * rows if guidance_scale != 1 else rows,
        "guidance_scale": guidance_scale,
        "temperature": 1.0,
        "top_k": 0,
        "decode": False,
        "repeats": repeats,
        "warmup": warmup,
        "seed": seed,
        "order": "interleaved, alternating which goes first",
        "prompt_tokens_max": int(pol.encode_prompts(rows_prompts)[1].sum(1).max()),
        **machine_record(dev),
        "torch_version": torch.__version__,
        "transformers_version": __import__("transformers").__version__,
        "loadavg_1min": [load_start, load_end],
        "ours": _summary(times["ours"], tokens),
        "generate": _summary(times["generate"], tokens),
    }
    result["ratio"] = result["ours"]["tokens_per_s"] / result["generate"]["tokens_per_s"]
    result["ratio_min"] = result["generate"]["min_s"] / result["ours"]["min_s"]
    result["ratio_paired"] = statistics.median(g / o for g, o in zip(times["generate"], times["ours"]))
    return result


def format_sampler(result: dict) -> str:
    """A small table of a `bench_sampler` result and the ratio line."""
    head = (f"{result['model']}: hidden {result['hidden_size']}, {result['num_layers']} layers, "
            f"{result['num_heads']} heads, MLP {result['intermediate_size']}, {result['codebook_size']} codes, "
            f"{result['image_tokens']} image tokens, {result['parameters'] / 1e6:.1f}M parameters\n"
            f"batch {result['batch_prompts']} prompts x {result['num_samples']} samples = {result['rows']} images "
            f"({result['forward_rows']} forward rows), cfg {result['guidance_scale']:g}, temperature 1, top_k 0, "
            f"no decode; {result['repeats']} repeats after {result['warmup']} warmup; "
            f"device {result['device']} ({result['torch_threads']} torch threads)")
    lines = [head, "", f"{'sampler':<10}{'median s':>10}{'min s':>10}{'max s':>10}{'image tok/s':>14}"]
    for name in ("ours", "generate"):
        r = result[name]
        lines.append(f"{name:<10}{r['median_s']:>10.3f}{r['min_s']:>10.3f}{r['max_s']:>10.3f}"
                     f"{r['tokens_per_s']:>14.1f}")
    lines += ["", f"ratio ours/generate: {result['ratio']:.2f}x",
              f"(at the fastest times: {result['ratio_min']:.2f}x; median of per-repeat ratios: "
              f"{result['ratio_paired']:.2f}x; 1-min load average {_load(result['loadavg_1min'])})"]
    return "\n".join(lines)


def _load(pair) -> str:
    return "n/a" if pair[0] is None else f"{pair[0]:.1f} -> {pair[1]:.1f}"


def write_json(result: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


STEP_PHASES = ("sampling", "scoring", "reference", "update")


def _real_sampling(fn):
    """Step benchmarks time real sampling: rollout reuse (`cotlab.training.buffer.ROLLOUTS`) is off while they run,
    since their repeats sample the same calls with the same weights."""
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        with ROLLOUTS.off():
            return fn(*args, **kwargs)
    return timed


@_real_sampling
def bench_rl_step(tier: str = "default", steps: int = 3, repeats: int = 3, seed: int = 0, threads: int | None = None,
                  compare_plain: bool = False, profile: bool = True) -> dict:
    """Seconds per optimizer step of GRPO and of DPO with the aligned configs of preset `tier`, split into sampling
    (the CFG sampler), scoring (decode + reward), reference (the frozen reference's log-probs) and update (policy
    log-probs, loss, backward, optimizer).

    Both run `steps` steps on the same random policy of the tier's size with the exact metric reward, `repeats` times,
    interleaved in this process (the variant that goes first rotates each repeat); every figure is the median over
    the repeats of its per-step value (so the phases of a row need not add up to its total exactly), and
    `total_repeats` lists each repeat's seconds per step. DPO samples and scores the whole round before its first
    step; its per-step figures are the round's totals divided by `steps`, so the two rows compare the same number of
    images. Random weights: speed does not depend on training (pair counts do a little, through ties). With
    `compare_plain`, each algorithm also runs with `tiled_logprobs=False` (full logits), side by side, and the ratio of
    update seconds is reported.

    With `profile`, each algorithm also runs one more step under torch's profiler (apart from the timed ones, whose
    seconds it would inflate): `matmul_share` is the part of that step's wall time spent in matrix products,
    `matmul_gflops` their achieved rate, and `matmul_peak_fraction` that rate over the machine's measured throughput
    (`matmul_throughput`, in `matmul_peak_gflops`); `seconds_at_matmul_peak` is what the step's matrix products would
    take at that throughput, the floor a step's time is measured against."""
    if tier not in PRESETS or tier == "paper":
        raise ValueError(f"bench step runs a ShapeWorld preset (smoke or default), got {tier!r}")
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be at least 1, got {steps} and {repeats}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        result = {"benchmark": "rl_step", "tier": tier, "steps": steps, "repeats": repeats, "seed": seed,
                  "order": "interleaved, rotating which goes first", "torch_threads": torch.get_num_threads(),
                  "torch_version": torch.__version__}
        variants = [(a, a, True) for a in ("grpo", "dpo")]
        variants += [(f"{a}_plain", a, False) for a in ("grpo", "dpo")] if compare_plain else []
        configs = {name: preset(tier, algorithm, max_steps=steps, seed=seed, report_to=(), tiled_logprobs=tiled)
                   for name, algorithm, tiled in variants}
        def prepare(name):
            cfg = configs[name]
            trainer = trainer_for(cfg, policy=build_shapeworld_policy(cfg.policy, seed=seed),
                                  reward_model=MetricReward(), progress=False)
            return lambda: (trainer.train(), trainer.history)[1]

        histories = {name: [] for name in configs}
        walls = interleaved(prepare, configs, repeats, keep=lambda name, rows: histories[name].append(rows))
        runs = {name: [{**{phase: sum(r.get(f"time/{phase}", 0.0) for r in rows) / steps for phase in STEP_PHASES},
                        "total": wall / steps, "images_per_step": sum(r["budget/images_sampled"] for r in rows) / steps}
                       for rows, wall in zip(histories[name], walls[name])]
                for name in configs}
        for name, algorithm, tiled in variants:
            cfg = configs[name]
            result[name] = {**{key: statistics.median(run[key] for run in runs[name]) for key in runs[name][0]},
                            "total_repeats": [run["total"] for run in runs[name]],
                            "prompts_per_step": cfg.prompts_per_step, "num_generations": cfg.num_generations,
                            "beta": cfg.beta}
            if profile and tiled:
                one = trainer_for(preset(tier, algorithm, max_steps=1, seed=seed, report_to=()),
                                  policy=build_shapeworld_policy(cfg.policy, seed=seed), reward_model=MetricReward(),
                                  progress=False)
                found = matmul_profile(one.train, one.accelerator.device)
                peak = result.setdefault("matmul_peak_gflops", matmul_throughput(device=one.accelerator.device))
                rate = found["matmul_flops"] / found["matmul_s"] / 1e9 if found["matmul_s"] else 0.0
                result[name].update(matmul_share=found["matmul_s"] / found["wall_s"], matmul_gflops=rate,
                                    matmul_peak_fraction=rate / peak, matmul_flops=found["matmul_flops"],
                                    seconds_at_matmul_peak=found["matmul_flops"] / peak / 1e9,
                                    profiled_step_s=found["wall_s"])
        result["ratio_dpo_over_grpo"] = result["dpo"]["total"] / result["grpo"]["total"]
        if compare_plain:
            for a in ("grpo", "dpo"):
                result[f"ratio_update_tiled_over_plain_{a}"] = result[a]["update"] / result[f"{a}_plain"]["update"]
        return result
    finally:
        torch.set_num_threads(previous_threads)


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm")


def matmul_throughput(size: int = 1024, repeats: int = 5, device: str | torch.device = "cpu") -> float:
    """The machine's fp32 matrix-multiply throughput in GFLOP/s: the fastest of `repeats` timed (size x size) @
    (size x size) products (2 size^3 FLOPs each) after one warmup, with torch's current threads. The anchor that a
    step's matrix products are measured against."""
    dev = torch.device(device)
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    best = math.inf
    for i in range(repeats + 1):
        synchronize(dev)
        start = time.perf_counter()
        a @ b
        synchronize(dev)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def matmul_profile(fn, device: torch.device) -> dict:
    """Run `fn()` once under torch's profiler with FLOP counting: its wall seconds, the seconds spent in matrix
    products (the self time of `MATMUL_OPS`; on CUDA, their kernels' time) and those products' FLOPs."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, with_flops=True) as prof:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        wall = time.perf_counter() - start
    events = [e for e in prof.key_averages() if e.key in MATMUL_OPS]
    micros = sum(e.self_device_time_total if cuda else e.self_cpu_time_total for e in events)
    return {"wall_s": wall, "matmul_s": micros / 1e6, "matmul_flops": float(sum(e.flops for e in events))}


def format_rl_step(result: dict) -> str:
    lines = [f"seconds per optimizer step, ShapeWorld {result['tier']} preset, {result['steps']} steps, median of "
             f"{result['repeats']} interleaved repeats, random weights, {result['torch_threads']} torch threads",
             f"{'':<11}" + "".join(f"{p:>11}" for p in (*STEP_PHASES, "total")) + f"{'images':>9}"]
    for name in ("grpo", "dpo", "grpo_plain", "dpo_plain"):
        if name in result:
            r = result[name]
            lines.append(f"{name:<11}" + "".join(f"{r[p]:>11.3f}" for p in (*STEP_PHASES, "total"))
                         + f"{r['images_per_step']:>9.0f}")
    lines.append(f"ratio DPO/GRPO (total): {result['ratio_dpo_over_grpo']:.2f}x")
    if "matmul_peak_gflops" in result:
        lines.append(f"matrix products (one profiled step each; machine's measured fp32 matmul throughput "
                     f"{result['matmul_peak_gflops']:.0f} GFLOP/s):")
        for a in ("grpo", "dpo"):
            r = result[a]
            lines.append(f"  {a}: {r['matmul_share']:.0%} of the step's time, at {r['matmul_gflops']:.0f} GFLOP/s "
                         f"({r['matmul_peak_fraction']:.0%} of the measured throughput); its {r['matmul_flops'] / 1e9:.1f}"
                         f" GFLOP would take {r['seconds_at_matmul_peak']:.3f} s at that throughput, "
                         f"{r['total'] / r['seconds_at_matmul_peak']:.0f}x less than the step")
    for a in ("grpo", "dpo"):
        if f"ratio_update_tiled_over_plain_{a}" in result:
            lines.append(f"{a}: update with tiled log-probs / full logits: "
                         f"{result[f'ratio_update_tiled_over_plain_{a}']:.2f}x")
    return "\n".join(lines)


@_real_sampling
def bench_scaling(tier: str = "default", group_sizes=(2, 4, 8), prompts=(4, 8, 16), grids=(4, 6, 8, 11),
                  steps: int = 2, seed: int = 0, threads: int | None = None) -> dict:
    """How a GRPO step's seconds grow along three axes, one at a time, from the `tier` preset (random policy of the
    tier's size, exact metric reward): `num_generations` over `group_sizes` and `prompts_per_step` over `prompts`
    (whole trainer steps: the median of `steps` steps, setup excluded, split into phases as `bench_rl_step`), and
    `image_tokens` over token grids of side `grids` (ShapeWorld's image side is fixed at 8 x 8, so this axis times a
    step's two kernels on random Janus models of the same language model with a grid x grid image: sampling the
    preset's prompts x group with CFG, and the update's forward and backward of the tiled log-probs; no reward).
    Returns a JSON-able dict whose `rows` have axis, value, images, seconds and the phase seconds."""
    if tier not in PRESETS or tier == "paper":
        raise ValueError(f"bench scaling runs a ShapeWorld preset (smoke or default), got {tier!r}")
    if steps < 1 or min((*group_sizes, *prompts, *grids), default=1) < 1:
        raise ValueError("steps, group sizes, prompts and grids must be at least 1")
    if any(g < 2 for g in group_sizes):
        raise ValueError(f"GRPO's group size must be at least 2, got {list(group_sizes)}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        base = preset(tier, "grpo")
        rows = []
        for axis, values in (("num_generations", group_sizes), ("prompts_per_step", prompts)):
            for value in values:
                cfg = preset(tier, "grpo", max_steps=steps, seed=seed, report_to=(), **{axis: value})
                trainer = trainer_for(cfg, policy=build_shapeworld_policy(cfg.policy, seed=seed),
                                      reward_model=MetricReward(), progress=False)
                trainer.train()
                phases = {p: statistics.median(r.get(f"time/{p}", 0.0) for r in trainer.history)
                          for p in STEP_PHASES}
                rows.append({"axis": axis, "value": value, "images": cfg.prompts_per_step * cfg.num_generations,
                             "seconds": statistics.median(r["time/step"] for r in trainer.history), **phases})
        size = dataclasses.replace(SHAPEWORLD_SIZES[base.policy if base.policy in SHAPEWORLD_SIZES else "default"],
                                   max_positions=max(grids) ** 2 + 64)
        prompts_text = sample_captions(base.prompts_per_step, seed)
        rows_prompts = [p for p in prompts_text for _ in range(base.num_generations)]
        for grid in grids:
            policy = build_janus_pro_shaped_policy(seed, size, codebook_size=751, grid=grid, image_size=8 * grid)
            generator = torch.Generator().manual_seed(seed)
            sampling, update = [], []
            for _ in range(steps + 1):  # the first is a warmup
                start = time.perf_counter()
                tokens = policy.sample(prompts_text, base.num_generations, guidance_scale=base.guidance_scale,
                                       generator=generator, decode=False).image_tokens
                middle = time.perf_counter()
                logp = policy.token_logprobs(rows_prompts, tokens, guidance_scale=base.guidance_scale, tiled=True)
                (logp.mean(1) * torch.randn(len(rows_prompts), generator=generator)).mean().backward()
                policy.model.zero_grad(set_to_none=True)
                sampling.append(middle - start)
                update.append(time.perf_counter() - middle)
            phases = {"sampling": statistics.median(sampling[1:]), "update": statistics.median(update[1:])}
            rows.append({"axis": "image_tokens", "value": grid * grid, "images": len(rows_prompts),
                         "seconds": phases["sampling"] + phases["update"], "scoring": 0.0, "reference": 0.0,
                         **phases})
        return {"benchmark": "scaling", "tier": tier, "steps": steps, "seed": seed, "rows": rows,
                "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
                "base": {"num_generations": base.num_generations, "prompts_per_step": base.prompts_per_step,
                         "image_tokens": 64}}
    finally:
        torch.set_num_threads(previous_threads)


def format_scaling(result: dict) -> str:
    lines = [f"seconds per GRPO step along one axis at a time ({result['tier']} preset, random weights, median of "
             f"{result['steps']} steps; image_tokens: sampling + update kernels only, no reward)",
             f"{'axis':<18}{'value':>7}{'images':>8}{'seconds':>9}" + "".join(f"{p:>11}" for p in STEP_PHASES)]
    for r in result["rows"]:
        lines.append(f"{r['axis']:<18}{r['value']:>7}{r['images']:>8}{r['seconds']:>9.3f}"
                     + "".join(f"{r[p]:>11.3f}" for p in STEP_PHASES))
    return "\n".join(lines)


LOGPROB_METHODS = ("plain", "trl", "tiled")
# The goal for the tiled path, against plain log_softmax + gather: peak memory and time at most these.
LOGPROB_GOAL = {"memory": 0.25, "time": 1.2}


def peak_memory_bytes(fn, device: torch.device) -> int:
    """Peak bytes allocated by torch while ``fn()`` runs, above what was allocated when it began.

    CUDA: `torch.cuda.max_memory_allocated`. CPU, where torch keeps no such statistic (and `tracemalloc` does not see
    torch's allocations): torch's profiler with ``profile_memory=True`` records every CPU allocation and free with the
    allocator's running total (`total_allocated`) at that moment; the peak is the largest total minus the total
    before the first event. Both count only tensors' memory, not the interpreter's or the allocator's slack."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.total_allocated))
    if not events:
        return 0
    _, first_size, first_total = min(events)
    return max(total for _, _, total in events) - (first_total - first_size)


def bench_logprobs(sequences: int = 1, hidden_size: int = 64, vocab_size: int = JANUS_PRO_CODEBOOK,
                   tokens: int = JANUS_PRO_GRID ** 2, temperature: float = 1.0, token_chunk: int | None = None,
                   vocab_chunk: int | None = None, trained_head: bool = False, repeats: int = 5, warmup: int = 1,
                   seed: int = 0, device: str | None = None, threads: int | None = None,
                   verbose: bool = False) -> dict:
    """Peak memory and seconds of per-token log-probs from hidden states, forward and backward (the loss is their sum;
    gradients for the hidden states, and with ``trained_head`` for the head's weight and bias too; by default the
    head is frozen, as in the trainers, where only the language model trains), three ways on the same random fp32
    inputs:

    * ``plain``: ``log_softmax((h @ W.T + b) / temperature).gather(tokens)``;
    * ``trl``: the same logits, then TRL's `selective_log_softmax` (per-sequence log-sum-exp); the logits count in its
      memory, since the comparison is the whole path from hidden states;
    * ``tiled``: `cotlab.kernels.logprobs_from_hidden` (``token_chunk`` / ``vocab_chunk`` left as None take its
      defaults).

    Defaults are Janus-Pro's image side: 16,384 codes and 576 tokens per image, ``sequences`` images; ``hidden_size``
    is 2048 in Janus-Pro-1B, 64 by default here to keep a CPU run short (the head's matmuls grow with it, the softmax
    work does not). Times are medians over ``repeats`` after ``warmup`` rounds, the three run interleaved with the
    first one rotating each repeat. Peak memory is measured once per method by `peak_memory_bytes` (CUDA's allocator
    statistics, or torch's profiler on CPU) and includes the gradients, which are the same for all three.
    Returns a JSON-able dict; ``memory_ratio`` and ``time_ratio`` are each method's over plain's, and
    ``memory_ratio_without_gradients`` the memory ratio once the gradients' bytes are taken off both peaks (what the
    chunking changes; the head's weight gradient, V x D, dominates the peaks when D is large and the batch small).
    ``goal_met``: the tiled path within `LOGPROB_GOAL` on ``memory_ratio`` (gradients included) and ``time_ratio``."""
    if min(sequences, hidden_size, vocab_size, tokens) < 1:
        raise ValueError(f"sequences, hidden_size, vocab_size and tokens must be at least 1, got {sequences}, "
                         f"{hidden_size}, {vocab_size} and {tokens}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    token_chunk = TOKEN_CHUNK if token_chunk is None else token_chunk
    vocab_chunk = VOCAB_CHUNK if vocab_chunk is None else vocab_chunk
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_logprobs(sequences, hidden_size, vocab_size, tokens, temperature, token_chunk, vocab_chunk,
                               trained_head, repeats, warmup, seed, device, verbose)
    finally:
        torch.set_num_threads(previous_threads)


def _bench_logprobs(sequences, hidden_size, vocab_size, tokens, temperature, token_chunk, vocab_chunk, trained_head,
                    repeats, warmup, seed, device, verbose) -> dict:
    from trl.trainer.utils import selective_log_softmax

    dev = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(sequences, tokens, hidden_size, generator=generator).to(dev).requires_grad_()
    weight = (torch.randn(vocab_size, hidden_size, generator=generator) / hidden_size ** 0.5).to(dev)
    bias = (0.1 * torch.randn(vocab_size, generator=generator)).to(dev)
    targets = torch.randint(0, vocab_size, (sequences, tokens), generator=generator).to(dev)
    inputs = (hidden, weight.requires_grad_(), bias.requires_grad_()) if trained_head else (hidden,)

    def logits():
        return hidden @ weight.T + bias

    forwards = {
        "plain": lambda: torch.log_softmax(logits() / temperature, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1),
        "trl": lambda: selective_log_softmax(logits(), targets, temperature=temperature),
        "tiled": lambda: logprobs_from_hidden(hidden, weight, targets, bias, temperature=temperature,
                                                token_chunk=token_chunk, vocab_chunk=vocab_chunk),
    }

    def forward_backward(name):
        logprobs = forwards[name]()
        logprobs.sum().backward()
        return logprobs.detach()

    def clear_gradients():  # outside the measurements, so that each starts from the same allocations
        for tensor in inputs:
            tensor.grad = None

    def prepare(name):
        clear_gradients()
        return functools.partial(forward_backward, name)

    values = {}
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    times = interleaved(prepare, LOGPROB_METHODS, repeats, warmup=warmup, device=dev, keep=values.__setitem__,
                        verbose=verbose)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    peaks = {}
    for name in LOGPROB_METHODS:
        clear_gradients()
        peaks[name] = peak_memory_bytes(functools.partial(forward_backward, name), dev)

    rows = sequences * tokens
    result = {
        "benchmark": "logprobs",
        "sequences": sequences,
        "tokens": tokens,
        "hidden_size": hidden_size,
        "vocab_size": vocab_size,
        "temperature": temperature,
        "dtype": "float32",
        "token_chunk": token_chunk,
        "vocab_chunk": vocab_chunk,
        "trained_head": trained_head,
        "logits_bytes": rows * vocab_size * 4,  # one fp32 copy of the full logits
        "gradient_bytes": sum(t.numel() for t in inputs) * 4,  # grads of hidden (weight, bias): in every peak
        "repeats": repeats,
        "warmup": warmup,
        "seed": seed,
        "order": "interleaved, rotating which goes first",
        "peak_memory_method": ("torch.cuda.max_memory_allocated" if dev.type == "cuda"
                               else "torch.profiler allocation events (total_allocated)"),
        **machine_record(dev),
        "torch_version": torch.__version__,
        "trl_version": __import__("trl").__version__,
        "loadavg_1min": [load_start, load_end],
    }
    for name in LOGPROB_METHODS:
        result[name] = {**_summary(times[name], rows), "peak_bytes": peaks[name],
                        "max_abs_diff_vs_plain": (values[name] - values["plain"]).abs().max().item()}
    for name in LOGPROB_METHODS:
        result[name]["memory_ratio"] = peaks[name] / peaks["plain"]
        result[name]["memory_ratio_without_gradients"] = ((peaks[name] - result["gradient_bytes"])
                                                          / (peaks["plain"] - result["gradient_bytes"]))
        result[name]["time_ratio"] = result[name]["median_s"] / result["plain"]["median_s"]
    result["goal_met"] = (result["tiled"]["memory_ratio"] <= LOGPROB_GOAL["memory"]
                          and result["tiled"]["time_ratio"] <= LOGPROB_GOAL["time"])
    return result


def format_logprobs(result: dict) -> str:
    """A table of a `bench_logprobs` result: time and peak memory per method, and their ratios to plain."""
    lines = [f"per-token log-probs from hidden states, forward + backward: {result['sequences']} x {result['tokens']} "
             f"tokens, {result['vocab_size']} codes, hidden {result['hidden_size']}, fp32, temperature "
             f"{result['temperature']:g}; tiled tile {result['token_chunk']} x {result['vocab_chunk']}; head "
             f"{'trained (gradients for its weight and bias)' if result['trained_head'] else 'frozen'}",
             f"{result['repeats']} repeats after {result['warmup']} warmup, device {result['device']} "
             f"({result['torch_threads']} torch threads); peak memory by {result['peak_memory_method']}; one fp32 "
             f"copy of the logits is {result['logits_bytes'] / 2**20:.1f} MiB, the gradients (in every peak) "
             f"{result['gradient_bytes'] / 2**20:.1f} MiB",
             "",
             f"{'method':<9}{'median s':>10}{'min s':>9}{'max s':>9}{'peak MiB':>10}{'time/plain':>12}"
             f"{'memory/plain':>14}{'(w/o grads)':>13}{'max |diff|':>12}"]
    for name in LOGPROB_METHODS:
        r = result[name]
        lines.append(f"{name:<9}{r['median_s']:>10.4f}{r['min_s']:>9.4f}{r['max_s']:>9.4f}"
                     f"{r['peak_bytes'] / 2**20:>10.1f}{r['time_ratio']:>12.2f}{r['memory_ratio']:>14.3f}"
                     f"{r['memory_ratio_without_gradients']:>13.3f}{r['max_abs_diff_vs_plain']:>12.1e}")
    lines += ["", f"goal (tiled: memory <= {LOGPROB_GOAL['memory']:.0%} of plain at <= {LOGPROB_GOAL['time']}x "
                  f"its time): {'met' if result['goal_met'] else 'not met'} "
                  f"(1-min load average {_load(result['loadavg_1min'])})"]
    return "\n".join(lines)


# ---------------------------------------------------------------- results as tables (the benchmarks appendix)


def sampler_table(results: Sequence[dict]):
    """`bench_sampler` results as a table, one row each: model, rows (CFG doubles the prompts' rows), image tokens,
    both throughputs, their ratio at the median times and the paired ratio."""
    return pd.DataFrame([{
        "model": r["model"], "rows (CFG doubles them)": r["rows"] * 2, "image tokens": r["image_tokens"],
        "ours (tokens/s)": r["ours"]["tokens_per_s"], "generate (tokens/s)": r["generate"]["tokens_per_s"],
        "ours / generate": r["ratio"], "paired ratio (median over repeats)": r["ratio_paired"]} for r in results])


def logprob_table(results: Sequence[dict]):
    """`bench_logprobs` results as a table, one row per result and method of `LOGPROB_METHODS`: hidden size, head,
    method, median seconds, peak MiB, time and memory against plain (and memory without the gradients every method
    holds), and the largest difference from plain's log-probs in units of 1e-6."""
    return pd.DataFrame([{
        "hidden size": r["hidden_size"], "head": "trained" if r["trained_head"] else "frozen", "method": m,
        "median s": r[m]["median_s"], "peak MiB": r[m]["peak_bytes"] / 2**20, "time / plain": r[m]["time_ratio"],
        "memory / plain": r[m]["memory_ratio"],
        "memory / plain without gradients": r[m]["memory_ratio_without_gradients"],
        "max |diff| vs plain (1e-6)": r[m]["max_abs_diff_vs_plain"] * 1e6}
        for r in results for m in LOGPROB_METHODS])


STEP_VARIANTS = (("grpo", "GRPO"), ("dpo", "DPO"), ("grpo_plain", "GRPO, full logits"),
                 ("dpo_plain", "DPO, full logits"))


def step_table(result: dict):
    """A `bench_rl_step` result as seconds per step, one row per variant it ran (GRPO, DPO and, when it compared the
    plain log-prob path, their full-logits runs): the phases of `STEP_PHASES`, the total and the images per step."""
    return pd.DataFrame({name: {**{p: result[key][p] for p in (*STEP_PHASES, "total")},
                                "images": result[key]["images_per_step"]}
                         for key, name in STEP_VARIANTS if key in result}).T.rename_axis("seconds per step")


def matmul_table(result: dict):
    """The matrix products of a `bench_rl_step` result's profiled GRPO and DPO steps, one column each: their share of
    the step, their rate, that rate as a fraction of the machine's measured throughput, the GFLOP per step, the
    seconds they would take at that throughput, and the step's seconds over those."""
    return pd.DataFrame({name: {
        "share of the step in matrix products": result[key]["matmul_share"],
        "their rate (GFLOP/s)": result[key]["matmul_gflops"],
        "fraction of the measured throughput": result[key]["matmul_peak_fraction"],
        "GFLOP per step": result[key]["matmul_flops"] / 1e9,
        "seconds at the measured throughput": result[key]["seconds_at_matmul_peak"],
        "step seconds / that": result[key]["total"] / result[key]["seconds_at_matmul_peak"]}
        for key, name in STEP_VARIANTS[:2]})


SAMPLER_GOAL = 2.0  # the goal for our sampler: at least this many times generate's tokens per second
THROUGHPUT_GOAL = 4.0  # the goal for the whole study's runs per hour: the executor's over one process's


def appendix_findings(samplers: Sequence[dict], logprobs: Sequence[dict], step: dict, scaling: dict,
                      throughput: dict, sampler_size: str = "default") -> str:
    """The benchmarks appendix's "What this appendix found" (Markdown, its heading included), read from its results:
    `samplers` (`bench_sampler`'s, ShapeWorld's first, then the Janus-Pro-shaped one if run), `logprobs`
    (`bench_logprobs`'s), `step` (`bench_rl_step`'s), `scaling` (`bench_scaling`'s, its group-size rows) and
    `throughput` (`cotlab.experiments.throughput.bench_throughput`'s). Each goal is reported as met or not."""
    shapeworld, jp = samplers[0], (samplers[1] if len(samplers) > 1 else None)
    groups = [r for r in scaling["rows"] if r["axis"] == "num_generations"]
    matmul_bound = max(step[a]["matmul_share"] for a in ("grpo", "dpo")) >= 0.5
    lines = [
        f"* **Sampler**: {shapeworld['ratio']:.2f}x `generate` on ShapeWorld's {sampler_size} policy"
        + (f" and {jp['ratio']:.2f}x on the Janus-Pro-shaped one" if jp else "")
        + f"; the goal of {SAMPLER_GOAL:g}x is {'met' if shapeworld['ratio'] >= SAMPLER_GOAL else 'not met'} on "
          f"ShapeWorld.",
        f"* **Log-probs**, tiled peak memory and time against plain (goal: <= {LOGPROB_GOAL['memory']:.0%} at <= "
        f"{LOGPROB_GOAL['time']:g}x): "
        + "; ".join(f"hidden size {r['hidden_size']}, head {'trained' if r['trained_head'] else 'frozen'}: "
                    f"{r['tiled']['memory_ratio']:.0%} at {r['tiled']['time_ratio']:.2f}x "
                    f"({'met' if r['goal_met'] else 'not met'})" for r in logprobs)
        + ".",
        f"* **Steps**: GRPO {step['grpo']['total']:.2f} s, DPO {step['dpo']['total']:.2f} s per step; matrix products "
        f"are {step['grpo']['matmul_share']:.0%} (GRPO) and {step['dpo']['matmul_share']:.0%} (DPO) of a step, at "
        f"{step['grpo']['matmul_peak_fraction']:.0%} and {step['dpo']['matmul_peak_fraction']:.0%} of the machine's "
        f"measured matmul throughput"
        + (": a step is mostly matrix products, so its time follows the FLOPs." if matmul_bound else
           ": most of a step is not arithmetic but per-operation overhead, memory traffic and the Python loop around "
           "small kernels.")
        + (f" From group size {groups[0]['value']} to {groups[-1]['value']} "
           f"({groups[-1]['images'] / groups[0]['images']:.0f}x the images) a GRPO step takes "
           f"{groups[-1]['seconds'] / groups[0]['seconds']:.2f}x the time." if len(groups) > 1 else ""),
        f"* **Throughput**: {throughput['runs']} runs with their evaluations took "
        f"{throughput['sequential']['seconds']:.0f} s one after another and {throughput['executor']['seconds']:.0f} s "
        f"on {throughput['workers']} workers: {throughput['speedup']:.2f}x the runs per hour (the goal for the whole "
        f"study is {THROUGHPUT_GOAL:g}x).",
    ]
    return "## What this appendix found\n\n" + "\n".join(lines)
