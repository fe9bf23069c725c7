"""Methods from checkpoints: build and load one, or train the missing checkpoint first.

Above both the checkpoint files (:mod:`imlbench.benchmark.checkpoints`, file I/O and the cache
lookup) and the training loop (:mod:`imlbench.benchmark.train`), so neither imports the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from imlbench.benchmark.checkpoints import find_checkpoint, read_sidecar, read_state_dict
from imlbench.benchmark.recipes import default_recipe
from imlbench.errors import CheckpointError, CheckpointNotFoundError

if TYPE_CHECKING:
    from imlbench.methods.base import Method


def find_or_train_checkpoint(method: str, protocol: str = "synthetic", *, device: str = "auto",
                      recipe: str | None = None, config: dict | None = None, seed: int = 0,
                      log: Callable[[str], None] = print) -> Path:
    """Path of the best checkpoint of ``method`` for ``protocol``; when there is none, *trains*
    one first (which may take hours with the ``paper`` recipe).

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
    if state is not None:  # the checkpoint replaces initial weights: never read their files
        init = METHODS.get(name).weight_init_options
        kwargs.update({k: v for k, v in init.items() if k in kwargs})
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
