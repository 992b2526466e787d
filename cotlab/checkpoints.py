"""Loading a transformers checkpoint, never random weights: the paper-scale reward models (`cotlab.rewards`) and the
benchmark scorers (`cotlab.evaluation.geneval`, `cotlab.evaluation.t2i_compbench`) load theirs through
`load_checkpoint` (most through `load_pretrained`, every CLIP through `load_clip`), so that a checkpoint that is not
there is a FileNotFoundError naming it, the download command and how to point cotlab at it."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def torch_dtype(dtype) -> torch.dtype:
    """A torch dtype from itself or its name ("float32", "bfloat16", ...)."""
    value = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use a torch dtype name such as 'float32', 'bfloat16' or 'float16'")
    return value


def is_local(path) -> bool:
    """Whether `path` names a directory rather than a hub id ("name" or "owner/name")."""
    text = os.fspath(path)
    return (isinstance(path, os.PathLike) or os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") > 1
            or os.path.exists(os.path.expanduser(text)))


def load_checkpoint(owner: str, path, default_checkpoint: str, load, how: str):
    """`load(path)` after checking that a local directory holds a config and weights; a checkpoint that is not there
    (a bad directory, a hub id that cannot be fetched) is a FileNotFoundError naming `owner`, the checkpoint to
    download (for a local directory `default_checkpoint`, for a hub id itself), the download command and how to point
    cotlab at it (`how`, with {dir} for the directory)."""
    def missing(problem: str) -> FileNotFoundError:
        checkpoint = default_checkpoint if is_local(path) else os.fspath(path)
        directory = os.fspath(path) if is_local(path) else "/path/to/dir"
        return FileNotFoundError(
            f"{owner} cannot load {os.fspath(path)!r}: {problem}. It needs the transformers checkpoint {checkpoint} "
            f"(cotlab never scores with random weights). Download it with the huggingface_hub CLI, `hf download "
            f"{checkpoint} --local-dir {directory}` (formerly `huggingface-cli download`), and point cotlab at it "
            f"with {how.format(dir=repr(directory))}.")

    if is_local(path):
        directory = Path(path).expanduser()
        problem = ("no such directory" if not directory.is_dir() else
                   "no config.json in it" if not (directory / "config.json").is_file() else
                   "no weights (*.safetensors or *.bin) in it"
                   if not any(directory.glob("*.safetensors")) and not any(directory.glob("*.bin")) else None)
        if problem:
            raise missing(problem)
        path = str(directory)
    try:
        return load(path)
    except OSError as error:
        raise missing(f"{type(error).__name__}: {str(error).rstrip('.')}") from error


def load_pretrained(owner: str, path, default_checkpoint: str, how: str, model_class, processor_class, *,
                    device: str = "cpu", dtype="float32", local_files_only: bool = False):
    """(model, processor) at `path` through `load_checkpoint` (its `owner`, `default_checkpoint` and `how`): the
    processor by `processor_class.from_pretrained`, the model by `model_class.from_pretrained` in `dtype`, on
    `device`."""
    def load(source):
        processor = processor_class.from_pretrained(source, local_files_only=local_files_only)
        model = model_class.from_pretrained(source, dtype=torch_dtype(dtype), local_files_only=local_files_only)
        return model.to(device), processor

    return load_checkpoint(owner, path, default_checkpoint, load, how)


def load_clip(owner: str, path, default_checkpoint: str, how: str, **options):
    """(CLIPModel, CLIPProcessor) at `path` (`load_pretrained`; `options`: device, dtype, local_files_only): the one
    CLIP loader of CLIPScore and the benchmark scorers."""
    from transformers import CLIPModel, CLIPProcessor

    return load_pretrained(owner, path, default_checkpoint, how, CLIPModel, CLIPProcessor, **options)


__all__ = ["is_local", "load_checkpoint", "load_clip", "load_pretrained", "torch_dtype"]
