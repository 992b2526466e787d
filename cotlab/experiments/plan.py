"""Peak GPU memory and seconds per optimizer step of GRPO and DPO on Janus-Pro, before launching a run.

Everything here is an estimate from a cost model (parameter counts, byte counts and a roofline), not a measurement:
it says whether a run should fit and roughly how long a step takes, so that a paper-scale run is planned, not
discovered by an out-of-memory error. It assumes the trainers of `cotlab.training` with the `paper` preset's
settings: bf16 mixed precision, AdamW, only the language model trains (`trainable=("model.language_model",)`),
log-probs scored on the conditional branch (`logprob_mode="cond"`), GRPO with mu = 1, DPO with one best-vs-worst pair
per prompt, and the reference a frozen copy of the whole policy model (what `Trainer` deep-copies).

Numbers and where they come from
--------------------------------
| quantity | Janus-Pro-1B | Janus-Pro-7B | source |
|---|---|---|---|
| LM hidden / layers / heads (= KV heads) | 2048 / 24 / 16 | 4096 / 30 / 32 | config.json (a) |
| LM intermediate / text vocab | 5632 / 102400 | 11008 / 102400 | config.json (a) |
| image tokens / VQ codebook / code dim | 576 / 16384 / 8 | the same | config.json (a); PAPER.md |
| generation head | H -> H -> 16384 | the same | transformers 5.23 `JanusVQVAEHead` (b) |
| parameters: all | 2,076,636,811 | 7,407,773,323 | counted (b) |
| parameters: language model (trained) | 1,442,940,928 | 6,490,935,296 | counted (b) |
| vision tower (SigLIP-L/16, 384 px) / VQ model | 303,688,704 / 71,883,403 | the same | counted (b) |

| GPU | bf16 dense | HBM | NVLink, each way | memory, as nvidia-smi reports it |
|---|---|---|---|---|
| H100 SXM 80GB | 989 TFLOP/s | 3.35 TB/s | 450 GB/s | 81,559 MiB = 79.6 GiB |
| A100 SXM 80GB | 312 TFLOP/s | 2.04 TB/s | 300 GB/s | 81,920 MiB = 80.0 GiB |

Peaks and bandwidths from NVIDIA's H100 and A100 datasheets (dense, without sparsity); memory totals as
modal-labs/modal-client PR #2797 lists them (and NVIDIA/nccl issue #1264 shows for the H100).
(a) the config.json files of deepseek-community/Janus-Pro-1B and -7B, as transcribed by independent ports
(IMvision12/KerasFormers' Janus configs, and an audit of transformers' Janus family that tabulates both files): this
project has no Hub access, so they were not read from the Hub itself.
(b) `ModelSpec`'s formulas, checked by tests/test_plan.py against `JanusForConditionalGeneration` built on the meta
device from those configs (`tie_word_embeddings=False`, vision and VQ projection widths = H).

Estimated, not sourced: the achieved fraction of peak (`efficiency`, default 0.4 for FLOPs, HBM and NVLink alike),
the activation bytes of one decoder layer, the number of logit-sized buffers alive at once (`LOGIT_BYTES`), the
usable fraction of memory (`USABLE_FRACTION`), and the reward model's seconds per image (HPS default 0.02 s).

Memory, bytes per GPU
---------------------
n GPUs; P_all the policy's parameters, P_lm the trainable ones; s_w = n under ZeRO-3 and FSDP (weights sharded),
else 1; s_o = n under ZeRO-2, ZeRO-3 and FSDP (optimizer states and gradients sharded), else 1.

* weights = 2 P_all / s_w (bf16, trainable and frozen); reference = the same again when the run has one (DPO, and
  GRPO with beta > 0), sharded like the policy (as TRL's `prepare_deepspeed` shards a reference under ZeRO-3 only);
* optimizer = 12 P_lm / s_o (fp32 master weights and Adam's two moments); gradients = 2 P_lm / s_o (bf16; counted
  for the whole step, as DeepSpeed keeps its gradient partitions allocated);
* the update (per micro-batch of r rows of S = prompt_tokens + 576 tokens):
  activations = r S 2H L (bf16 layer inputs kept at each checkpoint boundary) + r S A (one layer recomputed in full),
  A = 20 H + 8 I bytes per token (bf16: layer input, normed input, q, k, v, q and k after RoPE, attention output, the
  second norm's input and output, and the MLP's gate, up, silu(gate) and product; SDPA keeps no S x S scores);
  without checkpointing, r S A L;
  logits = r 576 16384 LOGIT_BYTES when the head's logits are materialised (`tiled_logprobs=False`, what
  `JanusPolicy.token_logprobs` does), or three fp32 tiles of `cotlab.kernels.TOKEN_CHUNK` x `VOCAB_CHUNK` when the
  log-probs are computed tile by tile (`cotlab.kernels.logprobs_from_hidden`, `tiled_logprobs=True`);
  under ZeRO-3 / FSDP, the gathered units (1 - 1/n) 2 (P_all - (L - 2) P_layer): everything outside the decoder
  layers (FSDP's root unit when only `LlamaDecoderLayer` is wrapped) and two layers (the current and the prefetched);
* sampling (per call of b images, 2b rows with CFG): KV cache = 2b x 2 (keys, values) x L x (S + prompt_tokens) x H
  x 2 bytes (MHA: KV width = H): the preallocated cache of S positions plus the prompt's cache from the prefill,
  which `JanusPolicy.sample` keeps referenced until it returns; under ZeRO-3 / FSDP the whole policy is gathered for
  sampling, (1 - 1/n) 2 P_all, as TRL's `unwrap_model_for_generation` does by default (gathering layer by layer at
  each of 576 decoding steps would cost 576 all-gathers of the weights per call);
* peak = weights + reference + optimizer + gradients + max(update, sampling); it fits when it is at most
  `USABLE_FRACTION` of the GPU's memory (the rest: CUDA context, NCCL buffers, allocator fragmentation).

Not counted: the generation head's H-wide intermediates (with the tiled path and a frozen head, also one fp32
H-wide gradient vector per token, prepared in the forward) and the sampling loop's per-token logits (each under 1% of
the peak at the paper's settings); the reference pass, which keeps no activations (inference mode) and whose logits
(about 10 bytes each) are fewer than the update's when a step is one micro-batch (DPO scores a step's pairs in one
reference pass, so with gradient accumulation that pass can outgrow an update micro-batch).

Time, seconds per optimizer step
--------------------------------
Each phase takes max(FLOPs / F, HBM bytes / B, interconnect bytes / N): F, B, N = `efficiency` x the GPU's peak
bf16 dense FLOP/s, HBM bandwidth and NVLink bandwidth (one direction); overlap of the three is assumed. P_f = the
parameters a token's forward multiplies by (decoder layers, generation head, generation aligner); attention's own
FLOPs (~3-5% at S ~ 700) are not counted. Per GPU, with n GPUs sharing the step's P prompts x G images:

* sampling (the step's P G / n images per GPU, in calls of at most `sample_batch_images`; DPO samples a round's
  images at the round's start, the same number per step): per call of 2b rows, a prefill of 2 P_f 2b prompt_tokens
  FLOPs, then 576 decoding steps of max(2 P_f 2b / F, (2 P_f + KV read) / B), KV read = 2b x 2 x L x
  (prompt_tokens + 288) x H x 2 bytes (the cache at its mean length); plus, under ZeRO-3 / FSDP, one all-gather of
  the weights, (1 - 1/n) 2 P_all bytes;
* scoring = `reward_seconds_per_image` x P G / n (each process scores its own images);
* reference = 2 P_f x rows x S FLOPs (GRPO: the P G / n sampled rows, in accumulation micro-batches; DPO: the
  chosen and rejected rows, 2 P / n, in one pass), plus one all-gather of the weights per pass under ZeRO-3 / FSDP;
* update = 6 P_f x rows x S FLOPs, x 4/3 with gradient checkpointing (the forward is recomputed); interconnect:
  DDP all-reduces the bf16 gradients, 2 (1 - 1/n) 2 P_lm bytes, ZeRO-2 reduce-scatters them and all-gathers the
  updated weights (the same volume), ZeRO-3 / FSDP gather the weights twice per micro-batch (forward, backward)
  and reduce-scatter the gradients once, (1 - 1/n) (2 k 2 P_all + 2 P_lm) bytes for k micro-batches.

Decoding is bandwidth-bound at small batches (each token reads every weight once whatever the batch), so sampling
time grows less than linearly with the images per GPU until the calls are large.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

from cotlab.kernels import TOKEN_CHUNK, VOCAB_CHUNK
from cotlab.training.config import PRESETS, RLConfig

GIB = 2 ** 30
# Bytes alive per logit while the materialised path scores a micro-batch: three fp32 copies (the log-softmax that
# autograd saves plus the entropy's exp and product in the forward; in the backward, the incoming and the outgoing
# gradient of the logits).
LOGIT_BYTES = 12
# Of the memory the driver reports, what a run may plan to use.
USABLE_FRACTION = 0.9
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
ALGORITHMS = ("grpo", "dpo")
SHARDS_STATES = ("zero2", "zero3", "fsdp")  # optimizer states and gradients
SHARDS_WEIGHTS = ("zero3", "fsdp")
# The paper preset's settings: the defaults of every function here.
PAPER = {**PRESETS["paper"]["shared"], "grpo_beta": PRESETS["paper"]["grpo"]["beta"]}


class MemoryPlanWarning(UserWarning):
    """A run is estimated not to fit in its GPUs' memory."""


@dataclass(frozen=True)
class ModelSpec:
    """A Janus-Pro checkpoint's shape (transformers format) and its parameter counts."""

    name: str
    hf_id: str
    hidden_size: int  # H
    num_layers: int  # L
    num_heads: int
    intermediate_size: int  # I
    vocab_size: int = 102400
    image_tokens: int = 576
    codebook_size: int = 16384
    code_dim: int = 8
    vision_hidden: int = 1024
    vision_params: int = 303_688_704  # SigLIP-L/16 at 384 px: the same in both sizes
    vq_params: int = 71_883_403

    @property
    def layer_params(self) -> int:
        """One Llama decoder layer: q, k, v, o (H x H each, no bias), gate, up, down (H x I), two RMSNorm weights."""
        h = self.hidden_size
        return 4 * h * h + 3 * h * self.intermediate_size + 2 * h

    @property
    def language_model_params(self) -> int:
        """`model.language_model`: token embeddings, the decoder layers, the final norm (what the paper preset
        trains)."""
        return self.vocab_size * self.hidden_size + self.num_layers * self.layer_params + self.hidden_size

    @property
    def generation_head_params(self) -> int:
        """H -> H -> codebook, with biases."""
        h = self.hidden_size
        return h * h + h + h * self.codebook_size + self.codebook_size

    @property
    def generation_aligner_params(self) -> int:
        """Code embedding (code_dim) -> H -> H, with biases."""
        h = self.hidden_size
        return self.code_dim * h + h + h * h + h

    @property
    def total_params(self) -> int:
        """Language model, text LM head (untied), vision tower and its aligner (1024 -> H -> H), VQ model,
        generation embeddings, aligner and head."""
        h = self.hidden_size
        aligner = self.vision_hidden * h + h + h * h + h
        return (self.language_model_params + self.vocab_size * h + self.vision_params + aligner + self.vq_params
                + self.codebook_size * self.code_dim + self.generation_aligner_params + self.generation_head_params)

    @property
    def flop_params(self) -> int:
        """Parameters an image token's forward multiplies by: decoder layers, generation aligner and head."""
        return self.num_layers * self.layer_params + self.generation_aligner_params + self.generation_head_params

    def layer_activation_bytes(self) -> int:
        """Bytes one decoder layer keeps for its backward, per token: 20 H + 8 I (see the module docstring)."""
        return 20 * self.hidden_size + 8 * self.intermediate_size


@dataclass(frozen=True)
class GPUSpec:
    name: str
    memory_gib: float  # as the driver reports it
    bf16_tflops: float  # dense peak
    hbm_tbps: float
    nvlink_gbps: float  # per GPU, one direction


MODELS = {
    "janus-pro-1b": ModelSpec("janus-pro-1b", "deepseek-community/Janus-Pro-1B", 2048, 24, 16, 5632),
    "janus-pro-7b": ModelSpec("janus-pro-7b", "deepseek-community/Janus-Pro-7B", 4096, 30, 32, 11008),
}
GPUS = {
    "h100-80gb": GPUSpec("h100-80gb", 79.6, 989.0, 3.35, 450.0),
    "a100-80gb": GPUSpec("a100-80gb", 80.0, 312.0, 2.039, 300.0),
}


def model_spec(name: str) -> ModelSpec:
    """A model by its name here or its Hub id (e.g. a config's `policy`)."""
    for spec in MODELS.values():
        if name in (spec.name, spec.hf_id):
            return spec
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)} (or their Hub ids "
                     f"{', '.join(s.hf_id for s in MODELS.values())})")


def _choice(kind: str, value: str, known) -> None:
    if value not in known:
        raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known)}")


def estimate(model: str = "janus-pro-7b", algorithm: str = "grpo", *, num_gpus: int = 1, strategy: str = "ddp",
             prompts_per_step: int = PAPER["prompts_per_step"], num_generations: int = PAPER["num_generations"],
             prompt_tokens: int = 120, tiled_logprobs: bool = False,
             gradient_checkpointing: bool = PAPER["gradient_checkpointing"], gradient_accumulation_steps: int = 1,
             sample_batch_images: int = RLConfig.sample_batch_images, beta: float | None = None,
             gpu: str | GPUSpec = "h100-80gb", efficiency: float = 0.4, reward_seconds_per_image: float = 0.02) -> dict:
    """One run's estimated peak memory per GPU (GiB) and seconds per optimizer step; the formulas are the module's.

    The settings carry RLConfig's names. `prompt_tokens`: the prompt's length in text tokens with its template (~120
    for T2I-CompBench's long prompts). `beta`: GRPO's KL weight, the paper preset's by default; it decides whether
    GRPO keeps a reference (DPO always does). `efficiency`: the achieved fraction of the GPU's peak FLOP/s, memory
    and interconnect bandwidth. Returns a flat dict: the settings, the memory terms (`*_gib`), `peak_phase`
    ("update" or "sampling"), `total_gib`, `usable_gib`, `fits`, and the seconds `sampling_s`, `scoring_s`,
    `reference_s`, `update_s`, `step_s`. `gpu` names one of `GPUS` or is a `GPUSpec` (e.g. `local_gpu()`)."""
    spec = model_spec(model)
    _choice("algorithm", algorithm, ALGORITHMS)
    _choice("strategy", strategy, STRATEGIES)
    if not isinstance(gpu, GPUSpec):
        _choice("gpu", gpu, GPUS)
    device = gpu if isinstance(gpu, GPUSpec) else GPUS[gpu]
    for name, value, least in (("num_gpus", num_gpus, 1), ("prompts_per_step", prompts_per_step, 1),
                               ("num_generations", num_generations, 2), ("prompt_tokens", prompt_tokens, 1),
                               ("gradient_accumulation_steps", gradient_accumulation_steps, 1),
                               ("sample_batch_images", sample_batch_images, 1)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    if prompts_per_step % (num_gpus * gradient_accumulation_steps):
        raise ValueError(f"prompts_per_step={prompts_per_step} must be divisible by num_gpus ({num_gpus}) x "
                         f"gradient_accumulation_steps ({gradient_accumulation_steps}), as the trainers require")
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    if reward_seconds_per_image < 0:
        raise ValueError(f"reward_seconds_per_image must be >= 0, got {reward_seconds_per_image}")
    beta = PAPER["grpo_beta"] if beta is None else beta
    has_reference = algorithm == "dpo" or beta > 0

    n, k = num_gpus, gradient_accumulation_steps
    h, layers, tokens = spec.hidden_size, spec.num_layers, spec.image_tokens
    seq = prompt_tokens + tokens
    images = prompts_per_step * num_generations // n  # sampled and scored per GPU per step
    update_rows = (num_generations if algorithm == "grpo" else 2) * prompts_per_step // n  # per GPU per step
    micro_rows = update_rows // k
    gathered = 1 - 1 / n if strategy in SHARDS_WEIGHTS else 0.0  # the part of a gathered unit this GPU lacks
    weight_shards = n if strategy in SHARDS_WEIGHTS else 1
    state_shards = n if strategy in SHARDS_STATES else 1
    p_all, p_lm = spec.total_params, spec.language_model_params

    # -- memory (bytes) ---------------------------------------------------------------------------------------------
    weights = 2 * p_all / weight_shards
    reference = weights if has_reference else 0.0
    optimizer = 12 * p_lm / state_shards
    gradients = 2 * p_lm / state_shards
    if gradient_checkpointing:
        activations = micro_rows * seq * (2 * h * layers + spec.layer_activation_bytes())
    else:
        activations = micro_rows * seq * spec.layer_activation_bytes() * layers
    logits = 3 * 4 * TOKEN_CHUNK * VOCAB_CHUNK if tiled_logprobs else \
        micro_rows * tokens * spec.codebook_size * LOGIT_BYTES
    update_gather = gathered * 2 * (p_all - (layers - 2) * spec.layer_params)
    batch_rows = 2 * min(sample_batch_images, images)  # CFG: a conditional and an unconditional row per image
    kv_cache = batch_rows * 2 * layers * (seq + prompt_tokens) * h * 2
    sampling_gather = gathered * 2 * p_all
    static = weights + reference + optimizer + gradients
    update, sampling = activations + logits + update_gather, kv_cache + sampling_gather
    total = static + max(update, sampling)
    usable = USABLE_FRACTION * device.memory_gib

    # -- time (seconds) ---------------------------------------------------------------------------------------------
    flops_rate = efficiency * device.bf16_tflops * 1e12
    hbm_rate = efficiency * device.hbm_tbps * 1e12
    link_rate = efficiency * device.nvlink_gbps * 1e9
    p_f = spec.flop_params

    def phase(flops: float, hbm_bytes: float = 0.0, link_bytes: float = 0.0) -> float:
        return max(flops / flops_rate, hbm_bytes / hbm_rate, link_bytes / link_rate)

    sampling_s = 0.0
    for first in range(0, images, sample_batch_images):
        rows = 2 * min(sample_batch_images, images - first)
        kv_read = rows * 2 * layers * (prompt_tokens + tokens / 2) * h * 2
        sampling_s += (phase(2 * p_f * rows * prompt_tokens)
                       + tokens * phase(2 * p_f * rows, 2 * p_f + kv_read)
                       + phase(0, link_bytes=gathered * 2 * p_all))
    scoring_s = reward_seconds_per_image * images
    reference_s = 0.0
    if has_reference:
        passes = k if algorithm == "grpo" else 1
        reference_s = phase(2 * p_f * update_rows * seq, link_bytes=passes * gathered * 2 * p_all)
    recompute = 4 / 3 if gradient_checkpointing else 1.0
    if strategy in SHARDS_WEIGHTS:
        update_link = (1 - 1 / n) * (2 * k * 2 * p_all + 2 * p_lm)
    else:
        update_link = 2 * (1 - 1 / n) * 2 * p_lm
    update_s = phase(6 * p_f * update_rows * seq * recompute, link_bytes=update_link)

    return {"model": spec.name, "algorithm": algorithm, "num_gpus": n, "strategy": strategy, "gpu": device.name,
            "prompts_per_step": prompts_per_step, "num_generations": num_generations, "prompt_tokens": prompt_tokens,
            "tiled_logprobs": tiled_logprobs, "gradient_checkpointing": gradient_checkpointing,
            "gradient_accumulation_steps": k, "sample_batch_images": sample_batch_images,
            "weights_gib": weights / GIB, "reference_gib": reference / GIB, "optimizer_gib": optimizer / GIB,
            "gradients_gib": gradients / GIB, "activations_gib": activations / GIB, "logits_gib": logits / GIB,
            "update_gather_gib": update_gather / GIB, "update_gib": update / GIB, "kv_cache_gib": kv_cache / GIB,
            "sampling_gather_gib": sampling_gather / GIB, "sampling_gib": sampling / GIB,
            "peak_phase": "update" if update >= sampling else "sampling",
            "total_gib": total / GIB, "usable_gib": usable, "fits": total / GIB <= usable,
            "sampling_s": sampling_s, "scoring_s": scoring_s, "reference_s": reference_s, "update_s": update_s,
            "step_s": sampling_s + scoring_s + reference_s + update_s}


SETUPS = ((1, "ddp"), (8, "zero2"), (8, "zero3"), (8, "fsdp"))


def plan_table(models=tuple(MODELS), algorithms=ALGORITHMS, setups=SETUPS, **settings) -> pd.DataFrame:
    """`estimate` for every model x algorithm x (num_gpus, strategy) in `setups`, with the same other settings: one
    row each."""
    return pd.DataFrame([estimate(model, algorithm, num_gpus=n, strategy=strategy, **settings)
                         for model in models for algorithm in algorithms for n, strategy in setups])


def format_plan(df: pd.DataFrame) -> str:
    """A plan table as text: memory terms in GiB per GPU, seconds per optimizer step."""
    columns = {"model": "model", "algorithm": "algo", "num_gpus": "gpus", "strategy": "strategy", "gpu": "gpu",
               "weights_gib": "weights", "reference_gib": "ref", "optimizer_gib": "optim", "gradients_gib": "grads",
               "activations_gib": "activ", "logits_gib": "logits", "update_gib": "update", "kv_cache_gib": "kv",
               "sampling_gib": "sampling", "total_gib": "peak", "usable_gib": "usable", "fits": "fits",
               "sampling_s": "sample_s", "scoring_s": "score_s", "reference_s": "ref_s", "update_s": "update_s",
               "step_s": "step_s"}
    table = df[list(columns)].rename(columns=columns)
    table["fits"] = table["fits"].map({True: "yes", False: "NO"})
    table["model"] = table["model"].str.replace("janus-pro-", "")
    return "\n".join([
        "Estimates from a cost model (cotlab.experiments.plan), not measurements.",
        ("Memory in GiB per GPU: peak = weights + ref + optim + grads + max(update, sampling); update = activ + logits"
         " (+ gathered weights under ZeRO-3/FSDP), sampling = kv (+ the gathered policy under ZeRO-3/FSDP)."),
        "Time in seconds per optimizer step.",
        table.to_string(index=False, float_format=lambda v: f"{v:.1f}")])


STRATEGY_NAMES = {"ddp": "DDP", "zero2": "ZeRO-2", "zero3": "ZeRO-3", "fsdp": "FSDP"}


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _fit_outcome(algorithms: list[str], fits: list[bool]) -> str:
    """"both algorithms fit", "neither algorithm fits", "only GRPO fits"; with one algorithm, "GRPO fits" or not."""
    fit = [a.upper() for a, ok in zip(algorithms, fits) if ok]
    if len(algorithms) == 1:
        return f"{algorithms[0].upper()} {'fits' if fit else 'does not fit'}"
    if len(fit) == len(algorithms):
        return "both algorithms fit" if len(fit) == 2 else "every algorithm fits"
    return f"only {_and(fit)} {'fits' if len(fit) == 1 else 'fit'}" if fit else "neither algorithm fits"


def fit_summary(df: pd.DataFrame) -> list[str]:
    """What a plan table (`plan_table`) says, as Markdown lines, one per model: on which setups (GPUs and strategy)
    the cost model has the run fit for both algorithms, for some or for neither, each setup with its largest
    estimated peak per GPU, against the usable memory of the table's GPU. Setups with the same outcome are named
    together, in table order."""
    lines = []
    for model, rows in df.groupby("model", sort=False):
        outcomes: dict[str, list[str]] = {}
        for (n, strategy), setup in rows.groupby(["num_gpus", "strategy"], sort=False):
            outcome = _fit_outcome(list(setup["algorithm"]), [bool(f) for f in setup["fits"]])
            outcomes.setdefault(outcome, []).append(
                f"{n} GPU{'s' if n > 1 else ''} with {STRATEGY_NAMES.get(strategy, strategy)} "
                f"(peak {setup['total_gib'].max():.1f} GiB)")
        gpu, usable = rows["gpu"].iloc[0], rows["usable_gib"].iloc[0]
        lines.append(f"* **{model}** ({gpu}, {usable:.1f} GiB usable per GPU): "
                     + "; ".join(f"{outcome} on {_and(setups)}" for outcome, setups in outcomes.items()) + ".")
    return lines


def _alternatives(settings: dict) -> list[list[dict]]:
    """Changes to try, grouped by setup: the same GPUs and strategy, ZeRO-2 and ZeRO-3 on the same GPUs, then on 8
    GPUs; within a setup, no further change, the tiled log-prob path, smaller sampling calls, smaller micro-batches
    (more accumulation steps), and the tiled path with either."""
    n, strategy = settings.get("num_gpus", 1), settings.get("strategy", "ddp")
    sharded = ("zero2", "zero3")  # FSDP's estimate is ZeRO-3's
    setups = [{}] + [{"strategy": s} for s in sharded if n > 1 and s != strategy]
    setups += [{"num_gpus": 8, "strategy": s} for s in sharded if n < 8]
    batch = settings.get("sample_batch_images", RLConfig.sample_batch_images)
    accumulation = settings.get("gradient_accumulation_steps", 1)
    smaller = [{"sample_batch_images": batch >> i} for i in range(1, batch.bit_length())]
    smaller += [{"gradient_accumulation_steps": accumulation << i} for i in range(1, 6)]
    knobs = [{}, {"tiled_logprobs": True}, *smaller, *({"tiled_logprobs": True, **k} for k in smaller)]
    return [[{**setup, **knob} for knob in knobs if setup or knob] for setup in setups]


def suggest(model: str = "janus-pro-7b", algorithm: str = "grpo", most: int = 3, **settings) -> list[tuple[dict, dict]]:
    """Up to `most` changes to `settings` estimated to fit, as (change, estimate) pairs: the first that fits in each
    setup of `_alternatives`, in its order."""
    found = []
    for group in _alternatives(settings):
        for change in group:
            try:
                row = estimate(model, algorithm, **{**settings, **change})
            except ValueError:  # e.g. prompts_per_step not divisible by the GPUs x accumulation steps
                continue
            if row["fits"]:
                found.append((change, row))
                break
        if len(found) == most:
            break
    return found


def check_fits(model: str = "janus-pro-7b", algorithm: str = "grpo", **settings) -> dict:
    """`estimate(model, algorithm, **settings)`; when the run is estimated not to fit, warn (`MemoryPlanWarning`)
    with the shortfall and up to three changes estimated to fit (`suggest`). Call it before launching."""
    row = estimate(model, algorithm, **settings)
    if row["fits"]:
        return row
    fixes = [", ".join(f"{key}={value!r}" for key, value in change.items()) + f" ({other['total_gib']:.1f} GiB)"
             for change, other in suggest(model, algorithm, **settings)]
    advice = ("estimated to fit: " + "; or ".join(fixes)) if fixes else (
        "nothing tried fits (ZeRO-2/3 on up to 8 GPUs, tiled log-probs, smaller sampling calls and micro-batches)")
    warnings.warn(MemoryPlanWarning(
        f"{row['model']} {row['algorithm']} on {row['num_gpus']} x {row['gpu']} with {row['strategy']} needs an "
        f"estimated {row['total_gib']:.1f} GiB per GPU ({row['peak_phase']} phase), "
        f"{row['total_gib'] - row['usable_gib']:.1f} GiB more than the {row['usable_gib']:.1f} GiB usable; "
        f"{advice}"), stacklevel=2)
    return row


def policy_model(policy: str) -> str | None:
    """The `MODELS` name of a trainer config's `policy` (a Hub id, or a checkpoint directory whose language model has
    a known model's width and depth), or None (e.g. a ShapeWorld tier)."""
    import json
    from pathlib import Path

    try:
        return model_spec(policy).name
    except ValueError:
        pass
    config_file = Path(policy) / "config.json"
    if not config_file.is_file():
        return None
    text = json.loads(config_file.read_text()).get("text_config", {})
    for spec in MODELS.values():
        if (text.get("hidden_size"), text.get("num_hidden_layers")) == (spec.hidden_size, spec.num_layers):
            return spec.name
    return None


def local_gpu(index: int = 0) -> GPUSpec | None:
    """This machine's CUDA device `index` as a `GPUSpec`: its name and memory as the driver reports them, the rates
    of the known GPU its name contains (H100's otherwise; they only affect the time estimate). None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    rates = next((g for g in GPUS.values() if g.name.split("-")[0].upper() in props.name.upper()), GPUS["h100-80gb"])
    return GPUSpec(props.name, props.total_memory / GIB, rates.bf16_tflops, rates.hbm_tbps, rates.nvlink_gbps)


def check_config(cfg: RLConfig, *, num_gpus: int = 1, strategy: str = "ddp",
                 gpu: str | GPUSpec = "h100-80gb") -> dict | None:
    """`check_fits` for a trainer config (its model, algorithm, batch, accumulation, checkpointing, log-prob path and
    GRPO beta) on `num_gpus` x `gpu` with `strategy`; None when its policy is not a model the cost model knows."""
    model = policy_model(cfg.policy)
    if model is None:
        return None
    settings = dict(num_gpus=num_gpus, strategy=strategy, gpu=gpu, prompts_per_step=cfg.prompts_per_step,
                    num_generations=cfg.num_generations, tiled_logprobs=cfg.tiled_logprobs,
                    gradient_checkpointing=cfg.gradient_checkpointing,
                    gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                    sample_batch_images=cfg.sample_batch_images)
    if cfg.algorithm == "grpo":
        settings["beta"] = cfg.beta
    return check_fits(model, cfg.algorithm, **settings)


__all__ = ["ALGORITHMS", "GPUS", "GPUSpec", "LOGIT_BYTES", "MODELS", "MemoryPlanWarning", "ModelSpec", "SETUPS",
           "STRATEGIES", "STRATEGY_NAMES", "USABLE_FRACTION", "check_config", "check_fits", "estimate", "fit_summary",
           "format_plan", "local_gpu", "model_spec", "plan_table", "policy_model", "suggest"]
