"""The one input record of every metric, and its validation.

Validation happens once per image, before any metric sees it: a bad map must raise an error
that names the sample and the likely culprit, never turn silently into a score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from imlbench.errors import ImlbenchError


class MetricInputError(ImlbenchError, ValueError):
    """A :class:`ScoredImage` breaks the metric contract; the message names sample and fix."""


@dataclass(frozen=True)
class ScoredImage:
    """One scored image.

    * ``prob``: ``float32 [H, W]`` in ``[0, 1]``, already at the ground-truth resolution.
    * ``mask``: ``bool [H, W]``, True = manipulated; all False for authentic images.
    * ``label``: 1 tampered, 0 authentic.
    * ``image_score``: in ``[0, 1]``; the method's own score, else ``max(prob)`` (runner rule).
    * ``extra_maps``: the method's further maps by name (``float32 [H, W]``), never scored;
      carried so that exports can write them beside ``prob``.
    """

    sample_id: str
    prob: np.ndarray
    mask: np.ndarray
    label: int
    image_score: float
    extra_maps: dict[str, np.ndarray] = field(default_factory=dict)


def check_scored_image(item: ScoredImage) -> None:
    """Raise :class:`MetricInputError` unless ``item`` satisfies the :class:`ScoredImage` contract.

    float64 maps are refused rather than rounded here: rounding to float32 can merge distinct
    values into ties and so change AUC; cast once, where the prediction is made.
    """
    sid, prob, mask = item.sample_id, item.prob, item.mask
    where = f"sample {sid!r}"
    if not isinstance(prob, np.ndarray) or prob.ndim != 2:
        raise MetricInputError(
            f"{where}: prob must be a 2-D numpy array [H, W], got {_describe(prob)}; "
            "squeeze batch/channel axes and convert tensors with .cpu().numpy()")
    if prob.dtype != np.float32:
        raise MetricInputError(
            f"{where}: prob must be float32, got {prob.dtype}; cast with prob.astype(np.float32) "
            "where the prediction is made (float16 converts exactly)")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise MetricInputError(
            f"{where}: mask must be a bool numpy array (True = manipulated), got {_describe(mask)}; "
            "decode masks with imlbench.datasets.base.load_mask")
    if prob.shape != mask.shape:
        raise MetricInputError(
            f"{where}: prob has shape {prob.shape} but mask has shape {mask.shape}; resize the "
            "prediction to the ground-truth size (H, W) before scoring")
    if prob.size == 0:
        raise MetricInputError(f"{where}: empty image (shape {prob.shape}); nothing to score")
    lo, hi = prob.min(), prob.max()  # NaN propagates through min/max, so two passes suffice
    if not (0.0 <= lo and hi <= 1.0):
        n_nan, n_inf = int(np.isnan(prob).sum()), int(np.isinf(prob).sum())
        if n_nan or n_inf:
            raise MetricInputError(
                f"{where}: prob has {n_nan} NaN and {n_inf} infinite pixel(s); the method produced "
                "them (check its predict(): AMP overflow, log of 0, logits converted twice)")
        raise MetricInputError(
            f"{where}: prob must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]; the method "
            "must return probabilities (apply sigmoid/softmax exactly once in predict())")
    label = item.label
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
            or label not in (0, 1):
        raise MetricInputError(f"{where}: label must be the int 0 (authentic) or 1 (tampered), "
                               f"got {label!r}")
    if label == 0 and mask.any():
        raise MetricInputError(
            f"{where}: authentic image (label 0) has {int(mask.sum())} manipulated mask pixel(s); "
            "authentic images are scored against an all-zero mask — fix the label or the mask")
    score = item.image_score
    if isinstance(score, (bool, np.bool_)) or not isinstance(score, Real) \
            or not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise MetricInputError(
            f"{where}: image_score must be a finite number in [0, 1], got {score!r}; the method "
            "produced it (or use max(prob) when the method has no image score)")


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"ndarray of dtype {x.dtype} and shape {x.shape}"
    return type(x).__name__
