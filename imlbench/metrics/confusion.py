"""Binary confusion counts and the scores derived from them, with scikit-learn's conventions.

Where a score is 0/0, it is 0.0 — scikit-learn's ``zero_division`` default (``"warn"`` acts as
0) for F1 and Jaccard, and what ``matthews_corrcoef`` returns when a marginal is empty. So a
"tampered" image with an empty mask scores F1 = IoU = MCC = 0 whatever is predicted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Counts of a binary decision (Python ints, so products never overflow)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_arrays(cls, predicted: np.ndarray, actual: np.ndarray) -> "Confusion":
        """``predicted``, ``actual``: bool arrays of one shape."""
        n_pred = int(np.count_nonzero(predicted))
        n_true = int(np.count_nonzero(actual))
        tp = int(np.count_nonzero(predicted & actual)) if n_pred and n_true else 0
        return cls(tp=tp, fp=n_pred - tp, fn=n_true - tp, tn=actual.size - n_pred - n_true + tp)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def mcc(self) -> float:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        margins = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        return (tp * tn - fp * fn) / math.sqrt(margins) if margins else 0.0

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the ground truth (NaN if none is):
        with one class only it is that class's recall, as in ``balanced_accuracy_score``."""
        recalls = [self.tp / (self.tp + self.fn)] if self.tp + self.fn else []
        if self.tn + self.fp:
            recalls.append(self.tn / (self.tn + self.fp))
        return sum(recalls) / len(recalls) if recalls else math.nan


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0
