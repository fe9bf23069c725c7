"""Perturbation contract: a registered, seeded, pure image transform and chains of them.

A :class:`Perturbation` is built from one severity (validated on construction) and maps a
``uint8 [H, W, 3]`` RGB image to a ``uint8 [H', W', 3]`` image; ``H', W' == H, W`` unless the
class declares ``changes_geometry``. Randomness comes only from the ``rng`` argument, so the
output is a pure function of (image, severity, seed).

A :class:`PerturbationSpec` is one cell of a robustness sweep: a chain of ``(name, severity)``
steps applied left to right, each seeded from ``(sample_id, step label, step index)`` — never
from call order, worker or rank. The empty chain :data:`CLEAN` returns its input unchanged
(the same object).

Text form (``parse_spec``/``label``): ``none`` | ``jpeg:75`` | ``resize:0.5+jpeg:75``.
Severities print as ``str(int)`` when integral (``75``, ``2``) and as Python's shortest
round-trip ``repr`` otherwise (``0.5``), so labels are stable keys in the results store.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from imlbench.errors import ImlbenchError
from imlbench.registry import PERTURBATIONS
from imlbench.seeding import rng_for

Severity = int | float
Encoded = bytes | os.PathLike | None
"""An encoded image file: its bytes, or the path of the file (the clean source)."""

CLEAN_NAME = "none"
STEP_SEP = "+"
SEVERITY_SEP = ":"


class PerturbationError(ImlbenchError, ValueError):
    """A perturbation name, severity, spec string or input image is not what is expected."""


class Perturbation:
    """Base class: subclasses set the class variables and implement :meth:`_apply`.

    ``integer_severity`` perturbations (JPEG quality, kernel size) accept integral floats
    (``75.0``) and store ints; others store floats. ``identity_severity`` is the severity that
    leaves the image unchanged, if there is one (``apply`` then returns its input object).
    ``severity_label``/``stronger_when_lower`` tell plots how to draw the severity axis.
    """

    name: ClassVar[str]
    changes_geometry: ClassVar[bool] = False
    integer_severity: ClassVar[bool] = False
    severity_range: ClassVar[tuple[float, float]] = (-math.inf, math.inf)
    """Inclusive bounds; rules beyond a range (odd, strictly positive) override ``_is_valid``."""
    severity_help: ClassVar[str]
    """What is allowed, in words, for errors: ``"a JPEG quality, an integer in [1, 100]"``."""
    identity_severity: ClassVar[Severity | None] = None
    severity_label: ClassVar[str] = "severity"
    stronger_when_lower: ClassVar[bool] = False

    def __init__(self, severity: Severity) -> None:
        self.severity: Severity = self.check_severity(severity)

    @classmethod
    def check_severity(cls, severity: object) -> Severity:
        """Return ``severity`` in canonical form (int or float), or raise ``PerturbationError``."""
        if isinstance(severity, bool) or not isinstance(severity, numbers.Real) \
                or not math.isfinite(float(severity)):
            raise cls._bad_severity(severity)
        value: Severity
        if cls.integer_severity:
            if float(severity) != math.floor(float(severity)):
                raise cls._bad_severity(severity)
            value = int(severity)
        else:
            value = float(severity)
        if not cls._is_valid(value):
            raise cls._bad_severity(severity)
        return value

    @classmethod
    def _is_valid(cls, value: Severity) -> bool:
        low, high = cls.severity_range
        return low <= value <= high

    @classmethod
    def _bad_severity(cls, severity: object) -> PerturbationError:
        return PerturbationError(
            f"{cls.name}: severity {severity!r} is not allowed; expected {cls.severity_help}.")

    @property
    def is_identity(self) -> bool:
        return self.identity_severity is not None and self.severity == self.identity_severity

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``uint8 [H, W, 3]`` RGB -> ``uint8 [H', W', 3]``; the input is never modified."""
        check_image(image, self.name)
        if self.is_identity:
            return image
        out = self._apply(image, rng)
        if not self.changes_geometry and out.shape != image.shape:  # a plug-in bug, not bad input
            raise AssertionError(f"{self.name} declares changes_geometry=False but returned "
                                 f"{out.shape} for a {image.shape} input")
        return out

    def _apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def apply_encoded(self, image: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray, bytes | None]:
        """Like :meth:`apply`, plus the encoded file the output is the decoding of, if the
        perturbation produced one (JPEG: its bytes; others: ``None``). Methods that read the
        file (CAT-Net's DCT stream) get those bytes; the pixels are decoded from them once."""
        return self.apply(image, rng), None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({format_severity(self.severity)})"


def check_image(image: np.ndarray, who: str) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        got = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise PerturbationError(f"{who} expects a uint8 [H, W, 3] RGB image, got {got}; "
                                "decode images with imlbench.datasets.base.load_image")


def format_severity(severity: Severity) -> str:
    """``75 -> "75"``, ``2.0 -> "2"``, ``0.5 -> "0.5"`` (shortest text that parses back)."""
    value = float(severity)
    return str(int(value)) if value.is_integer() else repr(value)


def parse_severity(text: str, context: str) -> Severity:
    """``"75" -> 75``, ``"0.5" -> 0.5``; ``context`` names the spec for the error message."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise PerturbationError(f"{context}: severity {text!r} is not a number; write e.g. "
                                "jpeg:75 or resize:0.5") from None


@dataclass(frozen=True)
class PerturbationSpec:
    """One sweep cell: ``steps`` applied left to right; ``()`` is the clean cell.

    Names are checked against the registry and severities validated and canonicalised on
    construction, so equal cells compare (and hash) equal: ``jpeg:75.0 == jpeg:75``.
    """

    steps: tuple[tuple[str, Severity], ...] = ()
    _perturbations: tuple[Perturbation, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        built = tuple(_build_step(step) for step in self.steps)
        object.__setattr__(self, "steps", tuple((p.name, p.severity) for p in built))
        object.__setattr__(self, "_perturbations", built)

    @property
    def name(self) -> str:
        """``"none"`` for clean, else step names joined by ``+`` (``"resize+jpeg"``)."""
        return STEP_SEP.join(n for n, _ in self.steps) or CLEAN_NAME

    @property
    def severity(self) -> str:
        """``""`` for clean, else step severities joined by ``+`` (``"0.5+75"``)."""
        return STEP_SEP.join(format_severity(s) for _, s in self.steps)

    def label(self) -> str:
        """``"none"`` | ``"jpeg:75"`` | ``"resize:0.5+jpeg:75"``; ``parse_spec`` reads it back."""
        return STEP_SEP.join(_step_label(n, s) for n, s in self.steps) or CLEAN_NAME

    @property
    def changes_geometry(self) -> bool:
        return any(p.changes_geometry for p in self._perturbations)

    def apply(self, image: np.ndarray, sample_id: str) -> np.ndarray:
        """``uint8 [H, W, 3]`` -> ``uint8 [H', W', 3]``; clean returns ``image`` itself."""
        for index, ((name, severity), perturbation) in enumerate(zip(self.steps, self._perturbations)):
            image = perturbation.apply(image, rng_for(sample_id, _step_label(name, severity), index))
        return image

    def apply_encoded(self, image: np.ndarray, sample_id: str, encoded: Encoded = None
                      ) -> tuple[np.ndarray, Encoded]:
        """:meth:`apply` plus the encoded file the result is the decoding of: ``encoded`` (the
        source file's JPEG, if the caller has one) while no step changes the pixels, then the
        bytes of the last step if it is a JPEG, ``None`` after any other step."""
        for index, ((name, severity), perturbation) in enumerate(zip(self.steps, self._perturbations)):
            if perturbation.is_identity:  # unchanged pixels: the file still describes them
                continue
            image, encoded = perturbation.apply_encoded(
                image, rng_for(sample_id, _step_label(name, severity), index))
        return image, encoded

    def __str__(self) -> str:
        return self.label()


CLEAN = PerturbationSpec()


def parse_spec(text: str) -> PerturbationSpec:
    """``"none"`` -> :data:`CLEAN`; ``"jpeg:75"``; ``"resize:0.5+jpeg:75"`` (left to right)."""
    text = text.strip()
    if text == CLEAN_NAME:
        return CLEAN
    if not text:
        raise PerturbationError("empty perturbation spec; write e.g. jpeg:75, resize:0.5+jpeg:75 "
                                "or none")
    steps = []
    for part in text.split(STEP_SEP):
        name, sep, severity = (piece.strip() for piece in part.partition(SEVERITY_SEP))
        if name == CLEAN_NAME:
            raise _clean_in_chain_error()
        cls = PERTURBATIONS.get(name)  # unknown names get the registry's "did you mean" error
        if not sep or not severity:
            raise PerturbationError(
                f"perturbation spec {text!r}: step {part.strip()!r} has no severity; write "
                f"{name}{SEVERITY_SEP}<severity> with {cls.severity_help}")
        steps.append((name, parse_severity(severity, f"perturbation spec {text!r}")))
    return PerturbationSpec(tuple(steps))


def _build_step(step: tuple[str, Severity]) -> Perturbation:
    if not (isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str)):
        raise PerturbationError(
            f"a PerturbationSpec step must be a (name, severity) tuple, got {step!r}")
    name, severity = step
    if name == CLEAN_NAME:
        raise _clean_in_chain_error()
    return PERTURBATIONS.build(name, severity=severity)


def _step_label(name: str, severity: Severity) -> str:
    return f"{name}{SEVERITY_SEP}{format_severity(severity)}"


def _clean_in_chain_error() -> PerturbationError:
    return PerturbationError(f"{CLEAN_NAME!r} cannot be a step of a chain; the clean cell is "
                             f"{CLEAN_NAME!r} alone (imlbench.robustness.CLEAN)")
