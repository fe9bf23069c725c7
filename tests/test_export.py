"""``export_masks``: 16-bit PNG maps at original size that ``imlbench score`` reads back,
and the overview sheet; on the NIST16 replica (inverted masks joined through its CSV)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from imlbench.benchmark.runner import evaluate_cell
from imlbench.benchmark.score import read_map, score_predictions
from imlbench.datasets.base import load_image
from imlbench.paths import DATA_ROOT_ENV
from imlbench.registry import DATASETS, METHODS
from imlbench.results.export import (HALF_DOWN, HALF_UP, OVERVIEW_NAME, PANEL, ExportError,
                                     encode_probability, export_masks)
from tests.real_replicas import make_nist16

EXACT_AT_THRESHOLD = ("pixel_f1", "pixel_f1_pooled", "pixel_iou", "pixel_mcc", "pixel_fpr_authentic")
MAX_ERROR = 1 / 131070


def test_encoding_keeps_each_value_on_its_side_of_one_half():
    prob = np.array([0.0, 1.0, 0.5, np.nextafter(np.float32(0.5), 1), 0.49999, 0.25], np.float32)
    q = encode_probability(prob)
    assert q.dtype == np.uint16
    assert q.tolist() == [0, 65535, HALF_DOWN, HALF_UP, 32767, 16384]
    assert ((q / 65535.0 > 0.5) == (prob > 0.5)).all()
    rand = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    assert np.abs(encode_probability(rand) / 65535.0 - rand).max() <= MAX_ERROR + 1e-12


@pytest.fixture
def nist(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "data"))
    make_nist16(tmp_path / "data")
    return DATASETS.build("nist16")


@pytest.mark.parametrize("method, config", [
    ("ela", {}),
    ("constant", {"value": 0.5}),  # every pixel exactly at the threshold: must stay <= 0.5
    ("random", {}),                # non-zero F1/IoU to compare
])
def test_export_round_trips_through_score(method, config, nist, tmp_path):
    out = tmp_path / "export"
    result = export_masks(METHODS.build(method, **config), nist, out, n_overview=3, device="cpu",
                          num_workers=0, progress=False)
    assert [p.name for p in result.maps] == [f"{s.image_path.stem}.png" for s in nist.samples]
    exact_dir = tmp_path / "npy"
    evaluate_cell(METHODS.build(method, **config), nist, device="cpu", num_workers=0,
                  progress=False, save_predictions=exact_dir)
    for sample, path in zip(nist.samples, result.maps):
        with Image.open(path) as im:
            assert im.mode.startswith("I;16") and im.size == Image.open(sample.image_path).size
        exact = np.load(exact_dir / f"{sample.image_path.stem}.npy")
        assert np.abs(read_map(path) - exact).max() <= MAX_ERROR + 1e-7
    scored, _ = score_predictions(result.maps_dir, nist)
    if method == "constant":  # naive rounding would store 0.5 as 32768/65535 > 0.5: FPR 1
        assert scored.metrics["pixel_fpr_authentic"] == 0.0
    if method == "random":
        assert scored.metrics["pixel_f1"] > 0.1
    for name, value in result.metrics.items():
        back = scored.metrics[name]
        if name in EXACT_AT_THRESHOLD or (math.isnan(value) and math.isnan(back)):
            assert back == value or (math.isnan(value) and math.isnan(back)), name
        elif name.startswith("pixel_"):
            assert abs(back - value) <= 1e-4, (name, value, back)


def test_overview_sheet_has_one_row_per_sample(nist, tmp_path):
    result = export_masks(METHODS.build("ela"), nist, tmp_path / "o", n_overview=2, device="cpu",
                          num_workers=0, progress=False)
    assert result.overview == tmp_path / "o" / OVERVIEW_NAME
    sheet = np.asarray(Image.open(result.overview))
    assert sheet.shape[1] == 3 * PANEL[0] + 4 * 8 and sheet.shape[0] == 34 + 2 * (PANEL[1] + 16 + 8) + 8
    # the ground-truth panel of the first (tampered) sample shows the *decoded* inverted mask:
    # mostly black (authentic) with a white region, not the file's white background
    first = nist.samples[0]
    h, w = load_image(first.image_path).shape[:2]
    scale = min(PANEL[0] / w, PANEL[1] / h)
    gt_left = 8 + PANEL[0] + 8 + (PANEL[0] - round(w * scale)) // 2
    gt_top = 34 + (PANEL[1] - round(h * scale)) // 2
    panel = sheet[gt_top:gt_top + round(h * scale), gt_left:gt_left + round(w * scale), 0]
    assert 0.05 < (panel > 127).mean() < 0.5


def test_export_refuses_a_folder_with_other_maps(nist, tmp_path):
    out = tmp_path / "export"
    (out / "maps").mkdir(parents=True)
    np.save(out / "maps" / "someone_else.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(ExportError, match="someone_else.npy"):
        export_masks(METHODS.build("ela"), nist, out, device="cpu", num_workers=0, progress=False)
