"""Pretraining ShapeWorld's base policy: supervised next-image-token prediction on captioned random scenes.

Loss: mean over image tokens of -log p(x_t | caption, x_<t) under the conditional branch (teacher forcing), with the
caption dropped (every token except BOS and BOI replaced by pad, exactly the unconditional prompt the sampler uses)
for a fraction `uncond_prob` of rows, so that classifier-free guidance has an unconditional model to push against.

Plus an auxiliary term on the tokens where an object begins (a small object's code or a large one's top-left code):
`start_weight` x mean over those tokens of -log p(x_t | x_t is an object code, caption, x_<t), the head's softmax
renormalised over the object codes. The true distribution minimises both terms, so the term does not bias the model; it
concentrates the gradient where the caption matters. In raster order an object's appearance is decided at its first
token, about 2 of 64 tokens per image, and the positions of objects are random; with the plain mean loss the caption's
signal is a sliver of a noisy gradient: on one-object scenes a smoke-size model trained on the mean loss alone left the
first object token's shape and colour at chance, where with the term it read them from the caption.
Optimiser AdamW with linear warm-up and cosine decay. Deterministic by seed on CPU; resumable from checkpoints.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cotlab.state_files import load_state, newest_complete, partial_directory, publish_directory, save_state
from cotlab.store import BASE_POLICY_CODE, RunStore, write_jsonl
from cotlab.world import HOLDOUTS, CaptionConfig, captioned_scene, code_table, scene_codes

from .janus import JanusPolicy
from .shapeworld import build_shapeworld_policy


@dataclass
class PretrainConfig:
    size: str = "default"  # a SHAPEWORLD_SIZES name
    seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_frac: float = 0.05  # of steps, linear warm-up before cosine decay to 10% of lr
    weight_decay: float = 0.01
    uncond_prob: float = 0.1  # caption dropout for CFG
    start_weight: float = 1.0  # auxiliary loss on object-start tokens (module docstring); 0 turns it off
    checkpoint_every: int = 250
    captions: CaptionConfig = field(default_factory=CaptionConfig)

    def __post_init__(self):
        if isinstance(self.captions, dict):
            self.captions = CaptionConfig(**self.captions)


BASE_TIERS = {
    "tiny": PretrainConfig(size="tiny", steps=30, batch_size=16, checkpoint_every=10),
    "smoke": PretrainConfig(size="smoke", steps=300, batch_size=32, lr=3e-3),
    "default": PretrainConfig(size="default"),
}
# More bases of the default tier (issue 18: verdicts per base model), "default-seed<k>": the same config with
# pretraining seed k (initialisation and caption draws). The seed-0 base keeps its name and key ("default").
BASE_SEEDS = (1, 2)
BASE_TIERS |= {f"default-seed{k}": replace(BASE_TIERS["default"], seed=k) for k in BASE_SEEDS}
# Hold-outs of pretraining (issue 19, level L3): every base tier again, its captions without the hold-out, named
# "<tier>-<hold-out>" (e.g. "default-L3-above-below", "default-seed1-L3-above-below"); cached like the base they copy
# (`base_key`).
PRETRAIN_HOLDOUTS = tuple(name for name, h in HOLDOUTS.items() if h.pretraining)
PRETRAIN_TIERS = {**BASE_TIERS, **{f"{tier}-{h}": replace(cfg, captions=replace(cfg.captions, holdout=h))
                                   for tier, cfg in BASE_TIERS.items() for h in PRETRAIN_HOLDOUTS}}


def holdout_tier(tier: str, holdout: str) -> str:
    """The base tier an RL run with `holdout` starts from: `tier` itself unless the hold-out is one of pretraining
    too (L3), then "<tier>-<hold-out>". A tier without such a variant (or a checkpoint directory) raises ValueError."""
    if holdout not in PRETRAIN_HOLDOUTS:
        return tier
    name = f"{tier}-{holdout}"
    if name not in PRETRAIN_TIERS:
        raise ValueError(f"hold-out {holdout!r} is held out of pretraining too, and policy {tier!r} has no base "
                         f"pretrained without it; the base tiers that do: {', '.join(BASE_TIERS)}")
    return name


def base_key(cfg: PretrainConfig) -> dict:
    """The run-store config of a base policy: `asdict(cfg)`, without `captions.holdout` when it is "L0", so that the
    keys of the bases made before hold-outs existed (every base then held out nothing) are unchanged."""
    key = asdict(cfg)
    if key["captions"]["holdout"] == "L0":
        del key["captions"]["holdout"]
    return key


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to 0.1 lr."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _batch(rng: np.random.Generator, cfg: PretrainConfig):
    pairs = [captioned_scene(rng, cfg.captions) for _ in range(cfg.batch_size)]
    tokens = torch.as_tensor(np.stack([scene_codes(s) for s, _ in pairs]))
    drop = torch.as_tensor(rng.random(cfg.batch_size) < cfg.uncond_prob)
    return [c for _, c in pairs], tokens, drop


def start_codes() -> torch.Tensor:
    """(CODEBOOK_SIZE,) bool: the codes an object begins with in raster order (small objects, large ones' top-left)."""
    return torch.tensor([entry is not None and entry[3] in ("small", "tl") for entry in code_table()])


def pretrain_loss(logits: torch.Tensor, tokens: torch.Tensor, start_weight: float) -> tuple[torch.Tensor, dict]:
    """Mean next-token cross-entropy plus `start_weight` x the object-start term of the module docstring."""
    logits = logits.float()
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    is_start = start_codes().to(tokens.device)[tokens]
    if start_weight == 0 or not is_start.any():
        return ce, {"ce": ce.item()}
    # Renormalise over object codes only: background (code 0) is excluded from the softmax.
    start = torch.nn.functional.cross_entropy(logits[is_start][:, 1:], tokens[is_start] - 1)
    return ce + start_weight * start, {"ce": ce.item(), "start_ce": start.item()}


CHECKPOINT_FILES = ("pretrain_state.json", "pretrain_state.safetensors")


def save_checkpoint(scratch: Path, step: int, state: dict) -> Path:
    """scratch/step-<step>/ (safetensors + JSON, written under a temporary name and renamed when complete); older
    ones are removed once it is in place."""
    final = scratch / f"step-{step:06d}"
    partial = partial_directory(final)
    save_state(partial, "pretrain_state", state)
    publish_directory(partial, final)
    for older in scratch.glob("step-*"):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return final


def pretrain(cfg: PretrainConfig, out_dir, scratch_dir=None, progress: bool = True) -> dict:
    """Train a base policy from nothing and save it to `out_dir` (a JanusPolicy checkpoint + metrics.jsonl +
    pretrain.json). With `scratch_dir`, checkpoints there every `checkpoint_every` steps and resumes from the newest
    complete one (a checkpoint cut by a kill is skipped)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    policy = build_shapeworld_policy(cfg.size, seed=cfg.seed)
    model = policy.model.train()
    # ShapeWorld uses neither the vision tower, its aligner nor the Janus VQ: keep them out of training. The text head
    # is unused too, but Janus ties it to the text embeddings (JanusConfig.tie_word_embeddings), which must train:
    # freezing it froze the prompt's word vectors, and the model then hardly learnt to follow prompts.
    for unused in (model.model.vision_model, model.model.aligner, model.model.vqmodel):
        unused.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    rng = np.random.default_rng(cfg.seed)
    start, history, seconds = 0, [], 0.0
    scratch = Path(scratch_dir) if scratch_dir is not None else None
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "checkpoint.pt").unlink(missing_ok=True)  # an older cotlab's pickled checkpoint: never loaded
        found, _ = newest_complete(scratch, "step-", CHECKPOINT_FILES)
        if found is not None:
            state = load_state(found, "pretrain_state")
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            start, history, seconds = state["step"], state["history"], state["seconds"]
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="pretrain", disable=not progress)
    for step in bar:
        began = time.perf_counter()
        captions, tokens, drop = _batch(rng, cfg)
        ids, mask = policy.encode_prompts(captions)
        ids = torch.where(drop[:, None] & (ids != policy.bos_id) & (ids != policy.boi_id), policy.pad_id, ids)
        logits = policy.image_logits(ids, mask, tokens)
        loss, parts = pretrain_loss(logits, tokens, cfg.start_weight)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        seconds += time.perf_counter() - began
        history.append({"step": step + 1, "loss": loss.item(), **parts, "grad_norm": grad_norm.item(),
                        "lr": lr_at(step, cfg), "seconds": seconds})
        bar.set_postfix({name: f"{value:.3f}" for name, value in parts.items()})
        if scratch is not None and ((step + 1) % cfg.checkpoint_every == 0) and step + 1 < cfg.steps:
            save_checkpoint(scratch, step + 1, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                                "step": step + 1, "numpy_rng": rng.bit_generator.state,
                                                "torch_rng": torch.get_rng_state(), "history": history,
                                                "seconds": seconds})
    model.eval()
    policy.save_pretrained(out_dir)
    write_jsonl(out_dir / "metrics.jsonl", history)
    summary = {"config": asdict(cfg), "steps": cfg.steps, "train_seconds": seconds,
               "final_loss": float(np.mean([h["loss"] for h in history[-20:]])),
               "final_ce": float(np.mean([h["ce"] for h in history[-20:]])),
               "parameters": sum(p.numel() for p in params)}
    (out_dir / "pretrain.json").write_text(json.dumps(summary, indent=2))
    return summary


def base_policy(tier: str = "default", *, store=None, progress: bool = True):
    """The base policy of a tier, trained once and then reused from the run store (keyed by `base_key` and
    `cotlab.store.BASE_POLICY_CODE`). Returns (policy, run directory)."""
    if tier not in PRETRAIN_TIERS:
        raise ValueError(f"unknown pretraining tier {tier!r}; expected one of {', '.join(PRETRAIN_TIERS)}")
    cfg = PRETRAIN_TIERS[tier]
    store = store or RunStore()
    path = store.get_or_create("base_policy", base_key(cfg), BASE_POLICY_CODE,
                               lambda out, scratch: pretrain(cfg, out, scratch, progress=progress),
                               desc=f"base policy ({tier} tier)")
    return JanusPolicy.from_pretrained(path), path
