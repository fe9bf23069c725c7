"""Training recipes: YAML data, checked against :class:`Recipe`'s field types.

``configs/recipes/<name>.yaml`` holds the defaults and ``configs/recipes/<name>/<method>.yaml``
(optional) replaces whole top-level keys for one method. A path to a ``.yaml`` file works as a
recipe too (with its own ``<stem>/`` folder).
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from imlbench import typed_config
from imlbench.benchmark.device import resolve_device
from imlbench.errors import ConfigError
from imlbench.metrics.suite import PRIMARY_METRIC
from imlbench.registry import METHODS
from imlbench.robustness.augment import Augmentation, load_preset, parse_augment

RECIPES_DIR = Path(__file__).resolve().parent.parent / "configs" / "recipes"


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
    amp: bool | Literal["auto", "bf16", "fp16", "off"] = True
    """Autocast: ``true`` = ``auto`` (bf16, or fp16 with the gradient scaler, on CUDA; none on
    CPU), ``false`` = ``off``, or a dtype (:data:`imlbench.benchmark.device.PRECISIONS`)."""
    val_every: int = 0
    """Validate every N steps (0: only at the end of the last stage)."""
    val_metric: str = PRIMARY_METRIC
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
    """Flip each training item left-right with probability 1/2 (after shaping)."""
    augment: str | list[dict[str, Any]] = field(default_factory=list)
    """Train-time augmentation, applied in order to each training picture at its own resolution
    before shaping: ``{transform, p, ranges, choices, of}`` steps, or the name of a preset in
    ``configs/augment/`` (:mod:`imlbench.robustness.augment`), which loading replaces by its
    steps; ``[]``: none."""
    shaping: Literal["resize", "crop"] = "resize"
    """``resize``: each training picture to ``image_size``² with the method's input kernel (as the
    evaluation runner's ``resize`` policy); ``crop``: a random ``image_size``² window at native
    resolution (black, untampered padding where the picture is smaller)."""
    tensorboard: bool = True
    method: dict[str, Any] = field(default_factory=dict)
    """Constructor kwargs of the method (the user's ``method_config`` overrides them)."""
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def for_stage(self, stage: str) -> Recipe:
        return dataclasses.replace(self, **self.stages.get(stage, {}), stages={})

    def augmentation(self) -> Augmentation:
        """The compiled ``augment`` steps (``image_size`` substituted)."""
        return Augmentation(parse_augment(self.augment, "augment", self.image_size))


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
    for stage, values in [("", typed), *typed["stages"].items()]:
        if "augment" in values:  # checked here, so a wrong step fails on load, naming itself
            at = f"{where}{f', stage {stage!r}' if stage else ''}, augment"
            parse_augment(values["augment"], at, values.get("image_size", typed.get("image_size")))
            if isinstance(values["augment"], str):
                # the steps themselves, not the preset's name, are the recipe: a run's sidecar
                # then records what it trained with, and an edited preset makes it stale
                values["augment"] = load_preset(values["augment"], at)
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


def default_recipe(device: str | torch.device = "auto") -> str:
    """``paper`` on a GPU, ``quick`` (CPU-sized) otherwise."""
    return "paper" if resolve_device(device).type == "cuda" else "quick"
