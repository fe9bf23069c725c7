"""One progress-bar factory for every long loop (evaluation, training, data generation).

On a terminal it is a tqdm bar. Off a terminal (a log file, CI, a pipe) tqdm shows nothing, so a
long job would look dead; there :func:`progress_bar` prints one plain line at most every
``interval`` seconds (default 30, or ``$IMLBENCH_PROGRESS_INTERVAL``) to the same stream::

    imlbench: train ncl[1] 120/400 step (30%), 0.52 step/s, 8.3 img/s, loss=0.4213, ETA 8m58s

and a last line when a loop that printed anything ends. Lines go to stderr, so ``--json``
output on stdout stays clean.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO

from imlbench.errors import ConfigError

INTERVAL_ENV = "IMLBENCH_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True,
                 interval: float | None = None, stream: TextIO | None = None,
                 images_per_step: int | None = None,
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any):
    """A progress display on ``stream`` (default stderr), used like a tqdm bar.

    ``enabled=False``: nothing. A terminal: tqdm (``kwargs`` go to it: ``total``, ``initial``,
    ``desc``, ``unit``, ``leave``...). Anything else: a :class:`LineProgress` printing at most
    every ``interval`` seconds (``None``: ``$IMLBENCH_PROGRESS_INTERVAL``, else 30; 0 = every
    update). ``images_per_step``: images one update stands for (training: batch × accumulation
    × processes), so the line also shows images/s; for ``unit="img"`` the rate already is."""
    stream = sys.stderr if stream is None else stream
    if enabled and not _is_terminal(stream):
        return LineProgress(iterable, interval=progress_interval(interval), stream=stream,
                            images_per_step=images_per_step, clock=clock, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, file=stream, dynamic_ncols=True, **kwargs)


def progress_interval(interval: float | None = None) -> float:
    """Seconds between plain progress lines: ``interval``, else ``$IMLBENCH_PROGRESS_INTERVAL``,
    else 30. A value that is not a number >= 0 is an error naming where it came from."""
    source, value = ("interval", interval) if interval is not None else (
        f"${INTERVAL_ENV}", os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds >= 0:  # also catches NaN
        raise ConfigError(f"{source} must be a number of seconds >= 0, got {value!r}")
    return seconds


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``, ``3725`` -> ``1h02m``, ``9`` -> ``9s``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class LineProgress:
    """The subset of tqdm's interface the loops use (iteration, ``update``, ``set_postfix``,
    ``close``, context manager), printing plain lines instead of redrawing a bar.

    Rates are measured from the first call (``initial`` steps excluded, so a resumed run shows
    its own speed); the ETA is ``(total - n) / rate``."""

    def __init__(self, iterable: Iterable | None = None, *, interval: float, stream: TextIO,
                 images_per_step: int | None = None, clock: Callable[[], float] = time.monotonic,
                 total: int | None = None, initial: int = 0, desc: str | None = None,
                 unit: str = "it", **_ignored: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.desc, self.unit = total, initial, desc or "", unit
        self.interval, self.stream, self.clock = interval, stream, clock
        self.images_per_step = images_per_step
        self.start = self.last_print = clock()
        self.start_n = initial
        self.postfix = ""
        self.printed = 0
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last_print >= self.interval:
            self._print(now)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        """A last line (``done``) if anything was printed before: a long job says it ended."""
        if self.closed:
            return
        self.closed = True
        if self.printed:
            self._print(self.clock(), done=True)

    def line(self, now: float, done: bool = False) -> str:
        """The progress line at time ``now``."""
        elapsed = now - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else math.nan
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{count} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        if rate == rate:  # not NaN
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.images_per_step and self.unit != "img":
                parts.append(f"{rate * self.images_per_step:.3g} img/s")
        if self.postfix:
            parts.append(self.postfix)
        if done:
            parts.append(f"done in {format_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {format_duration(max(self.total - self.n, 0) / rate)}")
        label = self.desc if self.desc.startswith("imlbench") else f"imlbench: {self.desc}".rstrip()
        return f"{label} " + ", ".join(parts)

    def _print(self, now: float, done: bool = False) -> None:
        print(self.line(now, done), file=self.stream, flush=True)
        self.last_print = now
        self.printed += 1
