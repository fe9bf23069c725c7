"""Pixel-level metrics (field convention: tampered images only, unless ``include_authentic``).

A pixel is flagged when ``prob > threshold`` (strict, as IMDL-BenCo and MPC do). Per-image
metrics are averaged over the images they score; 0/0 cases follow scikit-learn (see
:mod:`imlbench.metrics.confusion`), so with ``include_authentic=True`` an authentic image
scores F1 = IoU = MCC = 0 and its AUC is undefined.
"""
from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from imlbench.metrics.base import ImageView, Metric, mean_or_nan
from imlbench.metrics.confusion import Confusion
from imlbench.metrics.ranking import binned_auc, log_spaced_edges, single_value_bins
from imlbench.registry import METRICS


class PixelMetric(Metric):
    """A metric of the pixels of tampered images (all images with ``include_authentic``)."""

    higher_is_better = True

    def includes(self, view: ImageView) -> bool:
        return view.label == 1 or self.include_authentic


class PerImageMean(PixelMetric):
    """Mean over images of a per-image score; images where it is undefined (NaN) are
    left out of the mean and counted in the ``n_undefined`` state."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("total", np.float64(0.0), "sum")
        self.add_state("n_images", np.int64(0), "sum")
        self.add_state("n_undefined", np.int64(0), "sum")

    @abstractmethod
    def image_score(self, view: ImageView) -> float:
        """The score of one image; NaN if undefined for it."""

    def update_view(self, view: ImageView) -> None:
        if not self.includes(view):
            return
        value = self.image_score(view)
        if math.isnan(value):
            self.sums["n_undefined"] += 1
        else:
            self.sums["total"] += value
            self.sums["n_images"] += 1

    def compute(self) -> dict[str, float]:
        return {self.name: mean_or_nan(self.sums["total"], self.sums["n_images"])}


@METRICS.register()
class PixelF1(PerImageMean):
    """F1 of prob > 0.5 against the mask, per image, mean over tampered images."""

    name = "pixel_f1"

    def image_score(self, view: ImageView) -> float:
        return view.confusion(self.threshold).f1


@METRICS.register()
class PixelIoU(PerImageMean):
    """IoU (Jaccard) of prob > 0.5 against the mask, per image, mean over tampered images."""

    name = "pixel_iou"

    def image_score(self, view: ImageView) -> float:
        return view.confusion(self.threshold).iou


@METRICS.register()
class PixelMCC(PerImageMean):
    """Matthews correlation of prob > 0.5 against the mask, per image, mean over tampered images."""

    name = "pixel_mcc"

    def image_score(self, view: ImageView) -> float:
        return view.confusion(self.threshold).mcc


@METRICS.register()
class PixelF1Best(PerImageMean):
    """ORACLE: per-image best F1 over all thresholds (prob >= t), mean over tampered images.

    The threshold is chosen per image *with the ground truth*, so this is an upper bound that
    no deployed detector reaches; report it next to ``pixel_f1``, never instead of it. It
    equals the maximum F1 along scikit-learn's ``precision_recall_curve``.
    """

    name = "pixel_f1_best"

    def image_score(self, view: ImageView) -> float:
        return view.ranking.best_f1()[0]


@METRICS.register()
class PixelAUC(PerImageMean):
    """Exact ROC AUC per image (ties count ½), mean over tampered images with both classes.

    AUC is undefined on an image whose mask is empty or full; such images are left out of
    the mean (never scored 0.5) and counted in ``pixel_auc_n_undefined``.
    """

    name = "pixel_auc"

    def image_score(self, view: ImageView) -> float:
        return view.ranking.auc()

    def compute(self) -> dict[str, float]:
        return {**super().compute(), f"{self.name}_n_undefined": float(self.sums["n_undefined"])}


@METRICS.register()
class PixelF1Pooled(PixelMetric):
    """F1 of prob > 0.5 over all pixels of all tampered images pooled."""

    name = "pixel_f1_pooled"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("tp_fp_fn", np.zeros(3, np.int64), "sum")
        self.add_state("n_images", np.int64(0), "sum")

    def update_view(self, view: ImageView) -> None:
        if self.includes(view):
            c = view.confusion(self.threshold)
            self.sums["tp_fp_fn"] += (c.tp, c.fp, c.fn)
            self.sums["n_images"] += 1

    def compute(self) -> dict[str, float]:
        if not self.sums["n_images"]:
            return {self.name: math.nan}
        tp, fp, fn = (int(v) for v in self.sums["tp_fp_fn"])
        return {self.name: Confusion(tp=tp, fp=fp, fn=fn, tn=0).f1}


POOLED_AUC_EDGES = log_spaced_edges()
"""``float32 [36098]`` bin edges of ``pixel_auc_pooled`` (see :func:`log_spaced_edges`)."""
_SINGLE_VALUE_BINS = single_value_bins(POOLED_AUC_EDGES)


@METRICS.register()
class PixelAUCPooled(PixelMetric):
    """ROC AUC over all pixels of all tampered images pooled (binned; error bound reported).

    Keeps one histogram per class over :data:`POOLED_AUC_EDGES` (log-spaced towards 0 and 1),
    so memory is constant in the number of images. Pairs in one bin count as ties; the
    largest possible deviation from the exact AUC, ``½ Σ_b pos_b·neg_b / (P·N)`` over bins
    that can hold more than one value, is computed from the same state and reported as
    ``pixel_auc_pooled_error_bound``.
    """

    name = "pixel_auc_pooled"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("pos_hist", np.zeros(POOLED_AUC_EDGES.size + 1, np.int64), "sum")
        self.add_state("neg_hist", np.zeros(POOLED_AUC_EDGES.size + 1, np.int64), "sum")

    def update_view(self, view: ImageView) -> None:
        if self.includes(view):
            pos_hist, neg_hist = view.ranking.class_histograms(POOLED_AUC_EDGES)
            self.sums["pos_hist"] += pos_hist
            self.sums["neg_hist"] += neg_hist

    def compute(self) -> dict[str, float]:
        auc, bound = binned_auc(self.sums["pos_hist"], self.sums["neg_hist"], _SINGLE_VALUE_BINS)
        return {self.name: auc, f"{self.name}_error_bound": bound}


@METRICS.register()
class PixelFPRAuthentic(Metric):
    """Fraction of pixels flagged (prob > 0.5) on authentic images, pooled over their pixels.

    Pooled, so large images weigh more; ``include_authentic`` does not apply (only authentic
    images are ever scored). NaN without authentic images.
    """

    name = "pixel_fpr_authentic"
    higher_is_better = False

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("flagged", np.int64(0), "sum")
        self.add_state("pixels", np.int64(0), "sum")

    def update_view(self, view: ImageView) -> None:
        if view.label == 0:
            self.sums["flagged"] += view.confusion(self.threshold).fp
            self.sums["pixels"] += view.item.mask.size

    def compute(self) -> dict[str, float]:
        return {self.name: mean_or_nan(self.sums["flagged"], self.sums["pixels"])}
