"""One progress-bar factory for every long loop (evaluation, training, data generation)."""
from __future__ import annotations

import sys
from typing import Iterable


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs):
    """A tqdm bar on stderr, shown only when ``enabled`` and stderr is a terminal.

    ``disable=None`` is tqdm's "only on a TTY": logs, CI output and pipes stay readable.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if enabled else True, file=sys.stderr, dynamic_ncols=True,
                **kwargs)
