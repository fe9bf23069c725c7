"""Device and mixed-precision choice, shared by evaluation and training."""
from __future__ import annotations

import contextlib

import torch

from imlbench.errors import DeviceError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:  # torch: "Expected one of cpu, cuda, ... device type"
        raise DeviceError(f"--device {device!r} is not a device: {str(exc).splitlines()[0]}; "
                          "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was given but torch sees no CUDA device "
                          f"(torch {torch.__version__}); use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {device} was given but torch sees "
                          f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...); pick one of them")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; ``None`` (no autocast) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True):
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
