"""Where a measurement ran, recorded beside every benchmark's numbers (`cotlab bench ...` and the throughput study)."""
from __future__ import annotations

import platform

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for `device`'s queued work (CUDA runs asynchronously), so that a timer measures the work itself."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_record(device: torch.device) -> dict:
    """torch's intra-op threads, the device and its name (the GPU's, else the processor's)."""
    return {"torch_threads": torch.get_num_threads(), "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine())}


__all__ = ["machine_record", "synchronize"]
