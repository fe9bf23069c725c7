"""Train-time augmentation: a recipe's list of ``(transform, probability, parameter ranges)``.

Photometric steps *are* the robustness layer's perturbations (``jpeg``, ``gaussian_blur``,
``gaussian_noise``, ``gaussian_noise_var``, ``resize``...): the same code, so train-time
``jpeg`` at quality q is bit for bit the ``jpeg:q`` sweep cell. The transforms registered in
:data:`~imlbench.registry.AUGMENTATIONS` (:mod:`imlbench.robustness.augmentations`) add what a
sweep never does: geometric steps that move image and mask together (flips, rotate-90,
transpose, random scale, pad, short side) and a few tone and blur steps of the official training
pipelines (albumentations 1.3 semantics, named per class).

A recipe writes (YAML)::

    augment:
      - {transform: scale, p: 0.75, ranges: {factor: [0.5, 1.0]}}
      - {transform: one_of, p: 0.75, of: [{transform: hflip}, {transform: rot90}]}
      - {transform: jpeg, p: 0.75, ranges: {severity: [50, 95]}}
      - {transform: gaussian_blur, choices: {severity: [3, 5, 7]}}

``ranges`` draws uniformly from ``[low, high]`` (integers for integer parameters, both ends
included), ``choices`` from a list. A perturbation's parameter is its ``severity``. Groups:
``one_of`` applies one child picked with weights ∝ the children's ``p`` (as albumentations'
``OneOf``), ``sequence`` applies each child with its own ``p``; a group itself runs with ``p``.

Randomness comes only from the ``rng`` given to :meth:`Augmentation.apply`; the training stream
seeds it per sample by ``(seed, epoch, index)``, so one sample's draws never depend on another's
and a resumed run draws the same. Masks are ``uint8 [H, W]`` in {0, 1}; they follow every
geometric step with nearest-neighbour resampling and never change under a photometric one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import yaml

from imlbench.errors import ConfigError
from imlbench.registry import AUGMENTATIONS, PERTURBATIONS
from imlbench.robustness.augmentations import Params
from imlbench.robustness.base import Perturbation, PerturbationError

GROUPS = ("one_of", "sequence")


# -- specs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentStep:
    """One entry of a recipe's ``augment`` list (see the module docstring)."""

    transform: str
    p: float = 1.0
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    choices: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    of: tuple["AugmentStep", ...] = ()


def _resolve(name: str) -> tuple[type, bool]:
    """``(class, is_perturbation)`` of a transform name."""
    if name in AUGMENTATIONS:
        return AUGMENTATIONS.get(name), False
    if name in PERTURBATIONS:
        return PERTURBATIONS.get(name), True
    known = sorted([*GROUPS, *AUGMENTATIONS.list(), *PERTURBATIONS.list()])
    raise ConfigError(f"unknown transform {name!r}; expected one of {', '.join(known)}")


def _param_kinds(cls: type, perturbation: bool) -> dict[str, bool]:
    return {"severity": bool(cls.integer_severity)} if perturbation else dict(cls.params)


def _why_bad(cls: type, perturbation: bool, name: str, value: float) -> str | None:
    if perturbation:
        try:
            cls.check_severity(value)
        except PerturbationError:
            return cls.severity_help
        return None
    return cls.check(name, value)


PRESETS_DIR = Path(__file__).resolve().parent.parent / "configs" / "augment"
IMAGE_SIZE = "image_size"
"""A parameter value that stands for the recipe's training size (``pad_to`` in a preset)."""


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str, where: str = "augment") -> list[Any]:
    """The step list of preset ``name`` (``configs/augment/<name>.yaml``), as written."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"{where}: unknown augmentation preset {name!r}; expected one of "
                          f"{', '.join(preset_names())} or a list of steps")
    return yaml.safe_load(path.read_text())


def parse_augment(data: Any, where: str = "augment", image_size: int | None = None
                  ) -> tuple[AugmentStep, ...]:
    """A recipe's ``augment`` value as checked steps: a list of step mappings, or the name of a
    preset in ``configs/augment/`` (``mpc_official``). ``image_size`` replaces the value
    ``image_size`` in ranges and choices. A wrong entry is a :class:`ConfigError` naming it
    (``augment[2].ranges.severity``)."""
    if data is None:
        return ()
    if isinstance(data, str):
        return parse_augment(load_preset(data, where), f"{where} (preset {data})", image_size)
    if not isinstance(data, (list, tuple)):
        raise ConfigError(f"{where} must be a list of steps or a preset name, got "
                          f"{type(data).__name__}")
    return tuple(_parse_step(_sized(item, image_size, f"{where}[{i}]"), f"{where}[{i}]")
                 for i, item in enumerate(data))


def _sized(item: Any, image_size: int | None, where: str) -> Any:
    """``item`` (and its group children) with every ``image_size`` value of its ranges and
    choices replaced."""
    if not isinstance(item, Mapping):
        return item
    out = dict(item)
    if isinstance(out.get("of"), (list, tuple)):
        out["of"] = [_sized(child, image_size, f"{where}.of[{i}]") for i, child in enumerate(out["of"])]
    for key in ("ranges", "choices"):
        if isinstance(out.get(key), Mapping):
            table = {}
            for param, values in out[key].items():
                if isinstance(values, (list, tuple)) and IMAGE_SIZE in values:
                    if image_size is None:
                        raise ConfigError(f"{where}.{key}.{param}: {IMAGE_SIZE!r} needs the "
                                          "recipe's image_size")
                    values = [image_size if v == IMAGE_SIZE else v for v in values]
                table[param] = values
            out[key] = table
    return out


def _parse_step(item: Any, where: str) -> AugmentStep:
    if not isinstance(item, Mapping) or "transform" not in item:
        raise ConfigError(f"{where} must be a mapping with a 'transform' key, got {item!r}")
    unknown = set(item) - {"transform", "p", "ranges", "choices", "of"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; "
                          "known: transform, p, ranges, choices, of")
    name = str(item["transform"])
    p = item.get("p", 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ConfigError(f"{where}.p must be a probability in [0, 1], got {p!r}")
    if name in GROUPS:
        if not item.get("of") or set(item) & {"ranges", "choices"}:
            raise ConfigError(f"{where}: a {name} group takes a non-empty 'of' list (and no "
                              "ranges or choices)")
        if isinstance(item["of"], str):
            raise ConfigError(f"{where}.of must be a list of steps")
        return AugmentStep(name, float(p), of=parse_augment(item["of"], f"{where}.of"))
    if "of" in item:
        raise ConfigError(f"{where}: only one_of and sequence take 'of'")
    try:
        cls, perturbation = _resolve(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    kinds = _param_kinds(cls, perturbation)
    ranges, choices = item.get("ranges") or {}, item.get("choices") or {}
    for key, table in (("ranges", ranges), ("choices", choices)):
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}.{key} must map parameter names to values")
        for param in table:
            if param not in kinds:
                raise ConfigError(f"{where}.{key}.{param}: {name} has no parameter {param!r}; "
                                  f"its parameters: {', '.join(kinds) or 'none'}")
    typed_ranges = {k: _check_range(cls, perturbation, kinds[k], k, v, f"{where}.ranges.{k}")
                    for k, v in ranges.items()}
    typed_choices = {k: _check_choices(cls, perturbation, kinds[k], k, v, f"{where}.choices.{k}")
                     for k, v in choices.items()}
    both = set(typed_ranges) & set(typed_choices)
    missing = [k for k in kinds if k not in typed_ranges and k not in typed_choices
               and k not in (() if perturbation else {**cls.defaults, **cls.default_ranges})]
    if both or missing:
        raise ConfigError(f"{where} ({name}): give each parameter once, in ranges or choices "
                          f"({'twice: ' + ', '.join(sorted(both)) if both else 'missing: ' + ', '.join(missing)})")
    return AugmentStep(name, float(p), typed_ranges, typed_choices)


def _check_range(cls: type, perturbation: bool, integer: bool, param: str, value: Any,
                 where: str) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]):
        raise ConfigError(f"{where} must be [low, high] with low <= high, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if integer and (low != math.floor(low) or high != math.floor(high)):
        raise ConfigError(f"{where}: {param} is an integer; give integer ends, got {value!r}")
    # every value a draw can give must be allowed: each integer (the ends and their neighbours
    # for a wide range, which catches parity rules), or both ends of an interval
    points: Any = (low, high)
    if integer:
        points = range(int(low), int(high) + 1)
        if len(points) > 1000:
            points = sorted({int(low), int(low) + 1, int(high) - 1, int(high)})
    for v in points:
        why = _why_bad(cls, perturbation, param, v)
        if why:
            raise ConfigError(f"{where} = {list(value)} can draw {v:g}, which is not {why}"
                              + ("; list the allowed values under choices" if integer else ""))
    return low, high


def _check_choices(cls: type, perturbation: bool, integer: bool, param: str, value: Any,
                   where: str) -> tuple[float, ...]:
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where} must be a non-empty list of numbers, got {value!r}")
    if integer and any(float(v) != math.floor(float(v)) for v in value):
        raise ConfigError(f"{where}: {param} is an integer, got {list(value)}")
    for v in value:
        why = _why_bad(cls, perturbation, param, v)
        if why:
            raise ConfigError(f"{where}: {v!r} is not {why}")
    return tuple(float(v) for v in value)


# -- application ------------------------------------------------------------------------------
class Augmentation:
    """The compiled pipeline of a recipe's ``augment`` steps."""

    def __init__(self, steps: Sequence[AugmentStep]) -> None:
        """``steps``: checked steps, from :func:`parse_augment`."""
        self.steps = tuple(steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def apply(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
        """``image`` uint8 [H,W,3], ``mask`` uint8 [H,W] → both augmented (contiguous)."""
        for step in self.steps:
            image, mask = _run(step, image, mask, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _run(step: AugmentStep, image: np.ndarray, mask: np.ndarray,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() >= step.p:
        return image, mask
    if step.transform == "sequence":
        for child in step.of:
            image, mask = _run(child, image, mask, rng)
        return image, mask
    if step.transform == "one_of":
        weights = np.array([c.p for c in step.of], dtype=np.float64)
        if weights.sum() <= 0:
            return image, mask
        child = step.of[int(rng.choice(len(step.of), p=weights / weights.sum()))]
        return _apply(child, image, mask, rng)
    return _apply(step, image, mask, rng)


def _apply(step: AugmentStep, image: np.ndarray, mask: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``step`` without its gate (a group child picked by ``one_of`` always runs)."""
    if step.transform in GROUPS:
        return _run(AugmentStep(step.transform, 1.0, of=step.of), image, mask, rng)
    cls, perturbation = _resolve(step.transform)
    params = _draw(step, cls, perturbation, rng)
    if not perturbation:
        return cls().apply(image, mask, params, rng)
    pert: Perturbation = cls(params["severity"])
    out = pert.apply(np.ascontiguousarray(image), rng)
    if out.shape[:2] != image.shape[:2]:  # a resize: the mask follows, nearest
        mask = cv2.resize(np.ascontiguousarray(mask), (out.shape[1], out.shape[0]),
                          interpolation=cv2.INTER_NEAREST)
    return out, mask


def _draw(step: AugmentStep, cls: type, perturbation: bool, rng: np.random.Generator) -> Params:
    params: Params = {}
    for name, integer in _param_kinds(cls, perturbation).items():
        if name in step.ranges or (name not in step.choices and name in _default_ranges(cls)):
            low, high = step.ranges.get(name) or _default_ranges(cls)[name]
            params[name] = float(rng.integers(int(low), int(high) + 1)) if integer \
                else float(rng.uniform(low, high))
        else:
            values = step.choices.get(name) or cls.defaults[name]
            params[name] = float(values[int(rng.integers(len(values)))])
    return params


def _default_ranges(cls: type) -> dict[str, tuple[float, float]]:
    return getattr(cls, "default_ranges", {})
