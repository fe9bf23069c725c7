"""Training-step time of MPC at paper size: HRFormer-B, 512² input, batch 1, on this machine.

Run: ``OMP_NUM_THREADS=2 python -m pytest benchmarks/bench_mpc_step.py --benchmark-only -s -o addopts=""``
(results and the command are copied into docs/performance.md).

One step = forward, loss, backward and an AdamW update, exactly what ``imlbench train`` does
per batch (no data loading):

* stage 1: two encoder passes (the views differ by stochastic depth), the code-form pixel
  contrast on up to 5000 pixels per class and set, gradients into the whole encoder;
* stage 2: frozen encoder in eval mode under ``no_grad``, focal loss, gradients into the head;
* ``mpc_no_stage1``: one pass, encoder and head trained jointly with the focal loss.

The mask is a centred square covering a quarter of the image, so both classes are sampled up
to the cap (the stage-1 cost depends on the tampered fraction through the sample counts).
"""
from __future__ import annotations

import time

import pytest
import torch

from imlbench.registry import METHODS

SIZE = 512
CASES = {  # name -> (method, stage)
    "stage1": ("mpc", "1"),
    "stage2_frozen_encoder": ("mpc", "2"),
    "no_stage1_joint": ("mpc_no_stage1", "2"),
}


def paper_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4] = 1
    return {"image": torch.rand(1, 3, SIZE, SIZE, generator=gen), "mask": mask}


@pytest.mark.parametrize("case", list(CASES))
def test_paper_training_step(benchmark, case):
    name, stage = CASES[case]
    torch.manual_seed(0)
    model = METHODS.build(name, backbone="base", input_size=SIZE)
    model.set_stage(stage)
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    batch = paper_batch()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(batch)["loss"]
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    cold = step()  # the first step also allocates AdamW state and warms the allocator
    cold_s = time.perf_counter() - t0
    benchmark.pedantic(step, rounds=3, iterations=1)
    stats = benchmark.stats.stats
    benchmark.extra_info.update(cold_s=cold_s, threads=torch.get_num_threads())
    print(f"\nMPC {case} step at {SIZE}², batch 1, {torch.get_num_threads()} threads: "
          f"cold {cold_s:.1f} s, warm min {stats.min:.1f} s / median {stats.median:.1f} s (loss {cold:.3f})")
    assert torch.isfinite(torch.tensor(cold))
