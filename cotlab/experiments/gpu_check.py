"""`cotlab gpu-check`: what a lent GPU must confirm before paper-scale runs, in a few minutes, on random weights.

1. Sampler parity: our CFG sampler (`JanusPolicy.sample`, greedy) against transformers'
   `generate(generation_mode="image")`, token for token, with the weights in fp32 and in bf16 (`generate`'s cache
   refuses autocast, so bf16 here is the weights' dtype, as `from_pretrained(dtype=bfloat16)` loads them); and,
   sampling at temperature 1, the log-probs the sampler records against the teacher-forced ones (`token_logprobs`).
   fp32 must agree (tokens exactly, log-probs within `FP32_LOGPROB_ATOL`); in bf16 the two paths round differently,
   so rows may part at a near-tie: measured and reported (where they part), not required.
2. The tiled log-prob kernel (`cotlab.kernels.logprobs_from_hidden`): its Triton path and its torch path against
   plain `log_softmax` + `gather` in fp32 on the same (bf16-rounded, for bf16) inputs, at Janus-Pro's shapes (16384
   codes, 576 tokens per image): log-probs, and gradients with a frozen and with a trained head; plus each one's
   seconds for a forward and backward.
3. A few GRPO and DPO steps of a random model with Janus-Pro-1B's language model and image side (hidden 2048, 24
   layers, MLP 5632, 102400 text tokens, 16384 codes, 576 tokens; vision tower and VQ the smallest the architecture
   allows), with the `janus-pro-1b` preset (bf16 under accelerate, gradient checkpointing, tiled log-probs, only the
   language model trains): peak memory (`torch.cuda.max_memory_allocated`), seconds per step, images per second per
   GPU; and the cost model's estimate for the same settings (`cotlab.experiments.plan.estimate`), also adjusted for
   the parameters the random model lacks (the real vision tower and VQ), against them.

Sizes: "janus-pro-1b" (the GPU check) and "tiny" (the same code on a CPU in seconds, for the tests; no cost-model
comparison, which describes Janus-Pro only). The reward is `BrightnessReward`: the check measures speed and memory,
not learning, and a cheap reward whose values differ per image keeps GRPO's advantages and DPO's pairs non-trivial.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import time
from pathlib import Path

import torch

from cotlab.experiments.plan import estimate
from cotlab.kernels import logprobs_from_hidden, triton_usable
from cotlab.machine import machine_record, synchronize
from cotlab.policy import JanusPolicy, JanusSize
from cotlab.policy.configs import JANUS_PRO_CODEBOOK, JANUS_PRO_GRID, JANUS_PRO_IMAGE_SIZE
from cotlab.policy.shapeworld import build_janus_pro_shaped_policy
from cotlab.training import preset, trainer_for
from cotlab.training.buffer import ROLLOUTS
from cotlab.world import sample_captions

GIB = 2 ** 30
# fp32: recorded and teacher-forced log-probs are one computation by two paths (a KV cache against one forward pass)
FP32_LOGPROB_ATOL = 1e-3


@dataclasses.dataclass(frozen=True)
class CheckSize:
    """A random Janus to check with: its language model, text vocabulary (None: the tokenizer's), image side, and
    the batch of the RL steps and of the kernel check."""

    janus: JanusSize
    vocab_size: int | None
    codebook_size: int
    grid: int
    image_size: int
    prompts_per_step: int
    num_generations: int
    parity_prompts: int
    kernel_images: int
    cost_model: str | None  # the `plan.MODELS` entry it stands for


SIZES = {
    "janus-pro-1b": CheckSize(JanusSize(hidden_size=2048, num_layers=24, num_heads=16, intermediate_size=5632,
                                        image_embed_dim=8, max_positions=640),
                              102400, JANUS_PRO_CODEBOOK, JANUS_PRO_GRID, JANUS_PRO_IMAGE_SIZE,
                              prompts_per_step=8, num_generations=4, parity_prompts=4, kernel_images=4,
                              cost_model="janus-pro-1b"),
    "tiny": CheckSize(JanusSize(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, image_embed_dim=8),
                      None, 64, 4, 32, prompts_per_step=2, num_generations=4, parity_prompts=3, kernel_images=2,
                      cost_model=None),
}


class CheckError(RuntimeError):
    """The machine cannot run the check (no CUDA GPU for the GPU size)."""


def check_device(device: str, size: str) -> torch.device:
    """The torch device to check on; refuse an unknown size, and a CUDA device on a machine without one."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known: {', '.join(SIZES)} (tiny is the CPU dry run of the tests)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise CheckError(f"needs a CUDA GPU and found none (torch {torch.__version__}, {build}); run it on a machine "
                         f"with one. Nothing was run.")
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"device {device!r}: expected cuda, cuda:N or cpu")
    return dev


def build_policy(size: str, device, seed: int = 0, head_scale: float = 1.0) -> JanusPolicy:
    """A random Janus of `SIZES[size]` built on `device` (fp32; `build_janus_pro_shaped_policy`). `head_scale`
    widens the generation head's logits (random init leaves them near-uniform, so that greedy paths would hinge on
    ties)."""
    s = SIZES[size]
    policy = build_janus_pro_shaped_policy(seed, s.janus, codebook_size=s.codebook_size, grid=s.grid,
                                           image_size=s.image_size, vocab_size=s.vocab_size, device=device)
    if head_scale != 1:
        with torch.no_grad():
            for p in policy.model.model.generation_head.parameters():
                p.mul_(head_scale)
    return policy


# -- 1. sampler parity ---------------------------------------------------------------------------------------------

def sampler_parity(policy: JanusPolicy, texts: list[str], dtype: str = "fp32", guidance_scale: float = 5.0,
                   seed: int = 0) -> dict:
    """Greedy tokens of `policy.sample` against `generate`'s (CFG `guidance_scale`, `top_k=0`), and the sampler's
    recorded log-probs at temperature 1 against the teacher-forced ones, with the weights cast to `dtype` (in
    place)."""
    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"dtype must be fp32 or bf16, got {dtype!r}")
    dev = policy.device
    policy.model.to(torch.bfloat16 if dtype == "bf16" else torch.float32)
    with torch.inference_mode():
        ours = policy.sample(texts, 1, guidance_scale=guidance_scale, temperature=0, decode=False).image_tokens
        ids, mask = policy.encode_prompts(texts)
        theirs = policy.model.generate(input_ids=ids, attention_mask=mask, generation_mode="image", do_sample=False,
                                       guidance_scale=guidance_scale, top_k=0)
        roll = policy.sample(texts, 1, guidance_scale=guidance_scale, temperature=1.0,
                             generator=torch.Generator(dev).manual_seed(seed), decode=False)
        forced = policy.token_logprobs(roll.prompts, roll.image_tokens, guidance_scale=guidance_scale)
    same = ours.eq(theirs.to(ours.device))
    parted = [int(row.logical_not().nonzero()[0]) if not row.all() else None for row in same]
    gap = (forced.float() - roll.logprobs.float()).abs().max().item()
    return {"dtype": dtype, "rows": len(texts), "tokens_per_row": ours.shape[1],
            "identical_rows": sum(p is None for p in parted), "token_agreement": same.float().mean().item(),
            "first_difference": parted, "distinct_tokens": int(ours.unique().numel()),
            "logprob_max_abs_diff": gap,
            "passed": dtype == "bf16" or (all(p is None for p in parted) and gap <= FP32_LOGPROB_ATOL)}


# -- 2. the tiled log-prob kernel ----------------------------------------------------------------------------------

def kernel_check(device, images: int, tokens: int, hidden_size: int, codebook_size: int, dtype: str = "fp32",
                 seed: int = 0, atol: float = 1e-3) -> dict:
    """Each backend of `logprobs_from_hidden` against plain fp32 `log_softmax` + `gather` on the same inputs: max
    absolute difference of the log-probs, and of the gradients (frozen head: hidden; trained head: hidden, weight,
    bias) relative to the largest reference entry; seconds of one forward and backward after an untimed one (which
    compiles Triton's kernels). Triton is reported as skipped where it cannot run (no CUDA, or no triton package)."""
    dev = torch.device(device)
    gen = torch.Generator(dev).manual_seed(seed)
    cast = torch.bfloat16 if dtype == "bf16" else torch.float32
    hidden = torch.randn(images, tokens, hidden_size, generator=gen, device=dev).to(cast)
    weight = (torch.randn(codebook_size, hidden_size, generator=gen, device=dev) / hidden_size ** 0.5).to(cast)
    bias = (torch.randn(codebook_size, generator=gen, device=dev) * 0.1).to(cast)
    targets = torch.randint(codebook_size, (images, tokens), generator=gen, device=dev)
    upstream = torch.randn(images, tokens, generator=gen, device=dev)

    def run(backend: str | None, trained_head: bool):
        h = hidden.detach().clone().requires_grad_(True)
        w, b = weight.detach().clone().requires_grad_(trained_head), bias.detach().clone().requires_grad_(trained_head)
        synchronize(dev)
        start = time.perf_counter()
        if backend is None:  # the reference: plain fp32 on the same values
            logits = h.float() @ w.float().T + b.float()
            logp = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
        else:
            logp = logprobs_from_hidden(h, w, targets, b, backend=backend)
        (logp * upstream).sum().backward()
        synchronize(dev)
        grads = {"hidden": h.grad} | ({"weight": w.grad, "bias": b.grad} if trained_head else {})
        return logp.detach(), {k: v.float() for k, v in grads.items()}, time.perf_counter() - start

    out = {"dtype": dtype, "images": images, "tokens": tokens, "hidden_size": hidden_size,
           "codebook_size": codebook_size, "atol": atol, "backends": {}}
    for head in ("frozen", "trained"):
        run(None, head == "trained")
        ref_logp, ref_grads, ref_s = run(None, head == "trained")
        out["backends"][f"plain/{head}"] = {"seconds": ref_s}
        for backend in ("torch", "triton"):
            if backend == "triton" and not triton_usable(dev):
                out["backends"][f"{backend}/{head}"] = {"skipped": "needs CUDA and the triton package"}
                continue
            run(backend, head == "trained")
            logp, grads, seconds = run(backend, head == "trained")
            grad_diff = max(((grads[k] - ref_grads[k]).abs().max() / ref_grads[k].abs().max().clamp(min=1e-12)).item()
                            for k in ref_grads)
            logp_diff = (logp - ref_logp).abs().max().item()
            out["backends"][f"{backend}/{head}"] = {"seconds": seconds, "logprob_max_abs_diff": logp_diff,
                                                     "grad_max_rel_diff": grad_diff,
                                                     "passed": logp_diff <= atol and grad_diff <= atol}
    return out


# -- 3. RL steps against the cost model ----------------------------------------------------------------------------

class BrightnessReward:
    """r = the image's mean brightness in [0, 1]: continuous, distinct per image, and free, so that the check times
    the trainer rather than a reward model."""

    name = "brightness"

    def __call__(self, prompts, images, metadata=None) -> torch.Tensor:
        import numpy as np

        return torch.tensor([float(np.asarray(image.convert("L"), dtype=np.float32).mean() / 255) for image in images])


def rl_steps(policy: JanusPolicy, algorithm: str, size: str, steps: int, seed: int = 0) -> dict:
    """`steps` optimizer steps of the `janus-pro-1b` preset's `algorithm` on `policy` with `SIZES[size]`'s batch:
    wall seconds per step (round sampling and the first step's warm-up included), the phases' seconds, images per
    second, and the peak memory allocated (CUDA only) from the trainer's creation to its end."""
    from accelerate import Accelerator

    s = SIZES[size]
    dev = policy.device
    cfg = preset("janus-pro-1b", algorithm, max_steps=steps, seed=seed, prompts_per_step=s.prompts_per_step,
                 num_generations=s.num_generations, report_to=())
    texts = sample_captions(4 * s.prompts_per_step, seed)
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    with ROLLOUTS.off():  # time real sampling, never a reused rollout
        trainer = trainer_for(cfg, policy=policy, reward_model=BrightnessReward(), prompts=texts, progress=False,
                              accelerator=Accelerator(mixed_precision=cfg.mixed_precision, cpu=dev.type == "cpu"))
        synchronize(dev)
        start = time.perf_counter()
        trainer.train()
        synchronize(dev)
        wall = time.perf_counter() - start
    rows = trainer.history
    images = sum(r["budget/images_sampled"] for r in rows)
    peak = torch.cuda.max_memory_allocated(dev) / GIB if dev.type == "cuda" else None
    prompt_tokens = int(policy.encode_prompts(texts)[1].sum(1).max())
    del trainer
    gc.collect()
    return {"algorithm": algorithm, "steps": len(rows), "prompts_per_step": cfg.prompts_per_step,
            "num_generations": cfg.num_generations, "mixed_precision": cfg.mixed_precision,
            "gradient_checkpointing": cfg.gradient_checkpointing, "tiled_logprobs": cfg.tiled_logprobs,
            "sample_batch_images": cfg.sample_batch_images, "beta": cfg.beta, "prompt_tokens": prompt_tokens,
            "step_s": wall / len(rows),
            **{f"{phase}_s": sum(r.get(f"time/{phase}", 0.0) for r in rows) / len(rows)
               for phase in ("sampling", "scoring", "reference", "update")},
            "images_per_s": images / wall,
            "loss_finite": all(torch.isfinite(torch.tensor(r["loss/total"])) for r in rows),
            "peak_gib": peak}


def against_cost_model(measured: dict, model: str, gpu, missing_params: int = 0) -> dict:
    """The cost model's estimate for a measured run's settings on 1 x `gpu` (DDP), its ratios to the measurement
    (estimate / measured), and the memory estimate less the bf16 weights of `missing_params` parameters that the
    measured model lacks (held twice when the run keeps a reference)."""
    settings = {k: measured[k] for k in ("prompts_per_step", "num_generations", "prompt_tokens", "tiled_logprobs",
                                         "gradient_checkpointing", "sample_batch_images")}
    if measured["algorithm"] == "grpo":
        settings["beta"] = measured["beta"]
    row = estimate(model, measured["algorithm"], num_gpus=1, strategy="ddp", gpu=gpu, **settings)
    copies = 2 if row["reference_gib"] > 0 else 1
    adjusted = row["total_gib"] - copies * 2 * missing_params / GIB
    out = {"model": model, "estimate_peak_gib": row["total_gib"], "estimate_peak_gib_adjusted": adjusted,
           "estimate_step_s": row["step_s"], "estimate_fits": row["fits"],
           "step_ratio": row["step_s"] / measured["step_s"]}
    if measured.get("peak_gib"):
        out["peak_ratio"] = row["total_gib"] / measured["peak_gib"]
        out["peak_ratio_adjusted"] = adjusted / measured["peak_gib"]
    return out


def gpu_check(device: str = "cuda", size: str = "janus-pro-1b", steps: int = 3, seed: int = 0) -> dict:
    """Every check above on `device` with `SIZES[size]`; a JSON-able report with `passed` (parity in fp32 and every
    kernel backend that ran within tolerance, and finite losses)."""
    dev = check_device(device, size)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    s = SIZES[size]
    began = time.perf_counter()
    report = {"check": "gpu-check", "size": size, **machine_record(dev), "torch_version": torch.__version__,
              "transformers_version": __import__("transformers").__version__}
    policy = build_policy(size, dev, seed, head_scale=5.0)
    texts = sample_captions(s.parity_prompts, seed)
    report["parity"] = [sampler_parity(policy, texts, dtype) for dtype in ("fp32", "bf16")]
    del policy
    report["kernel"] = [kernel_check(dev, s.kernel_images, s.grid ** 2, s.janus.hidden_size, s.codebook_size, dtype)
                        for dtype in ("fp32", "bf16")]
    policy = build_policy(size, dev, seed)
    parameters = sum(p.numel() for p in policy.model.parameters())
    report["rl"] = []
    for algorithm in ("grpo", "dpo"):
        policy = build_policy(size, dev, seed) if report["rl"] else policy  # each algorithm from the same weights
        report["rl"].append(rl_steps(policy, algorithm, size, steps, seed))
    report["parameters"] = parameters
    if s.cost_model is not None:
        from cotlab.experiments.plan import GPUS, local_gpu, model_spec

        gpu = local_gpu(dev.index or 0) if dev.type == "cuda" else GPUS["h100-80gb"]
        missing = model_spec(s.cost_model).total_params - parameters
        report["cost_model"] = [against_cost_model(r, s.cost_model, gpu, missing) for r in report["rl"]]
        report["cost_model_gpu"] = gpu.name
        report["missing_parameters"] = missing
    report["seconds"] = time.perf_counter() - began
    kernels_ok = all(b.get("passed", True) for k in report["kernel"] for b in k["backends"].values())
    report["passed"] = (all(p["passed"] for p in report["parity"]) and kernels_ok
                        and all(r["loss_finite"] for r in report["rl"]))
    return report


def format_gpu_check(report: dict) -> str:
    """The report as tables: parity, kernel, RL steps, and the cost model against the measurement."""
    lines = [f"cotlab gpu-check ({report['size']}) on {report['device']} ({report['device_name']}), "
             f"{report['parameters'] / 1e6:,.1f}M parameters, {report['seconds']:.0f} s", "",
             "sampler vs generate (greedy, CFG 5) and recorded vs teacher-forced log-probs (temperature 1):",
             f"  {'dtype':<6}{'identical rows':>16}{'token agreement':>17}{'max |dlogp|':>13}  verdict"]
    for p in report["parity"]:
        verdict = ("pass" if p["identical_rows"] == p["rows"] else
                   ("FAIL" if p["dtype"] == "fp32" else f"rows part at tokens {p['first_difference']}"))
        lines.append(f"  {p['dtype']:<6}{p['identical_rows']:>11}/{p['rows']:<4}{p['token_agreement']:>17.4f}"
                     f"{p['logprob_max_abs_diff']:>13.2e}  {verdict}")
    lines += ["", "tiled log-probs vs plain fp32 log_softmax + gather (forward and backward):",
              f"  {'dtype':<6}{'backend/head':<16}{'seconds':>9}{'max |dlogp|':>13}{'grad rel':>10}  verdict"]
    for k in report["kernel"]:
        for name, b in k["backends"].items():
            if "skipped" in b:
                lines.append(f"  {k['dtype']:<6}{name:<16}  skipped: {b['skipped']}")
            elif "passed" not in b:
                lines.append(f"  {k['dtype']:<6}{name:<16}{b['seconds']:>9.4f}   (reference)")
            else:
                lines.append(f"  {k['dtype']:<6}{name:<16}{b['seconds']:>9.4f}{b['logprob_max_abs_diff']:>13.2e}"
                             f"{b['grad_max_rel_diff']:>10.1e}  {'pass' if b['passed'] else 'FAIL'}")
    lines += ["", "RL steps (janus-pro-1b preset: bf16, gradient checkpointing, tiled log-probs), per optimizer step:",
              f"  {'algo':<6}{'steps':>6}{'step s':>8}{'sample s':>10}{'update s':>10}{'images/s/GPU':>14}"
              f"{'peak GiB':>10}"]
    for r in report["rl"]:
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
        lines.append(f"  {r['algorithm']:<6}{r['steps']:>6}{r['step_s']:>8.2f}{r['sampling_s']:>10.2f}"
                     f"{r['update_s']:>10.2f}{r['images_per_s']:>14.2f}{peak:>10}")
    if "cost_model" in report:
        lines += ["", f"cost model ({report['cost_model'][0]['model']} on 1 x {report['cost_model_gpu']}, DDP) vs "
                      f"measured; adjusted: less the {report['missing_parameters'] / 1e6:.0f}M parameters the random "
                      "model lacks:",
                  f"  {'algo':<6}{'est. GiB':>9}{'adjusted':>10}{'measured':>10}{'est. step s':>13}{'measured':>10}"]
        for r, c in zip(report["rl"], report["cost_model"]):
            peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a"
            lines.append(f"  {r['algorithm']:<6}{c['estimate_peak_gib']:>9.1f}{c['estimate_peak_gib_adjusted']:>10.1f}"
                         f"{peak:>10}{c['estimate_step_s']:>13.2f}{r['step_s']:>10.2f}")
    lines += ["", f"verdict: {'passed' if report['passed'] else 'FAILED'}"]
    return "\n".join(lines)


def write_report(report: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


__all__ = ["BrightnessReward", "CheckError", "SIZES", "against_cost_model", "build_policy", "check_device",
           "format_gpu_check", "gpu_check", "kernel_check", "rl_steps", "sampler_parity", "write_report"]
