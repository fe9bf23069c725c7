"""Checkpoint files: safe reading, atomic writing, and the per-method checkpoint cache (lookup).

Building a method from a checkpoint, and training one when the cache has none, is
:mod:`imlbench.benchmark.loading` (above this module and the training loop).

Layout of one training run (``run_dir``)::

    <checkpoints_dir()>/<protocol>/<method>/<config-hash>/
        best.safetensors  best.json     weights with the best validation metric + sidecar
        last.safetensors  last.json     weights after the latest saved step + sidecar
        last.state.pt                   optimizer, scheduler, scaler, step, RNG states (tensors
                                        and plain containers only: loads with weights_only=True)
        log.jsonl                       one line of losses and LR per optimizer step
        tb/                             TensorBoard scalars and prediction previews

The config hash covers method, method config, resolved recipe, seed and datasets, so ablation
variants never share a folder. A sidecar (``<stem>.json``) holds the method name, configs,
recipe, seed, step and validation metrics; the same JSON is stored in the safetensors header
(key ``imlbench``), so a copied ``.safetensors`` file still describes itself.

Reading is safe by default: ``.safetensors`` holds tensors only and ``.pth`` files are read
with ``torch.load(weights_only=True)``; a file that needs pickled code is refused unless the
caller trusts it (``--trust-checkpoint``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from imlbench.errors import ConfigError
from imlbench.paths import checkpoints_dir
from imlbench.weights import (CLASSIFIER_PREFIXES, TRUST_HINT, UntrustedCheckpointError,  # noqa: F401
                              file_sha256, load_pretrained, read_state_dict)

SIDECAR_KEY = "imlbench"


def read_sidecar(weights: str | Path) -> dict[str, Any] | None:
    """The run description of a weights file: ``<stem>.json`` beside it, else the safetensors
    header; ``None`` for files imlbench did not write."""
    weights = Path(weights)
    sidecar = weights.with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text())
    if weights.suffix == ".safetensors" and weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
        return json.loads(meta[SIDECAR_KEY]) if SIDECAR_KEY in meta else None
    return None


def load_state(path: str | Path) -> dict[str, Any]:
    """Training state (``*.state.pt``) written by :func:`save_state`; never needs pickled code."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


# -- writing (atomic: a crash leaves the previous file, never a truncated one) ---------------
def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(path: Path, state_dict: Mapping[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write ``state_dict`` as safetensors with ``info`` in its header and as ``<stem>.json``."""
    from safetensors.torch import save_file

    # Own contiguous CPU copies: safetensors refuses tensors that share storage (tied weights).
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state_dict.items()}
    text = json.dumps(info, indent=2, sort_keys=True)
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={SIDECAR_KEY: text}))
    _atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(text + "\n"))


def save_state(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda tmp: torch.save(state, tmp))


# -- the cache -------------------------------------------------------------------------------
def config_hash(identity: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``identity`` as canonical JSON."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def method_dir(protocol: str, method: str) -> Path:
    return checkpoints_dir() / protocol / method


def checkpoint_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a checkpoint file (or folder) — recorded with every result as provenance."""
    return file_sha256(path)


def find_checkpoint(method: str, protocol: str = "synthetic", recipe: str | None = None,
                    config: dict | None = None, seed: int | None = None) -> Path | None:
    """Best checkpoint of a *finished* run of ``method`` on ``protocol``, or ``None``.

    Runs must match ``config`` (the user's method config; ``None`` = defaults), and ``recipe``
    (a name or a recipe file, compared by name) and ``seed`` when given — a seed study must
    never reuse another seed's weights. A run of a built-in recipe whose content has changed
    since (new augmentation, steps, learning rate) is stale and never reused. Among several,
    the run that saw the most training images wins (newest on ties).
    """
    recipe_name = Path(str(recipe)).stem if recipe is not None else None
    wanted = json.loads(json.dumps(config or {}))  # as the sidecar stores it (tuples -> lists)
    candidates = []
    for sidecar in method_dir(protocol, method).glob("*/best.json"):
        info = json.loads(sidecar.read_text())
        if (not info.get("finished") or info.get("method") != method
                or info.get("method_config") != wanted
                or (recipe_name is not None and info.get("recipe", {}).get("name") != recipe_name)
                or (seed is not None and info.get("seed") != seed)):
            continue
        if not info.get("recipe_file") and _recipe_changed(info.get("recipe", {}), method):
            continue
        weights = sidecar.with_suffix(".safetensors")
        if weights.is_file():
            candidates.append((info.get("images_seen", 0), weights.stat().st_mtime, weights))
    return max(candidates)[2] if candidates else None


def _recipe_changed(stored: dict, method: str) -> bool:
    """Whether ``stored`` (a run's resolved recipe) differs from what the built-in recipe of the
    same name resolves to today (a ``--steps`` override is allowed). Fields a run predates take
    their defaults (a sidecar written before ``augment`` existed trained without augmentation).
    Recipes that are not built in cannot be checked: the caller skips runs of recipe files."""
    from imlbench.benchmark.recipes import RECIPES_DIR, Recipe, load_recipe
    from imlbench.robustness.augment import load_preset

    name = stored.get("name")
    if not name or not (RECIPES_DIR / f"{name}.yaml").is_file():
        return False
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(Recipe)
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    stored = json.loads(json.dumps({**defaults, **stored}))
    try:
        for values in (stored, *stored.get("stages", {}).values()):
            if isinstance(values.get("augment"), str):  # written before presets were expanded
                values["augment"] = load_preset(values["augment"])
        if _as_stored(load_recipe(name, method)) == stored:
            return False
        # a --steps run: the recipe with the run's step count (read only when the plain one differs)
        return _as_stored(load_recipe(name, method, steps=stored.get("steps"))) != stored
    except ConfigError:  # a recipe that no longer loads for this method: its runs are stale
        return True


def _as_stored(recipe: Any) -> dict:
    """``recipe`` as a sidecar holds it (JSON: tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))
