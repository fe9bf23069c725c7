"""Metric updates beside the model: on CUDA the main process would otherwise score each image
(sorts and histograms at ground-truth resolution, ~15-30 ms at 512²) while the GPU waits."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from imlbench.metrics import MetricSuite, ScoredImage


class Scoring:
    """Metric updates, inline (``threads=0``) or on ``threads`` threads each owning a suite:
    image i goes to suite ``i % threads``, so the shards are the same on every run, and the
    suites are merged in order at the end (sums equal to the inline ones up to float rounding,
    as for torchrun shards). At most 4 images per thread wait, so memory stays flat."""

    def __init__(self, make_suite: Callable[[], MetricSuite], threads: int) -> None:
        self.suites = [make_suite() for _ in range(max(1, threads))]
        self.pools = [ThreadPoolExecutor(1, thread_name_prefix="imlbench-score")
                      for _ in range(threads)]
        self.pending: deque[Future] = deque()
        self.count = 0

    def add(self, scored: ScoredImage) -> None:
        if not self.pools:
            self.suites[0].update(scored)
            return
        k = self.count % len(self.pools)
        self.count += 1
        self.pending.append(self.pools[k].submit(self.suites[k].update, scored))
        while len(self.pending) > 4 * len(self.pools):
            self.pending.popleft().result()  # re-raises a bad map's error here

    def result(self) -> MetricSuite:
        while self.pending:
            self.pending.popleft().result()
        merged = self.suites[0]
        for other in self.suites[1:]:
            merged.merge(other)
        return merged

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)
