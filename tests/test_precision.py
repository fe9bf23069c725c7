"""``--amp`` / ``--channels-last`` / ``--compile`` against fp32 on the same maps, within the
tolerances documented in docs/performance.md (CPU autocast runs bf16 and fp16, so these run
anywhere; the ``gpu`` tests repeat them on CUDA, with inductor and pinned copies):

=====================================  =================  ==================
option vs fp32 (same device)           max |map diff|     max |metric diff|
=====================================  =================  ==================
``--amp bf16``                         2e-2               1e-2
``--amp fp16``                         5e-3               1e-2
``--channels-last`` (fp32)             1e-5 (CUDA: 5e-3)  1e-6 (CUDA: 1e-2)
``--compile`` (fp32)                   1e-5 (CUDA: 5e-3)  1e-6 (CUDA: 1e-2)
CUDA fp32 vs CPU fp32 (TF32 convs)     5e-3               1e-2
metric threads vs inline               -                  1e-9
=====================================  =================  ==================
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import imlbench.benchmark.runner as runner_module
from imlbench.benchmark.device import PRECISIONS, precision_dtype
from imlbench.benchmark.runner import (EvalItem, compiled_predict, default_score_threads,
                                       default_workers, evaluate_cell)
from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction
from tests.helpers import make_folder_dataset

MAP_TOL = {"bf16": 2e-2, "fp16": 5e-3}
METRIC_TOL = 1e-2


class ConvLocaliser(Method):
    """Convolutions whose precision shows in the map, on top of a brightness cue that finds
    the helpers' bright tampered rectangles, so that the metrics are not at a coin-flip edge."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("resize", size=32)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))

    def predict(self, images, masks=None):
        logits = 12 * (images.mean(1, keepdim=True) - 0.6) + 0.5 * self.body(images)
        return Prediction(torch.sigmoid(logits.float()))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("prec") / "data", n_tampered=4,
                               n_authentic=2, sizes=((40, 48), (32, 32), (36, 30)))


def run(data, tmp_path: Path, tag: str, device="cpu", **options):
    """Metrics and maps ({sample stem: float32 [H, W]}) of one evaluation."""
    out = tmp_path / tag
    res = evaluate_cell(ConvLocaliser(), data, device=device, batch_size=4, num_workers=0,
                        progress=False, save_predictions=out, **options)
    return res, {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}


def largest_differences(a, b):
    (res_a, maps_a), (res_b, maps_b) = a, b
    assert res_a.n_images == res_b.n_images and maps_a.keys() == maps_b.keys()
    map_diff = max(float(np.abs(maps_a[k] - maps_b[k]).max()) for k in maps_a)
    metric_diff = max(abs(res_a.metrics[k] - res_b.metrics[k]) for k in res_a.metrics)
    return map_diff, metric_diff


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_amp_on_cpu_stays_within_its_tolerance_of_fp32(data, tmp_path, precision):
    fp32 = run(data, tmp_path, "fp32", amp="off")
    half = run(data, tmp_path, precision, amp=precision)
    map_diff, metric_diff = largest_differences(fp32, half)
    assert map_diff > 0, f"--amp {precision} changed nothing: autocast did not run"
    assert map_diff <= MAP_TOL[precision], map_diff
    assert metric_diff <= METRIC_TOL, metric_diff


def test_channels_last_and_compile_match_fp32(data, tmp_path):
    fp32 = run(data, tmp_path, "fp32", amp="off")
    last = run(data, tmp_path, "cl", amp="off", channels_last=True)
    # aot_eager traces predict through dynamo (graph capture included) without minutes of C++
    compiled = run(data, tmp_path, "compiled", amp="off", compile="aot_eager")
    for other in (last, compiled):
        map_diff, metric_diff = largest_differences(fp32, other)
        assert map_diff <= 1e-5 and metric_diff <= 1e-6, (map_diff, metric_diff)


def test_channels_last_reaches_the_model(data, monkeypatch):
    seen = []
    predict = ConvLocaliser.predict

    def spy(self, images, masks=None):
        seen.append((images.is_contiguous(memory_format=torch.channels_last),
                     self.body[0].weight.is_contiguous(memory_format=torch.channels_last)))
        return predict(self, images, masks)

    monkeypatch.setattr(ConvLocaliser, "predict", spy)
    evaluate_cell(ConvLocaliser(), data, device="cpu", batch_size=4, num_workers=0,
                  progress=False, channels_last=True)
    assert seen and all(x and w for x, w in seen), seen


def test_compiled_predict_is_made_once_per_method_and_backend():
    method = ConvLocaliser()
    first = compiled_predict(method, "aot_eager")
    assert compiled_predict(method, "aot_eager") is first
    assert compiled_predict(method, "eager") is not first
    assert compiled_predict(ConvLocaliser(), "aot_eager") is not first


def test_metric_threads_give_the_inline_metrics(data, tmp_path):
    inline = run(data, tmp_path, "inline", amp="off", score_threads=0)
    threaded = run(data, tmp_path, "threads", amp="off", score_threads=3)
    map_diff, metric_diff = largest_differences(inline, threaded)
    assert map_diff == 0 and metric_diff <= 1e-9, (map_diff, metric_diff)


def test_a_wrong_precision_is_a_config_error_naming_the_option(data):
    with pytest.raises(ConfigError, match=r"--amp 'fp8'.*auto, bf16, fp16, off"):
        evaluate_cell(ConvLocaliser(), data, device="cpu", num_workers=0, progress=False, amp="fp8")


def test_precisions_map_to_their_dtypes():
    cpu = torch.device("cpu")
    assert PRECISIONS == ("auto", "bf16", "fp16", "off")
    assert [precision_dtype(cpu, p) for p in PRECISIONS] == [None, torch.bfloat16, torch.float16, None]
    assert precision_dtype(cpu, True) is None and precision_dtype(cpu, False) is None  # bool form


def test_cli_offers_the_precisions_and_rejects_others(capsys):
    from imlbench.cli import build_parser

    args = build_parser().parse_args(["run", "--method", "ela", "--amp", "bf16", "--channels-last",
                                      "--compile"])
    assert (args.amp, args.channels_last, args.compile) == ("bf16", True, True)
    args = build_parser().parse_args(["sweep", "--method", "ela", "--compile", "aot_eager"])
    assert (args.amp, args.channels_last, args.compile) == ("auto", False, "aot_eager")
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--method", "ela", "--amp", "fp8"])
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err


def test_the_precision_used_is_in_each_record(data):
    from imlbench.benchmark.evaluate import evaluate

    root = Path(data.samples[0].image_path).parents[1]  # the folder make_folder_dataset wrote
    df = evaluate("constant", str(root), device="cpu", results_dir=None, num_workers=0,
                  progress=False, amp="bf16", channels_last=True)
    prov = json.loads(df.provenance.iloc[0])
    assert (prov["amp"], prov["channels_last"]) == ("bf16", True) and "compile" not in prov


def test_default_workers_feed_a_gpu_and_keep_the_cpu_default(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_workers() == default_workers(torch.device("cpu")) == 8  # as before
    assert default_workers(torch.device("cuda")) == 15
    assert default_score_threads(torch.device("cpu")) == 0  # inline, as before
    assert default_score_threads(torch.device("cuda")) == 4


# -- on CUDA -----------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_amp_within_tolerance_of_cuda_fp32(data, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    fp32 = run(data, tmp_path, "fp32", device="cuda", amp="off")
    half = run(data, tmp_path, precision, device="cuda", amp=precision)
    map_diff, metric_diff = largest_differences(fp32, half)
    assert 0 < map_diff <= MAP_TOL[precision] and metric_diff <= METRIC_TOL, (map_diff, metric_diff)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp32_channels_last_and_inductor_match_cpu_with_pinned_copies(data, tmp_path,
                                                                            monkeypatch):
    pinned = []
    pin = EvalItem.pin_memory

    def counting_pin(self):
        out = pin(self)
        pinned.append(out.image.is_pinned())
        return out

    monkeypatch.setattr(EvalItem, "pin_memory", counting_pin)
    cpu = run(data, tmp_path, "cpu", amp="off")
    for tag, options in {"cuda": {}, "cl": {"channels_last": True},
                         "inductor": {"channels_last": True, "compile": True}}.items():
        res = evaluate_cell(ConvLocaliser(), data, device="cuda", batch_size=4, num_workers=2,
                            progress=False, save_predictions=tmp_path / tag, amp="off", **options)
        maps = {p.stem: np.load(p) for p in sorted((tmp_path / tag).glob("*.npy"))}
        map_diff, metric_diff = largest_differences(cpu, (res, maps))
        assert map_diff <= 5e-3 and metric_diff <= METRIC_TOL, (tag, map_diff, metric_diff)
    assert pinned and all(pinned), "the loader did not pin the items"
    assert runner_module.default_score_threads(torch.device("cuda")) >= 1


@pytest.mark.parametrize("value, expected", [("bf16", "bf16"), ("fp16", "fp16"), ("off", False),
                                             (True, True), (False, False)])
def test_a_recipe_names_its_training_precision(tmp_path, value, expected):
    import yaml

    from imlbench.benchmark.recipes import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"image_size": 32, "batch_size": 2, "steps": 1, "amp": value,
                                    "optimizer": {"name": "adamw", "lr": 1e-3},
                                    "schedule": {"name": "constant"}}))
    assert load_recipe(path, "seg_ce").amp == expected
    path.write_text(re.sub(r"(?m)^amp: .*$", "amp: fp8", path.read_text()))
    with pytest.raises(ConfigError, match="amp"):
        load_recipe(path, "seg_ce")
