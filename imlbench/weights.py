"""Reading weight files safely, below every layer that loads weights (methods and benchmark).

``.safetensors`` files hold tensors only; anything else is read with
``torch.load(weights_only=True)`` (tensors, containers, plain numbers). A file that needs pickled
code (official releases that saved numpy scalars or whole optimizers) is refused unless the
caller trusts it (``--trust-checkpoint``), with a message saying so.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imlbench.errors import CheckpointError, CheckpointNotFoundError, ImlbenchError

TRUST_HINT = ("Pass --trust-checkpoint (trust_checkpoint=True) only for files you trust: "
              "unpickling can run arbitrary code.")


class UntrustedCheckpointError(ImlbenchError, pickle.UnpicklingError):
    """A ``.pth`` file needs pickled code to load and the caller did not opt in to trusting it."""


# -- reading ------------------------------------------------------------------------------
def read_state_dict(path: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """Read a weights file to a (possibly nested) dict of tensors.

    ``.safetensors`` files hold tensors only. Anything else is read with ``torch.load`` and
    ``weights_only=True`` (tensors, containers and plain numbers), unless ``trust`` is set.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise UntrustedCheckpointError(
            f"{path} needs pickled code to load (torch.load(weights_only=True) refused it: "
            f"{str(exc).splitlines()[0]}). {TRUST_HINT}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a dict of tensors "
                         "(a state_dict)")
    return state


CLASSIFIER_PREFIXES = ("fc.", "head.fc.", "classifier.")
"""ImageNet checkpoints carry a classification head that a features-only encoder lacks."""


def load_pretrained(module: nn.Module, path: str | Path,
                    ignore_prefixes: tuple[str, ...] = CLASSIFIER_PREFIXES) -> None:
    """Load an ImageNet checkpoint of the same architecture into a backbone ``module``.

    ``path``: ``.safetensors`` or a ``.pth`` read with ``weights_only=True``. Wrappers
    (``{"state_dict": ...}``, ``{"model": ...}``) and a DataParallel ``module.`` prefix are
    accepted and keys under ``ignore_prefixes`` dropped; any other mismatch is an error.
    """
    state = read_state_dict(path)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {k.removeprefix("module."): v for k, v in state.items()
             if not k.removeprefix("module.").startswith(ignore_prefixes)}
    hint = (f"Point the weights path at an ImageNet checkpoint of the same backbone "
            f"({type(module).__name__}).")
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise CheckpointError(f"weights file {path} does not fit the backbone: {exc}. {hint}") from exc
    if missing or unexpected:
        raise CheckpointError(f"weights file {path} does not match the backbone: {len(missing)} missing "
                         f"keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
                         f"(e.g. {unexpected[:3]}). {hint}")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes; of a folder (a checkpoint made of several files, PSCC-Net),
    the SHA-256 over each file's relative path and bytes, in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
