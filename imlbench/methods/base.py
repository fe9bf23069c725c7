"""Method contract: every localizer is an ``nn.Module`` with ``predict`` (and ``loss`` if trainable).

Tensor conventions (the runner guarantees them):

* ``images``: ``float32 [B, 3, H, W]`` RGB in ``[0, 1]`` (exactly ``uint8 / 255``), already
  shaped by the method's :class:`InputPolicy`; methods apply their own normalisation.
* ``Prediction.mask_prob``: ``float [B, 1, H, W]`` probabilities in ``[0, 1]`` at the
  *input* resolution; the runner maps it back to the ground-truth size before scoring.
* ``Prediction.image_score``: ``float [B]`` in ``[0, 1]`` or ``None``; when ``None`` the
  image score used for image-level metrics is the max of ``mask_prob`` (documented rule).

A method converts logits to probabilities exactly once, inside ``predict``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class InputPolicy:
    """How the runner shapes images before ``predict``.

    ``native``: images at their own size, batch size 1 (classic forensics; no resampling that
    would destroy the traces they look for). ``resize``: bilinear/area resize to ``size``².
    ``pad``: zero-pad bottom/right to a multiple of ``multiple`` (predictions are cropped back).
    """

    mode: Literal["native", "resize", "pad"] = "native"
    size: int | None = None
    multiple: int = 32

    def __post_init__(self) -> None:
        if self.mode == "resize" and not self.size:
            raise ValueError("InputPolicy('resize') needs a size")


@dataclass
class Prediction:
    mask_prob: torch.Tensor
    image_score: torch.Tensor | None = None

    def __post_init__(self) -> None:
        m = self.mask_prob
        if m.ndim != 4 or m.shape[1] != 1:
            raise ValueError(f"Prediction.mask_prob must be [B, 1, H, W], got {tuple(m.shape)}")
        if self.image_score is not None and self.image_score.shape != (m.shape[0],):
            raise ValueError(f"Prediction.image_score must be [B]={m.shape[0]}, "
                             f"got {tuple(self.image_score.shape)}")


class Method(nn.Module):
    """Base class of localizers. Subclasses set ``name``-level metadata as class variables."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("native")
    trainable: ClassVar[bool] = False
    needs_ground_truth: ClassVar[bool] = False
    """Test-only sanity methods (oracles) get the masks; the runner passes them to no one else."""
    reference: ClassVar[str] = ""
    """Paper the method implements (shown by ``imlbench list methods -v``)."""

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        raise NotImplementedError

    stages: ClassVar[tuple[str, ...]] = ("main",)
    """Training stages in order (MPC: ``("1", "2")``); the training loop runs them one by one."""

    def set_stage(self, stage: str) -> None:
        """Prepare for training ``stage``: freeze/unfreeze parts, switch sub-modules to eval."""
        if stage not in self.stages:
            raise ValueError(f"{type(self).__name__} has stages {self.stages}, got {stage!r}")

    step_in_stage: int = 0
    """0-based optimizer step of the current stage that the next ``loss()`` calls belong to.
    The training loop sets it before every step (all micro-batches of a gradient-accumulation
    step share it), from its checkpointed counter, so step-dependent losses (NCL's alternating
    pivot) continue where they stopped when a run resumes."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates in the current stage (default: all requiring grad)."""
        return [p for p in self.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training losses by term; the key ``"loss"`` is the total that is back-propagated.

        ``batch``: ``image float [B,3,H,W]`` in [0,1], ``mask float [B,1,H,W]`` in {0,1},
        ``label long [B]``.
        """
        raise NotImplementedError(f"{type(self).__name__} is not trainable")
