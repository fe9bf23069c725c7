"""Robustness plots and the "mean retained" summary, on hand-made records."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from PIL import Image

from imlbench.results.leaderboard import RETAINED_MIN_CLEAN
from imlbench.results.plots import plot_robustness
from imlbench.results.robustness_summary import robustness_summary


def records(cells: list[tuple[str, str, str, str, str, float]],
            metric: str = "pixel_f1") -> pd.DataFrame:
    """Tidy records from (method, checkpoint, dataset, perturbation, severity, value) tuples."""
    return pd.DataFrame([
        dict(run_id="r1", method=m, checkpoint=c, dataset=d, perturbation=p, severity=s,
             metric=metric, value=v, n_images=4) for m, c, d, p, s, v in cells])


BASE = [
    ("ncl", "seed0", "casia", "none", "", 0.8),
    ("ncl", "seed0", "casia", "jpeg", "90", 0.6),
    ("ncl", "seed0", "casia", "jpeg", "50", 0.4),
    ("ncl", "seed0", "casia", "resize", "0.5", 0.2),
    ("ncl", "seed1", "casia", "none", "", 0.5),
    ("ncl", "seed1", "casia", "jpeg", "90", 0.5),
    ("ncl", "seed1", "casia", "jpeg", "50", 0.25),
    ("ela", "-", "casia", "none", "", 0.4),
    ("ela", "-", "casia", "jpeg", "90", 0.1),
    ("ela", "-", "casia", "jpeg", "50", 0.3),
    ("ela", "-", "columbia", "none", "", 0.3),
    ("ela", "-", "columbia", "jpeg", "90", 0.3),
    ("ela", "-", "columbia", "jpeg", "50", 0.3),
    ("ela", "-", "columbia", "resize+jpeg", "0.5+75", 0.15),
]


def summary_row(summary: pd.DataFrame, method: str, dataset: str, perturbation: str) -> pd.Series:
    hit = summary[(summary.method == method) & (summary.dataset == dataset)
                  & (summary.perturbation == perturbation)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_summary_hand_computed():
    summary = robustness_summary(records(BASE), "pixel_f1")
    assert len(summary) == 5
    ela = summary_row(summary, "ela", "casia", "jpeg")  # 0.1/0.4, 0.3/0.4
    assert ela.mean_retained == pytest.approx(0.5) and ela.min_retained == pytest.approx(0.25)
    assert (ela.clean, ela.n_severities, ela.n_checkpoints) == (0.4, 2, 1)
    assert ela.mean_value == pytest.approx(0.2)
    assert math.isnan(ela.retained_std)
    # two checkpoints: each against its own clean value, then averaged
    ncl = summary_row(summary, "ncl", "casia", "jpeg")
    seed0, seed1 = (0.6 / 0.8 + 0.4 / 0.8) / 2, (0.5 / 0.5 + 0.25 / 0.5) / 2
    assert ncl.mean_retained == pytest.approx((seed0 + seed1) / 2)
    assert ncl.retained_std == pytest.approx(pd.Series([seed0, seed1]).std(ddof=1))
    assert ncl.min_retained == pytest.approx((0.5 + 0.5) / 2)
    assert ncl.clean == pytest.approx(0.65) and ncl.n_checkpoints == 2
    drops = [0.8 - (0.6 + 0.4) / 2, 0.5 - (0.5 + 0.25) / 2]
    assert ncl.mean_drop == pytest.approx(sum(drops) / 2)
    assert ncl.drop_std == pytest.approx(pd.Series(drops).std(ddof=1))
    assert ela.mean_drop == pytest.approx(0.2) and math.isnan(ela.drop_std)
    assert summary_row(summary, "ela", "columbia", "resize+jpeg").mean_retained == pytest.approx(0.5)


@pytest.mark.parametrize("clean_value", [0.0, 0.012, float("nan"), None])
def test_summary_undefined_clean_gives_nan(clean_value):
    cells = [("m", "-", "d", "jpeg", "90", 0.3), ("m", "-", "d", "jpeg", "50", 0.2)]
    if clean_value is not None:
        cells.append(("m", "-", "d", "none", "", clean_value))
    row = robustness_summary(records(cells), "pixel_f1").iloc[0]
    assert math.isnan(row.mean_retained) and math.isnan(row.min_retained)
    assert row.mean_value == pytest.approx(0.25)
    # the absolute drop needs only a clean value: 0.012 -> 0.25 is a drop of -0.238
    if clean_value is None or math.isnan(clean_value):
        assert math.isnan(row.mean_drop)
    else:
        assert row.mean_drop == pytest.approx(clean_value - 0.25)


def test_summary_retained_starts_at_the_documented_floor():
    cells = [("m", "-", "d", "none", "", RETAINED_MIN_CLEAN), ("m", "-", "d", "jpeg", "90", 0.025)]
    assert robustness_summary(records(cells), "pixel_f1").iloc[0].mean_retained == pytest.approx(0.5)


def test_summary_a_nan_severity_is_not_skipped():
    cells = [("m", "-", "d", "none", "", 0.5), ("m", "-", "d", "jpeg", "90", 0.5),
             ("m", "-", "d", "jpeg", "50", float("nan"))]
    assert math.isnan(robustness_summary(records(cells), "pixel_f1").iloc[0].mean_retained)


def test_summary_and_plot_refuse_bad_records(tmp_path):
    df = records(BASE + [("ela", "-", "casia", "jpeg", "90", 0.9)])
    with pytest.raises(ValueError, match="share a cell.*latest"):
        robustness_summary(df, "pixel_f1")
    with pytest.raises(ValueError, match="share a cell"):
        plot_robustness(df, "pixel_f1", tmp_path)
    with pytest.raises(ValueError, match="no records for metric 'pixel_iou'.*pixel_f1"):
        robustness_summary(records(BASE), "pixel_iou")
    with pytest.raises(ValueError, match=r"lack columns \['checkpoint'\]"):
        robustness_summary(records(BASE).drop(columns="checkpoint"), "pixel_f1")


def test_plot_writes_one_readable_png_per_perturbation(tmp_path):
    df = pd.concat([records(BASE), records(BASE, metric="pixel_iou")])
    paths = plot_robustness(df, "pixel_f1", tmp_path / "plots")
    assert [p.name for p in paths] == ["robustness_pixel_f1_jpeg.png", "robustness_pixel_f1_resize.png",
                                       "robustness_pixel_f1_resize+jpeg.png"]
    for path in paths:
        with Image.open(path) as im:
            im.load()
            assert im.format == "PNG" and im.width >= 300 and im.height >= 200
            assert len(im.getcolors(1 << 16) or range(1 << 16)) > 8  # not a blank canvas
