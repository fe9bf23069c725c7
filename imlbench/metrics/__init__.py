"""Streaming, mergeable metrics for manipulation localization (pixel and image level).

Typical use (the runner does this)::

    suite = MetricSuite()                      # every metric in METRIC_NAMES order
    for item in scored_images:                 # ScoredImage(sample_id, prob, mask, label, image_score)
        suite.update(item)
    suite.compute()                            # {"pixel_f1": ..., ..., "image_f1": ...}

Importing this package registers the built-in metrics in ``imlbench.registry.METRICS``.
"""
from __future__ import annotations

from imlbench.metrics import image, pixel  # noqa: F401  (registers the built-in metrics)
from imlbench.metrics.base import ImageView, Metric
from imlbench.metrics.scored import MetricInputError, ScoredImage
from imlbench.metrics.suite import METRIC_NAMES, MetricSuite

__all__ = ["ImageView", "METRIC_NAMES", "Metric", "MetricInputError", "MetricSuite", "ScoredImage"]
