"""The torch device to compute on: `auto`, or a named device that this machine has."""

from __future__ import annotations

import torch

from pipeline.core.errors import PipelineError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA when `enabled`; elsewhere (CPU, MPS) full precision."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def resolve_device(name: str, key: str) -> torch.device:
    """`auto`: CUDA, then Apple's MPS, then the CPU. Any other name must be a device of this machine, else a
    PipelineError that names `key` (the param or option the name came from)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise PipelineError(f"{key}: {name!r} is not a device name (use {DEVICE_CHOICES})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PipelineError(f"{key}: {name!r}: this machine has no CUDA device (use auto or cpu)")
        if device.index is not None and device.index >= count:
            raise PipelineError(f"{key}: {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise PipelineError(f"{key}: {name!r}: Apple's MPS is not available on this machine (use auto or cpu)")
    elif device.type != "cpu":
        raise PipelineError(f"{key}: {name!r}: not supported (use {DEVICE_CHOICES})")
    return device
