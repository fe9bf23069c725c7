"""The training loop: stages, optimizer steps, and when to validate, save or stop.

:func:`plan_step` is the per-step decision (a pure function of counters and the recipe);
:class:`TrainingLoop` carries it out: optimizer and schedule (:mod:`~imlbench.benchmark.optim`),
AMP on CUDA, gradient accumulation, the average over ranks under torchrun, validation on the
validation split with best-checkpoint selection, TensorBoard, and the run folder's files
(:mod:`~imlbench.benchmark.run_folder`) with every RNG state (:mod:`~imlbench.benchmark.rng`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from imlbench.benchmark import distributed
from imlbench.benchmark.checkpoints import read_sidecar, save_state, save_weights
from imlbench.benchmark.device import autocast, precision_dtype
from imlbench.benchmark.optim import build_optimizer, build_schedule
from imlbench.benchmark.recipes import Recipe
from imlbench.benchmark.rng import rng_state, set_rng_state
from imlbench.benchmark.run_folder import (RunPaths, TrainResult, append_log, mark_finished,
                                           truncate_log)
from imlbench.benchmark.runner import evaluate_method
from imlbench.benchmark.train_data import StreamPositions, TrainDataset, load_shaped
from imlbench.datasets.base import Dataset
from imlbench.datasets.protocols import Sampling
from imlbench.errors import MethodContractError, TrainingDivergedError
from imlbench.methods.base import InputPolicy, Method
from imlbench.metrics.suite import PRIMARY_METRIC
from imlbench.progress import progress_bar
from imlbench.seeding import stable_seed


@dataclass(frozen=True)
class StepPlan:
    """What to do after an optimizer step."""

    validate: bool
    save: bool
    """Write ``last`` (weights + training state)."""
    finished: bool
    """This step ends the whole run (last step of the final stage): the saved files say so."""
    stop: bool
    """``stop_after`` is reached: leave the loop after saving (every rank stops)."""


def plan_step(step: int, global_step: int, *, steps: int, val_every: int, save_every: int,
              final_stage: bool, has_validation: bool, writes: bool,
              stop_after: int | None) -> StepPlan:
    """The decision after optimizer step ``step`` of a stage of ``steps`` (``global_step``:
    over all stages, both counted after the step). Only the writing rank (``writes``)
    validates and saves; a save follows every validation, the stage's last step, a stop and
    every ``save_every``-th step."""
    last_step = step == steps
    stop = stop_after is not None and global_step >= stop_after
    validate = writes and has_validation and (
        bool(val_every and step % val_every == 0) or (final_stage and last_step))
    periodic = bool(save_every) and step % save_every == 0
    save = writes and (validate or last_step or stop or periodic)
    return StepPlan(validate, save, final_stage and last_step, stop)


@dataclass(frozen=True)
class TrainingSource:
    """What a run reads: the training sets (``parts``) and how an epoch is drawn from them,
    ``train`` (all of them as one dataset, for its name) and the validation set."""

    train: Dataset
    parts: tuple[Dataset, ...]
    sampling: Sampling
    val: Dataset | None
    protocol: str | None = None


def evenly_spaced(ds: Dataset, n: int | None) -> Dataset:
    """``n`` samples of ``ds`` spread over it (all of them for ``None``)."""
    if n is None or n >= len(ds):
        return ds
    picked = [ds.samples[i] for i in np.linspace(0, len(ds) - 1, n).round().astype(int)]
    return Dataset(ds.name, lambda: picked, ds.description)


class TrainingLoop:
    """State of one ``train`` call; ``run`` walks the stages, ``close`` releases the writer."""

    def __init__(self, model: Method, recipe: Recipe, stages: tuple[str, ...],
                 source: TrainingSource, device: torch.device, paths: RunPaths,
                 info: dict[str, Any], seed: int, progress: bool,
                 ctx: distributed.DistContext = distributed.DistContext()) -> None:
        self.model, self.recipe, self.stages, self.ctx = model, recipe, stages, ctx
        self.writes = ctx.is_main  # one writer of logs and checkpoints
        self.source, self.device, self.paths = source, device, paths
        self.val_ds = evenly_spaced(source.val, recipe.val_max_images) if source.val else None
        self.info, self.seed, self.progress = info, seed, progress
        self.writer = None
        if recipe.tensorboard and self.writes:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(paths.tensorboard))

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
            truncate_log(self.paths.log, self.global_step)
        finished = True
        for index in range(start_stage, len(self.stages)):
            resumed = state if state and index == start_stage else None
            if self._train_stage(index, resumed, stop_after) == "stopped":
                finished = False
                break
        self.ctx.barrier()  # rank 0's files are complete before anyone reads them
        return self.paths.result({"global_step": self.global_step, "best_val": self.best_val,
                                  "finished": finished})

    def _enter_stage(self, stage: str) -> None:
        self.model.train()
        self.model.set_stage(stage)  # after train(): it may switch sub-modules back to eval

    def _train_stage(self, index: int, state: dict[str, Any] | None,
                     stop_after: int | None) -> Literal["completed", "stopped"]:
        """Train stage ``index`` from ``state`` (or from scratch) to its end (``completed``),
        or until ``stop_after`` steps overall end the run before its end (``stopped``)."""
        stage = self.stages[index]
        rcp = self.recipe.for_stage(stage)
        final = index == len(self.stages) - 1
        self._enter_stage(stage)
        params = self.model.trainable_parameters()
        if not params:
            raise MethodContractError(f"{type(self.model).__name__}.trainable_parameters() is empty in stage "
                             f"{stage!r}; nothing to train")
        opt = build_optimizer(self.model, params, rcp.optimizer)
        sched = build_schedule(opt, rcp.steps, rcp.schedule)
        scaler = torch.amp.GradScaler(
            "cuda", enabled=precision_dtype(self.device, rcp.amp) == torch.float16)
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
                            kernel=self.model.input_policy.kernel,
                            file_inputs=self.model.file_inputs,
                            augment=rcp.augmentation(), shaping=rcp.shaping)
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
        bar = progress_bar(total=rcp.steps, initial=step,
                           desc=f"train {self.info['method']}[{stage}]", unit="step",
                           enabled=self.progress and self.writes, images_per_step=per_step)
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
                plan = plan_step(step, self.global_step, steps=rcp.steps, val_every=rcp.val_every,
                                 save_every=rcp.save_every, final_stage=final,
                                 has_validation=self.val_ds is not None, writes=self.writes,
                                 stop_after=stop_after)
                if plan.validate:
                    self._validate(stage, rcp, final)
                if plan.save:
                    self._save(index, step, opt, sched, scaler, plan.finished)
                if plan.stop:
                    return "completed" if plan.finished else "stopped"
        finally:
            bar.close()
            del batches  # shuts worker processes down
        return "completed"

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
        distributed.average_gradients(params, world)
        values = torch.tensor(list(totals.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(totals, (values / world).tolist()))

    def _log_losses(self, stage: str, losses: dict[str, float], lr: float, rcp: Recipe) -> None:
        append_log(self.paths.log, {"step": self.global_step, "stage": stage, "lr": lr, **losses,
                                     "seconds": round(self.seconds(), 2)})
        if self.writer is not None and self.global_step % rcp.log_every == 0:
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, self.global_step)
            self.writer.add_scalar("train/lr", lr, self.global_step)

    def _validate(self, stage: str, rcp: Recipe, final: bool) -> None:
        """Evaluate on the validation split; in the final stage keep the best weights."""
        assert self.val_ds is not None
        metrics = list(dict.fromkeys([rcp.val_metric, PRIMARY_METRIC, "pixel_auc"]))
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # validation must not move the training RNG
            val = evaluate_method(self.model, self.val_ds, device=self.device,
                                  batch_size=rcp.val_batch_size, num_workers=0, metrics=metrics,
                                  progress=False)
            previews = self._previews(rcp) if self.writer is not None and rcp.previews else None
        self._enter_stage(stage)  # evaluation switched every sub-module back to train()
        append_log(self.paths.log, {"step": self.global_step, "stage": stage, "val": val,
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
                mark_finished(self.paths.best, {**info, "finished": True,
                                                 "images_seen": self.images_seen})
        save_state(self.paths.state, {
            "stage_index": index, "step": step, "global_step": self.global_step,
            "images_seen": self.images_seen, "train_seconds": self.seconds(),
            "best_value": self.best_value,
            "best_val": self.best_val, "finished": finished, "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state()})

