"""The folder of one training run: its identity, its files, its log and its "finished" mark.

Files (see :mod:`imlbench.benchmark.checkpoints` for their formats)::

    best.safetensors  best.json     weights with the best validation metric + sidecar
    last.safetensors  last.json     weights after the latest saved step + sidecar
    last.state.pt                   optimizer, scheduler, scaler, step, RNG states
    log.jsonl                       one line of losses and LR per optimizer step (and each validation)
    tb/                             TensorBoard scalars and prediction previews
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imlbench.benchmark.checkpoints import config_hash, load_state, method_dir, save_weights
from imlbench.datasets.base import Dataset
from imlbench.errors import RunExistsError


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    steps: int
    """Optimizer steps done, over all stages."""
    best_val: dict[str, float]
    run_dir: Path
    finished: bool = True
    """False when ``stop_after`` ended the run early (resume it with ``resume=True``)."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def best(self) -> Path:
        return self.root / "best.safetensors"

    @property
    def last(self) -> Path:
        return self.root / "last.safetensors"

    @property
    def state(self) -> Path:
        return self.root / "last.state.pt"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    def result(self, state: dict[str, Any]) -> TrainResult:
        """What a run with (the summary of) training ``state`` returns."""
        return TrainResult(self.best if self.best.is_file() else self.last, self.last,
                           state["global_step"], dict(state.get("best_val") or {}), self.root,
                           bool(state.get("finished")))


def default_run_dir(info: dict[str, Any], protocol: str | None, train_dataset: str) -> Path:
    """``<checkpoint cache>/<protocol>/<method>/<config hash of info>``: the protocol given, else
    the one training on ``train_dataset``, else that dataset's name (folder-safe)."""
    return method_dir(protocol or _protocol_of(train_dataset), info["method"]) / config_hash(info)


def dataset_identity(ds: Dataset) -> str:
    """A training or validation set in a run's identity: its name, or for a dataset given as a
    path its absolute path (two folders named ``photos`` are different data)."""
    return ds.path or ds.name


def _protocol_of(train_dataset: str) -> str:
    """The protocol training on ``train_dataset``, else the dataset name made folder-safe
    (a dataset given by path must not lead outside the checkpoint cache)."""
    from imlbench.datasets.protocols import list_protocols, load_protocol

    known = next((p for p in list_protocols() if load_protocol(p).train == (train_dataset,)), None)
    return known or re.sub(r"[^A-Za-z0-9._-]+", "_", train_dataset).strip("._") or "dataset"


def existing_state(paths: RunPaths, resume: bool) -> dict[str, Any] | None:
    """The saved training state in ``paths`` (``None``: a new run); a run there without
    ``resume`` is an error, never overwritten."""
    if not paths.state.is_file():
        return None
    state = load_state(paths.state)
    if not resume:
        raise RunExistsError(
            f"{paths.root} already holds a run ({'finished' if state.get('finished') else 'stopped'}"
            f" after {state['global_step']} steps); pass --resume to continue (or reuse) it, or "
            "choose another --seed / output folder")
    return state


def mark_finished(weights: Path, info: dict[str, Any]) -> None:
    """Rewrite ``weights`` with sidecar ``info`` (``finished: True`` lets the cache use it)."""
    from safetensors.torch import load_file

    save_weights(weights, load_file(str(weights)), info)


def append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_log(path: Path, global_step: int) -> None:
    """Drop log lines past the step a run resumes from (written after its last save)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= global_step]
        path.write_text("".join(ln + "\n" for ln in lines))
