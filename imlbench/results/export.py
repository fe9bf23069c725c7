"""``imlbench export-masks``: a method's prediction maps as PNG files at each image's original
size, and an overview sheet (image | ground truth | prediction) of the first samples.

Layout: ``<out>/maps/<image stem>.png`` (``imlbench score --predictions <out>/maps``),
``<out>/<extra>/<image stem>.png`` for each extra map the method gives (TruFor's
``confidence``), and ``<out>/overview.png``. Maps are **16-bit greyscale PNGs**, which ``imlbench score`` reads back
as ``value / 65535``. A probability ``p`` is stored as
``round(p × 65535)``, except that the value is kept on its side of 0.5 (``p > 0.5`` stores
at least 32768, ``p <= 0.5`` at most 32767). So:

- every read-back value is within 1/131070 (7.6e-6) of the float32 prediction;
- every decision at the 0.5 threshold is unchanged, so ``pixel_f1``, ``pixel_f1_pooled``,
  ``pixel_iou``, ``pixel_mcc`` and ``pixel_fpr_authentic`` survive the round trip exactly;
- ranking metrics (AUCs, ``pixel_f1_best``) can only change where two values closer than
  1.5e-5 merge into a tie, and image-level metrics where the method has its own image
  score (``score`` uses the map's maximum).

The float32 ``.npy`` maps of ``imlbench run --save-predictions`` remain the exact format.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imlbench.benchmark.evaluate import LoadedMethod, load
from imlbench.benchmark.options import EvalOptions
from imlbench.benchmark.runner import evaluate_cell, prediction_names
from imlbench.benchmark.score import MAP_SUFFIXES
from imlbench.datasets import resolve_dataset
from imlbench.datasets.base import Dataset, Sample, load_image, load_mask
from imlbench.errors import ImlbenchError
from imlbench.metrics import MetricSuite, ScoredImage

if TYPE_CHECKING:
    from imlbench.methods.base import Method

PNG_SCALE = 65535
HALF_DOWN, HALF_UP = 32767, 32768
"""The largest stored value read as <= 0.5 and the smallest read as > 0.5."""
MAPS_DIR, OVERVIEW_NAME = "maps", "overview.png"
PANEL = (240, 180)
"""(width, height) box each overview panel is fitted into."""


class ExportError(ImlbenchError, ValueError):
    """The output folder already holds prediction maps of something else."""


@dataclass
class ExportResult:
    maps_dir: Path
    """``<out>/maps``: what ``imlbench score --predictions`` reads."""
    maps: list[Path]
    """One ``<image stem>.png`` per sample, in dataset order."""
    overview: Path | None
    metrics: dict[str, float]
    """Metrics of the evaluation that produced the maps (before PNG quantisation)."""
    n_images: int
    skipped: list[str]
    """Sample ids left out by ``skip_bad`` (unreadable files)."""


def encode_probability(prob: np.ndarray) -> np.ndarray:
    """``float [H, W]`` in [0, 1] → ``uint16 [H, W]`` (module docstring: rounding that keeps
    every pixel on its side of the 0.5 threshold)."""
    q = np.rint(np.asarray(prob, dtype=np.float64) * PNG_SCALE)
    q = np.where(prob > 0.5, np.maximum(q, HALF_UP), np.minimum(q, HALF_DOWN))
    return q.astype(np.uint16)


def export_masks(method: str | LoadedMethod | Method, dataset: str | Path | Dataset,
                 out_dir: str | Path, options: EvalOptions | None = None, *,
                 n_overview: int = 8, **option_overrides) -> ExportResult:
    """Predict ``dataset`` with ``method`` and write its maps and overview under ``out_dir``.

    ``method``: a registered name (loaded as ``imlbench run`` loads it, with ``options``:
    :class:`~imlbench.benchmark.options.EvalOptions`, whose fields may also be given as
    keywords), a :class:`~imlbench.benchmark.evaluate.LoadedMethod`,
    or a :class:`~imlbench.methods.base.Method` instance. ``dataset``: a registered name, a
    path, or a :class:`Dataset`. ``out_dir/maps`` may already hold an earlier export of the
    same dataset (its files are replaced), but no other maps: ``imlbench score`` would read them.
    ``n_overview=0`` skips the sheet. ``skip_bad``: samples whose files cannot be read get no
    map and are listed in ``ExportResult.skipped`` (``score`` then reports them missing).
    """
    options = EvalOptions.with_overrides(options, option_overrides)
    if isinstance(method, str):
        method = load(method, **options.load_kwargs())
    label = method.label if isinstance(method, LoadedMethod) else type(method).__name__
    module = method.module if isinstance(method, LoadedMethod) else method
    dataset = dataset if isinstance(dataset, Dataset) else resolve_dataset(dataset)
    stems = prediction_names(dataset.samples)
    out_dir = Path(out_dir)
    maps_dir = out_dir / MAPS_DIR
    _refuse_foreign_maps(maps_dir, stems)
    maps_dir.mkdir(parents=True, exist_ok=True)
    npy_dir = Path(tempfile.mkdtemp(prefix=".npy-", dir=out_dir))
    try:
        cell = evaluate_cell(module, dataset, **options.cell_kwargs(), save_predictions=npy_dir)
        written = [stem for stem in stems if (npy_dir / f"{stem}.npy").is_file()]
        maps = []
        for stem in written:
            path = maps_dir / f"{stem}.png"
            Image.fromarray(encode_probability(np.load(npy_dir / f"{stem}.npy"))).save(path)
            maps.append(path)
        for extra_dir in sorted(p for p in npy_dir.iterdir() if p.is_dir()):  # TruFor's confidence
            (out_dir / extra_dir.name).mkdir(exist_ok=True)
            for npy in extra_dir.glob("*.npy"):
                Image.fromarray(encode_probability(np.load(npy))).save(
                    out_dir / extra_dir.name / f"{npy.stem}.png")
        overview = None
        if n_overview > 0:
            picked = [stems[stem] for stem in written[:n_overview]]
            probs = [np.load(npy_dir / f"{stem}.npy") for stem in written[:n_overview]]
            overview = out_dir / OVERVIEW_NAME
            overview_sheet(picked, probs, f"{label} on {dataset.name}").save(overview)
    finally:
        shutil.rmtree(npy_dir, ignore_errors=True)
    done = set(written)
    skipped = [s.sample_id for stem, s in stems.items() if stem not in done]
    return ExportResult(maps_dir, maps, overview, cell.metrics, cell.n_images, skipped)


def _refuse_foreign_maps(maps_dir: Path, stems: dict[str, Sample]) -> None:
    if not maps_dir.is_dir():
        return
    foreign = sorted(p.name for p in maps_dir.iterdir()
                     if p.suffix.lower() in MAP_SUFFIXES
                     and not (p.suffix == ".png" and p.stem in stems))
    if foreign:
        raise ExportError(f"{maps_dir} holds prediction files of something else "
                              f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                              "`imlbench score` would read them too. Export into an empty folder")


# -- overview sheet ---------------------------------------------------------------------------
def overview_sheet(samples: Sequence[Sample], probs: Sequence[np.ndarray], title: str) -> Image.Image:
    """RGB sheet: a title, then one row per sample — image | ground truth (decoded, white =
    manipulated) | prediction (white = 1) — with the sample id, label and per-image F1 at 0.5.
    ``probs[i]``: ``float32 [H, W]`` at the sample's image size."""
    font = ImageFont.load_default()
    pad, header, caption = 8, 34, 16
    width = 3 * PANEL[0] + 4 * pad
    row_h = PANEL[1] + caption + pad
    sheet = Image.new("RGB", (width, header + len(samples) * row_h + pad), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), title, fill=(255, 255, 255), font=font)
    columns = ("image", "ground truth (white = manipulated)", "prediction (white = 1)")
    for col, name in enumerate(columns):
        draw.text((pad + col * (PANEL[0] + pad), 20), name, fill=(200, 200, 200), font=font)
    for row, (sample, prob) in enumerate(zip(samples, probs)):
        image = load_image(sample.image_path)
        mask = load_mask(sample, image.shape[:2])
        panels = (Image.fromarray(image), Image.fromarray(mask.astype(np.uint8) * 255),
                  Image.fromarray(np.rint(prob * 255).astype(np.uint8)))
        top = header + row * row_h
        for col, panel in enumerate(panels):
            fitted = _fit(panel, Image.Resampling.NEAREST if col == 1 else Image.Resampling.BILINEAR)
            left = pad + col * (PANEL[0] + pad)
            sheet.paste(fitted, (left + (PANEL[0] - fitted.width) // 2,
                                 top + (PANEL[1] - fitted.height) // 2))
        draw.text((pad, top + PANEL[1] + 2), _caption(sample, prob, mask), fill=(230, 230, 230),
                  font=font)
    return sheet


def _fit(panel: Image.Image, resample: Image.Resampling) -> Image.Image:
    scale = min(PANEL[0] / panel.width, PANEL[1] / panel.height)
    size = (max(1, round(panel.width * scale)), max(1, round(panel.height * scale)))
    return panel.convert("RGB").resize(size, resample)


def _caption(sample: Sample, prob: np.ndarray, mask: np.ndarray) -> str:
    if not sample.label:
        flagged = float((prob > 0.5).mean())
        return f"{sample.sample_id}  authentic  flagged {flagged:.1%} of pixels"
    suite = MetricSuite(["pixel_f1"])
    suite.update(ScoredImage(sample.sample_id, prob.astype(np.float32), mask, 1, float(prob.max())))
    return f"{sample.sample_id}  tampered  F1@0.5 = {suite.compute()['pixel_f1']:.3f}"
