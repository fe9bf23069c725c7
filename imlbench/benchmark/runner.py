"""Evaluation loop: Dataset → Perturbation → Method.predict → map back to ground truth → metrics.

One cell = (method, dataset, perturbation). For each sample the loop

1. decodes the image (``uint8 [H, W, 3]``) and its mask at the ground-truth size ``[H, W]``;
2. applies the perturbation (seeded by the sample id, so workers and ranks agree); a method with
   file inputs (CAT-Net) also gets those of the JPEG the pixels are the decoding of (the file's,
   the perturbation's bytes, or a q100 re-save: :mod:`imlbench.datasets.jpeg_dct`);
3. shapes the image by the method's :class:`InputPolicy` (resize / pad / canvas / native, with
   the policy's resampling kernel: :mod:`imlbench.methods.resample`);
4. calls ``method.predict`` under ``torch.inference_mode`` and the autocast of ``amp``
   (:data:`~imlbench.benchmark.device.PRECISIONS`; ``auto``: bf16/fp16 on CUDA, fp32 on CPU),
   optionally in channels_last memory format and through ``torch.compile``;
5. maps ``mask_prob`` back: crops padding, then resizes with the policy's ``output_kernel`` to
   the ground-truth ``[H, W]`` — metrics are always computed at the original resolution, never
   the network's;
6. image score = the method's own ``image_score``, else the max of the map at ground-truth
   resolution (the documented rule, used by image AUC/accuracy/F1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from imlbench.benchmark.device import autocast, check_precision, resolve_device
from imlbench.benchmark.scoring import Scoring
from imlbench.datasets.base import Dataset, DatasetError, Sample, load_image, load_mask
from imlbench.datasets.jpeg_dct import check_file_inputs, file_inputs, source_jpeg
from imlbench.errors import ImlbenchError
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.methods.resample import resize_maps, shape_for_policy
from imlbench.metrics import MetricSuite, ScoredImage
from imlbench.progress import progress_bar
from imlbench.robustness import CLEAN, PerturbationSpec


class PredictionError(ImlbenchError, RuntimeError):
    """A method returned something the contract forbids (wrong shape, NaN, out of range)."""


def default_workers(device: torch.device | None = None) -> int:
    """Decoding workers: one fewer than the cores (the main process feeds the model), at most 8
    on CPU and 32 on CUDA: one worker decodes, perturbs and resizes 30-50 images/s at 512²
    (docs/performance.md), while a large GPU runs a ResNet-50-sized net at over 1000/s."""
    cap = 32 if device is not None and device.type == "cuda" else 8
    return max(0, min(cap, (os.cpu_count() or 1) - 1))


def default_score_threads(device: torch.device) -> int:
    """Threads that update the metrics while the GPU runs the next batch (0 on CPU: the main
    process scores each image itself, as it always did). NumPy's sorts and reductions release
    the GIL, and a 512² image takes ~15-30 ms of metric work, more than the model's share."""
    return 0 if device.type != "cuda" else max(1, min(8, (os.cpu_count() or 1) // 4))


@dataclass
class EvalItem:
    """One sample ready for ``predict``. ``image``: float32 [3, h, w] in [0, 1] (after perturbation
    and input policy); ``mask``: bool [H, W] at ground-truth size; ``crop``: (h, w) of the valid
    region inside a padded image; ``covers``: fraction (fy, fx) of the picture that region shows
    from the top-left (below 1 only for a canvas that cuts oversized pictures); ``input_mask``
    [1, h, w] only for ground-truth sanity methods; ``extras``: the method's file inputs
    (:mod:`imlbench.datasets.jpeg_dct`, e.g. ``jpeg_dct.coef``), arrays of this one image."""

    sample_id: str
    image: torch.Tensor
    mask: torch.Tensor
    label: int
    crop: tuple[int, int]
    input_mask: torch.Tensor | None = None
    covers: tuple[float, float] = (1.0, 1.0)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def pin_memory(self) -> "EvalItem":
        """Called by the DataLoader's pinning thread (``pin_memory=True`` on CUDA), so that
        :func:`predict_batch` copies to the GPU asynchronously."""
        self.image = self.image.pin_memory()
        if self.input_mask is not None:
            self.input_mask = self.input_mask.pin_memory()
        return self


@dataclass
class BadSample:
    """A sample whose files could not be used; the reason names the file and the fix."""

    sample_id: str
    reason: str


class EvalDataset(TorchDataset):
    """Decodes, perturbs and shapes samples; runs inside DataLoader workers."""

    def __init__(self, samples: Sequence[Sample], policy: InputPolicy,
                 perturbation: PerturbationSpec = CLEAN, with_input_mask: bool = False,
                 file_inputs: Sequence[str] = ()) -> None:
        self.samples = list(samples)
        self.file_inputs = tuple(file_inputs)
        self.policy = policy
        self.perturbation = perturbation
        self.with_input_mask = with_input_mask

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> EvalItem | BadSample:
        s = self.samples[index]
        try:
            image = load_image(s.image_path)
            mask = load_mask(s, image.shape[:2])
        except DatasetError as exc:
            # returned, not raised: a worker's exception would reach the user wrapped in a
            # traceback; the main process decides between failing and skipping
            return BadSample(s.sample_id, str(exc))
        extras: dict[str, np.ndarray] = {}
        if self.file_inputs:  # from the file's own JPEG, or from the bytes the perturbation wrote
            try:
                image, encoded = self.perturbation.apply_encoded(image, s.sample_id,
                                                                 source_jpeg(s.image_path))
                image, extras = file_inputs(self.file_inputs, image, encoded)
            except DatasetError as exc:
                return BadSample(s.sample_id, str(exc))
        else:
            image = self.perturbation.apply(image, s.sample_id)
        m = torch.from_numpy(mask)
        input_mask = None
        if self.with_input_mask:  # the oracle sees the mask in the geometry of its input
            input_mask = resize_maps(m[None, None].float(), image.shape[:2], "nearest")[0]
        shaped = shape_for_policy(image, self.policy, input_mask)
        return EvalItem(s.sample_id, shaped.image, m, s.label, shaped.valid, shaped.mask,
                        shaped.covers, extras)


def collate(items: list) -> list:
    return items


def batches_of(items: list[EvalItem]) -> Iterable[list[EvalItem]]:
    """Split a loader batch into groups of equal input shape (native policy can mix sizes)."""
    groups: dict[tuple[int, ...], list[EvalItem]] = {}
    for it in items:
        groups.setdefault(tuple(it.image.shape), []).append(it)
    return groups.values()


def predict_batch(method: Method, items: list[EvalItem], device: torch.device,
                  amp: bool | str = True, channels_last: bool = False,
                  predict: Any = None) -> list[ScoredImage]:
    """Run one group of equal-shaped items through ``method``; score-ready outputs at
    ground-truth size (extra maps, when the method gives any, in ``ScoredImage.extra_maps``).
    ``amp``: a precision (or the training loop's bool); ``predict``: a stand-in for
    ``method.predict`` with its signature (the compiled one of :func:`compiled_predict`)."""
    # each (pinned) image goes over on its own and is stacked on the device: stacking on the
    # host would make a new, unpinned tensor and a synchronous copy
    x = torch.stack([it.image.to(device, non_blocking=True) for it in items])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    predict = method.predict if predict is None else predict
    masks = None
    if method.needs_ground_truth:
        masks = torch.stack([it.input_mask.to(device, non_blocking=True) for it in items])
    kernel = method.input_policy.output_kernel
    kwargs = {}
    if method.file_inputs:  # only methods that declare file inputs get extras
        kwargs["extras"] = {key: torch.from_numpy(np.stack([it.extras[key] for it in items])).to(device)
                            for key in items[0].extras}
    with torch.inference_mode():
        with autocast(device, amp):
            pred = (predict(x, masks=masks, **kwargs) if masks is not None
                    else predict(x, **kwargs))
        check_prediction(pred, x, method, [it.sample_id for it in items])
        probs = pred.mask_prob.float()
        out = []
        for i, it in enumerate(items):
            prob = to_ground_truth(probs[i], it, x.shape[-2:], kernel)
            score = float(pred.image_score[i]) if pred.image_score is not None else float(prob.max())
            extras = {name: to_ground_truth(extra[i].float(), it, x.shape[-2:], kernel)
                      for name, extra in pred.extra_maps.items()}
            out.append(ScoredImage(it.sample_id, prob, it.mask.numpy(), it.label, score, extras))
    return out


def compiled_predict(method: Method, backend: str = "inductor") -> Any:
    """``method.predict`` through ``torch.compile`` with ``backend``, made once per method and
    backend and kept on the method, so the cells of a sweep reuse one compilation."""
    cache = method.__dict__.setdefault("_imlbench_compiled_predict", {})
    if backend not in cache:
        cache[backend] = torch.compile(method.predict, backend=backend)
    return cache[backend]


def to_ground_truth(prob: torch.Tensor, item: EvalItem, input_hw: Sequence[int],
                    kernel: str) -> np.ndarray:
    """A map ``[1, h', w']`` of the input (possibly at a fraction of its resolution) → ``float32
    [H, W]`` at the ground-truth size: padding cropped, resized with the policy's
    ``output_kernel``; the part of the picture a cutting canvas never showed scores 0."""
    prob = crop_to_valid(prob, item.crop, input_hw)
    gh, gw = item.mask.shape
    covered = (gh, gw) if item.covers == (1.0, 1.0) else (
        max(1, round(gh * item.covers[0])), max(1, round(gw * item.covers[1])))
    prob = resize_maps(prob[None], covered, kernel)[0, 0].clamp(0, 1)
    if covered != (gh, gw):
        prob = F.pad(prob, (0, gw - covered[1], 0, gh - covered[0]))
    return prob.cpu().numpy().astype(np.float32, copy=False)


def crop_to_valid(prob: torch.Tensor, crop: tuple[int, int], input_hw: Sequence[int]) -> torch.Tensor:
    """Drop the padded border of ``prob`` [1, h', w'], whose resolution may be a fraction of the
    input's ``input_hw`` (e.g. a 1/4-resolution output); the valid region scales with it."""
    _, oh, ow = prob.shape
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    vh = max(1, round(crop[0] * oh / in_h))
    vw = max(1, round(crop[1] * ow / in_w))
    return prob[:, :vh, :vw]


def check_prediction(pred: Any, x: torch.Tensor, method: Method, ids: list[str]) -> None:
    """Enforce the Prediction contract; a violation is an error, never a silently changed score."""
    name = type(method).__name__
    if not isinstance(pred, Prediction):
        raise PredictionError(f"{name}.predict returned {type(pred).__name__}, expected Prediction")
    m = pred.mask_prob
    if m.shape[0] != x.shape[0]:
        raise PredictionError(f"{name}.predict returned {m.shape[0]} maps for {x.shape[0]} images")
    bad = ~torch.isfinite(m)
    if bad.any():
        i = int(bad.flatten(1).any(1).nonzero()[0])
        raise PredictionError(f"{name}.predict produced NaN/inf in the map of sample {ids[i]!r}; "
                              "fix the method (check for division by zero or log(0))")
    lo, hi = float(m.min()), float(m.max())
    if lo < 0 or hi > 1:
        raise PredictionError(f"{name}.predict returned mask_prob in [{lo:.4g}, {hi:.4g}], expected "
                              "probabilities in [0, 1]; apply sigmoid/softmax once inside predict")
    if pred.image_score is not None:
        s = pred.image_score.float()
        if not torch.isfinite(s).all() or float(s.min()) < 0 or float(s.max()) > 1:
            raise PredictionError(f"{name}.predict returned image_score outside [0, 1] or non-finite")


@dataclass
class CellResult:
    """Metrics of one (method, dataset, perturbation) cell."""

    metrics: dict[str, float]
    n_images: int
    n_tampered: int
    suite: MetricSuite
    skipped: list[BadSample] = field(default_factory=list)


def evaluate_cell(method: Method, dataset: Dataset, *, perturbation: PerturbationSpec = CLEAN,
                  device: str | torch.device = "auto", batch_size: int = 8,
                  num_workers: int | None = None, metrics: Sequence[str] | None = None,
                  include_authentic: bool = False, amp: bool | str = True, progress: bool = True,
                  save_predictions: Path | None = None,
                  samples: Sequence[Sample] | None = None, skip_bad: bool = False,
                  channels_last: bool = False, compile: bool | str = False,
                  score_threads: int | None = None) -> CellResult:
    """Evaluate ``method`` on ``dataset`` under ``perturbation``.

    ``amp``: ``auto`` (``True``) | ``bf16`` | ``fp16`` | ``off`` (``False``), see
    :func:`~imlbench.benchmark.device.precision_dtype`. ``channels_last`` moves the method's
    weights and each batch to that memory format; ``compile`` runs ``predict`` through
    ``torch.compile`` (``True``: the inductor backend; a string names another backend).
    ``num_workers`` / ``score_threads``: decoding processes and metric threads (defaults:
    :func:`default_workers`, :func:`default_score_threads`). The tolerances of these options
    against fp32 are in docs/performance.md and tests/test_precision.py.

    ``samples`` overrides the dataset's sample list (used for sharding). ``save_predictions``
    writes each map as ``<dir>/<name>.npy`` (float32 at ground-truth size; names from
    :func:`prediction_names`), readable by ``imlbench score``, and a method's extra maps as
    ``<dir>/<extra name>/<name>.npy``. A sample whose files cannot be read is an error (fail fast), or with
    ``skip_bad`` left out of every metric and listed in ``CellResult.skipped``.
    """
    dev = resolve_device(device)
    check_precision(amp)
    method = method.to(dev).eval()
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    predict = None
    if compile:
        predict = compiled_predict(method, "inductor" if compile is True else str(compile))
    policy = method.input_policy
    samples = dataset.samples if samples is None else samples
    if policy.mode == "native":
        batch_size = 1  # images of different sizes; classic methods run one at a time anyway
    workers = default_workers(dev) if num_workers is None else num_workers
    wanted = tuple(method.file_inputs)
    check_file_inputs(wanted, type(method).__name__)
    loader = DataLoader(EvalDataset(samples, policy, perturbation, method.needs_ground_truth, wanted),
                        batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate, pin_memory=dev.type == "cuda",
                        persistent_workers=False)
    scoring = Scoring(lambda: MetricSuite(metrics, include_authentic=include_authentic),
                       default_score_threads(dev) if score_threads is None else score_threads)
    if save_predictions is not None:
        save_predictions = Path(save_predictions)
        save_predictions.mkdir(parents=True, exist_ok=True)
        # names come from the whole dataset, so every shard of a torchrun run agrees
        stem_of = {s.sample_id: name for name, s in prediction_names(dataset.samples).items()}
    bar = progress_bar(total=len(samples), desc=f"{dataset.name} {perturbation.label()}",
                       unit="img", enabled=progress, leave=False)
    skipped: list[BadSample] = []
    try:
        for batch in loader:
            items = [it for it in batch if isinstance(it, EvalItem)]
            for bad in (it for it in batch if isinstance(it, BadSample)):
                if not skip_bad:
                    raise DatasetError(f"{bad.reason} (sample {bad.sample_id!r} of {dataset.name!r}; "
                                       "pass --skip-bad to leave such samples out and list them)")
                skipped.append(bad)
            for group in batches_of(items):
                for scored in predict_batch(method, group, dev, amp, channels_last, predict):
                    scoring.add(scored)
                    if save_predictions is not None:  # float32 .npy: `score` reproduces exactly
                        stem = stem_of[scored.sample_id]
                        np.save(save_predictions / f"{stem}.npy", scored.prob)
                        for name, extra in scored.extra_maps.items():  # beside, never scored
                            (save_predictions / name).mkdir(exist_ok=True)
                            np.save(save_predictions / name / f"{stem}.npy", extra)
            bar.update(len(batch))
        suite = scoring.result()
    finally:
        scoring.close()
    bar.close()
    return CellResult(suite.compute(), suite.n_images, suite.n_tampered, suite, skipped)


def evaluate_method(method: Method, dataset: Dataset, *, device: str | torch.device = "auto",
                    batch_size: int = 8, num_workers: int | None = 0,
                    metrics: Sequence[str] | None = None, progress: bool = False,
                    perturbation: PerturbationSpec = CLEAN) -> dict[str, float]:
    """Metrics of ``method`` on ``dataset`` as a dict (used by training-time validation)."""
    was_training = method.training
    try:
        res = evaluate_cell(method, dataset, perturbation=perturbation, device=device,
                            batch_size=batch_size, num_workers=num_workers, metrics=metrics,
                            progress=progress)
    finally:
        method.train(was_training)
    return res.metrics


def prediction_names(samples: Sequence[Sample]) -> dict[str, Sample]:
    """File names (without suffix) of exported maps, which ``imlbench score`` matches on.

    The image's file stem, so maps made by other tools match. A stem that several images of the
    dataset share (Korus: ``pristine/`` and ``tampered-realistic/`` hold the same names) names
    none of them: each of those samples is named by its sample id without the image's
    extension, every path separator written ``__`` (``Canon_60D/pristine/DPP0520.TIF`` ->
    ``Canon_60D__pristine__DPP0520``); the other samples keep their stems.
    """
    stems = [Path(s.image_path).stem for s in samples]
    count: dict[str, int] = {}
    for stem in stems:
        count[stem] = count.get(stem, 0) + 1
    names: dict[str, Sample] = {}
    for stem, sample in zip(stems, samples):
        name = stem
        if count[stem] > 1:
            suffix = Path(sample.image_path).suffix
            sid = sample.sample_id[: -len(suffix)] if suffix and sample.sample_id.endswith(suffix) \
                else sample.sample_id
            name = sid.replace("/", "__").replace("\\", "__")
        if name in names:
            raise DatasetError(f"samples {names[name].sample_id!r} and {sample.sample_id!r} would "
                               f"both export as {name!r}; rename one of the image files")
        names[name] = sample
    return names
