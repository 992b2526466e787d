"""An optional learned image tokenizer for ShapeWorld: transformers' `JanusVQVAE` trained on ShapeWorld renders.

ShapeWorld's default tokenizer is designed (`cotlab.world.PatchTokenizer`: 751 codes, exact). This module trains
the learned alternative for users who want tokenizer noise in the loop, and measures its round trip against the
exact scorer (`evaluate_vq`). It is not required to reach any bar.

Model: a small `JanusVQVAEConfig` (`vq_config`) with three downsamplings, so a 64x64 image becomes the same 8x8 grid
of tokens as the designed tokenizer; the codebook has 751 codes by default (the designed codebook's size).

Training (`train_vq`), on fresh random scenes every batch (`random_scene` -> `render` -> [-1, 1]):

- `JanusVQVAE.forward` decodes from indices, so no gradient reaches the encoder through it. We run our own forward:
  encoder -> quant_conv -> quantize (straight-through) -> post_quant_conv -> decoder.
- **Consistency with the decode path.** `JanusVQVAE.decode` looks codes up with `quantize.get_codebook_entry`,
  which L2-normalises the codebook vectors, while `quantize.forward` (used by `encode`) does not. So the codebook is
  kept on the unit sphere at all times, and training quantises the L2-normalised encoder output `z/|z|`. Then
  `encode`'s nearest code under the raw distance (`argmin |z|^2 + 1 - 2 z.e`) is the nearest code of `z/|z|`, and
  `decode` feeds the decoder exactly the unit codebook vector that training fed it (the straight-through value
  `z_n + (e - z_n).detach()` equals `e`): `JanusVQTokenizer.decode(JanusVQTokenizer.encode(x))` is the training-time
  reconstruction (a test checks it to 1e-5). Training takes its indices from `quantize.forward` itself.
- Codebook: spherical k-means of the encoder outputs of the first batch(es) (`kmeans_init`), after `warmup_steps`
  of unquantised autoencoding; then updated by an exponential moving average of the unit vectors assigned to each
  code (re-normalised; no gradient), with `beta`-weighted commitment loss on the encoder. Dead codes (unused for
  `dead_after` steps) restart on encoder outputs of the current batch, drawn in proportion to their quantisation
  error (the rare object patches the codebook covers worst, not the plentiful background).
- Loss: pixel MSE + `l1_weight` x L1, each pixel weighted `foreground_weight` where it differs from the background
  colour (objects cover about a tenth of the canvas; unweighted, a few hundred steps learn the background and
  orange-ish blobs), + `beta` x commitment; Adam (the codebook excluded), linear warm-up then cosine decay to 10%.
- Deterministic by seed on CPU (torch.manual_seed for weights, a numpy Generator for scenes) for a fixed thread
  count (`num_threads`, 1 by default: floating-point sums depend on it, and on a small machine shared with other
  processes two torch threads made a step several times slower than one);
  resumable: every `checkpoint_every` steps, model + optimiser + codebook EMA + step + both RNG states go to
  `checkpoint.pt`, and a run that finds one resumes from it with the same final weights as an uninterrupted run.

Output directory: `save_pretrained` (config.json + model.safetensors, loadable with `JanusVQVAE.from_pretrained` or
`load_vq_tokenizer`), `metrics.json` (written atomically: config, training seconds, losses, evaluation), and the
last `checkpoint.pt` (unless a separate `scratch_dir` holds it).

What to expect (`evaluate_vq` measures it, and `metrics.json` records it): the `default` preset trains in minutes on
one CPU core and is lossy where the designed tokenizer is exact: colours mostly survive the round trip, small shapes
and textures smear, and faint halos surround objects; without foreground weighting far fewer objects survive. The
`smoke` preset recovers nothing (it only exercises the pipeline).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cotlab import world as w
from cotlab.store import VQ_CODE, RunStore, atomic_write_json

from .pretrain import lr_at  # the same warm-up + cosine schedule (reads lr, steps, warmup_frac)
from .tokenizers import JanusVQTokenizer

IMAGE_SIZE = w.CANVAS  # 64
GRID = w.GRID  # 8 tokens per side
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


@dataclass
class VQTrainConfig:
    """How to train a `JanusVQVAE` on ShapeWorld renders (see the module docstring)."""

    seed: int = 0  # torch.manual_seed (weights, k-means, restarts) and the numpy Generator of training scenes
    steps: int = 1000  # optimiser steps (the first `warmup_steps` of them unquantised)
    batch_size: int = 16  # fresh random scenes per step
    lr: float = 1e-3  # Adam peak learning rate
    warmup_frac: float = 0.05  # fraction of steps of linear lr warm-up, then cosine decay to 10% of lr
    codebook_size: int = 751  # number of codes; 751 matches the designed PatchTokenizer
    embed_dim: int = 16  # width of a code (the VQ's embed_dim); codes live on the unit sphere
    base_channels: int = 32  # VQ conv width at full resolution (a multiple of 32: GroupNorm has 32 groups)
    latent_channels: int = 64  # channels between encoder/decoder and quant_conv/post_quant_conv (multiple of 32)
    channel_multiplier: tuple[int, ...] = (1, 1, 1, 1)  # width per resolution 64/32/16/8 (4 = 3 downsamplings)
    num_res_blocks: int = 0  # ResNet blocks per encoder level (the decoder has one more); 0 is cheapest
    beta: float = 0.25  # commitment loss weight |z_n - sg(e)|^2
    l1_weight: float = 1.0  # weight of the pixel L1 loss next to the pixel MSE
    foreground_weight: float = 5.0  # loss weight of pixels that differ from the background colour (objects: ~10%)
    ema_decay: float = 0.95  # codebook EMA decay (codes are EMA means of their assigned unit vectors)
    warmup_steps: int = 150  # steps of unquantised autoencoding before the codebook is initialised
    kmeans_init: bool = True  # initialise the codebook by spherical k-means of encoder outputs of the first batch(es)
    kmeans_batches: int = 4  # batches of encoder outputs for the k-means (the current one plus fresh ones)
    kmeans_iters: int = 10  # Lloyd iterations of the k-means
    dead_code_restart: bool = True  # restart codes unused for `dead_after` steps on badly quantised encoder outputs
    dead_after: int = 50  # steps without use after which a code counts as dead
    max_objects: int = 8  # training scenes have 1..max_objects objects (random_scene's default, 4, gives fewer
    #                       object patches per step; evaluation always uses the default)
    checkpoint_every: int = 50  # steps between resumable checkpoints (does not change the result)
    eval_scenes: int = 500  # fresh scenes for the final round-trip evaluation (random_scene's default distribution)
    eval_seed: int = 12345  # seed of the evaluation scenes (distinct from training scenes)
    num_threads: int | None = 1  # torch CPU threads while training (None: torch's default); results depend on it

    def __post_init__(self):
        self.channel_multiplier = tuple(int(m) for m in self.channel_multiplier)
        for name in ("base_channels", "latent_channels"):
            if getattr(self, name) % 32:
                raise ValueError(f"{name} must be a multiple of 32 (GroupNorm with 32 groups), "
                                 f"got {getattr(self, name)}")
        if len(self.channel_multiplier) != 4:
            raise ValueError(f"channel_multiplier needs 4 entries (3 downsamplings: 64x64 -> 8x8 tokens), "
                             f"got {self.channel_multiplier}")
        if self.num_res_blocks == 0 and set(self.channel_multiplier) != {1}:
            raise ValueError("num_res_blocks=0 needs channel_multiplier (1, 1, 1, 1): JanusVQVAEEncoder changes width "
                             "only in its ResNet blocks")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch_size and checkpoint_every must be positive")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in 0..steps-1, got {self.warmup_steps} (steps {self.steps})")


VQ_TIERS = {
    # tests: seconds
    "tiny": VQTrainConfig(steps=6, batch_size=4, codebook_size=64, embed_dim=8, latent_channels=32, warmup_steps=2,
                          kmeans_batches=1, kmeans_iters=3, dead_after=2, checkpoint_every=2, eval_scenes=8),
    # well under a minute on one core
    "smoke": VQTrainConfig(steps=60, batch_size=8, warmup_steps=15, kmeans_batches=2, dead_after=20,
                           checkpoint_every=20, eval_scenes=100),
    # a few minutes on one core
    "default": VQTrainConfig(),
}


def vq_config(cfg: VQTrainConfig):
    """The `JanusVQVAEConfig` of a training config: 64x64 images, an 8x8 token grid, `cfg.codebook_size` codes."""
    from transformers import JanusVQVAEConfig

    return JanusVQVAEConfig(
        embed_dim=cfg.embed_dim, num_embeddings=cfg.codebook_size, latent_channels=cfg.latent_channels,
        base_channels=cfg.base_channels, channel_multiplier=list(cfg.channel_multiplier),
        num_res_blocks=cfg.num_res_blocks, num_patches=GRID, projection_dim=32, image_token_embed_dim=32,
        dropout=0.0,
    )


def build_vq(cfg: VQTrainConfig):
    """A freshly initialised `JanusVQVAE` (weights from torch.manual_seed(cfg.seed)), codebook on the unit sphere."""
    from transformers import JanusVQVAE

    torch.manual_seed(cfg.seed)
    model = JanusVQVAE(vq_config(cfg))
    with torch.no_grad():
        model.quantize.embedding.weight.copy_(F.normalize(model.quantize.embedding.weight, dim=-1))
    return model


# ---------------------------------------------------------------- data


def images_to_pixels(arrays: np.ndarray) -> torch.Tensor:
    """(N, 64, 64, 3) uint8 -> (N, 3, 64, 64) float in [-1, 1], computed as `JanusVQTokenizer.encode` does."""
    x = torch.from_numpy(np.ascontiguousarray(arrays, dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
    return ((x - 0.5) / 0.5).contiguous()


def _batch(rng: np.random.Generator, n: int, max_objects: int) -> torch.Tensor:
    return images_to_pixels(np.stack([w.render_array(w.random_scene(rng, max_objects=max_objects)) for _ in range(n)]))


# ---------------------------------------------------------------- the training-time forward


def encode_unit(model, pixels: torch.Tensor) -> torch.Tensor:
    """Encoder -> quant_conv -> L2 normalisation over channels: (N, embed_dim, 8, 8) unit vectors."""
    return F.normalize(model.quant_conv(model.encoder(pixels)), dim=1)


def quantize_unit(model, z_n: torch.Tensor):
    """Nearest codes of unit latents, by `quantize.forward` itself (the computation `encode` runs), and the
    straight-through quantised latents. Returns (z_q with z_n's gradient, code vectors e, indices (N*64,))."""
    with torch.no_grad():
        _, _, indices = model.quantize(z_n.detach())
    e = model.quantize.embedding.weight[indices].detach()  # unit vectors (the codebook is kept normalised)
    e = e.view(z_n.shape[0], GRID, GRID, -1).permute(0, 3, 1, 2)
    return z_n + (e - z_n).detach(), e, indices


def reconstruct(model, pixels: torch.Tensor, quantized: bool = True) -> dict:
    """The training-time forward: reconstruction (N, 3, 64, 64), unit latents, and (when quantised) codes."""
    z_n = encode_unit(model, pixels)
    if not quantized:
        return {"recon": model.decoder(model.post_quant_conv(z_n)), "z": z_n, "e": None, "indices": None}
    z_q, e, indices = quantize_unit(model, z_n)
    return {"recon": model.decoder(model.post_quant_conv(z_q)), "z": z_n, "e": e, "indices": indices}


# ---------------------------------------------------------------- codebook: k-means init, EMA, restarts


def spherical_kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k unit centroids of unit vectors x (M, D): k-means++ seeding (cosine distance), then Lloyd iterations.

    When x has fewer than k distinct directions, the surplus centroids are data points plus a little noise (they
    become dead codes that restarts recycle)."""
    m = x.shape[0]
    centroids = torch.empty(k, x.shape[1])
    first = int(torch.randint(m, (1,), generator=generator))
    centroids[0] = x[first]
    dist = (1 - x @ centroids[0]).clamp_min(0)
    for j in range(1, k):
        total = float(dist.sum())
        if total <= 1e-12:
            idx = int(torch.randint(m, (1,), generator=generator))
            centroids[j] = F.normalize(x[idx] + 0.05 * torch.randn(x.shape[1], generator=generator), dim=0)
        else:
            idx = int(torch.multinomial(dist / total, 1, generator=generator))
            centroids[j] = x[idx]
        dist = torch.minimum(dist, (1 - x @ centroids[j]).clamp_min(0))
    for _ in range(iters):
        assign = (x @ centroids.T).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        centroids = torch.where((counts > 0)[:, None], F.normalize(sums, dim=1), centroids)
    return centroids


class _Codebook:
    """EMA state of the unit codebook: per-code EMA sums of assigned unit vectors, and the last step each was used."""

    def __init__(self, model, cfg: VQTrainConfig):
        self.model, self.cfg = model, cfg
        weight = model.quantize.embedding.weight
        self.ema_sum = weight.detach().clone()
        self.last_used = torch.zeros(cfg.codebook_size, dtype=torch.long)

    @property
    def weight(self) -> torch.Tensor:
        return self.model.quantize.embedding.weight

    @torch.no_grad()
    def set(self, vectors: torch.Tensor, step: int, codes: torch.Tensor | None = None) -> None:
        vectors = F.normalize(vectors, dim=-1)
        if codes is None:
            self.weight.copy_(vectors)
            self.ema_sum = vectors.clone()
            self.last_used.fill_(step)
        else:
            self.weight[codes] = vectors
            self.ema_sum[codes] = vectors
            self.last_used[codes] = step

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor, step: int) -> None:
        self.set(spherical_kmeans(z, self.cfg.codebook_size, self.cfg.kmeans_iters), step)

    @torch.no_grad()
    def update(self, z: torch.Tensor, indices: torch.Tensor, step: int) -> None:
        """EMA step on unit latents z (M, D) assigned to `indices`, then dead-code restarts."""
        d = self.cfg.ema_decay
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, z)
        used = torch.bincount(indices, minlength=self.cfg.codebook_size) > 0
        self.ema_sum = torch.where(used[:, None], d * self.ema_sum + (1 - d) * sums, self.ema_sum)
        self.weight.copy_(torch.where(used[:, None], F.normalize(self.ema_sum, dim=1), self.weight))
        self.last_used[used] = step
        if self.cfg.dead_code_restart:
            dead = torch.nonzero(step - self.last_used >= self.cfg.dead_after).flatten()
            if len(dead):
                error = (1 - (z * self.weight[indices]).sum(dim=1)).clamp_min(0) + 1e-6
                picks = torch.multinomial(error, len(dead), replacement=len(dead) > len(z))
                self.set(z[picks], step, dead)

    def state_dict(self) -> dict:
        return {"ema_sum": self.ema_sum, "last_used": self.last_used}

    def load_state_dict(self, state: dict) -> None:
        self.ema_sum, self.last_used = state["ema_sum"].clone(), state["last_used"].clone()


# ---------------------------------------------------------------- training


_BACKGROUND = images_to_pixels(np.array(w.BACKGROUND, dtype=np.uint8).reshape(1, 1, 1, 3))


def _pixel_weights(pixels: torch.Tensor, foreground_weight: float) -> torch.Tensor:
    """(N, 1, H, W) loss weights: `foreground_weight` where a pixel differs from the background colour, else 1."""
    if foreground_weight == 1.0:
        return torch.ones_like(pixels[:, :1])
    foreground = ((pixels - _BACKGROUND).abs().amax(dim=1, keepdim=True) > 1e-3).to(pixels.dtype)
    return 1 + (foreground_weight - 1) * foreground


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)  # other processes on the cores slow training down (see the docstring)
    except OSError:
        return None


def _mean_load(history: list) -> float | None:
    loads = [h["load_average_1min"] for h in history if h.get("load_average_1min") is not None]
    return round(float(np.mean(loads)), 2) if loads else None


def _save_checkpoint(path: Path, model, opt, codebook: _Codebook, step: int, rng: np.random.Generator,
                     history: list, seconds: float, cfg: VQTrainConfig) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "codebook": codebook.state_dict(),
                "step": step, "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(rng.bit_generator.state),
                "history": history, "seconds": seconds, "config": json.dumps(asdict(cfg))}, tmp)
    os.replace(tmp, path)


def train_vq(cfg: VQTrainConfig, out_dir, progress: bool = True, *, scratch_dir=None,
             stop_at: int | None = None) -> dict | None:
    """Train a `JanusVQVAE` on fresh ShapeWorld renders; save it to `out_dir` with `save_pretrained` plus
    `metrics.json`; return the metrics (see the module docstring for the method).

    Checkpoints go to `scratch_dir or out_dir`/checkpoint.pt every `cfg.checkpoint_every` steps; a run that finds one
    resumes from it (it must come from the same config). `stop_at=k` stops after step k as if the process had been
    killed there (no final save; returns None): for testing resumption."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _train(cfg, out_dir, progress, scratch_dir, stop_at)
    finally:
        torch.set_num_threads(threads)


_NOT_TRAINING = {"checkpoint_every", "eval_scenes", "eval_seed"}  # a checkpoint resumes across changes of these


def _train(cfg: VQTrainConfig, out_dir: Path, progress: bool, scratch_dir, stop_at: int | None) -> dict | None:
    ckpt = Path(scratch_dir if scratch_dir is not None else out_dir) / CHECKPOINT
    ckpt.parent.mkdir(parents=True, exist_ok=True)

    model = build_vq(cfg).train()
    codebook = _Codebook(model, cfg)
    params = [p for n, p in model.named_parameters() if not n.startswith("quantize.")]  # the codebook is EMA-updated
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    start, history, seconds = 0, [], 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        saved, ours = json.loads(state["config"]), json.loads(json.dumps(asdict(cfg)))
        diff = sorted(k for k in set(saved) | set(ours) if k not in _NOT_TRAINING and saved.get(k) != ours.get(k))
        if diff:
            raise ValueError(f"{ckpt} was written by a different config (fields {', '.join(diff)} differ); "
                             f"delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        codebook.load_state_dict(state["codebook"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        start, history, seconds = state["step"], state["history"], state["seconds"]

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train vq", disable=not progress)
    for step in bar:
        began = time.perf_counter()
        pixels = _batch(rng, cfg.batch_size, cfg.max_objects)
        quantized = step >= cfg.warmup_steps
        if quantized and step == cfg.warmup_steps and cfg.kmeans_init:
            with torch.no_grad():
                zs = [encode_unit(model, pixels)]
                zs += [encode_unit(model, _batch(rng, cfg.batch_size, cfg.max_objects))
                       for _ in range(cfg.kmeans_batches - 1)]
            codebook.kmeans_init(torch.cat([z.permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim) for z in zs]), step)
        out = reconstruct(model, pixels, quantized=quantized)
        err = out["recon"] - pixels
        weight = _pixel_weights(pixels, cfg.foreground_weight)
        mse, l1 = (err ** 2).mean(), err.abs().mean()  # logged unweighted
        commit = F.mse_loss(out["z"], out["e"]) if quantized else torch.zeros(())
        loss = ((err ** 2 + cfg.l1_weight * err.abs()) * weight).mean() + cfg.beta * commit
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        usage = 0.0
        if quantized:
            z_flat = out["z"].detach().permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
            codebook.update(z_flat, out["indices"], step + 1)
            usage = len(torch.unique(out["indices"])) / cfg.codebook_size
        seconds += time.perf_counter() - began
        history.append({"step": step + 1, "loss": loss.item(), "mse": mse.item(), "l1": l1.item(),
                        "commit": commit.item(), "quantized": quantized, "batch_code_usage": usage,
                        "lr": lr_at(step, cfg), "seconds": seconds})
        if step % 10 == 0:
            history[-1]["load_average_1min"] = _load_average()
        bar.set_postfix(loss=f"{loss.item():.4f}", mse=f"{mse.item():.4f}", codes=f"{usage:.2f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_checkpoint(ckpt, model, opt, codebook, step + 1, rng, history, seconds, cfg)
        if stop_at is not None and step + 1 >= stop_at:
            return None

    model.eval()
    model.save_pretrained(out_dir)
    began = time.perf_counter()
    evaluation = evaluate_vq(model, cfg.eval_scenes, cfg.eval_seed)
    tail = [h for h in history if h["quantized"]][-20:] or history[-20:]
    metrics = {
        "config": asdict(cfg), "steps": cfg.steps, "train_seconds": seconds,
        "seconds_per_step": seconds / max(1, len(history)),
        "eval_seconds": time.perf_counter() - began,
        "final": {k: float(np.mean([h[k] for h in tail])) for k in ("loss", "mse", "l1", "commit")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(), "device": "cpu", "load_average_1min": _mean_load(history),
        "date": _dt.date.today().isoformat(),
        "evaluation": evaluation,
        "history": history,
    }
    atomic_write_json(out_dir / METRICS, metrics)
    _save_checkpoint(ckpt, model, opt, codebook, cfg.steps, rng, history, seconds, cfg)
    return metrics


# ---------------------------------------------------------------- evaluation and loading


def _objects(scene: w.Scene) -> set:
    return set(scene.objects)


def evaluate_vq(vqmodel, num_scenes: int, seed, batch_size: int = 64) -> dict:
    """Round trip of fresh random scenes through `JanusVQTokenizer` (encode, then decode), judged by the exact
    scorer: `exact_scene` (fraction of scenes whose decoded image parses to exactly the scene's objects),
    `object_recall` (mean fraction of a scene's objects recovered), `spurious_objects` (mean number of parsed objects
    that are not in the scene), `no_object` (fraction of decoded images where the parser finds no object),
    `patch_accuracy` (fraction of patches whose nearest designed code is the true one), pixel `mse` (on [0, 1]) and
    `psnr_db`, and `codebook_usage` (distinct codes used / codebook size)."""
    tok = JanusVQTokenizer(vqmodel, IMAGE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    rng = np.random.default_rng(seed)
    scenes = [w.random_scene(rng) for _ in range(num_scenes)]
    exact, recall, spurious, empty, patch_acc, sq_err, used = [], [], [], [], [], [], set()
    was_training = vqmodel.training
    vqmodel.eval()
    try:
        for i in range(0, num_scenes, batch_size):
            chunk = scenes[i:i + batch_size]
            images = [w.render(s) for s in chunk]
            codes = tok.encode(images)
            used |= set(codes.flatten().tolist())
            decoded = tok.decode(codes)
            readings = w.read_patch_batch(decoded)
            for scene, image, back, reading in zip(chunk, images, decoded, readings):
                truth, got = _objects(scene), _objects(reading.scene)
                exact.append(truth == got)
                recall.append(len(truth & got) / len(truth) if truth else 1.0)
                spurious.append(len(got - truth))
                empty.append(not got)
                patch_acc.append(float(np.mean(reading.codes == w.scene_codes(scene))))
                diff = (np.asarray(back, dtype=np.float64) - np.asarray(image, dtype=np.float64)) / 255.0
                sq_err.append(float(np.mean(diff ** 2)))
    finally:
        vqmodel.train(was_training)
    mse = float(np.mean(sq_err))
    return {
        "num_scenes": num_scenes, "seed": seed,
        "exact_scene": float(np.mean(exact)), "object_recall": float(np.mean(recall)),
        "spurious_objects": float(np.mean(spurious)), "no_object": float(np.mean(empty)),
        "patch_accuracy": float(np.mean(patch_acc)),
        "mse": mse, "psnr_db": float(10 * np.log10(1.0 / max(mse, 1e-12))),
        "codebook_usage": len(used) / vqmodel.config.num_embeddings, "codes_used": len(used),
    }


def load_vq_tokenizer(path, *, device=None) -> JanusVQTokenizer:
    """A trained VQ directory (written by `train_vq`) as an `ImageTokenizer`, loaded offline."""
    from transformers import JanusVQVAE

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: expected a directory written by train_vq "
                                f"(JanusVQVAE.save_pretrained)")
    model = JanusVQVAE.from_pretrained(path, local_files_only=True).eval()
    if device is not None:
        model = model.to(device)
    return JanusVQTokenizer(model, IMAGE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def train_vq_cached(tier: str = "default", *, store=None, progress: bool = True) -> Path:
    """The VQ of a preset, trained once and then reused from the run store. Returns the model directory (loadable
    with `load_vq_tokenizer`): `vq/` inside the run directory, apart from the store's own files (keyed by
    `cotlab.store.VQ_CODE`)."""
    if tier not in VQ_TIERS:
        raise ValueError(f"unknown VQ preset {tier!r}; expected one of {', '.join(VQ_TIERS)}")
    cfg = VQ_TIERS[tier]
    store = store or RunStore()
    path = store.get_or_create("vq", asdict(cfg), VQ_CODE,
                               lambda out, scratch: train_vq(cfg, Path(out) / "vq", progress, scratch_dir=scratch),
                               desc=f"learned VQ ({tier} preset)")
    return path / "vq"
