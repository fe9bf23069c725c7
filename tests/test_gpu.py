"""CUDA checks, run with ``-m gpu`` wherever a CUDA device exists (they skip without one).

For every registered trainable method (its ``tiny_config()``): one training step through the
project's training loop and one evaluation through its runner, under AMP in bf16 and in fp16
(fp16 with the gradient scaler). Then a one-process NCCL process group doing the collectives
the project uses (all-reduce of gradients, object gathers of metric states).
"""
from __future__ import annotations

import importlib.util
import json
import math
import socket

import pytest
import torch
import yaml

import imlbench.benchmark.device as device_module
from imlbench.benchmark.loading import load_method
from imlbench.benchmark.runner import evaluate_cell
from imlbench.benchmark.train import train
from imlbench.registry import METHODS
from tests.helpers import make_folder_dataset

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TRAINABLE = [n for n in METHODS.list(include_test_only=True)
             if getattr(METHODS.get(n), "trainable", False)]
NEEDS_MMSEG = {"segformer_b0", "mmseg_deeplabv3plus_r50", "mmseg"}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.fixture
def forced_amp(monkeypatch, request):
    """Make the loops' AMP use ``request.param`` (they pick bf16 where supported), and count
    the autocast regions that asked for it."""
    dtype = DTYPES[request.param]
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    asked = []

    def amp_dtype(device: torch.device) -> torch.dtype | None:
        asked.append(device.type)
        return dtype if device.type == "cuda" else None

    monkeypatch.setattr(device_module, "amp_dtype", amp_dtype)  # the training loop's too
    return asked


@pytest.mark.parametrize("forced_amp", sorted(DTYPES), indirect=True)
@pytest.mark.parametrize("name", TRAINABLE)
def test_training_step_and_evaluation_under_amp(name, forced_amp, tmp_path):
    if name in NEEDS_MMSEG and importlib.util.find_spec("mmseg") is None:
        pytest.skip("mmsegmentation is not installed (pip install 'imlbench[mmseg]')")
    cls = METHODS.get(name)
    config = cls.tiny_config()
    probe = cls(**config)
    size = probe.input_policy.size if probe.input_policy.mode == "resize" else 32
    data = make_folder_dataset(tmp_path / "data", n_tampered=2, n_authentic=1, sizes=((size, size),))
    recipe = tmp_path / "amp.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": size, "batch_size": 2, "steps": 1, "amp": True, "tensorboard": False,
        "optimizer": {"name": "adamw", "lr": 1e-3}, "schedule": {"name": "constant"}}))

    result = train(name, dataset=data, val_dataset=None, recipe=recipe, method_config=config,
                   out_dir=tmp_path / "run", device="cuda", progress=False)
    assert result.finished and result.steps == len(cls.stages)
    assert "cuda" in forced_amp  # the loop asked for the forced AMP dtype
    for line in (result.run_dir / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert math.isfinite(record["loss"]), record

    forced_amp.clear()
    method = load_method(name, result.last_checkpoint)
    cell = evaluate_cell(method, data, device="cuda", amp=True, batch_size=2, num_workers=0,
                         progress=False)
    assert "cuda" in forced_amp and cell.n_images == len(data.samples)
    assert 0.0 <= cell.metrics["pixel_f1"] <= 1.0 and 0.0 <= cell.metrics["pixel_auc"] <= 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_process_nccl_group_runs_the_collectives_the_project_uses():
    import torch.distributed as dist

    from imlbench.metrics import MetricSuite

    if not dist.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    try:
        grads = torch.arange(4.0, device="cuda")
        dist.all_reduce(grads)  # data-parallel training averages gradients this way
        assert grads.tolist() == [0.0, 1.0, 2.0, 3.0]
        suite = MetricSuite(["pixel_f1"])
        parts = [None]
        dist.all_gather_object(parts, suite.state_dict())  # distributed evaluation merges states
        assert parts[0] == suite.state_dict()
        box = ["run-id"]
        dist.broadcast_object_list(box, src=0)
        assert box == ["run-id"]
    finally:
        dist.destroy_process_group()
