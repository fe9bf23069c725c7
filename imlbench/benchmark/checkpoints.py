"""Checkpoint files: safe reading, atomic writing, and the per-method checkpoint cache.

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

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

from imlbench.errors import CheckpointError, CheckpointNotFoundError
from imlbench.paths import checkpoints_dir
from imlbench.weights import (CLASSIFIER_PREFIXES, TRUST_HINT, UntrustedCheckpointError,  # noqa: F401
                              file_sha256, load_pretrained, read_state_dict)

if TYPE_CHECKING:
    from imlbench.methods.base import Method

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
    never reuse another seed's weights. Among several, the run that saw
    the most training images wins (newest on ties).
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
        weights = sidecar.with_suffix(".safetensors")
        if weights.is_file():
            candidates.append((info.get("images_seen", 0), weights.stat().st_mtime, weights))
    return max(candidates)[2] if candidates else None


def default_recipe(device: str | torch.device = "auto") -> str:
    """``paper`` on a GPU, ``quick`` (CPU-sized) otherwise."""
    from imlbench.benchmark.device import resolve_device

    return "paper" if resolve_device(device).type == "cuda" else "quick"


def ensure_checkpoint(method: str, protocol: str = "synthetic", *, device: str = "auto",
                      recipe: str | None = None, config: dict | None = None, seed: int = 0,
                      log: Callable[[str], None] = print) -> Path:
    """Path of the best checkpoint of ``method`` for ``protocol``; trains one if there is none.

    Training uses ``recipe`` or the device's default recipe, resumes an interrupted run of the
    same configuration, and announces itself through ``log`` before starting.
    """
    found = find_checkpoint(method, protocol, recipe, config, seed)
    if found is not None:
        return found
    from imlbench.benchmark.train import train
    from imlbench.datasets.protocols import entry_available, load_protocol

    spec = load_protocol(protocol)
    missing = [e for e in (*spec.train, *(spec.val or ())) if not entry_available(e)]
    if missing:
        raise CheckpointError(f"no trained checkpoint of {method!r} for protocol {protocol!r}, and its "
                         f"training data {missing} is not under the data root (--data-root or "
                         f"$IMLBENCH_DATA); unpack it, or pass a trained model with --checkpoint")
    recipe = recipe or default_recipe(device)
    log(f"No trained checkpoint of {method!r} for protocol {protocol!r}: training one now on "
        f"{spec.train_dataset().name!r} with the {recipe!r} recipe (seed {seed}).")
    result = train(method, dataset=spec, recipe=recipe, seed=seed, resume=True, device=device,
                   method_config=config,
                   data_parallel=False)  # under torchrun only rank 0 gets here; the others wait
    return result.best_checkpoint


def load_method(name: str, checkpoint: str | Path | None = None, *, trust_checkpoint: bool = False,
                config: dict | None = None) -> Method:
    """Build method ``name`` from ``METHODS`` and load ``checkpoint`` strictly (eval mode).

    A file imlbench wrote (its sidecar says so) loads as saved, with the sidecar's config updated
    by ``config``. Any other file or folder — an official release — goes through the class's
    :meth:`~imlbench.methods.base.Method.read_official_checkpoint`, which unwraps the official
    container and maps its names onto the method's modules.
    """
    from imlbench.registry import METHODS

    kwargs = dict(config or {})
    state = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.exists():
            raise CheckpointNotFoundError(f"checkpoint not found: {checkpoint}")
        info = read_sidecar(checkpoint) if checkpoint.is_file() else None
        if info is not None:
            if info.get("method") != name:
                raise CheckpointError(f"checkpoint {checkpoint} was trained for method "
                                 f"{info.get('method')!r}, not {name!r}")
            kwargs = {**info.get("config", {}), **kwargs}
            state = read_state_dict(checkpoint, trust=trust_checkpoint)
        else:
            state = METHODS.get(name).read_official_checkpoint(checkpoint, trust=trust_checkpoint)
    method = METHODS.build(name, **kwargs)
    if state is not None:
        try:
            method.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            problems = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise CheckpointError(f"checkpoint {checkpoint} does not fit method {name!r} built with "
                             f"config {kwargs}: {'; '.join(problems[:3])}{more}. Pass the config "
                             "it was trained with (its .json sidecar lists it).") from exc
    return method.eval()
