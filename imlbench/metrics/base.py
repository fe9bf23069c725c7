"""Metric contract: streaming states that are sums or concatenations, hence mergeable.

Modelled on torchmetrics' ``add_state(..., dist_reduce_fx)``: a metric declares its states
and how two shards combine ("sum" or "cat"); ``reset``, ``merge``, ``state_dict`` and
``load_state_dict`` are then generic. A metric only implements ``update_view`` and ``compute``.
Metrics receive an :class:`ImageView`, which computes per-image results (confusion counts,
the sorted map) at most once however many metrics use them.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import cached_property
from numbers import Real
from typing import ClassVar, Literal, Mapping

import numpy as np

from imlbench.errors import ConfigError
from imlbench.metrics.confusion import Confusion
from imlbench.metrics.ranking import Ranking
from imlbench.metrics.scored import ScoredImage, check_scored_image

Reduction = Literal["sum", "cat"]


class ImageView:
    """A validated :class:`ScoredImage` plus per-image results cached for all metrics."""

    def __init__(self, item: ScoredImage) -> None:
        self.item = item
        self._confusions: dict[float, Confusion] = {}

    @property
    def label(self) -> int:
        return int(self.item.label)

    def confusion(self, threshold: float) -> Confusion:
        """Pixel counts of ``prob > threshold`` against the mask."""
        if threshold not in self._confusions:
            self._confusions[threshold] = Confusion.from_arrays(self.item.prob > threshold,
                                                                self.item.mask)
        return self._confusions[threshold]

    @cached_property
    def ranking(self) -> Ranking:
        """The map sorted once (with the mask), shared by exact AUC, best F1 and histograms."""
        return Ranking(self.item.prob, self.item.mask)


class Metric(ABC):
    """Base of every registered metric.

    Subclasses set ``name`` (the registry key and the ``compute()`` key), ``higher_is_better``
    and a docstring whose first line describes the metric; they declare states with
    :meth:`add_state` in ``__init__`` and implement :meth:`update_view` and :meth:`compute`.
    Every metric is built as ``cls(threshold=..., include_authentic=...)`` and decides itself
    which images it scores. Results must not depend on image order or sharding.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def __init__(self, *, threshold: float = 0.5, include_authentic: bool = False) -> None:
        if isinstance(threshold, bool) or not (isinstance(threshold, Real) and 0 <= threshold <= 1):
            raise ConfigError(f"{self.name}: threshold must be a number in [0, 1], "
                             f"got {threshold!r}")
        self.threshold = float(threshold)
        self.include_authentic = bool(include_authentic)
        self._defaults: dict[str, tuple[np.ndarray, Reduction]] = {}
        self.sums: dict[str, np.ndarray] = {}
        self._chunks: dict[str, list[np.ndarray]] = {}

    # -- states ---------------------------------------------------------------------------
    def add_state(self, key: str, default: np.ndarray, reduce: Reduction) -> None:
        """Declare a state: ``"sum"`` (any shape, added) or ``"cat"`` (1-D, concatenated)."""
        if reduce not in ("sum", "cat"):
            raise ValueError(f"{self.name}: state {key!r} reduce must be 'sum' or 'cat', "
                             f"got {reduce!r}")
        default = np.array(default)
        if reduce == "cat" and default.ndim != 1:
            raise ValueError(f"{self.name}: 'cat' state {key!r} must be 1-D, "
                             f"got shape {default.shape}")
        self._defaults[key] = (default, reduce)
        self._reset_state(key)

    def append(self, key: str, values: np.ndarray) -> None:
        """Append to a "cat" state (kept as chunks; concatenated once, when read)."""
        self._chunks[key].append(np.asarray(values, dtype=self._defaults[key][0].dtype).reshape(-1))

    def cat(self, key: str) -> np.ndarray:
        """A "cat" state's values so far, 1-D."""
        chunks = self._chunks[key]
        if len(chunks) > 1:
            chunks[:] = [np.concatenate(chunks)]
        return chunks[0]

    @property
    def reductions(self) -> dict[str, Reduction]:
        """How each state combines across shards (for a distributed all-reduce / all-gather)."""
        return {key: reduce for key, (_, reduce) in self._defaults.items()}

    def _reset_state(self, key: str) -> None:
        default, reduce = self._defaults[key]
        if reduce == "sum":
            self.sums[key] = default.copy()
        else:
            self._chunks[key] = [default.copy()]

    # -- streaming API --------------------------------------------------------------------
    def update(self, item: ScoredImage) -> None:
        """Validate one image and add it (a :class:`MetricSuite` shares one view instead)."""
        check_scored_image(item)
        self.update_view(ImageView(item))

    @abstractmethod
    def update_view(self, view: ImageView) -> None:
        """Add one validated image."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """``{self.name: value, **diagnostics}``; NaN where the metric is undefined."""

    def reset(self) -> None:
        for key in self._defaults:
            self._reset_state(key)

    def merge(self, other: "Metric") -> None:
        """Add ``other``'s states to this one (in place), as if it had seen its images too."""
        if type(other) is not type(self) or other.options != self.options:
            raise ValueError(f"cannot merge {type(other).__name__}{other.options} into "
                             f"{type(self).__name__}{self.options}: name and options must match")
        for key, (_, reduce) in self._defaults.items():
            if reduce == "sum":
                self.sums[key] = self.sums[key] + other.sums[key]
            else:
                self._chunks[key].append(other.cat(key).copy())

    @property
    def options(self) -> dict[str, object]:
        return {"threshold": self.threshold, "include_authentic": self.include_authentic}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every state as flat arrays, keyed by state name."""
        return {key: (self.sums[key] if reduce == "sum" else self.cat(key)).copy()
                for key, (_, reduce) in self._defaults.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the states (e.g. with all-reduced sums and all-gathered concatenations)."""
        missing, extra = set(self._defaults) - set(state), set(state) - set(self._defaults)
        if missing or extra:
            raise ValueError(f"{self.name}: state keys do not match; missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        loaded = {}
        for key, (default, reduce) in self._defaults.items():
            value = np.asarray(state[key])
            if reduce == "sum" and value.shape != default.shape:
                raise ValueError(f"{self.name}: state {key!r} has shape {value.shape}, "
                                 f"expected {default.shape}")
            if reduce == "cat" and value.ndim != 1:
                raise ValueError(f"{self.name}: state {key!r} must be 1-D, got shape {value.shape}")
            if not np.can_cast(value.dtype, default.dtype, "same_kind"):
                raise ValueError(f"{self.name}: state {key!r} has dtype {value.dtype}, "
                                 f"expected {default.dtype}")
            loaded[key] = value.astype(default.dtype, copy=True)
        for key, value in loaded.items():
            if self._defaults[key][1] == "sum":
                self.sums[key] = value
            else:
                self._chunks[key] = [value]


def mean_or_nan(total: np.ndarray, count: np.ndarray) -> float:
    """``total / count`` as a float, NaN when ``count`` is 0."""
    return float(total) / int(count) if int(count) else math.nan
