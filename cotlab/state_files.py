"""Training state on disk without pickle: tensors in safetensors, everything else in JSON.

A checkpoint of a training loop holds tensors (optimizer moments, RNG states, sampled tokens) inside plain containers
(dicts, lists, tuples, numbers, strings). `save_state(directory, name, state)` writes `<name>.safetensors` (every
tensor, keyed by its place in the structure, e.g. ``optimizer/state/3/exp_avg``) and `<name>.json` (the structure,
with each tensor replaced by a reference to its key). `load_state` rebuilds the structure. Nothing is unpickled, so a
planted file can hold wrong numbers but cannot run code: an unknown tag or a reference to a missing tensor is refused
with an error naming the file.

JSON cannot tell a tuple from a list, or hold non-string dict keys or numpy arrays; those are tagged:
``{"__tuple__": [...]}``, ``{"__items__": [[key, value], ...]}``, ``{"__ndarray__": [...], "dtype": "uint32"}``.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

# torch, numpy and safetensors are imported where states are read and written: the run store imports this module for
# its atomic writes, and its users (e.g. a process waiting for another's build) need not load torch.

TAGS = ("__tensor__", "__tuple__", "__items__", "__ndarray__", "__float__")


class StateFileError(ValueError):
    """A state file that cannot be read back: damaged, or not written by `save_state`."""


def _encode(value: Any, where: str, tensors: dict, storages: set) -> Any:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        # safetensors refuses tensors that share memory (views of one buffer): copy all but the first
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else None
        if ptr is not None and (ptr in storages or not tensor.is_contiguous() or tensor._base is not None):
            tensor = tensor.clone()
        storages.add(ptr)
        tensors[where] = tensor.contiguous()
        return {"__tensor__": where}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}  # inf, -inf, nan: not standard JSON
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}/{i}", tensors, storages) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}/{i}", tensors, storages) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) in (1, 2) and set(value) & set(TAGS)):
            return {k: _encode(v, f"{where}/{k}", tensors, storages) for k, v in value.items()}
        return {"__items__": [[_encode(k, f"{where}/key{i}", tensors, storages),
                               _encode(v, f"{where}/{k}", tensors, storages)] for i, (k, v) in enumerate(value.items())]}
    raise TypeError(f"{where}: cannot store {type(value).__name__} in a state file (tensors, numbers, strings, None, "
                    f"lists, tuples, dicts and numpy arrays only)")


def _decode(value: Any, tensors: dict, file: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, file) for v in value]
    if not isinstance(value, dict):
        return value
    tag = next((t for t in TAGS if t in value), None)
    if tag is None:
        return {k: _decode(v, tensors, file) for k, v in value.items()}
    body = value[tag]
    if tag == "__tensor__":
        if body not in tensors:
            raise StateFileError(f"{file}: refers to tensor {body!r}, which its .safetensors file does not hold")
        return tensors[body]
    if tag == "__tuple__":
        return tuple(_decode(v, tensors, file) for v in body)
    if tag == "__items__":
        return {_decode(k, tensors, file): _decode(v, tensors, file) for k, v in body}
    if tag == "__float__":
        if body not in ("inf", "-inf", "nan"):
            raise StateFileError(f"{file}: bad float {body!r}")
        return float(body)
    import numpy as np

    return np.asarray(body, dtype=np.dtype(value["dtype"]))


def save_state(directory: str | Path, name: str, state: Any) -> list[Path]:
    """Write `state` as `directory/<name>.json` and `directory/<name>.safetensors`; returns the two paths."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tensors: dict = {}
    skeleton = _encode(state, name, tensors, set())
    text = json.dumps({"format": "cotlab-state-1", "state": skeleton})
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.safetensors", directory / f"{name}.json"]
    save_file(tensors, str(paths[0]))
    paths[1].write_text(text, encoding="utf-8")
    return paths


def load_state(directory: str | Path, name: str) -> Any:
    """The state `save_state(directory, name, ...)` wrote. Raises StateFileError naming the file when a file is
    missing, cut short or not in this format."""
    directory = Path(directory)
    json_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise StateFileError(f"{path}: missing (not a complete cotlab state)")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StateFileError(f"{json_path}: not a cotlab state file ({e})") from None
    if not isinstance(document, dict) or document.get("format") != "cotlab-state-1" or "state" not in document:
        raise StateFileError(f"{json_path}: not a cotlab state file (no 'format': 'cotlab-state-1')")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise StateFileError(f"{tensor_path}: not a readable safetensors file ({e})") from None
    try:
        return _decode(document["state"], tensors, json_path)
    except (TypeError, KeyError, ValueError) as e:
        if isinstance(e, StateFileError):
            raise
        raise StateFileError(f"{json_path}: malformed state ({type(e).__name__}: {e})") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same directory + fsync + os.replace: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_directory(path: str | Path, what: str = "output directory") -> Path:
    """Create `path` (and its parents) as a directory, or raise NotADirectoryError naming it when it, or a parent, is
    a file: checked before any work whose results would go there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise NotADirectoryError(f"{what} {path} cannot be created: {blocker} is a file; choose another path") from None
    return path


# -- checkpoint directories: written under a temporary name, renamed when complete ------------------------------------

PARTIAL = ".partial"


def partial_directory(final: str | Path) -> Path:
    """Where a checkpoint bound for `final` is written (`<final>.partial`, emptied first: a leftover of a killed
    writer is never trusted). Publish it with `publish_directory`."""
    final = Path(final)
    partial = final.with_name(final.name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def publish_directory(partial: str | Path, final: str | Path) -> Path:
    """Rename the complete `partial` to `final` (replacing an older `final`): a reader sees the whole checkpoint or
    none of it."""
    final = Path(final)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


def newest_complete(parent: str | Path, prefix: str, required: tuple[str, ...]) -> tuple[Path | None, list[Path]]:
    """The newest directory `parent/<prefix><number>` holding every path in `required`, and the newer or partial ones
    skipped because they are incomplete (newest first)."""
    parent = Path(parent)
    pattern = re.compile(re.escape(prefix) + r"(\d+)(" + re.escape(PARTIAL) + r")?")
    found = sorted((int(m.group(1)), p.name) for p in parent.glob(f"{prefix}*")
                   if p.is_dir() and (m := pattern.fullmatch(p.name)))
    skipped = []
    for _, name in reversed(found):
        path = parent / name
        if not name.endswith(PARTIAL) and all((path / r).exists() for r in required):
            return path, skipped
        skipped.append(path)
    return None, skipped


__all__ = ["StateFileError", "atomic_write_text", "load_state", "make_directory", "newest_complete", "partial_directory",
           "publish_directory", "save_state"]
