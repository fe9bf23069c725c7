"""Where imlbench keeps things on disk; every location can be moved with an env var."""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "IMLBENCH_HOME"
DATA_ROOT_ENV = "IMLBENCH_DATA"


def data_home() -> Path:
    """Cache for generated data and trained checkpoints: ``$IMLBENCH_HOME`` or ``~/.cache/imlbench``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "imlbench").expanduser()


def checkpoints_dir() -> Path:
    return data_home() / "checkpoints"


def data_root(explicit: str | Path | None = None) -> Path | None:
    """Root under which real datasets are unpacked: ``--data-root``, else ``$IMLBENCH_DATA``."""
    value = explicit or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser() if value else None
