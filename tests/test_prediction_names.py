"""One naming of exported maps for images that share a file stem (Korus: pristine and tampered
copies of each photo), used by ``--save-predictions`` and ``export-masks`` and read by ``score``."""
from __future__ import annotations

from pathlib import Path

import pytest

from imlbench.benchmark.runner import evaluate_cell, prediction_names
from imlbench.benchmark.score import ScoreError, score_predictions
from imlbench.datasets.base import DatasetError, Sample
from imlbench.paths import DATA_ROOT_ENV
from imlbench.registry import DATASETS, METHODS
from imlbench.results.export import export_masks
from tests.real_replicas import make_korus


@pytest.fixture
def korus(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "data"))
    make_korus(tmp_path / "data")
    return DATASETS.build("korus")


def _sample(sample_id: str, label: int = 0) -> Sample:
    path = Path("/data") / sample_id
    return Sample(sample_id, path, path.with_suffix(".png") if label else None, label, "t")


def test_shared_stems_are_named_by_sample_id_and_the_rest_by_stem():
    samples = [_sample("cam/pristine/DPP0520.TIF"), _sample("cam/tampered-realistic/DPP0520.TIF", 1),
               _sample("cam/pristine/only.v2.TIF")]
    assert list(prediction_names(samples)) == [
        "cam__pristine__DPP0520", "cam__tampered-realistic__DPP0520", "only.v2"]
    clash = [_sample("a/x.png"), _sample("b/x.png"), _sample("c/a__x.png")]
    with pytest.raises(DatasetError, match="'a/x.png' and 'c/a__x.png' would both export as 'a__x'"):
        prediction_names(clash)


def test_korus_predictions_round_trip_through_score(korus, tmp_path):
    pred = tmp_path / "pred"
    cell = evaluate_cell(METHODS.build("oracle"), korus, device="cpu", batch_size=2, num_workers=0,
                         progress=False, save_predictions=pred)
    assert sorted(p.name for p in pred.iterdir()) == sorted(
        f"{cam}__{part}__{name}.npy" for cam, name in (("Canon_60D", "DPP0520"), ("Nikon_D90", "r36610622t"))
        for part in ("pristine", "tampered-realistic"))
    scored, _ = score_predictions(pred, korus)
    assert scored.metrics == pytest.approx(cell.metrics)
    (pred / "Canon_60D__pristine__DPP0520.npy").rename(pred / "DPP0520.npy")  # a plain stem is ambiguous
    with pytest.raises(ScoreError, match="1 missing.*Canon_60D__pristine__DPP0520.*1 extra.*DPP0520"):
        score_predictions(pred, korus)


def test_export_masks_names_korus_maps_the_same_way(korus, tmp_path):
    result = export_masks(METHODS.build("oracle"), korus, tmp_path / "out", n_overview=4,
                          device="cpu", num_workers=0, progress=False)
    assert sorted(p.stem for p in result.maps) == sorted(prediction_names(korus.samples))
    assert result.overview is not None and result.overview.is_file()
    scored, _ = score_predictions(result.maps_dir, korus)
    assert scored.metrics["pixel_f1"] == pytest.approx(1.0)
