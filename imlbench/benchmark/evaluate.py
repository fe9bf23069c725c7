"""The Python API behind ``imlbench run`` / ``sweep``: expand names, evaluate every
(method, dataset, perturbation) cell, append records to the store, return them as a DataFrame.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence, TypeVar

import pandas as pd
import torch

from imlbench.benchmark import distributed
from imlbench.benchmark.device import check_precision, precision_dtype, resolve_device
from imlbench.benchmark.options import EvalOptions
from imlbench.benchmark.runner import CellResult, evaluate_cell
from imlbench.datasets import resolve_dataset, test_set_names
from imlbench.datasets.base import Dataset, DatasetError
from imlbench.errors import UsageError
from imlbench.methods.base import Method
from imlbench.metrics.suite import REPORTED_METRICS
from imlbench.registry import DATASETS, METHODS
from imlbench.results.store import (CellKey, ResultRecord, ResultStore, cell_records, new_run_id,
                                    provenance, to_frame)
from imlbench.robustness import CLEAN, PerturbationSpec
from imlbench.typed_config import method_config

T = TypeVar("T")


def method_label(name: str, config: dict | None) -> str:
    """``ncl`` or ``ncl[contour=drop]``: a non-default config is part of the method's identity."""
    if not config:
        return name
    return name + "[" + ",".join(f"{k}={_label_value(config[k])}" for k in sorted(config)) + "]"


def _label_value(value: object) -> str:
    """Sequences as ``[64, 32]`` whether they came as a list (YAML) or a tuple (typed)."""
    if isinstance(value, tuple):
        value = list(value)
    return str(value)


@dataclass
class LoadedMethod:
    label: str
    module: Method
    checkpoint: str
    checkpoint_sha: str
    config: dict


def load(name: str, *, checkpoint: str | Path | None = None, config: dict | None = None,
         trust_checkpoint: bool = False, device: str = "auto", seed: int = 0,
         protocol: str = "synthetic", recipe: str | None = None) -> LoadedMethod:
    """Build a method by name. Trainable methods need weights: ``checkpoint`` if given, else the
    best checkpoint already trained for this method/config/seed, else one is trained now.
    ``config`` values are checked against the method's declared option types (text is parsed:
    ``"1e-3"`` → 0.001 for a float option)."""
    cls = METHODS.get(name)
    config = method_config(name, config)
    config = {**cls.labelled_defaults, **config}  # NCL.labelled_defaults: why
    if not getattr(cls, "trainable", False):
        if checkpoint is not None:
            raise UsageError(f"method {name!r} is training-free; --checkpoint does not apply")
        return LoadedMethod(method_label(name, config), METHODS.build(name, **config), "-", "-", config)
    from imlbench.benchmark.checkpoints import checkpoint_sha256
    from imlbench.benchmark.loading import find_or_train_checkpoint, load_method

    if checkpoint is None:
        checkpoint = find_or_train_checkpoint(name, protocol, device=device, recipe=recipe,
                                              config=config, seed=seed)
    module = load_method(name, checkpoint, trust_checkpoint=trust_checkpoint, config=config)
    return LoadedMethod(method_label(name, config), module, Path(checkpoint).name,
                        checkpoint_sha256(checkpoint)[:12], config)


def expand_datasets(spec: str | Sequence[str]) -> list[str]:
    """``all`` → every registered test set whose data is present; else names or paths (comma list)."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        out.extend(test_set_names() if item == "all" else [item])
    return list(dict.fromkeys(out))


def evaluate(methods: str | Sequence[str], datasets: str | Sequence[str] = "all",
             options: EvalOptions | None = None, *,
             perturbations: Sequence[PerturbationSpec] = (CLEAN,),
             results_dir: str | Path | None = "results", skip_done: bool = False,
             save_predictions: str | Path | None = None, run_id: str | None = None,
             split: Literal["samples", "cells"] = "samples", **option_overrides) -> pd.DataFrame:
    """Evaluate every (method, dataset, perturbation) cell and return the records as a DataFrame.

    ``methods``: registered names (comma list or sequence). ``datasets``: names, paths, or ``all``.
    ``options``: which weights and how cells run (:class:`EvalOptions`; its fields may also be
    given as keywords, which replace those of ``options``: ``evaluate("ela", "all",
    device="cpu")``). ``protocol`` names the training data of checkpoints that trainable
    methods find or train on the fly, ``recipe`` how they are trained; ``skip_bad`` leaves
    unreadable samples out (recorded as ``n_skipped`` and listed in the provenance) instead of
    failing; ``amp``, ``channels_last`` and ``compile`` say how the model runs (the autocast
    dtype used is recorded in each record's provenance, ``amp``: bf16 | fp16 | fp32).

    ``results_dir=None`` (or ``""``) keeps the records in memory only. ``skip_done`` skips cells
    already in the store (resumable sweeps). ``save_predictions`` exports the clean maps of each
    (method, dataset) as ``<dir>/<method>/<dataset>/<image stem>.npy``.

    Under ``torchrun``, ``split="samples"`` shards each cell's images over the ranks and merges
    their metric states exactly (rank 0 writes); ``split="cells"`` (sweeps) gives whole cells to
    ranks round-robin, each rank writing its own cells. The returned frame holds the records
    this rank wrote.
    """
    method_names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    ctx = distributed.context()
    options = EvalOptions.with_overrides(options, option_overrides)
    options = options.replace(device=distributed.device_for(ctx, options.device))
    dataset_names = expand_datasets(datasets)
    store = ResultStore(results_dir) if results_dir else None  # "" as None: `--results-dir ''`
    done = store.done_cells() if (store is not None and skip_done) else set()
    # Rank 0 builds what is missing (synthetic data, checkpoints) while the others wait, and
    # every rank reads the store's done cells before anyone writes, so all ranks agree on work.
    datasets_by_name = _main_first(ctx, lambda: {n: _listed(resolve_dataset(n)) for n in dataset_names})
    datasets_by_name = {n: named_in_store(ds, store) for n, ds in datasets_by_name.items()}
    if not dataset_names:
        raise DatasetError("no dataset to evaluate: `--dataset all` found no registered test set with "
                         "data present; build the synthetic one with `imlbench data synth`")
    run_id = ctx.broadcast(run_id or new_run_id())
    dev = str(resolve_device(options.device))
    run_as = _run_as(resolve_device(options.device), options.amp, options.channels_last,
                     options.compile)
    written: list[ResultRecord] = []
    cell_index = 0
    for name in method_names:
        m = _main_first(ctx, lambda: load(name, **options.load_kwargs()))
        for ds_name in dataset_names:
            dataset = datasets_by_name[ds_name]
            for pert in perturbations:
                key = CellKey(m.label, m.checkpoint_sha, dataset.name, pert.name, pert.severity)
                # records written before fingerprints existed ("") count as this version
                if (*key, dataset.fingerprint()) in done or (*key, "") in done:
                    continue
                cell_index += 1
                if split == "cells" and (cell_index - 1) % ctx.world_size != ctx.rank:
                    continue
                shard = ctx.shard(dataset.samples) if split == "samples" else None
                export = None
                if save_predictions is not None and pert == CLEAN:
                    export = Path(save_predictions) / _safe(m.label) / _safe(dataset.name)
                res = evaluate_cell(m.module, dataset, perturbation=pert,
                                    **{**options.cell_kwargs(),
                                       "progress": options.progress and ctx.is_main},
                                    save_predictions=export, samples=shard)
                if split == "samples" and ctx.enabled:
                    suite = ctx.merge_suite(res.suite)
                    res = CellResult(suite.compute(), suite.n_images, suite.n_tampered, suite,
                                     ctx.gather(res.skipped))
                    if not ctx.is_main:
                        continue  # one writer per cell
                skipped = sorted((b.sample_id, b.reason) for b in res.skipped)
                where = {"dataset_path": dataset.path} if dataset.path else {}
                prov = provenance(config=m.config, include_authentic=options.include_authentic,
                                  **run_as,
                                  world_size=ctx.world_size, skipped=skipped, **where)
                records = cell_records(
                    res.metrics, run_id=run_id, method=m.label, checkpoint=m.checkpoint,
                    checkpoint_sha=m.checkpoint_sha, dataset=dataset.name, perturbation=pert.name,
                    severity=pert.severity, n_images=res.n_images, n_tampered=res.n_tampered,
                    seed=options.seed, device=dev, n_skipped=len(skipped), provenance=prov,
                    dataset_sha=dataset.fingerprint())
                if store is not None:
                    store.append(records)
                written.extend(records)
                if options.progress:
                    _report_cell(m.label, dataset.name, pert, res.metrics)
    ctx.barrier()  # every cell is in the store before rank 0 renders the leaderboard
    return to_frame(written)


def _run_as(device, amp: bool | str, channels_last: bool, compile: bool | str) -> dict:
    """How the model ran, for the provenance: the autocast dtype, and the options when set."""
    dtype = precision_dtype(device, check_precision(amp))
    out: dict[str, object] = {"amp": {None: "fp32", torch.bfloat16: "bf16",
                                      torch.float16: "fp16"}[dtype]}
    if channels_last:
        out["channels_last"] = True
    if compile:
        out["compile"] = "inductor" if compile is True else str(compile)
    return out


def named_in_store(dataset: Dataset, store: ResultStore | None) -> Dataset:
    """A dataset given as a path under a name unique in ``store`` (see
    :meth:`ResultStore.unique_dataset_name`); registered datasets keep their name."""
    if dataset.path is None or store is None:
        return dataset
    name = store.unique_dataset_name(dataset.name, dataset.path, dataset.fingerprint(),
                                     taken=DATASETS.list(include_test_only=True))
    return dataset if name == dataset.name else dataclasses.replace(dataset, name=name)


def _main_first(ctx: distributed.DistContext, build: Callable[[], T]) -> T:
    """Run ``build`` on rank 0 first (it may train or generate data), then on the others."""
    if ctx.is_main:
        out = build()
        ctx.barrier()
        return out
    ctx.barrier()
    return build()


def _listed(dataset: Dataset) -> Dataset:
    """List (and for synthetic sets, build) the data now; an empty dataset is an error."""
    if len(dataset.samples) == 0:
        raise DatasetError(f"dataset {dataset.name!r} has no samples; check its files with "
                         f"`imlbench data check {dataset.name}`")
    return dataset


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)


def _report_cell(method: str, dataset: str, pert: PerturbationSpec, metrics: dict) -> None:
    short = {k: round(v, 4) for k, v in metrics.items() if k in REPORTED_METRICS}
    print(f"[imlbench] {method} on {dataset} ({pert.label()}): {json.dumps(short)}", file=sys.stderr)


__all__ = ["evaluate", "load", "method_label", "expand_datasets", "EvalOptions", "LoadedMethod"]
