"""Append-only store of tidy result records: one row per (run, method, checkpoint, dataset,
perturbation, severity, metric), with provenance.

Layout: ``<results_dir>/records/<run_id>/<cell_key>.jsonl`` — one file per evaluated cell,
written to a temporary name and renamed into place (``os.replace`` is atomic on POSIX), so a
process killed at any moment leaves only complete files, and two processes writing to the same
directory never touch the same file. Reading concatenates every file; when the same cell was
evaluated by several runs, :meth:`ResultStore.latest` keeps the newest, so the leaderboard
never shows a cell twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import pandas as pd

from imlbench.errors import ResultsError


class CellKey(NamedTuple):
    """A cell's identity: the same method (label, config included) with the same weights (by
    content hash, since every cached checkpoint file is ``best.safetensors``) on the same data
    under the same perturbation. The one definition used by the store, the leaderboard, the
    plots and ``--json``; two training seeds are two cells."""

    method: str
    checkpoint_sha: str
    dataset: str
    perturbation: str
    severity: str

    @classmethod
    def of(cls, record: object) -> CellKey:
        """The key of a :class:`ResultRecord` (or any object with those attributes)."""
        return cls(*(str(getattr(record, k)) for k in cls._fields))

    def digest(self) -> str:
        """16 hex digits naming the cell's file in the store."""
        return hashlib.sha1("\x1f".join(self).encode()).hexdigest()[:16]


CELL_KEYS: tuple[str, ...] = CellKey._fields
"""The record columns that make up a :class:`CellKey`."""
CELL_COLUMNS = list(CELL_KEYS)  # the name used before CellKey existed


@dataclass(frozen=True)
class ResultRecord:
    run_id: str
    method: str
    """Method label, including a non-default config, e.g. ``ncl[contour=drop]``."""
    checkpoint: str
    """Checkpoint file name or ``"-"`` for training-free methods."""
    checkpoint_sha: str
    dataset: str
    perturbation: str
    """``"none"`` for the clean cell, else e.g. ``"jpeg"`` or ``"resize+jpeg"``."""
    severity: str
    """``""`` for the clean cell, else e.g. ``"75"`` or ``"0.5+75"``."""
    metric: str
    value: float
    n_images: int
    n_tampered: int
    seed: int | None = None
    device: str = ""
    n_skipped: int = 0
    """Samples left out by ``--skip-bad`` (their ids and reasons are in ``provenance``)."""
    timestamp: float = field(default_factory=time.time)
    provenance: str = ""
    """JSON: package versions, git SHA, host, method config, skipped samples."""
    dataset_sha: str = ""
    """:meth:`Dataset.fingerprint` of the data scored (``""`` in records from before it existed)."""


def cell_records(metrics: Mapping[str, float], **fields: object) -> list[ResultRecord]:
    """The records of one evaluated cell: one per metric, sharing every other column."""
    return [ResultRecord(metric=name, value=float(value), **fields)  # type: ignore[arg-type]
            for name, value in metrics.items()]


def to_frame(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """Records as a DataFrame with ResultRecord's columns (also when there are none)."""
    return pd.DataFrame([asdict(r) for r in records], columns=list(ResultRecord.__dataclass_fields__))


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def cell_key(method: str, checkpoint_sha: str, dataset: str, perturbation: str, severity: str) -> str:
    """File name (without ``.jsonl``) of a cell: :meth:`CellKey.digest`."""
    return CellKey(method, checkpoint_sha, dataset, perturbation, severity).digest()


class ResultStore:
    def __init__(self, root: str | Path = "results") -> None:
        self.root = Path(root)
        self.records_dir = self.root / "records"

    def append(self, records: Iterable[ResultRecord]) -> Path | None:
        """Write the records of ONE cell (same run and cell key) atomically."""
        records = list(records)
        if not records:
            return None
        r0 = records[0]
        key = CellKey.of(r0)
        for r in records:
            if (r.run_id, CellKey.of(r)) != (r0.run_id, key):
                raise ValueError("ResultStore.append takes the records of one cell of one run")
        run_dir = self.records_dir / r0.run_id
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder should be, no permission, disk full
            raise ResultsError(f"cannot write results under {self.root}: {exc.strerror} "
                               f"({exc.filename}); pass --results-dir a writable folder") from None
        path = run_dir / f"{key.digest()}.jsonl"
        payload = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in records)
        fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".tmp-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load(self) -> pd.DataFrame:
        """Every record ever written (all runs), as a DataFrame with ResultRecord's columns."""
        rows = []
        for path in sorted(self.records_dir.glob("*/*.jsonl")):
            if path.name.startswith(".tmp-"):  # a writer still busy, or killed mid-write
                continue
            with open(path) as f:
                rows.extend(json.loads(line) for line in f if line.strip())
        columns = list(ResultRecord.__dataclass_fields__)
        return pd.DataFrame(rows, columns=columns)

    def latest(self) -> pd.DataFrame:
        """One row per (cell, metric): the newest run's value where a cell was evaluated twice."""
        df = self.load()
        if df.empty:
            return df
        df = df.sort_values(["timestamp", "run_id"], kind="stable")
        return df.drop_duplicates([*CELL_KEYS, "metric"], keep="last").reset_index(drop=True)

    def done_cells(self) -> set[tuple[str, ...]]:
        """Cells already stored, as ``(*CellKey, dataset_sha)`` tuples (for resumable
        sweeps: a cell scored on another version of its dataset is not done)."""
        df = self.load()
        df["dataset_sha"] = df["dataset_sha"].fillna("")
        cols = [*CELL_KEYS, "dataset_sha"]
        return set(map(tuple, df[cols].astype(str).drop_duplicates().values.tolist()))


    def unique_dataset_name(self, name: str, source: str, fingerprint: str, *,
                            taken: Iterable[str] = ()) -> str:
        """Name for a dataset read from path ``source``: ``name`` unless that name is already
        used (``taken``: e.g. the registered datasets; or stored records of a dataset with other
        files, from another path), then ``name-<6 hex digits of the path>``, stable per path.

        The same path keeps its name when its files change (the leaderboard's version warning
        covers that); the same files copied to another path keep it too."""
        if name not in set(taken):
            df = self.load()
            stored = df[df.dataset == name]
            clash = any(json.loads(prov or "{}").get("dataset_path") != source
                        and (sha or "") != fingerprint
                        for prov, sha in zip(stored.provenance, stored.dataset_sha.fillna("")))
            if not clash:
                return name
        return f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:6]}"


def provenance(**extra: object) -> str:
    """JSON string of versions, git SHA (when run from a checkout) and host facts."""
    import numpy
    import torch

    import imlbench

    info = {
        "imlbench": imlbench.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "git_sha": _git_sha(),
        "host": platform.node(),
    }
    info.update(extra)
    return json.dumps(info, sort_keys=True, default=str)


def _git_sha() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:  # fixed argv, no shell: nothing user-supplied reaches a shell
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
