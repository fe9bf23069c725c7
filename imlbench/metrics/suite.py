"""``MetricSuite``: the set of metrics one evaluation cell computes, fed one image at a time."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from imlbench.errors import ConfigError
from imlbench.metrics.base import ImageView, Metric, Reduction
from imlbench.metrics.scored import ScoredImage, check_scored_image
from imlbench.registry import METRICS

METRIC_NAMES: list[str] = [
    "pixel_f1", "pixel_f1_best", "pixel_f1_pooled", "pixel_iou", "pixel_mcc", "pixel_auc",
    "pixel_auc_pooled", "pixel_fpr_authentic", "image_auc", "image_bacc", "image_f1",
]
"""The built-in metric names, in leaderboard order (stable: records and ``--json`` use them)."""
PRIMARY_METRIC = "pixel_f1"
"""The metric of the printed leaderboard, the plots and (by default) checkpoint selection."""
LEADERBOARD_METRICS: tuple[str, ...] = ("pixel_f1", "pixel_f1_best", "pixel_iou", "pixel_auc",
                                        "pixel_fpr_authentic", "image_auc", "image_bacc")
"""The columns of the leaderboard's per-dataset tables (a subset of :data:`METRIC_NAMES`)."""
REPORTED_METRICS: tuple[str, ...] = ("pixel_f1", "pixel_auc", "image_auc")
"""The few a progress line or a validation reports."""

_COUNTS = ("n_images", "n_tampered")


def default_metric_names() -> list[str]:
    """:data:`METRIC_NAMES`, then any other registered (non-test) metric, sorted."""
    return METRIC_NAMES + [n for n in METRICS.list() if n not in METRIC_NAMES]


class MetricSuite:
    """Streaming evaluation of several metrics that share per-image work.

    Each image is validated once and viewed once: the 0.5-threshold confusion counts and the
    sort of the map are computed at most once and shared by every metric. Pixels are flagged
    when ``prob > threshold`` and images when ``image_score > threshold``. Pixel metrics
    score tampered images only, unless ``include_authentic=True``.

    ``compute()`` returns ``{name: value}`` for the requested names, in order, plus the
    diagnostics some metrics add under ``<name>_<what>`` (``pixel_auc_n_undefined``,
    ``pixel_auc_pooled_error_bound``). Values are NaN where undefined.
    """

    def __init__(self, names: Sequence[str] | None = None, *, include_authentic: bool = False,
                 threshold: float = 0.5) -> None:
        names = default_metric_names() if names is None else list(names)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"metric names repeated: {duplicates}; list each metric once")
        self.metrics: dict[str, Metric] = {
            name: METRICS.build(name, threshold=threshold, include_authentic=include_authentic)
            for name in names}
        self.include_authentic, self.threshold = include_authentic, threshold
        self._counts = np.zeros(len(_COUNTS), np.int64)

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    @property
    def options(self) -> dict[str, object]:
        return {"threshold": self.threshold, "include_authentic": self.include_authentic}

    @property
    def n_images(self) -> int:
        return int(self._counts[0])

    @property
    def n_tampered(self) -> int:
        return int(self._counts[1])

    @property
    def n_authentic(self) -> int:
        return self.n_images - self.n_tampered

    def update(self, item: ScoredImage) -> None:
        """Validate one image (errors name the sample) and add it to every metric."""
        check_scored_image(item)
        view = ImageView(item)
        for metric in self.metrics.values():
            metric.update_view(view)
        self._counts += (1, item.label)

    def merge(self, other: "MetricSuite") -> None:
        """Add another shard's images to this suite (in place)."""
        if (other.names, other.options) != (self.names, self.options):
            raise ValueError(f"cannot merge suites with different metrics or options: "
                             f"{other.names} {other.options} into {self.names} {self.options}")
        for name, metric in self.metrics.items():
            metric.merge(other.metrics[name])
        self._counts += other._counts

    def compute(self) -> dict[str, float]:
        results: dict[str, float] = {}
        for metric in self.metrics.values():
            results.update(metric.compute())
        return results

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self._counts[:] = 0

    # -- flat state, for a distributed layer ----------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every state as a flat array, keyed ``"<metric>.<state>"`` (plus the image counts)."""
        state = {f"suite.{key}": np.array(count) for key, count in zip(_COUNTS, self._counts)}
        for name, metric in self.metrics.items():
            state.update({f"{name}.{key}": value for key, value in metric.state_dict().items()})
        return state

    def state_reductions(self) -> dict[str, Reduction]:
        """For each :meth:`state_dict` key: ``"sum"`` (all-reduce) or ``"cat"`` (all-gather)."""
        reductions: dict[str, Reduction] = {f"suite.{key}": "sum" for key in _COUNTS}
        for name, metric in self.metrics.items():
            reductions.update({f"{name}.{key}": r for key, r in metric.reductions.items()})
        return reductions

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace all states with ``state`` (as returned by :meth:`state_dict`, then reduced)."""
        expected, given = set(self.state_reductions()), set(state)
        if given != expected:
            raise ValueError(f"state keys do not match this suite: missing {sorted(expected - given)},"
                             f" unexpected {sorted(given - expected)}")
        for name, metric in self.metrics.items():
            prefix = f"{name}."
            metric.load_state_dict({key[len(prefix):]: value for key, value in state.items()
                                    if key.startswith(prefix)})
        self._counts = np.array([int(state[f"suite.{key}"]) for key in _COUNTS], np.int64)
