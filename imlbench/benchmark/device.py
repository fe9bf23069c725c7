"""Device and mixed-precision choice, shared by evaluation and training."""
from __future__ import annotations

import contextlib

import torch

from imlbench.errors import ConfigError, DeviceError


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


PRECISIONS = ("auto", "bf16", "fp16", "off")
"""``--amp``: ``auto`` = :func:`amp_dtype` (bf16 or fp16 on CUDA, none on CPU); ``bf16`` /
``fp16`` autocast to that dtype on any device (CPU autocast runs both, slowly: it is how the
tests check the tolerances without a GPU); ``off`` = fp32."""
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: bool | str, field: str = "--amp") -> bool | str:
    if isinstance(precision, bool) or precision in PRECISIONS:
        return precision
    raise ConfigError(f"{field} {precision!r} is not a precision; expected one of "
                      f"{', '.join(PRECISIONS)}")


def precision_dtype(device: torch.device, precision: bool | str = "auto") -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None``: fp32, no autocast). ``True``
    is ``"auto"`` and ``False`` is ``"off"`` (the training loop's ``amp: bool``)."""
    precision = check_precision(precision)
    if precision is True or precision == "auto":
        return amp_dtype(device)
    if precision is False or precision == "off":
        return None
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"--amp bf16 was given but {torch.cuda.get_device_name(device)} has no "
                          "bf16; use --amp fp16 or auto")
    return _DTYPES[precision]


def autocast(device: torch.device, enabled: bool | str = True):
    """Autocast for ``enabled`` (a bool, or a precision of :data:`PRECISIONS`) on ``device``."""
    dtype = precision_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
