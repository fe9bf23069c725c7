"""Model complexity for ``imlbench describe``: parameters, FLOPs and CPU forward time per image.

Each method is built with its **default** config (for zoo methods: the official architecture)
and fed one ``size``² picture shaped by its own input policy, so the figure is the cost of one
such picture as the runner would pay it: a ``resize`` method sees its network size, a ``canvas``
method (IML-ViT) its full canvas, ``native``/``pad`` methods the picture itself. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs, torch operators only:
a method computing in numpy has none to count and reports ``None``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from imlbench.methods.base import Method
from imlbench.methods.resample import shape_for_policy
from imlbench.registry import METHODS


@dataclass(frozen=True)
class Complexity:
    method: str
    params: int
    """Parameters (trainable or not; buffers excluded)."""
    flops: int | None
    """FLOPs of one ``predict`` on the shaped picture; ``None`` when no torch operator ran."""
    input_shape: tuple[int, ...]
    """``[1, 3, h, w]`` as ``predict`` received it."""
    forward_s: float | None = None
    """Median wall time of ``predict`` over the timed repeats (``None`` if not timed)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def example_input(method: Method, size: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """One ``size``² picture shaped by ``method``'s policy, and the keyword inputs of ``predict``
    a method with file-domain inputs needs (its ``example_inputs(images)``)."""
    picture = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    x = shape_for_policy(picture, method.input_policy).image[None]
    extra = getattr(method, "example_inputs", None)
    return x, (extra(x) if callable(extra) else {})


def measure(name: str, size: int = 512, *, repeats: int = 0,
            method: Method | None = None) -> Complexity:
    """Complexity of method ``name`` on CPU: ``method`` if given, else built with its defaults."""
    from torch.utils.flop_counter import FlopCounterMode

    method = (method if method is not None else METHODS.build(name)).eval()
    x, kwargs = example_input(method, size)
    params = sum(p.numel() for p in method.parameters())
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        method.predict(x, **kwargs)
    flops = counter.get_total_flops() or None
    forward = None
    if repeats:
        times = []
        with torch.inference_mode():
            for _ in range(repeats):
                start = time.perf_counter()
                method.predict(x, **kwargs)
                times.append(time.perf_counter() - start)
        forward = statistics.median(times)
    return Complexity(name, params, flops, tuple(x.shape), forward)


def render(rows: list[Complexity]) -> str:
    """A markdown table of ``rows``."""
    from tabulate import tabulate

    table = [[r.method, f"{r.params / 1e6:.2f}", "-" if r.flops is None else f"{r.flops / 1e9:.1f}",
              "×".join(map(str, r.input_shape[-2:])),
              "-" if r.forward_s is None else f"{r.forward_s:.2f}"] for r in rows]
    return tabulate(table, headers=["method", "params (M)", "GFLOPs", "predict input",
                                    "CPU forward (s)"], tablefmt="github")
