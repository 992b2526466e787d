"""What GRPO and DPO share: the prompt stream, accelerate, the reference model, the loop, metrics and budgets.

A run is `rounds` x `max_steps` optimizer steps. Step s of round r uses the prompts at positions
[(r max_steps + s) P, ... + P) of the prompt stream (the training suite shuffled by seed, reshuffled each epoch), P =
`prompts_per_step`; each process takes its share (`distributed`). Checkpoints and the output directory's rules are in
`checkpointing`.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from tqdm import tqdm

from cotlab.policy import JanusPolicy
from cotlab.policy.pretrain import PRETRAIN_TIERS, base_policy
from cotlab.prompt_files import COMPBENCH_CATEGORIES, load_compbench
from cotlab.rewards import cached, checked_rewards
from cotlab.rewards import check as check_reward
from cotlab.rewards import get as get_reward
from cotlab.state_files import make_directory
from cotlab.store import write_jsonl
from cotlab.world import HOLDOUTS, SPLITS, SUITES, load_suite

from .buffer import Groups, collect_groups, row_seed
from .checkpointing import (
    newest_checkpoint,
    output_lock,
    prepare_output,
    read_checkpoint,
    resolve_checkpoint,
    restore_rng,
    write_checkpoint,
)
from .config import RLConfig
from .distributed import (
    full_weights,
    gather,
    global_sum,
    micro_batches,
    prepare_reference,
    process_share,
    shards_weights,
)
from .health import TrainingHealth
from .metrics import current_names
from .timing import PhaseTimer


def load_policy(name_or_path: str):
    """A base-policy tier name (trained once, cached in the run store) or a JanusPolicy checkpoint directory."""
    if name_or_path in PRETRAIN_TIERS:
        return base_policy(name_or_path)[0]
    path = Path(name_or_path).expanduser()
    if not path.is_dir() and name_or_path.count("/") == 1:  # a hub id: its copy in the local hub cache, if any
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(name_or_path, local_files_only=True))
        except Exception as e:  # noqa: BLE001 (huggingface_hub raises several kinds for "not in the cache")
            raise FileNotFoundError(
                f"policy {name_or_path!r} is not a base-policy tier ({', '.join(PRETRAIN_TIERS)}), a local directory, "
                f"or in the local Hugging Face cache ({type(e).__name__}). Download it first, e.g. `hf download "
                f"{name_or_path} --local-dir checkpoints/{name_or_path.split('/')[1]}`, then pass "
                f"--set policy=checkpoints/{name_or_path.split('/')[1]}") from None
    return JanusPolicy.from_pretrained(path)


OFFICIAL_PROMPTS = {"t2i-compbench": "COTLAB_T2I_COMPBENCH"}  # a benchmark name -> the variable naming its directory


def training_prompts(cfg: RLConfig) -> list[str]:
    """The training prompt set: the suite's split without the prompts that touch `cfg.holdout`, restricted to
    `categories`, shuffled by seed, first `num_prompts`.

    `cfg.prompts` is a ShapeWorld suite ("compbench", "geneval"), or T2I-CompBench's official prompt files: a directory
    of `<category>_<split>.txt`, or "t2i-compbench" with that directory in $COTLAB_T2I_COMPBENCH. Hold-outs are read
    from ShapeWorld's prompt meanings, so official files take only "L0" (a ValueError names the field otherwise), and
    a split the hold-out does not filter (val, test, all, the held-out splits) is refused when it keeps a touching
    prompt: a run never trains on what its hold-out names."""
    import os

    if cfg.prompts not in SUITES and cfg.holdout != "L0":
        raise ValueError(f"holdout={cfg.holdout!r} needs a ShapeWorld suite ({', '.join(SUITES)}): hold-outs filter "
                         f"prompts by their ShapeWorld meaning, and prompts={cfg.prompts!r} is not one; set "
                         f"holdout='L0' for official prompt files")
    directory = os.environ.get(OFFICIAL_PROMPTS[cfg.prompts], "") if cfg.prompts in OFFICIAL_PROMPTS else cfg.prompts
    if cfg.prompts in SUITES:
        suite = load_suite(cfg.prompts, cfg.split, holdout=cfg.holdout)
        touching = [p.text for p in suite if HOLDOUTS[cfg.holdout].touches(p)]
        if touching:  # "val", "test", "all" and the held-out splits keep what the hold-out names
            raise ValueError(f"split {cfg.split!r} of {cfg.prompts} keeps {len(touching)} prompts that touch "
                             f"holdout={cfg.holdout!r} (e.g. {touching[0]!r}); train on a split the hold-out filters "
                             f"(compbench: train, dev, val-seen; geneval: test-seen)")
        prompts = [(p.text, p.category) for p in suite]
    elif directory and Path(directory).expanduser().is_dir():
        present = [c for c in COMPBENCH_CATEGORIES if (Path(directory).expanduser() / f"{c}_{cfg.split}.txt").is_file()]
        prompts = [(p.prompt, c) for c in (cfg.categories or present) for p in load_compbench(directory, c, cfg.split)]
    else:
        raise FileNotFoundError(
            f"prompts={cfg.prompts!r} is neither a ShapeWorld suite ({', '.join(SUITES)}) nor a directory of "
            f"T2I-CompBench prompt files. cotlab does not ship the official prompts: get examples/dataset/ from "
            f"github.com/Karine-Huang/T2I-CompBench and pass --set prompts=/path/to/dataset (or set "
            f"COTLAB_T2I_COMPBENCH=/path/to/dataset for prompts='t2i-compbench')")
    if cfg.categories is not None:
        known = sorted({category for _, category in prompts})
        unknown = [c for c in cfg.categories if c not in known]
        if unknown:
            raise ValueError(f"unknown categories {unknown} for {cfg.prompts}; known: {', '.join(known)}")
        prompts = [p for p in prompts if p[1] in cfg.categories]
    order = np.random.default_rng(cfg.seed).permutation(len(prompts))
    texts = [prompts[i][0] for i in order]
    return texts[:cfg.num_prompts] if cfg.num_prompts is not None else texts


PROBE_SEED = 20_505  # the probe's draws: one seed for every run, so probes of different runs are paired


def probe_prompts(cfg: RLConfig, train_prompts: list[str]) -> list[str]:
    """`cfg.probe_prompts` prompts spread evenly over the in-domain dev split of a ShapeWorld suite that has one
    (prompts no choice is reported on and no run trains on), else over the training prompts (official prompt files)."""
    dev = "dev" in SPLITS.get(cfg.prompts, ())
    pool = [p.text for p in load_suite(cfg.prompts, "dev", holdout=cfg.holdout)] if dev else list(train_prompts)
    n = min(cfg.probe_prompts, len(pool))
    return [pool[int(i)] for i in np.linspace(0, len(pool) - 1, n).round()]


class Trainer:
    """The loop shared by `GRPOTrainer` and `DPOTrainer`; they implement `begin_round` and `train_step`."""

    def __init__(self, cfg: RLConfig, policy=None, reward_model=None, prompts: list[str] | None = None,
                 accelerator: Accelerator | None = None, progress: bool = True):
        self.cfg = cfg
        # Everything that can be checked without the models is checked first: a mistake must not cost a pretraining.
        self.out = Path(cfg.output_dir) if cfg.output_dir else None
        if self.out is not None:
            make_directory(self.out, "output_dir")
        self.prompts = list(prompts) if prompts is not None else training_prompts(cfg)
        if not self.prompts:
            raise ValueError("no training prompts: check prompts, split, categories and num_prompts")
        if reward_model is None:
            check_reward(cfg.reward, cfg.reward_options)
        device = accelerator.device if accelerator is not None else PartialState().device
        if cfg.mixed_precision == "fp16" and device.type == "cpu":  # checked before accelerate fixes its state
            raise ValueError("mixed_precision='fp16' needs a GPU: on the CPU accelerate ignores it and trains in "
                             "float32; use 'bf16' or 'no'")
        self.accelerator = accelerator or Accelerator(mixed_precision=cfg.mixed_precision)
        self.policy = policy if policy is not None else load_policy(cfg.policy)
        # Cached: a (prompt, image) pair that comes back (identical samples in a group, DPO's later rounds) is not
        # rescored. The budget still counts it as a reward call, as the paper's accounting would.
        self.reward_model = cached(reward_model if reward_model is not None
                                   else get_reward(cfg.reward, **cfg.reward_options))
        self.progress = progress
        world = self.accelerator.num_processes
        if cfg.prompts_per_step % (world * cfg.gradient_accumulation_steps):
            raise ValueError(f"prompts_per_step={cfg.prompts_per_step} must be divisible by processes ({world}) x "
                             f"gradient_accumulation_steps ({cfg.gradient_accumulation_steps})")
        model = self.policy.model
        torch.manual_seed(cfg.seed)
        if cfg.gradient_checkpointing:
            model.model.language_model.gradient_checkpointing_enable()
        names = self._set_trainable(model, cfg.trainable)
        self.trainable_names = names
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                      betas=(cfg.adam_beta1, cfg.adam_beta2))
        warm = cfg.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        # The reference: a frozen copy of the starting weights (the KL anchor of GRPO, the denominator of DPO), taken
        # before prepare() shards the policy under ZeRO-3 / FSDP.
        reference = copy.deepcopy(self.policy.scorer).eval().requires_grad_(False) if self.needs_reference else None
        # The probe measures KL to the base: the reference when it stays the base, else a frozen copy of its own.
        probe_base = None
        if cfg.probe_every and (reference is None or cfg.reference != "base"):
            probe_base = copy.deepcopy(self.policy.scorer).eval().requires_grad_(False)
        self.scorer, self.optimizer, self.scheduler = self.accelerator.prepare(self.policy.scorer, optimizer, scheduler)
        self.params = params
        self.reference = None if reference is None else prepare_reference(reference, self.accelerator)
        self.probe_base = self.reference if probe_base is None else prepare_reference(probe_base, self.accelerator)
        self.probe_set = probe_prompts(cfg, self.prompts) if cfg.probe_every else []
        if self.reference is not None and cfg.reference == "round_start" and shards_weights(self.accelerator):
            raise ValueError("reference='round_start' copies the policy into the reference each round, which this "
                             "trainer does not do under ZeRO-3 or FSDP; use reference='base' there")
        self.round, self.step, self.history = 0, 0, []
        self.totals = {"images_sampled": 0, "reward_calls": 0}
        self.timer = PhaseTimer()  # the current step's phases; the loop logs and resets it after each step
        self._writer = None

    needs_reference = True

    @staticmethod
    def _set_trainable(model, prefixes) -> list[str]:
        names = [n for n, _ in model.named_parameters()]
        unmatched = [p for p in prefixes if not any(n.startswith(p) for n in names)]
        if unmatched:
            roots = sorted({".".join(n.split(".")[:2]) for n in names})
            raise ValueError(f"trainable prefixes {unmatched} match no parameter; top-level modules: {', '.join(roots)}")
        chosen = []
        for name, param in model.named_parameters():
            keep = any(name.startswith(p) for p in prefixes)
            param.requires_grad_(keep)
            if keep:
                chosen.append(name)
        return chosen

    # -- data -------------------------------------------------------------------------------------------------------

    def step_prompts(self, round_: int, step: int) -> tuple[list[str], list[int]]:
        """This process's share of the prompts of (round, step), with their indices within the step."""
        p, n = self.cfg.prompts_per_step, len(self.prompts)
        first = (round_ * self.cfg.max_steps + step) * p
        chosen = []
        for position in range(first, first + p):
            epoch, i = divmod(position, n)
            order = np.random.default_rng([self.cfg.seed, epoch]).permutation(n) if epoch else np.arange(n)
            chosen.append(self.prompts[int(order[i])])
        share = process_share(self.accelerator, p)
        return chosen[share], list(range(p))[share]

    def collect(self, round_: int, step: int) -> tuple[Groups, dict]:
        """Sample and score this process's groups for (round, step) with the current policy."""
        cfg = self.cfg
        prompts, index = self.step_prompts(round_, step)
        model = self.policy.model
        was_training = model.training
        model.eval()
        with self.accelerator.autocast(), full_weights(self.accelerator, self.scorer):
            groups = collect_groups(self.policy, self.reward_model, prompts, index, num_generations=cfg.num_generations,
                                    seed=cfg.seed, round_=round_, step=step, guidance_scale=cfg.guidance_scale,
                                    temperature=cfg.temperature, top_k=cfg.top_k, logprob_mode=cfg.logprob_mode,
                                    batch_images=cfg.sample_batch_images, timer=self.timer)
        model.train(was_training)
        images = global_sum(self.accelerator, len(groups.row_prompts))
        self.totals["images_sampled"] += images
        self.totals["reward_calls"] += images
        groups.images = []  # scored; keep tokens only
        return groups, {"budget/images_sampled": images, "budget/reward_calls": images}

    def token_logprobs(self, prompts: list[str], tokens: torch.Tensor, *, reference: bool = False,
                       with_entropy: bool = False):
        """Per-token log-probs under the policy being trained (differentiable) or the frozen reference; with
        `with_entropy`, also the per-token entropies (detached)."""
        cfg = self.cfg
        scorer = self.reference if reference else self.scorer
        with self.accelerator.autocast():
            return self.policy.token_logprobs(prompts, tokens, cfg.logprob_mode, cfg.guidance_scale, cfg.temperature,
                                              scorer=scorer, with_entropy=with_entropy, tiled=cfg.tiled_logprobs)

    @torch.no_grad()
    def reference_logprobs(self, prompts: list[str], tokens: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.token_logprobs(prompts, tokens, reference=True)

    @torch.no_grad()
    def probe(self) -> dict:
        """On-policy reward and KL(pi || base) on the fixed probe prompts, one image each, with the same random draws
        (row seeds fixed by the prompt's place) at every probe of every run, so curves of two runs are paired.

        probe/reward_mean: mean reward of the probe's samples, for both algorithms (DPO's logged training reward is of
        its round buffer). probe/kl_base_k1: the k1 estimator E_{x~pi}[log pi(x) - log pi_base(x)] of KL(pi || base)
        per image, x the probe's samples and both log-probs of the CFG distribution that sampled them (summed over
        tokens).
        A measurement only: it draws no training randomness and makes no budgeted reward calls."""
        cfg = self.cfg
        model = self.policy.model
        was_training = model.training
        model.eval()
        seeds = [row_seed(PROBE_SEED, 0, 0, i, 0) for i in range(len(self.probe_set))]
        with self.accelerator.autocast(), full_weights(self.accelerator, self.scorer):
            roll = self.policy.sample(self.probe_set, 1, guidance_scale=cfg.guidance_scale,
                                      temperature=cfg.temperature, top_k=cfg.top_k, logprob_mode="cfg", row_seeds=seeds)
            base = self.policy.token_logprobs(self.probe_set, roll.image_tokens, "cfg", cfg.guidance_scale,
                                              cfg.temperature, scorer=self.probe_base, tiled=cfg.tiled_logprobs)
        model.train(was_training)
        rewards = checked_rewards(self.reward_model, self.probe_set, roll.images)
        return {"probe/reward_mean": rewards.mean().item(),
                "probe/kl_base_k1": (roll.logprobs.float() - base.float()).sum(-1).mean().item()}

    def reward_stats(self, groups: Groups) -> dict:
        """Mean and std of the rewards of a step's groups over all processes, and the mean of each component of a
        composite reward (its raw values)."""
        rewards = gather(self.accelerator, groups.rewards)
        stats = {"reward/mean": rewards.mean().item(), f"reward/{self.reward_model.name}_mean": rewards.mean().item(),
                 "reward/std": rewards.std().item() if len(rewards) > 1 else 0.0}
        for name, values in sorted(groups.components.items()):
            stats[f"reward/{name}_mean"] = gather(self.accelerator, values).mean().item()
        return stats

    # -- the update -------------------------------------------------------------------------------------------------

    def micro_batches(self, count: int):
        """The gradient-accumulation micro-batches of `count` local items (`distributed.micro_batches`)."""
        return micro_batches(self.accelerator, self.scorer, count, self.cfg.gradient_accumulation_steps)

    def optimizer_step(self) -> float:
        """Clip, step, and stop the run (FloatingPointError naming the step) before non-finite gradients reach the
        weights, or right after an update that made them non-finite: the last checkpoint on disk stays good."""
        grad_norm = float(self.accelerator.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
        if not math.isfinite(grad_norm):
            self._stop_non_finite(f"the gradient norm is {grad_norm} (a non-finite loss or reward); the update was "
                                  f"not applied")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        bad = [n for n, p in zip(self.trainable_names, self.params) if not torch.isfinite(p).all()]
        if bad:
            self._stop_non_finite(f"the update made {len(bad)} weight tensors non-finite (first: {bad[0]}; check "
                                  f"learning_rate and max_grad_norm)")
        return grad_norm

    def _stop_non_finite(self, what: str) -> None:
        step = self.round * self.cfg.max_steps + self.step + 1
        last = newest_checkpoint(self.out, self.accelerator.process_index) if self.out is not None else None
        raise FloatingPointError(f"{self.cfg.algorithm} stopped at step {step}: {what}. "
                                 + (f"Last good checkpoint: {last}" if last else "No checkpoint was written."))

    # -- the loop ---------------------------------------------------------------------------------------------------

    def begin_round(self, round_: int) -> None:
        """Called before the first step of each round (not when resuming in the middle of one: see extra_state)."""

    def train_step(self, round_: int, step: int) -> dict:
        raise NotImplementedError

    def reset_reference(self) -> None:
        """The reference becomes the current policy (iterative training with `reference="round_start"`)."""
        if self.reference is not None:
            self.reference.load_state_dict(self.accelerator.unwrap_model(self.scorer).state_dict())

    def train(self, resume_from: str | Path | None = None, overwrite: bool = False):
        """Run (or resume) the whole schedule; returns the trained policy. `resume_from`: a checkpoint directory or
        "latest" (the newest complete one under output_dir). Without either, a non-empty output_dir is refused
        unless `overwrite` (which empties it first). One process at a time trains into an output_dir (a lock)."""
        if resume_from is not None and overwrite:
            raise ValueError("resume and overwrite exclude each other: resume continues the run in output_dir, "
                             "overwrite deletes it")
        with output_lock(self.out if self.accelerator.is_main_process else None):
            return self._train(resume_from, overwrite)

    def _train(self, resume_from, overwrite: bool):
        cfg = self.cfg
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        if self.out is not None and self.accelerator.is_main_process:
            prepare_output(self.out, cfg, resume_from, overwrite, restored=(self.round, self.step) != (0, 0))
        health = TrainingHealth.replay(self.history, reward=self.reward_model.name,
                                       emit=self.accelerator.is_main_process)
        total = cfg.rounds * cfg.max_steps
        bar = tqdm(total=total, initial=self.round * cfg.max_steps + self.step, desc=f"{cfg.algorithm}",
                   disable=not (self.progress and self.accelerator.is_main_process))
        self.policy.model.train()
        while self.round < cfg.rounds:
            if self.step == 0:  # a resume in the middle of a round restores the round's state instead
                if self.round > 0 and cfg.reference == "round_start":
                    self.reset_reference()
                self.begin_round(self.round)
            while self.step < cfg.max_steps:
                with self.timer("step"):
                    row = self.train_step(self.round, self.step)
                self.step += 1
                row = {"round": self.round + 1, "step": self.round * cfg.max_steps + self.step,
                       "optim/learning_rate": self.scheduler.get_last_lr()[0], **row,
                       **{f"budget/total_{k}": v for k, v in self.totals.items()}, **self.timer.pop()}
                if cfg.probe_every and row["step"] % cfg.probe_every == 0:
                    row.update(self.probe())
                row.update(health.update(row))
                self.history.append(row)
                self._log(row)
                bar.update(1)
                bar.set_postfix(reward=f"{row.get('reward/mean', float('nan')):.3f}",
                                **({"kl": f"{row['policy/kl_ref_k3']:.4f}"} if "policy/kl_ref_k3" in row else {}))
                last = self.round == cfg.rounds - 1 and self.step == cfg.max_steps
                if self.out is not None and (last or (cfg.save_steps and row["step"] % cfg.save_steps == 0)):
                    self.save_checkpoint()
            self.round, self.step = self.round + 1, 0
        bar.close()
        self.policy.model.eval()
        if self._writer is not None:
            self._writer.flush()
        return self.policy

    # -- logging ----------------------------------------------------------------------------------------------------

    def _log(self, row: dict) -> None:
        if self.out is None or not self.accelerator.is_main_process:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if "jsonl" in self.cfg.report_to:
            write_jsonl(self.out / "metrics.jsonl", [row], append=True)
        if "tensorboard" in self.cfg.report_to:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.out / "tensorboard"))
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("step", "round"):
                    self._writer.add_scalar(key, value, row["step"])

    # -- checkpoints ------------------------------------------------------------------------------------------------

    def extra_state(self) -> dict:
        """Algorithm state to checkpoint (DPO: the round's groups and pairs)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def save_checkpoint(self) -> Path:
        """output_dir/checkpoint-<step>/ (`checkpointing.write_checkpoint`)."""
        cfg = self.cfg
        state = None
        if self.accelerator.is_main_process:
            state = {"round": self.round, "step": self.step, "history": self.history, "totals": self.totals,
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     # a "base" reference is rebuilt from the base on resume; only a round-start one is state
                     "reference": self.reference.state_dict() if cfg.reference == "round_start" and self.reference
                     is not None else None}
        return write_checkpoint(self.out, self.round * cfg.max_steps + self.step, self.accelerator, self.policy,
                                self.scorer, cfg, state, self.extra_state())

    def load_checkpoint(self, path) -> None:
        """Continue from checkpoint `path`, or for "latest" the newest complete one under output_dir (if any)."""
        path = resolve_checkpoint(path, self.out, self.accelerator)
        if path is None:
            return  # nothing to resume: start from the beginning
        state, rank = read_checkpoint(path, self.accelerator, self.scorer, self.cfg)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.reference is not None and state["reference"] is not None:
            self.reference.load_state_dict(state["reference"])
        self.round, self.step = state["round"], state["step"]
        self.history, self.totals = [current_names(r) for r in state["history"]], state["totals"]
        if self.step == self.cfg.max_steps:
            self.round, self.step = self.round + 1, 0
        restore_rng(rank["rng"])
        self.load_extra_state(rank["extra"])
        if self.out is not None and self.accelerator.is_main_process and "jsonl" in self.cfg.report_to:
            self.out.mkdir(parents=True, exist_ok=True)
            write_jsonl(self.out / "metrics.jsonl", self.history)  # drop rows logged after the checkpoint


__all__ = ["Trainer", "load_policy", "training_prompts"]
