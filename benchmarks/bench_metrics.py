"""Speed of all pixel metrics on one 1024x1024 map (ours vs scikit-learn), and memory vs images.

Run: ``OMP_NUM_THREADS=1 pytest benchmarks/bench_metrics.py --benchmark-only -s``
The scikit-learn reference runs first; each of our rows stores ``speedup_vs_sklearn`` (ratio
of mean times) in ``extra_info`` and prints it. The memory check compares tracemalloc peaks.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import (f1_score, jaccard_score, matthews_corrcoef, precision_recall_curve,
                             roc_auc_score)

from imlbench.metrics import METRIC_NAMES, MetricSuite, ScoredImage

PIXEL_METRICS = [n for n in METRIC_NAMES if n.startswith("pixel_") and n != "pixel_fpr_authentic"]
THRESHOLD_ONLY = ["pixel_f1", "pixel_f1_pooled", "pixel_iou", "pixel_mcc"]
_sklearn_mean_s: dict[str, float] = {}


def realistic_image(size: int, seed: int = 0) -> ScoredImage:
    """A blob mask and sigmoid(±2 + N(0, 2)) map: ~all pixel values distinct, as from a network."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = (yy - 0.4 * size) ** 2 + (xx - 0.55 * size) ** 2 <= (0.2 * size) ** 2
    logit = 2.0 * (2 * mask - 1.0) + rng.normal(0, 2.0, mask.shape)
    prob = (1 / (1 + np.exp(-logit))).astype(np.float32)
    return ScoredImage(f"bench{seed}", prob, mask, 1, float(prob.max()))


@pytest.fixture(scope="module")
def image_1024() -> ScoredImage:
    return realistic_image(1024)


def sklearn_pixel_metrics(item: ScoredImage) -> dict[str, float]:
    """What a user calls today: one scikit-learn function per metric, each on the full map."""
    y, p = item.mask.ravel(), item.prob.ravel()
    precision, recall, _ = precision_recall_curve(y, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        best_f1 = np.nanmax(2 * precision * recall / (precision + recall))
    return {"pixel_f1": f1_score(y, p > 0.5), "pixel_iou": jaccard_score(y, p > 0.5),
            "pixel_mcc": matthews_corrcoef(y, p > 0.5), "pixel_auc": roc_auc_score(y, p),
            "pixel_f1_best": best_f1}


def ours(item: ScoredImage, names: list[str]) -> dict[str, float]:
    suite = MetricSuite(names)
    suite.update(item)
    return suite.compute()


def test_sklearn_all_pixel_metrics_1024(benchmark, image_1024):
    benchmark.group = "pixel metrics, one 1024x1024 map"
    want = benchmark.pedantic(sklearn_pixel_metrics, args=(image_1024,), rounds=3, iterations=1)
    _sklearn_mean_s["all"] = benchmark.stats.stats.mean
    got = ours(image_1024, PIXEL_METRICS)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("names", [PIXEL_METRICS, THRESHOLD_ONLY], ids=["all", "threshold_only"])
def test_ours_pixel_metrics_1024(benchmark, image_1024, names):
    benchmark.group = "pixel metrics, one 1024x1024 map"
    benchmark(ours, image_1024, names)
    if names == PIXEL_METRICS and "all" in _sklearn_mean_s:  # ours also computes the pooled two
        speedup = _sklearn_mean_s["all"] / benchmark.stats.stats.mean
        benchmark.extra_info["speedup_vs_sklearn"] = speedup
        print(f"\nall pixel metrics {names}: {speedup:.1f}x faster than scikit-learn's 5 calls")


def _peak_bytes(n_images: int, size: int = 256) -> int:
    """tracemalloc peak while streaming ``n_images`` maps (each made, scored and dropped)."""
    suite = MetricSuite(PIXEL_METRICS + ["pixel_fpr_authentic"])
    tracemalloc.start()
    for i in range(n_images):
        suite.update(realistic_image(size, seed=i))
    suite.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_is_constant_in_the_number_of_images(benchmark):
    benchmark.group = "memory: 256x256 maps"
    peaks = benchmark.pedantic(lambda: (_peak_bytes(10), _peak_bytes(100)), rounds=1, iterations=1)
    benchmark.extra_info.update(peak_bytes_10_images=peaks[0], peak_bytes_100_images=peaks[1])
    print(f"\ntracemalloc peak: 10 images {peaks[0] / 2**20:.2f} MiB, "
          f"100 images {peaks[1] / 2**20:.2f} MiB")
    assert peaks[1] <= 1.05 * peaks[0]
