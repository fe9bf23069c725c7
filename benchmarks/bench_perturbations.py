"""Throughput of each registered perturbation on a 512x512 RGB image at a mid-grid severity.

Run: ``OMP_NUM_THREADS=1 pytest benchmarks/bench_perturbations.py --benchmark-only``
(images/s = 1 / mean; also stored in each result's ``extra_info``).
"""
from __future__ import annotations

import numpy as np
import pytest

from imlbench.registry import PERTURBATIONS
from imlbench.robustness import GRIDS, PerturbationSpec

SIZE = 512


def _mid_severity(name: str):
    grid = next(g[name] for g in GRIDS.values() if name in g)
    return grid[len(grid) // 2]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth gradient plus noise (JPEG cost depends on content), uint8 [512, 512, 3]."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    base = np.stack([xx / 2, yy / 2, (xx + yy) / 4], axis=-1)
    noise = np.random.default_rng(0).normal(0, 12, (SIZE, SIZE, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", PERTURBATIONS.list())
def test_perturbation_throughput(benchmark, image, name):
    spec = PerturbationSpec(((name, _mid_severity(name)),))
    benchmark.group = f"perturbation {SIZE}x{SIZE}"
    benchmark.name = spec.label()
    out = benchmark(spec.apply, image, "bench-sample")
    assert out.dtype == np.uint8
    benchmark.extra_info["images_per_s"] = 1.0 / benchmark.stats.stats.mean
