"""A training run's output directory and its checkpoints.

output_dir/checkpoint-<step>/ holds the policy (safetensors), the config, and the loop's state as safetensors + JSON
(`cotlab.state_files`, never unpickled): `trainer_state` (the main process's: optimizer, scheduler, counters, history)
and `rank<k>` (each process's RNG states and algorithm state). It is written into checkpoint-<step>.partial/ and
renamed when every process has written its part, so a kill at any moment leaves the previous checkpoints usable.
One live process at a time trains into an output directory (a lock), and a used one is refused unless the run
resumes or overwrites it.
"""
from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from cotlab.state_files import (
    StateFileError,
    atomic_write_text,
    load_state,
    newest_complete,
    partial_directory,
    publish_directory,
    save_state,
)

from .config import RLConfig
from .distributed import full_weights

STATE = "trainer_state"  # trainer_state.json + trainer_state.safetensors (cotlab.state_files): never unpickled
CONFIG_FILE = "config.json"
LOCK_FILE = ".cotlab.lock"  # held by the process training into an output directory
PREFIX = "checkpoint-"


class OutputDirBusy(FileExistsError):
    """Another live process is training into the output directory."""


@contextlib.contextmanager
def output_lock(out: Path | None):
    """Hold `out`'s lock for the duration (the main process passes output_dir, the others None): a second live
    process is refused at once; a lock left by a dead process is released by the OS (flock), so a killed run never
    blocks its resume."""
    if out is None:
        yield
        return
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputDirBusy(f"{out} is in use by another cotlab process training into it (lock "
                            f"{out / LOCK_FILE}); wait for it to finish or choose another output_dir") from None
    try:
        yield
    finally:
        lock.release()


def prepare_output(out: Path, cfg: RLConfig, resume_from, overwrite: bool, restored: bool) -> None:
    """Refuse or empty a used output directory; write config.json before the first step (main process). `restored`:
    whether a checkpoint was loaded (a resume without one continues a run killed before its first checkpoint)."""
    used = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) if out.is_dir() else []
    if used and resume_from is None:
        if not overwrite:
            raise FileExistsError(
                f"output directory {out} is not empty ({', '.join(used[:4])}{', ...' if len(used) > 4 else ''}"
                f"); continue its run with --resume (resume_from='latest'), start over with --overwrite "
                f"(deletes its metrics, checkpoints and logs), or choose another --output-dir")
        for name in used:
            path = out / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    elif used and not restored:
        written = out / CONFIG_FILE
        if written.is_file():
            check_same_config(cfg, json.loads(written.read_text()), written)
        for name in ("metrics.jsonl", "tensorboard"):  # the killed run's rows are not part of this run
            path = out / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2))


def check_same_config(cfg: RLConfig, values: dict, where: Path) -> None:
    diff = cfg.diff(type(cfg).from_dict(values))
    if diff:
        lines = "; ".join(f"{k}: run {a!r} vs checkpoint {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"refusing to resume from {where}: it was written by another config ({lines})")


def required_files(process_index: int) -> tuple[str, ...]:
    """What a complete checkpoint holds (this process's rank files included)."""
    rank = f"rank{process_index}"
    return ("policy", CONFIG_FILE, f"{STATE}.json", f"{STATE}.safetensors", f"{rank}.json", f"{rank}.safetensors")


def newest_checkpoint(out: Path, process_index: int) -> Path | None:
    return newest_complete(out, PREFIX, required_files(process_index))[0]


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def write_checkpoint(out: Path, global_step: int, accelerator: Accelerator, policy, scorer, cfg: RLConfig,
                     state: dict | None, extra: dict) -> Path:
    """out/checkpoint-<global_step>/ from every process: the policy and config, the main process's `state` (None on
    the others) and each process's RNG states and algorithm state `extra`."""
    final = out / f"{PREFIX}{global_step:06d}"
    acc = accelerator
    acc.wait_for_everyone()
    if acc.is_main_process:
        partial_directory(final)
    acc.wait_for_everyone()
    path = final.with_name(final.name + ".partial")
    with full_weights(acc, scorer):  # every process enters: under ZeRO-3 / FSDP the gather is collective
        if acc.is_main_process:
            policy.save_pretrained(path / "policy")
    if acc.is_main_process:
        (path / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2))
        save_state(path, STATE, state)
    save_state(path, f"rank{acc.process_index}", {"rng": rng_state(), "extra": extra})
    acc.wait_for_everyone()
    if acc.is_main_process:
        publish_directory(path, final)
    acc.wait_for_everyone()
    return final


def resolve_checkpoint(path, out: Path | None, accelerator: Accelerator) -> Path | None:
    """A checkpoint directory, or for "latest" the newest complete one under `out` (None: start afresh).
    Incomplete ones (a kill while writing) are named on stderr, skipped and, on the main process, removed."""
    if str(path) != "latest":
        return Path(path)
    if out is None or not out.is_dir():
        return None
    found, skipped = newest_complete(out, PREFIX, required_files(accelerator.process_index))
    legacy = [p for p in skipped if (p / "trainer_state.pt").exists()]
    if legacy and found is None:
        raise FileNotFoundError(f"{legacy[0]} was written by an older cotlab (trainer_state.pt, a pickle, which "
                                f"is never loaded): start the run over with --overwrite, or in another directory")
    if skipped:
        names = ", ".join(p.name + (" (an older cotlab's pickled state, never loaded)" if p in legacy else "")
                          for p in skipped)
        print(f"[cotlab] skipped incomplete checkpoints in {out}: {names}"
              + (f"; resuming from {found.name}" if found else "; starting from the beginning"),
              file=sys.stderr, flush=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:  # leftovers of a killed writer; other directories are the user's
            for stale in skipped:
                if stale.name.endswith(".partial"):
                    shutil.rmtree(stale, ignore_errors=True)
    return found


def read_checkpoint(path: Path, accelerator: Accelerator, scorer, cfg: RLConfig) -> tuple[dict, dict]:
    """Check that checkpoint `path` was written by `cfg`'s run, load its policy weights into the prepared `scorer`,
    and return its main state and this process's rank state."""
    if not (path / f"{STATE}.json").is_file():
        legacy = " (trainer_state.pt: a pickled checkpoint of an older cotlab, which is never loaded)" if (
            path / "trainer_state.pt").exists() else ""
        raise FileNotFoundError(f"{path} is not a cotlab training checkpoint (no {STATE}.json){legacy}")
    if accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP):
        raise ValueError(f"cannot resume from {path} under {accelerator.distributed_type.value}: its "
                         f"optimizer state is the main process's shard only; restart the run, or start a new one "
                         f"from the checkpoint's policy with --set policy={path / 'policy'}")
    try:
        saved = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError) as e:
        raise StateFileError(f"{path / CONFIG_FILE}: not a readable config ({e}); the checkpoint is damaged: "
                             f"resume from an earlier one, or start over with --overwrite") from None
    check_same_config(cfg, saved, path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = {}
    for shard in sorted((path / "policy").glob("*.safetensors")):
        try:
            weights.update(load_file(shard))
        except (SafetensorError, OSError) as e:
            raise StateFileError(f"{shard}: not a readable safetensors file ({e})") from None
    model = accelerator.unwrap_model(scorer).model
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [m for m in missing if m in dict(model.named_parameters())]:
        raise ValueError(f"checkpoint {path} does not match the policy: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return load_state(path, STATE), load_state(path, f"rank{accelerator.process_index}")


__all__ = ["CONFIG_FILE", "LOCK_FILE", "STATE", "OutputDirBusy", "check_same_config", "newest_checkpoint",
           "output_lock", "prepare_output", "read_checkpoint", "resolve_checkpoint", "restore_rng", "rng_state",
           "write_checkpoint"]
