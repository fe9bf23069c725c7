"""``imlbench score``: our metrics on prediction maps produced elsewhere (an official repo's
inference, or ``imlbench run --save-predictions``).

Maps are matched to the dataset's images by file stem; an image whose stem another image of
the dataset shares is matched by its sample id without extension, ``/`` written ``__``
(``runner.prediction_names``; Korus: ``Canon_60D__pristine__DPP0520``): ``<name>.npy`` (float probabilities in
[0, 1], any float dtype), ``<stem>.png`` / ``.tif`` (8-bit: value/255; 16-bit: value/65535).
A map whose size differs from the ground truth is an error unless ``resize=True`` (bilinear),
because resizing changes the score; missing or extra maps are an error that lists them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from imlbench.benchmark.runner import CellResult, prediction_names
from imlbench.datasets.base import Dataset, load_mask, open_decoded
from imlbench.errors import ImlbenchError
from imlbench.metrics import MetricSuite, ScoredImage

MAP_SUFFIXES = (".npy", ".png", ".tif", ".tiff")


class ScoreError(ImlbenchError, ValueError):
    pass


def find_maps(pred_dir: Path) -> dict[str, Path]:
    if not pred_dir.is_dir():
        raise ScoreError(f"--predictions {pred_dir} is not a directory")
    maps: dict[str, Path] = {}
    for p in sorted(pred_dir.iterdir()):
        if p.suffix.lower() not in MAP_SUFFIXES:
            continue
        if p.stem in maps:
            raise ScoreError(f"two prediction files for stem {p.stem!r}: {maps[p.stem].name} and {p.name}")
        maps[p.stem] = p
    return maps


def read_map(path: Path) -> np.ndarray:
    """Prediction file → float32 [H, W] probabilities; errors name the file."""
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
            arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
            raise ScoreError(f"{path}: expected a 2-D float array of probabilities, got "
                             f"{arr.dtype} {arr.shape}")
        arr = arr.astype(np.float32)
    else:
        with open_decoded(path, "prediction map") as im:
            raw = np.asarray(im)
        if raw.ndim == 3:
            raise ScoreError(f"{path}: prediction maps must be single-channel (got {raw.shape}); "
                             "save the probability map as greyscale")
        if raw.dtype == np.uint8:
            arr = raw.astype(np.float32) / 255.0
        elif raw.dtype in (np.uint16, np.int32) or raw.dtype.kind in "ui":
            arr = raw.astype(np.float32) / 65535.0
        elif raw.dtype == bool:
            arr = raw.astype(np.float32)
        else:
            arr = raw.astype(np.float32)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ScoreError(f"{path}: values must be finite probabilities in [0, 1] "
                         f"(got range [{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}])")
    return arr


def score_predictions(pred_dir: str | Path, dataset: Dataset, *, resize: bool = False,
                      metrics: Sequence[str] | None = None,
                      include_authentic: bool = False) -> tuple[CellResult, str]:
    """Score every map in ``pred_dir`` against ``dataset``; returns the cell and a content hash
    of the prediction files (recorded as the 'checkpoint' of the scored maps)."""
    pred_dir = Path(pred_dir)
    maps = find_maps(pred_dir)
    by_stem = prediction_names(dataset.samples)
    missing = sorted(set(by_stem) - set(maps))
    extra = sorted(set(maps) - set(by_stem))
    if missing or extra:
        raise ScoreError(
            f"predictions in {pred_dir} do not match dataset {dataset.name!r}: "
            f"{len(missing)} missing ({', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}), "
            f"{len(extra)} extra ({', '.join(extra[:10])}{' …' if len(extra) > 10 else ''}). "
            "Maps are named by image file stem, or, where images share a stem, by sample id "
            "without extension with '/' as '__' (see `imlbench run --save-predictions`).")
    suite = MetricSuite(metrics, include_authentic=include_authentic)
    digest = hashlib.sha256()
    for stem, sample in by_stem.items():
        path = maps[stem]
        digest.update(stem.encode() + path.read_bytes())
        prob = read_map(path)
        with open_decoded(sample.image_path, "image") as im:  # errors name the file
            w, h = im.size
        mask = load_mask(sample, (h, w))
        if prob.shape != mask.shape:
            if not resize:
                raise ScoreError(f"{path}: map is {prob.shape[1]}x{prob.shape[0]} but the ground truth "
                                 f"is {w}x{h}; pass --resize to resize maps bilinearly (changes the "
                                 "score slightly) or export maps at the original size")
            t = torch.from_numpy(prob)[None, None]
            prob = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            prob = prob.clamp_(0, 1).numpy()
        suite.update(ScoredImage(sample.sample_id, prob, mask, sample.label, float(prob.max())))
    return CellResult(suite.compute(), suite.n_images, suite.n_tampered, suite), digest.hexdigest()
