"""``train()``: one training entry point for every trainable method.

A method declares what it trains (``Method.trainable``, ``stages``, ``set_stage``,
``trainable_parameters``, ``loss(batch) -> {"loss": total, term: value, ...}``); the rest is
split along its seams:

- :mod:`~imlbench.benchmark.recipes`: the recipe (YAML, typed, per-method overrides);
- :mod:`~imlbench.benchmark.optim`: optimizer (parameter groups) and LR schedule;
- :mod:`~imlbench.benchmark.rng`: seeding and the checkpointed RNG states;
- :mod:`~imlbench.benchmark.run_folder`: the run's identity, files, log and "finished" mark;
- :mod:`~imlbench.benchmark.loop`: stages, steps, and the per-step decision (``plan_step``).

This module resolves the method, data and run folder and hands them to the loop.

Determinism: weights are initialised after seeding ``torch``/``numpy``/``random`` with the
seed; the data stream is stateless (:mod:`imlbench.benchmark.train_data`); validation runs
under a forked RNG; every RNG state is checkpointed. On CPU a resumed run reproduces the
uninterrupted loss curve exactly.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

import imlbench
from imlbench import typed_config
from imlbench.benchmark import distributed
from imlbench.benchmark.device import resolve_device
from imlbench.benchmark.loop import TrainingLoop, TrainingSource
from imlbench.benchmark.recipes import load_recipe
from imlbench.benchmark.rng import seed_everything
from imlbench.benchmark.run_folder import (RunPaths, TrainResult, dataset_identity,
                                           default_run_dir, existing_state)
from imlbench.datasets.base import Dataset
from imlbench.datasets.protocols import Protocol, Sampling
from imlbench.errors import UsageError
from imlbench.methods.base import Method
from imlbench.registry import METHODS

__all__ = ["TrainResult", "train"]


def train(method: str, *, dataset: str | Dataset | Protocol = "synth-train",
          val_dataset: str | Dataset | None = "auto", recipe: str | Path = "quick",
          steps: int | None = None, seed: int = 0, resume: bool = False, device: str = "auto",
          out_dir: Path | None = None, stage: str | None = None, method_config: dict | None = None,
          progress: bool = True, protocol: str | None = None,
          stop_after: int | None = None, data_parallel: bool = True) -> TrainResult:
    """Train ``method`` on ``dataset``, validating on ``val_dataset``; return its checkpoints.

    ``dataset``: a dataset, or a :class:`Protocol` whose training sets are drawn per epoch as
    its ``sampling`` says (CAT-Net's balanced draws included). ``val_dataset``: ``"auto"`` =
    the protocol's validation split for a protocol, else ``synth-val``; ``None``: no validation.
    ``out_dir``: the run directory (default: the checkpoint cache, under ``protocol`` — by
    default the protocol given or whose training split ``dataset`` is, else the dataset's name).
    ``stage``: train only that stage (default: all of ``Method.stages`` in order).
    ``resume``: continue the run in the run directory from its last saved step (a finished
    run is returned as it is); without it an existing run is an error, never overwritten.
    ``stop_after``: stop (saving everything) once this many optimizer steps are done overall.

    Under ``torchrun`` (and ``data_parallel``) every rank trains the same model on its own
    micro-batches of the stream and gradients are averaged across ranks (all-reduce), so a
    step sees ``world_size`` × the recipe's batch (the learning rate is not rescaled);
    BatchNorm statistics stay per rank. Rank 0 alone validates, logs and writes checkpoints.
    ``data_parallel=False`` trains in this process only (used when rank 0 trains a missing
    checkpoint for a distributed evaluation while the other ranks wait).
    """
    cls = METHODS.get(method)
    if not getattr(cls, "trainable", False):
        trainable = [n for n in METHODS.list() if getattr(METHODS.get(n), "trainable", False)]
        raise UsageError(f"method {method!r} is not trainable; trainable methods: {trainable}")
    ctx = distributed.context() if data_parallel else distributed.DistContext()
    dev = resolve_device(distributed.device_for(ctx, device))
    rcp = load_recipe(recipe, method, steps)
    source = _training_source(dataset, val_dataset)
    train_ds, val_ds = source.train, source.val
    method_config = typed_config.method_config(method, method_config)  # "1e-3" -> 0.001
    # options whose default changed are always part of the identity (NCL.labelled_defaults)
    method_config = {**cls.labelled_defaults, **(method_config or {})}
    config = {**rcp.method, **method_config}
    seed_everything(seed)
    model: Method = METHODS.build(method, **config).to(dev)
    # stages come from the built model: a config can drop one (MPC with stage1=False)
    stages = tuple(model.stages) if stage is None else (stage,)
    if stage is not None and stage not in model.stages:
        raise UsageError(f"method {method!r} has stages {model.stages}, got stage {stage!r}")
    info = {"method": method, "config": config, "method_config": method_config or {},
            "recipe": dataclasses.asdict(rcp), "seed": seed, "dataset": dataset_identity(train_ds),
            "val_dataset": dataset_identity(val_ds) if val_ds else None, "stages": list(stages)}
    if str(recipe).endswith((".yaml", ".yml")):  # a file: the cache cannot check it for staleness
        info["recipe_file"] = str(Path(recipe).resolve())
    if source.sampling.mode != "concat":  # absent for concat, so older runs keep their hashes
        info["sampling"] = dataclasses.asdict(source.sampling)
    paths = RunPaths(Path(out_dir) if out_dir is not None else
                     default_run_dir(info, protocol or source.protocol, train_ds.name))
    state = existing_state(paths, resume)
    ctx.barrier()  # every rank has looked at the run folder before rank 0 writes into it
    if state is not None and state.get("finished"):
        return paths.result(state)

    if state is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(paths.last)))
    info.update(imlbench_version=imlbench.__version__, torch_version=torch.__version__,
                device=str(dev))
    info["world_size"] = ctx.world_size
    loop = TrainingLoop(model, rcp, stages, source, dev, paths, info, seed, progress, ctx)
    try:
        return loop.run(state, stop_after)
    finally:
        loop.close()



def _dataset(ref: str | Path | Dataset) -> Dataset:
    if isinstance(ref, Dataset):
        return ref
    from imlbench.datasets import resolve_dataset

    return resolve_dataset(ref)


def _training_source(dataset: str | Dataset | Protocol,
                     val_dataset: str | Dataset | None) -> TrainingSource:
    if isinstance(dataset, Protocol):
        val = dataset.val_dataset() if val_dataset == "auto" else (
            None if val_dataset is None else _dataset(val_dataset))
        return TrainingSource(dataset.train_dataset(), tuple(dataset.train_parts()),
                              dataset.sampling, val, dataset.name)
    train_ds = _dataset(dataset)
    val_ref = "synth-val" if val_dataset == "auto" else val_dataset
    return TrainingSource(train_ds, (train_ds,), Sampling(),
                          None if val_ref is None else _dataset(val_ref))
