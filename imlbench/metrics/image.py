"""Image-level metrics from ``ScoredImage.image_score`` (tampered = positive class).

Every image is scored, tampered and authentic; a decision is ``image_score > threshold``.
"""
from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from imlbench.metrics.base import ImageView, Metric
from imlbench.metrics.confusion import Confusion
from imlbench.metrics.ranking import Ranking
from imlbench.registry import METRICS


@METRICS.register()
class ImageAUC(Metric):
    """Exact ROC AUC of the image score (ties count ½); NaN unless both labels occur."""

    name = "image_auc"
    higher_is_better = True

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("scores", np.zeros(0, np.float64), "cat")
        self.add_state("labels", np.zeros(0, np.bool_), "cat")

    def update_view(self, view: ImageView) -> None:
        self.append("scores", np.float64(view.item.image_score))
        self.append("labels", view.label == 1)

    def compute(self) -> dict[str, float]:
        return {self.name: Ranking(self.cat("scores"), self.cat("labels")).auc()}


class ImageDecisionMetric(Metric):
    """A score of the decisions ``image_score > threshold``, kept as confusion counts."""

    higher_is_better = True

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.add_state("tp_fp_fn_tn", np.zeros(4, np.int64), "sum")

    def update_view(self, view: ImageView) -> None:
        flagged, tampered = view.item.image_score > self.threshold, view.label == 1
        self.sums["tp_fp_fn_tn"] += (flagged and tampered, flagged and not tampered,
                                     tampered and not flagged, not (flagged or tampered))

    @abstractmethod
    def score(self, counts: Confusion) -> float:
        """The metric from the pooled image counts."""

    def compute(self) -> dict[str, float]:
        counts = Confusion(*(int(v) for v in self.sums["tp_fp_fn_tn"]))
        n_images = counts.tp + counts.fp + counts.fn + counts.tn
        return {self.name: self.score(counts) if n_images else math.nan}


@METRICS.register()
class ImageBalancedAccuracy(ImageDecisionMetric):
    """Balanced accuracy of image_score > 0.5 (mean recall of the labels present)."""

    name = "image_bacc"

    def score(self, counts: Confusion) -> float:
        return counts.balanced_accuracy


@METRICS.register()
class ImageF1(ImageDecisionMetric):
    """F1 of image_score > 0.5 with tampered as the positive class (0 if no positives at all)."""

    name = "image_f1"

    def score(self, counts: Confusion) -> float:
        return counts.f1
