"""One training step per stage for every registered trainable method, through ``train``.

Convention: a trainable method class provides ``tiny_config() -> dict`` (classmethod), the
constructor kwargs of a tiny model for tests; adding a trainable method gets it tested here.
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from imlbench.benchmark.rng import seed_everything
from imlbench.benchmark.train import train
from imlbench.registry import METHODS
from tests.helpers import make_folder_dataset

TRAINABLE = [n for n in METHODS.list(include_test_only=True)
             if getattr(METHODS.get(n), "trainable", False)]
NEEDS_MMSEG = {"segformer_b0", "mmseg_deeplabv3plus_r50", "mmseg"}


def test_the_builtin_trainable_methods_are_registered():
    assert {"seg_ce", "segformer_b0", "mmseg_deeplabv3plus_r50", "mmseg"} <= set(TRAINABLE)


@pytest.mark.parametrize("name", TRAINABLE)
def test_one_training_step_per_stage_changes_the_weights(name, tmp_path):
    if name in NEEDS_MMSEG and importlib.util.find_spec("mmseg") is None:
        pytest.skip("mmsegmentation is not installed (pip install 'imlbench[mmseg]')")
    cls = METHODS.get(name)
    assert hasattr(cls, "tiny_config"), f"trainable method {name!r} must define tiny_config()"
    config = cls.tiny_config()
    seed_everything(0)  # train() seeds the same way before building: same initial weights
    initial = cls(**config)
    policy = initial.input_policy
    size = policy.size if policy.mode == "resize" else 32
    trained_in = {}  # stage -> names of the parameters it trains
    for stage in cls.stages:
        initial.train()
        initial.set_stage(stage)
        ids = {id(p) for p in initial.trainable_parameters()}
        trained_in[stage] = [n for n, p in initial.named_parameters() if id(p) in ids]
    before = {k: v.clone() for k, v in initial.state_dict().items()}

    recipe = tmp_path / "one_step.yaml"
    recipe.write_text(yaml.safe_dump({
        "image_size": size, "batch_size": 2, "steps": 1, "tensorboard": False,
        "optimizer": {"name": "adamw", "lr": 1e-3}, "schedule": {"name": "constant"}}))
    data = make_folder_dataset(tmp_path / "data", n_tampered=2, n_authentic=1,
                               sizes=((size, size),))
    result = train(name, dataset=data, val_dataset=None, recipe=recipe, method_config=config,
                   out_dir=tmp_path / "run", progress=False)

    assert result.finished and result.steps == len(cls.stages)
    logged = [json.loads(ln) for ln in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in logged] == list(cls.stages)
    for record in logged:
        terms = {k: v for k, v in record.items() if k not in ("step", "stage", "lr", "seconds")}
        assert "loss" in terms and all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    after = load_file(str(result.last_checkpoint))
    assert set(after) == set(before)
    for stage, names in trained_in.items():
        changed = [n for n in names if not torch.equal(before[n], after[n])]
        assert changed, f"{name}: no parameter trained in stage {stage!r} changed"
