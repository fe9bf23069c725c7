"""One training loop for every trainable method.

A method declares what it trains (``Method.trainable``, ``stages``, ``set_stage``,
``trainable_parameters``, ``loss(batch) -> {"loss": total, term: value, ...}``); this loop does
the rest, stage by stage: optimizer and LR schedule from the recipe, AMP on CUDA (bf16, else fp16
with a gradient scaler), gradient accumulation, validation on the *validation split* with
best-checkpoint selection, TensorBoard scalars and previews, and checkpoints that resume
exactly (see :mod:`imlbench.benchmark.checkpoints` for the files).

Recipes are YAML data: ``configs/recipes/<name>.yaml`` holds the defaults and
``configs/recipes/<name>/<method>.yaml`` (optional) replaces whole top-level keys for one
method. A path to a ``.yaml`` file works as a recipe too (with its own ``<stem>/`` folder).

Determinism: weights are initialised after seeding ``torch``/``numpy``/``random`` with the
seed; the data stream is stateless (:mod:`imlbench.benchmark.train_data`); validation runs
under a forked RNG; every RNG state is checkpointed. On CPU a resumed run reproduces the
uninterrupted loss curve exactly.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import imlbench
from imlbench.benchmark import distributed
from imlbench.benchmark.checkpoints import (config_hash, load_state, method_dir,
                                            read_sidecar, save_state, save_weights)
from imlbench.benchmark.device import amp_dtype, autocast, resolve_device
from imlbench.benchmark.runner import evaluate_method
from imlbench.benchmark.train_data import StreamPositions, TrainDataset, load_shaped
from imlbench.datasets.base import Dataset
from imlbench.datasets.protocols import Protocol, Sampling
from imlbench.errors import (ConfigError, MethodContractError, RunExistsError,
                             TrainingDivergedError, UsageError)
from imlbench.methods.base import InputPolicy, Method
from imlbench.progress import progress_bar
from imlbench.registry import METHODS
from imlbench.seeding import stable_seed
from imlbench import typed_config

RECIPES_DIR = Path(__file__).resolve().parent.parent / "configs" / "recipes"


# -- recipes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (one YAML file). ``stages`` maps a stage name to overrides of
    any other field for that stage (e.g. ``{"1": {"steps": 500, "val_every": 0}}``)."""

    name: str
    image_size: int
    batch_size: int
    steps: int
    """Optimizer steps per stage; each consumes ``batch_size × grad_accum`` images."""
    optimizer: dict[str, Any]
    """``name`` (adamw | adam | sgd), its kwargs, optional ``custom_keys``: ``{substring:
    {lr_mult, decay_mult}}`` applied to parameter names (longest key wins, as in mmengine)."""
    schedule: dict[str, Any]
    """``name`` (poly | cosine | constant), ``warmup_steps``, ``warmup_start`` (factor),
    ``power`` (poly), ``min_lr_ratio``; decay runs from the end of warm-up to ``steps``."""
    grad_accum: int = 1
    grad_clip: float | None = None
    amp: bool = True
    val_every: int = 0
    """Validate every N steps (0: only at the end of the last stage)."""
    val_metric: str = "pixel_f1"
    val_mode: Literal["max", "min"] = "max"
    val_max_images: int | None = None
    """Validate on this many evenly spaced validation images (``None``: all)."""
    val_batch_size: int = 8
    save_every: int = 0
    """Write ``last`` every N steps (it is always written at each validation and at the end)."""
    log_every: int = 10
    previews: int = 4
    num_workers: int = 0
    hflip: bool = True
    tensorboard: bool = True
    method: dict[str, Any] = field(default_factory=dict)
    """Constructor kwargs of the method (the user's ``method_config`` overrides them)."""
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def for_stage(self, stage: str) -> Recipe:
        return dataclasses.replace(self, **self.stages.get(stage, {}), stages={})


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(recipe: str | Path, method: str, steps: int | None = None) -> Recipe:
    """Recipe ``recipe`` (a name or a ``.yaml`` path) for ``method``; ``steps`` overrides the
    step count of every stage."""
    path = Path(recipe) if str(recipe).endswith((".yaml", ".yml")) else RECIPES_DIR / f"{recipe}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe {str(recipe)!r}: expected one of {recipe_names()} "
                         f"or a path to a .yaml file")
    data = {"name": path.stem, **_read_yaml(path)}
    per_method = path.parent / path.stem / f"{method}.yaml"
    if per_method.is_file():
        data.update(_read_yaml(per_method))  # whole top-level keys: an SGD recipe drops AdamW's betas
    if steps is not None:
        data["steps"] = steps
        data["stages"] = {s: {k: v for k, v in o.items() if k != "steps"}
                          for s, o in data.get("stages", {}).items()}
    return Recipe(**_typed_recipe(data, method, f"recipe {path}" + (
        f" (+ {per_method.name})" if per_method.is_file() else "")))


def _typed_recipe(data: dict[str, Any], method: str, where: str) -> dict[str, Any]:
    """``data`` checked against :class:`Recipe`'s field types (stage overrides too) and its
    ``method:`` options against the method's; a wrong type or unknown key names the field."""
    fields = typed_config.dataclass_fields(Recipe)
    unknown = set(data) - set(fields)
    for overrides in (data.get("stages") or {}).values():
        unknown |= set(overrides or {}) - set(fields)
    if unknown:  # all of them at once, with the closest known field of each
        close = {k: difflib.get_close_matches(k, list(fields), n=1) for k in sorted(unknown)}
        hints = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}"
                          f"{' (' + hints + ')' if hints else ''}; known: {sorted(fields)}")
    typed = typed_config.coerce_fields(data, fields, where, kind="field")
    typed["stages"] = {str(stage): typed_config.coerce_fields(overrides or {}, fields,
                                                              f"{where}, stage {stage!r}",
                                                              kind="field")
                       for stage, overrides in typed.get("stages", {}).items()}
    if method in METHODS:  # a recipe read for an unregistered name: nothing to check against
        try:
            typed["method"] = typed_config.method_config(method, typed.get("method", {}))
        except ConfigError as exc:
            raise type(exc)(f"{where}, method options: {exc}") from None
    missing = [f.name for f in dataclasses.fields(Recipe) if f.name not in typed
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where} lacks {missing}; every recipe sets them (see quick.yaml)")
    return typed


def _read_yaml(path: Path) -> dict[str, Any]:
    data = typed_config.load_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe file {path} must hold a mapping, got {type(data).__name__}")
    return data


# -- optimizer and schedule ----------------------------------------------------------------------
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def build_optimizer(method: Method, params: Sequence[torch.nn.Parameter],
                    cfg: dict[str, Any]) -> torch.optim.Optimizer:
    cfg = dict(cfg)
    name, custom = cfg.pop("name"), cfg.pop("custom_keys", {})
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    lr, wd = cfg.pop("lr"), cfg.pop("weight_decay", 0.0)
    names = {id(p): n for n, p in method.named_parameters()}
    keys = sorted(sorted(custom), key=len, reverse=True)
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for p in params:
        key = next((k for k in keys if k in names.get(id(p), "")), None)
        mult = custom.get(key, {})
        groups.setdefault((mult.get("lr_mult", 1.0), mult.get("decay_mult", 1.0)), []).append(p)
    param_groups = [{"params": ps, "lr": lr * lm, "weight_decay": wd * dm}
                    for (lm, dm), ps in groups.items()]
    return OPTIMIZERS[name](param_groups, lr=lr, **cfg)


def lr_factor(step: int, total: int, cfg: dict[str, Any]) -> float:
    """Multiplier of the base LR after ``step`` optimizer steps out of ``total``."""
    warmup = cfg.get("warmup_steps", 0)
    if step < warmup:
        start = cfg.get("warmup_start", 0.0)
        return start + (1.0 - start) * step / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = cfg.get("min_lr_ratio", 0.0)
    name = cfg["name"]
    if name == "poly":
        decay = (1.0 - t) ** cfg.get("power", 0.9)
    elif name == "cosine":
        decay = 0.5 * (1.0 + np.cos(np.pi * t))
    elif name == "constant":
        decay = 1.0
    else:
        raise ConfigError(f"unknown schedule {name!r}; choose poly, cosine or constant")
    return floor + (1.0 - floor) * float(decay)


# -- RNG state (tensors and plain numbers, so the state file loads with weights_only=True) ----
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                      "has_gauss": has_gauss, "gauss": gauss},
            "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                       "gauss": py_gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss"]))


# -- the loop ---------------------------------------------------------------------------------
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
    source = _TrainingSource.of(dataset, val_dataset)
    train_ds, val_ds = source.train, source.val
    method_config = typed_config.method_config(method, method_config)  # "1e-3" -> 0.001
    # options whose default changed are always part of the identity (NCL.labelled_defaults)
    method_config = {**getattr(cls, "labelled_defaults", {}), **(method_config or {})}
    config = {**rcp.method, **method_config}
    seed_everything(seed)
    model: Method = METHODS.build(method, **config).to(dev)
    # stages come from the built model: a config can drop one (MPC with stage1=False)
    stages = tuple(model.stages) if stage is None else (stage,)
    if stage is not None and stage not in model.stages:
        raise UsageError(f"method {method!r} has stages {model.stages}, got stage {stage!r}")
    info = {"method": method, "config": config, "method_config": method_config or {},
            "recipe": dataclasses.asdict(rcp), "seed": seed, "dataset": _identity(train_ds),
            "val_dataset": _identity(val_ds) if val_ds else None, "stages": list(stages)}
    if source.sampling.mode != "concat":  # absent for concat, so older runs keep their hashes
        info["sampling"] = dataclasses.asdict(source.sampling)
    run_dir = Path(out_dir) if out_dir is not None else (
        method_dir(protocol or source.protocol or _protocol_of(train_ds.name), method)
        / config_hash(info))
    paths = _RunPaths(run_dir)
    state = _existing_state(paths, resume)
    ctx.barrier()  # every rank has looked at the run folder before rank 0 writes into it
    if state is not None and state.get("finished"):
        return _result(paths, state)

    if state is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(paths.last)))
    info.update(imlbench_version=imlbench.__version__, torch_version=torch.__version__,
                device=str(dev))
    info["world_size"] = ctx.world_size
    loop = _Loop(model, rcp, stages, source, dev, paths, info, seed, progress, ctx)
    try:
        return loop.run(state, stop_after)
    finally:
        loop.close()


@dataclass(frozen=True)
class _RunPaths:
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


def _existing_state(paths: _RunPaths, resume: bool) -> dict[str, Any] | None:
    if not paths.state.is_file():
        return None
    state = load_state(paths.state)
    if not resume:
        raise RunExistsError(
            f"{paths.root} already holds a run ({'finished' if state.get('finished') else 'stopped'}"
            f" after {state['global_step']} steps); pass --resume to continue (or reuse) it, or "
            "choose another --seed / output folder")
    return state


def _result(paths: _RunPaths, state: dict[str, Any]) -> TrainResult:
    return TrainResult(paths.best if paths.best.is_file() else paths.last, paths.last,
                       state["global_step"], dict(state.get("best_val") or {}), paths.root,
                       bool(state.get("finished")))


def _dataset(ref: str | Path | Dataset) -> Dataset:
    if isinstance(ref, Dataset):
        return ref
    from imlbench.datasets import resolve_dataset

    return resolve_dataset(ref)


@dataclass(frozen=True)
class _TrainingSource:
    """What a run reads: the training sets (``parts``) and how an epoch is drawn from them,
    ``train`` (all of them as one dataset, for its name) and the validation set."""

    train: Dataset
    parts: tuple[Dataset, ...]
    sampling: Sampling
    val: Dataset | None
    protocol: str | None = None

    @classmethod
    def of(cls, dataset: str | Dataset | Protocol,
           val_dataset: str | Dataset | None) -> "_TrainingSource":
        if isinstance(dataset, Protocol):
            val = dataset.val_dataset() if val_dataset == "auto" else (
                None if val_dataset is None else _dataset(val_dataset))
            return cls(dataset.train_dataset(), tuple(dataset.train_parts()), dataset.sampling,
                       val, dataset.name)
        train_ds = _dataset(dataset)
        val_ref = "synth-val" if val_dataset == "auto" else val_dataset
        return cls(train_ds, (train_ds,), Sampling(), None if val_ref is None else _dataset(val_ref))


def _identity(ds: Dataset) -> str:
    """A training or validation set in a run's identity: its name, or for a dataset given as a
    path its absolute path (two folders named ``photos`` are different data)."""
    return ds.path or ds.name


def _protocol_of(train_dataset: str) -> str:
    """The protocol training on ``train_dataset``, else the dataset name made folder-safe
    (a dataset given by path must not lead outside the checkpoint cache)."""
    from imlbench.datasets.protocols import list_protocols, load_protocol

    known = next((p for p in list_protocols() if load_protocol(p).train == (train_dataset,)), None)
    return known or re.sub(r"[^A-Za-z0-9._-]+", "_", train_dataset).strip("._") or "dataset"


def _evenly_spaced(ds: Dataset, n: int | None) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    picked = [ds.samples[i] for i in np.linspace(0, len(ds) - 1, n).round().astype(int)]
    return Dataset(ds.name, lambda: picked, ds.description)


class _Loop:
    """State of one ``train`` call; ``run`` walks the stages, ``close`` releases the writer."""

    def __init__(self, model: Method, recipe: Recipe, stages: tuple[str, ...],
                 source: _TrainingSource, device: torch.device, paths: _RunPaths,
                 info: dict[str, Any], seed: int, progress: bool,
                 ctx: distributed.DistContext = distributed.DistContext()) -> None:
        self.model, self.recipe, self.stages, self.ctx = model, recipe, stages, ctx
        self.writes = ctx.is_main  # one writer of logs and checkpoints
        self.source, self.device, self.paths = source, device, paths
        self.val_ds = _evenly_spaced(source.val, recipe.val_max_images) if source.val else None
        self.info, self.seed, self.progress = info, seed, progress
        self.writer = None
        if recipe.tensorboard and self.writes:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(paths.root / "tb"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def run(self, state: dict[str, Any] | None, stop_after: int | None) -> TrainResult:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        start_stage = state["stage_index"] if state else 0
        self.global_step = state["global_step"] if state else 0
        self.images_seen = state["images_seen"] if state else 0
        self.best_value = state["best_value"] if state else None
        self.best_val: dict[str, float] = dict(state["best_val"]) if state else {}
        self.started = time.monotonic() - (state.get("train_seconds", 0.0) if state else 0.0)
        if self.writes:
            _truncate_log(self.paths.log, self.global_step)
        finished = True
        for index in range(start_stage, len(self.stages)):
            resumed = state if state and index == start_stage else None
            if self._run_stage(index, resumed, stop_after):
                finished = False
                break
        self.ctx.barrier()  # rank 0's files are complete before anyone reads them
        return _result(self.paths, {"global_step": self.global_step, "best_val": self.best_val,
                                    "finished": finished})

    def _enter_stage(self, stage: str) -> None:
        self.model.train()
        self.model.set_stage(stage)  # after train(): it may switch sub-modules back to eval

    def _run_stage(self, index: int, state: dict[str, Any] | None, stop_after: int | None) -> bool:
        """Train stage ``index`` from ``state`` (or from scratch); True when ``stop_after``
        ended the run before its end."""
        stage = self.stages[index]
        rcp = self.recipe.for_stage(stage)
        final = index == len(self.stages) - 1
        self._enter_stage(stage)
        params = self.model.trainable_parameters()
        if not params:
            raise MethodContractError(f"{type(self.model).__name__}.trainable_parameters() is empty in stage "
                             f"{stage!r}; nothing to train")
        opt = build_optimizer(self.model, params, rcp.optimizer)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, rcp.steps, rcp.schedule))
        scaler = torch.amp.GradScaler(
            "cuda", enabled=rcp.amp and amp_dtype(self.device) == torch.float16)
        step = 0
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            step = state["step"]
        per_step = rcp.batch_size * rcp.grad_accum * self.ctx.world_size
        data = TrainDataset([part.samples for part in self.source.parts], rcp.image_size,
                            stable_seed(self.seed, stage), rcp.hflip, self.source.sampling,
                            file_inputs=getattr(self.model, "file_inputs", ()))
        # A private generator: creating the loader must not draw from the global RNG, or a resumed
        # run would see different dropout masks than the uninterrupted one.
        positions = StreamPositions(step * per_step, self.ctx.rank, self.ctx.world_size,
                                    rcp.batch_size)
        loader = DataLoader(data, batch_size=rcp.batch_size, sampler=positions,
                            num_workers=rcp.num_workers, drop_last=True,
                            generator=torch.Generator().manual_seed(self.seed),
                            pin_memory=self.device.type == "cuda",
                            persistent_workers=rcp.num_workers > 0)
        batches = iter(loader)
        bar = _progress_bar(rcp.steps, step, f"train {self.info['method']}[{stage}]",
                            self.progress and self.writes, per_step)
        try:
            while step < rcp.steps:
                lr = opt.param_groups[0]["lr"]  # the LR this step uses
                self.model.step_in_stage = step
                losses = self._optimizer_step(batches, opt, scaler, rcp, params)
                sched.step()
                step += 1
                self.global_step += 1
                self.images_seen += per_step
                if self.writes:
                    self._log_losses(stage, losses, lr, rcp)
                bar.set_postfix(loss=f"{losses['loss']:.4f}", refresh=False)
                bar.update(1)
                last_step = step == rcp.steps
                stop = stop_after is not None and self.global_step >= stop_after
                validate = self.writes and self.val_ds is not None and (
                    (rcp.val_every and step % rcp.val_every == 0) or (final and last_step))
                if validate:
                    self._validate(stage, rcp, final)
                periodic = bool(rcp.save_every) and step % rcp.save_every == 0
                if self.writes and (validate or last_step or stop or periodic):
                    finished = final and last_step
                    self._save(index, step, opt, sched, scaler, finished)
                if stop:
                    return not (final and last_step)
        finally:
            bar.close()
            del batches  # shuts worker processes down
        return False

    def _optimizer_step(self, batches: Iterator[dict[str, torch.Tensor]], opt, scaler,
                        rcp: Recipe, params: Sequence[torch.nn.Parameter]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches; mean loss terms as floats."""
        opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for _ in range(rcp.grad_accum):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
            with autocast(self.device, rcp.amp):
                terms = self.model.loss(batch)
            if "loss" not in terms:
                raise MethodContractError(f"{type(self.model).__name__}.loss returned {sorted(terms)}; the total "
                               "to back-propagate must be under the key 'loss'")
            scaler.scale(terms["loss"] / rcp.grad_accum).backward()
            for k, v in terms.items():
                value = float(v.detach())
                if not np.isfinite(value):
                    raise TrainingDivergedError(
                        f"loss term {k!r} of {type(self.model).__name__} is {value} at step "
                        f"{self.global_step + 1}; lower the learning rate or check the data")
                totals[k] = totals.get(k, 0.0) + value / rcp.grad_accum
        if self.ctx.enabled:
            totals = self._average_over_ranks(params, totals)
        if rcp.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, rcp.grad_clip)
        scaler.step(opt)
        scaler.update()
        return totals

    def _average_over_ranks(self, params: Sequence[torch.nn.Parameter],
                            totals: dict[str, float]) -> dict[str, float]:
        """Mean gradients (in place) and mean loss terms over the ranks of a torchrun."""
        import torch.distributed as dist

        world = self.ctx.world_size
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(world)
        values = torch.tensor(list(totals.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(totals, (values / world).tolist()))

    def _log_losses(self, stage: str, losses: dict[str, float], lr: float, rcp: Recipe) -> None:
        _append_log(self.paths.log, {"step": self.global_step, "stage": stage, "lr": lr, **losses,
                                     "seconds": round(self.seconds(), 2)})
        if self.writer is not None and self.global_step % rcp.log_every == 0:
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, self.global_step)
            self.writer.add_scalar("train/lr", lr, self.global_step)

    def _validate(self, stage: str, rcp: Recipe, final: bool) -> None:
        """Evaluate on the validation split; in the final stage keep the best weights."""
        assert self.val_ds is not None
        metrics = list(dict.fromkeys([rcp.val_metric, "pixel_f1", "pixel_auc"]))
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # validation must not move the training RNG
            val = evaluate_method(self.model, self.val_ds, device=self.device,
                                  batch_size=rcp.val_batch_size, num_workers=0, metrics=metrics,
                                  progress=False)
            previews = self._previews(rcp) if self.writer is not None and rcp.previews else None
        self._enter_stage(stage)  # evaluation switched every sub-module back to train()
        _append_log(self.paths.log, {"step": self.global_step, "stage": stage, "val": val,
                                     "seconds": round(self.seconds(), 2)})
        if self.writer is not None:
            for k, v in val.items():
                self.writer.add_scalar(f"val/{k}", v, self.global_step)
            if previews is not None:
                self.writer.add_images("val/image_truth_prediction", previews, self.global_step)
        value = val.get(rcp.val_metric, float("nan"))
        better = np.isfinite(value) and (self.best_value is None or (
            value > self.best_value if rcp.val_mode == "max" else value < self.best_value))
        if final and better:
            self.best_value, self.best_val = float(value), val
            save_weights(self.paths.best, self.model.state_dict(),
                         self._sidecar(stage, finished=False, val=val))

    def _previews(self, rcp: Recipe) -> torch.Tensor | None:
        """``[N, 3, S, 3S]``: image | ground truth | predicted map for the first tampered val images."""
        assert self.val_ds is not None
        picked = [s for s in self.val_ds.samples if s.label == 1][:rcp.previews]
        if not picked:
            return None
        policy = InputPolicy("resize", rcp.image_size, kernel=self.model.input_policy.kernel)
        rows = []
        was_training = self.model.training
        self.model.eval()
        for s in picked:
            x, m = load_shaped(s, policy)
            with torch.inference_mode(), autocast(self.device, rcp.amp):
                prob = self.model.predict(x[None].to(self.device)).mask_prob.float().cpu()
            # a map may be a fraction of the input's resolution (the runner accepts that)
            prob = F.interpolate(prob, size=x.shape[-2:], mode="bilinear")[0]
            rows.append(torch.cat([x, m.expand(3, -1, -1), prob.expand(3, -1, -1)], dim=-1))
        self.model.train(was_training)
        return torch.stack(rows)

    def seconds(self) -> float:
        """Training wall time so far, summed over resumed sessions."""
        return time.monotonic() - self.started

    def _sidecar(self, stage: str, finished: bool, val: dict[str, float]) -> dict[str, Any]:
        return {**self.info, "stage": stage, "step": self.global_step,
                "images_seen": self.images_seen, "val": val, "finished": finished,
                "train_seconds": round(self.seconds(), 1)}

    def _save(self, index: int, step: int, opt, sched, scaler, finished: bool) -> None:
        stage = self.stages[index]
        save_weights(self.paths.last, self.model.state_dict(),
                     self._sidecar(stage, finished, self.best_val))
        if finished:
            if self.best_value is None:  # no validation ran: the last weights are the result
                save_weights(self.paths.best, self.model.state_dict(),
                             self._sidecar(stage, True, {}))
            else:  # mark the best run as finished so the checkpoint cache may use it
                info = read_sidecar(self.paths.best) or {}
                _mark_finished(self.paths.best, {**info, "finished": True,
                                                 "images_seen": self.images_seen})
        save_state(self.paths.state, {
            "stage_index": index, "step": step, "global_step": self.global_step,
            "images_seen": self.images_seen, "train_seconds": self.seconds(),
            "best_value": self.best_value,
            "best_val": self.best_val, "finished": finished, "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state()})


def _mark_finished(weights: Path, info: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    save_weights(weights, load_file(str(weights)), info)


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, global_step: int) -> None:
    """Drop log lines past the step a run resumes from (written after its last save)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= global_step]
        path.write_text("".join(ln + "\n" for ln in lines))


def _progress_bar(total: int, initial: int, desc: str, enabled: bool, images_per_step: int):
    return progress_bar(total=total, initial=initial, desc=desc, unit="step", enabled=enabled,
                        images_per_step=images_per_step)
