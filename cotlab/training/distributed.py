"""What running on several processes adds to a step: each process's share, sums over processes, whole weights.

With N processes, process k takes the k-th contiguous share of a step's prompts (and so of its rows); with gradient
accumulation, that share is split again into micro-batches. Every loss is normalised by global counts, and accelerate
averages gradients over processes, so one process with the whole batch and N processes with shares compute the same
update (to floating-point summation order). With one process every helper here is the identity.
"""
from __future__ import annotations

import contextlib

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType


def process_share(accelerator: Accelerator, count: int) -> slice:
    """This process's contiguous share of `count` items split evenly over the processes."""
    share = count // accelerator.num_processes
    start = accelerator.process_index * share
    return slice(start, start + share)


def micro_batches(accelerator: Accelerator, model, count: int, steps: int):
    """Index ranges of the `steps` gradient-accumulation micro-batches of `count` local items, with the context that
    skips `model`'s gradient all-reduce on all but the last."""
    size = -(-count // steps)  # the last micro-batches may be shorter (DPO's pair counts vary), or empty
    for i in range(steps):
        sync = i == steps - 1
        ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
        yield slice(min(count, i * size), min(count, (i + 1) * size)), ctx


def gather(accelerator: Accelerator, tensor: torch.Tensor) -> torch.Tensor:
    """Every process's `tensor`, concatenated in process order."""
    return accelerator.gather(tensor) if accelerator.num_processes > 1 else tensor


def global_sum(accelerator: Accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    t = torch.tensor([float(value)], device=accelerator.device)
    return accelerator.reduce(t, reduction="sum").item()


def global_mean(accelerator: Accelerator, value: float) -> float:
    return global_sum(accelerator, value) / accelerator.num_processes


def global_max(accelerator: Accelerator, value: float) -> float:
    """The largest of each process's `value` (-inf where a process had none)."""
    if accelerator.num_processes == 1:
        return value
    return accelerator.gather(torch.tensor([float(value)], device=accelerator.device)).max().item()


def shards_weights(accelerator: Accelerator) -> bool:
    """Whether the policy's weights are sharded across processes (DeepSpeed ZeRO-3 or FSDP)."""
    kind = accelerator.distributed_type
    return kind == DistributedType.FSDP or (kind == DistributedType.DEEPSPEED
                                            and accelerator.state.deepspeed_plugin.zero_stage == 3)


@contextlib.contextmanager
def full_weights(accelerator: Accelerator, wrapped):
    """The prepared model `wrapped` with its weights whole and in place on every process for the duration, read-only:
    gathered under ZeRO-3 (with ZeRO's forward hooks off, as TRL's `unwrap_model_for_generation` does) or FSDP
    (`summon_full_params`); as they are otherwise. Every process must enter it: the gather is collective. The sampler
    calls only submodules (`cotlab.policy.sampling`), which is what sampling on gathered weights needs."""
    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED and shards_weights(accelerator):
        import deepspeed
        from trl.models.utils import add_hooks, remove_hooks

        with deepspeed.zero.GatheredParameters(list(wrapped.parameters())):
            remove_hooks(wrapped)
            try:
                yield
            finally:
                add_hooks(wrapped)
    elif kind == DistributedType.FSDP:
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(wrapped, writeback=False):
            yield
    else:
        yield


def prepare_reference(reference, accelerator: Accelerator):
    """The frozen reference scorer on this process: wrapped for inference like the policy under DeepSpeed (TRL's
    `prepare_deepspeed`: sharded under ZeRO-3, whole otherwise) and FSDP (`prepare_fsdp`); on the device otherwise."""
    kind = accelerator.distributed_type
    if kind == DistributedType.DEEPSPEED:
        from trl.models.utils import prepare_deepspeed

        reference.config = reference.model.config.text_config  # what prepare_deepspeed sizes ZeRO-3's buckets by
        return prepare_deepspeed(reference, accelerator)
    if kind == DistributedType.FSDP:
        from trl.models.utils import prepare_fsdp

        return prepare_fsdp(reference, accelerator)
    return reference.to(accelerator.device)


__all__ = ["full_weights", "gather", "global_max", "global_mean", "global_sum", "micro_batches", "prepare_reference",
           "process_share", "shards_weights"]
