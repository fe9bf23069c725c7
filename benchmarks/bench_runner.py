"""Evaluation-loop benchmarks: harness overhead, input pipeline rate, memory vs number of images.

Run: ``OMP_NUM_THREADS=2 python -m pytest benchmarks/bench_runner.py --benchmark-only -s``
(results and the command are copied into docs/performance.md).

* overhead: end-to-end ``evaluate_cell`` time ÷ a bare ``model(x)`` loop over the same,
  already-decoded tensors (goal ≤ 1.10: the harness — decoding, resizing, mapping back,
  scoring at ground-truth resolution — must hide behind the model);
* pipeline: decode + perturb + resize rate of ``EvalDataset`` (images/s at 512²);
* memory: peak RSS of a fresh process evaluating 200 vs 2000 images (goal: flat).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imlbench.benchmark.runner import EvalDataset, evaluate_cell
from imlbench.datasets.base import Dataset, Sample
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.robustness import parse_spec


def write_dataset(root: Path, n: int, size: int) -> Dataset:
    """``n`` JPEG photos-like images (smoothed noise) of ``size``², half tampered."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        img = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
        ipath = root / f"{i:05d}.jpg"
        Image.fromarray(img).save(ipath, quality=90)
        mpath = None
        if i % 2 == 0:
            mask = np.zeros((size, size), np.uint8)
            mask[size // 4: size // 2, size // 4: size // 2] = 255
            mpath = root / f"{i:05d}_gt.png"
            Image.fromarray(mask).save(mpath)
        samples.append(Sample(f"{i:05d}", ipath, mpath, int(mpath is not None), "bench"))
    return Dataset(f"bench{n}", lambda: samples)


class SmallSegNet(Method):
    """A ~ResNet-18-sized compute load at 256² (stride-16 conv stack + bilinear up-sampling)."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("resize", size=256)

    def __init__(self) -> None:
        super().__init__()
        chans = [3, 64, 128, 256, 256]
        layers = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(256, 1, 1))

    def forward(self, x):
        return self.body(x)

    def predict(self, images, masks=None):
        logits = nn.functional.interpolate(self(images), size=images.shape[-2:], mode="bilinear")
        return Prediction(torch.sigmoid(logits))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bench"), 48, 384)


def test_harness_overhead(data, benchmark):
    torch.manual_seed(0)
    method = SmallSegNet().eval()
    batch = 8
    # the bare loop: the same images, decoded and resized beforehand, straight into the model
    ds = EvalDataset(data.samples, method.input_policy)
    tensors = torch.stack([ds[i].image for i in range(len(ds))])
    with torch.inference_mode():
        method(tensors[:batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(tensors), batch):
            method.predict(tensors[i:i + batch])
        bare = time.perf_counter() - t0

    res = benchmark.pedantic(lambda: evaluate_cell(method, data, device="cpu", batch_size=batch,
                                                   num_workers=1, progress=False),
                             rounds=3, iterations=1)
    end_to_end = benchmark.stats.stats.min
    ratio = end_to_end / bare
    benchmark.extra_info.update(bare_s=bare, end_to_end_s=end_to_end, overhead_ratio=ratio)
    print(f"\nharness overhead: end-to-end {end_to_end:.3f}s / bare model loop {bare:.3f}s = {ratio:.3f}")
    assert res.n_images == len(data.samples)


@pytest.mark.parametrize("spec", ["none", "jpeg:75", "resize:0.5"])
def test_input_pipeline_rate(tmp_path_factory, benchmark, spec):
    data512 = write_dataset(tmp_path_factory.mktemp("p512"), 16, 512)
    ds = EvalDataset(data512.samples, InputPolicy("resize", size=512), parse_spec(spec))

    def decode_all():
        for i in range(len(ds)):
            ds[i]

    benchmark.pedantic(decode_all, rounds=3, iterations=1)
    rate = len(ds) / benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = rate
    print(f"\ninput pipeline {spec}: {rate:.1f} images/s at 512² (one process)")


MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, sys.argv[3])
    from bench_runner import SmallSegNet, write_dataset
    from imlbench.benchmark.runner import evaluate_cell
    from imlbench.methods.base import InputPolicy
    from pathlib import Path
    import torch
    n = int(sys.argv[1])
    ds = write_dataset(Path(sys.argv[2]), n, 96)

    class Tiny(SmallSegNet):
        input_policy = InputPolicy("resize", size=64)

    evaluate_cell(Tiny().eval(), ds, device="cpu", batch_size=16, num_workers=0, progress=False)
    print(json.dumps({"n": n, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def test_peak_memory_flat_in_number_of_images(tmp_path):
    out = {}
    for n in (200, 2000):
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(n), str(tmp_path / str(n)),
                               str(Path(__file__).parent)], capture_output=True, text=True,
                              check=True)
        out[n] = json.loads(proc.stdout.strip().splitlines()[-1])["max_rss_mb"]
    print(f"\npeak RSS: 200 images {out[200]:.0f} MB, 2000 images {out[2000]:.0f} MB")
    assert out[2000] < out[200] * 1.15, out
