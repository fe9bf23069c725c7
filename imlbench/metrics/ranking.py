"""One sort of a score map, shared by exact AUC, best F1 and the pooled-AUC histograms.

Scores and labels are packed into one unsigned key per pixel, ``bits(score) << 1 | label``:
non-negative IEEE floats order like their bit patterns, so a single integer sort orders the
pixels by score, and within equal scores puts negatives before positives. (The shift also
drops the sign bit of ``-0.0``, which thus sorts as ``0.0``.) After the sort, only the
positives' positions are kept; every statistic below is computed per run of tied positives,
handling ties exactly as scikit-learn does, in time linear in the number of positives.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class _PositiveBlocks:
    """Runs of positives with equal score, ``int64 [B]`` counts each (B <= positives)."""

    pos_below: np.ndarray  # positives with a strictly smaller score
    neg_below: np.ndarray  # negatives with a strictly smaller score
    pos_in: np.ndarray     # positives with this score
    neg_in: np.ndarray     # negatives with this score (ties across classes)
    value: np.ndarray      # the score (same dtype as the scores)


class Ranking:
    """Scores sorted once, with their binary labels.

    ``scores``: float32 or float64 array in ``[0, 1]`` (any shape, validated by the caller);
    ``labels``: bool array of the same shape (True = positive).
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.dtype = scores.dtype
        self._uint = np.dtype(f"u{scores.dtype.itemsize}")
        one = self._uint.type(1)
        keys = np.ascontiguousarray(scores).reshape(-1).view(self._uint) << one
        np.bitwise_or(keys, labels.reshape(-1), out=keys)
        keys.sort()
        self._keys = keys
        self._pos_at = np.flatnonzero(keys & one)  # sorted positions of the positives
        self.n_pos = self._pos_at.size
        self.n_neg = keys.size - self.n_pos

    @cached_property
    def _blocks(self) -> _PositiveBlocks:
        keys, pos_at = self._keys, self._pos_at
        pos_keys = keys[pos_at]
        first = np.flatnonzero(np.diff(pos_keys, prepend=pos_keys[:1] ^ 1))  # block starts
        pos_in = np.diff(first, append=pos_at.size)
        at = pos_at[first]
        neg_upto = at - first  # negatives before the block: all with score <= its score
        # tied negatives sit right before the block; count them only where there are some
        block_keys = pos_keys[first]
        tied = (at > 0) & (keys[np.maximum(at - 1, 0)] == block_keys - 1)
        neg_in = np.zeros_like(neg_upto)
        neg_in[tied] = at[tied] - np.searchsorted(keys, block_keys[tied] - 1)
        return _PositiveBlocks(pos_below=first, neg_below=neg_upto - neg_in, pos_in=pos_in,
                               neg_in=neg_in, value=(block_keys >> 1).view(self.dtype))

    @property
    def auc_defined(self) -> bool:
        return self.n_pos > 0 and self.n_neg > 0

    def auc(self) -> float:
        """Exact ROC AUC (``roc_auc_score``): P(pos > neg) + ½ P(pos = neg); NaN with one class."""
        if not self.auc_defined:
            return float("nan")
        b = self._blocks
        twice_u = int(np.dot(b.pos_in, 2 * b.neg_below + b.neg_in))  # Mann-Whitney U, doubled
        return twice_u / (2 * self.n_pos * self.n_neg)

    def best_f1(self) -> tuple[float, float]:
        """Best F1 of ``score >= t`` over every threshold ``t``, and the smallest best ``t``.

        Equals the max F1 along ``precision_recall_curve``. Only thresholds at a positive's
        score can be best (moving up to the next positive score drops false positives only).
        No positives: ``(0.0, nan)`` — every threshold has F1 = 0, as scikit-learn scores it.
        """
        if self.n_pos == 0:
            return 0.0, float("nan")
        b = self._blocks
        tp = self.n_pos - b.pos_below
        fp = self.n_neg - b.neg_below
        f1 = 2 * tp / (tp + fp + self.n_pos)
        best = int(np.argmax(f1))
        return float(f1[best]), float(b.value[best])

    def class_histograms(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative counts per bin, ``int64 [len(edges) + 1]`` each.

        Bin ``i`` holds the scores ``edges[i-1] <= s < edges[i]`` (open-ended at both ends);
        ``edges``: increasing, same dtype as the scores. Costs two binary searches per edge.
        """
        one = self._uint.type(1)
        edge_keys = np.ascontiguousarray(edges, dtype=self.dtype).view(self._uint) << one
        below = np.searchsorted(self._keys, edge_keys)  # keys < edge<<1  <=>  score < edge
        pos_below = np.searchsorted(self._pos_at, below)  # positives at sorted positions < below
        pos_hist = np.diff(pos_below, prepend=0, append=self.n_pos)
        neg_hist = np.diff(below - pos_below, prepend=0, append=self.n_neg)
        return pos_hist, neg_hist


def log_spaced_edges(mantissa_bits: int = 8, min_exponent: int = -126) -> np.ndarray:
    """Bin edges for probabilities, ``float32 [K]``, fine near 0 and near 1 alike.

    Edges are ``q = 2**e * (1 + j / 2**mantissa_bits)`` for ``e`` in ``[min_exponent, -2]``
    and their mirrors ``1 - q``: a bin is at most ``2**-mantissa_bits`` wide relative to the
    distance to the nearer end, i.e. about 0.002-0.005 logit units with the defaults, down to
    float32's smallest normal number (logit -87), so saturated sigmoid outputs are still
    resolved. The first edge (the smallest float32) and the last (1.0) give exact-0 and
    exact-1 bins. Built by exact arithmetic only, hence bit-identical on every machine, so
    histograms from different ranks can be summed.
    """
    frac = 1.0 + np.arange(2**mantissa_bits) / 2**mantissa_bits
    lower = np.ldexp(frac[None, :], np.arange(min_exponent, -1)[:, None]).ravel()
    lower = np.append(lower, 0.5)  # exact in float64; 1 - lower is IEEE-rounded, never libm
    tiny = np.finfo(np.float32).smallest_subnormal
    return np.unique(np.concatenate([[tiny], lower, 1.0 - lower, [1.0]]).astype(np.float32))


def single_value_bins(edges: np.ndarray) -> np.ndarray:
    """``bool [len(edges) + 1]``: bins that can hold only one float value (e.g. {0}, {1}).

    Pairs inside such a bin are exact ties, so they add nothing to the binned-AUC error.
    """
    inner = np.nextafter(edges[:-1], np.inf) == edges[1:]
    first = edges[0] == np.nextafter(edges.dtype.type(0), edges.dtype.type(1))  # bin {0}
    return np.concatenate([[first], inner, [edges[-1] == 1.0]])


def binned_auc(pos_hist: np.ndarray, neg_hist: np.ndarray,
               exact_bins: np.ndarray | None = None) -> tuple[float, float]:
    """ROC AUC from per-class histograms over ordered bins, and a bound on its error.

    Pairs in different bins are ordered correctly; pairs in one bin count ½ (a tie). The
    exact AUC scores such a pair 0, ½ or 1, hence
    ``|AUC_exact - AUC_binned| <= ½ Σ_b pos_b · neg_b / (P · N)`` over the bins ``b`` that can
    hold more than one value (``exact_bins`` marks the others). NaN, NaN if a class is empty.
    """
    pos = pos_hist.astype(np.float64)  # products of pooled counts can exceed int64
    neg = neg_hist.astype(np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    neg_below = np.cumsum(neg) - neg
    auc = float(np.dot(pos, neg_below + 0.5 * neg) / (n_pos * n_neg))
    same_bin = pos * neg if exact_bins is None else np.where(exact_bins, 0.0, pos * neg)
    return auc, float(0.5 * same_bin.sum() / (n_pos * n_neg))
