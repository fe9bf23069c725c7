"""Method contract: every localizer is an ``nn.Module`` with ``predict`` (and ``loss`` if trainable).

Tensor conventions (the runner guarantees them):

* ``images``: ``float32 [B, 3, H, W]`` RGB in ``[0, 1]`` (exactly ``uint8 / 255``), already
  shaped by the method's :class:`InputPolicy`; methods apply their own normalisation.
* ``Prediction.mask_prob``: ``float [B, 1, H, W]`` probabilities in ``[0, 1]`` at the
  *input* resolution; the runner maps it back to the ground-truth size before scoring.
* ``Prediction.image_score``: ``float [B]`` in ``[0, 1]`` or ``None``; when ``None`` the
  image score used for image-level metrics is the max of ``mask_prob`` (documented rule).
* ``extras`` (only for methods that list ``file_inputs``): what the runner and the training
  stream read from the image *file* — e.g. CAT-Net's ``"jpeg_dct"``, the Y-channel DCT
  coefficients and quantisation table of the JPEG the pixels were decoded from (the perturbed
  cell's own JPEG bytes included; :mod:`imlbench.datasets.jpeg_dct`) — passed as
  ``predict(images, extras={...})`` and as batch keys to ``loss``. Other methods are called
  with ``predict(images)`` exactly.

A method converts logits to probabilities exactly once, inside ``predict``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import nn

ConfigT = TypeVar("ConfigT")

from imlbench.errors import CheckpointError, MethodContractError


@dataclass(frozen=True)
class InputPolicy:
    """How the runner (and the training stream) shapes images before ``predict``.

    ``mode``:

    * ``native``: images at their own size, batch size 1 (classic forensics; no resampling that
      would destroy the traces they look for);
    * ``resize``: to ``size``² with ``kernel``;
    * ``pad``: bottom/right to a multiple of ``multiple`` with ``pad_value`` (maps cropped back);
    * ``canvas``: top-left on a fixed ``size``² canvas of ``pad_value`` (IML-ViT's 1024²), maps
      cropped back; a picture larger than the canvas is shrunk to fit (``oversize="resize"``,
      aspect kept, with ``kernel``) or cut to its top-left ``size``² (``"crop"``: what such
      official code sees; the unseen part of the map scores 0).

    ``kernel``: resampling of the input (:mod:`imlbench.methods.resample` names them; official
    scripts mostly use ``cv2_linear`` on uint8). ``output_kernel``: how the runner brings
    ``mask_prob`` back to the ground-truth size. ``pad_value``: pixel value in [0, 1] of the
    padding, *before* the method normalises (0 = black).
    """

    mode: Literal["native", "resize", "pad", "canvas"] = "native"
    size: int | None = None
    multiple: int = 32
    kernel: str = "bilinear_aa"
    output_kernel: str = "bilinear_aa"
    pad_value: float = 0.0
    oversize: Literal["resize", "crop"] = "resize"

    def __post_init__(self) -> None:
        from imlbench.methods.resample import INPUT_KERNELS, check_kernel

        if self.mode not in ("native", "resize", "pad", "canvas"):
            raise ValueError(f"InputPolicy.mode={self.mode!r}; expected native, resize, pad or canvas")
        if self.mode in ("resize", "canvas") and not self.size:
            raise ValueError(f"InputPolicy({self.mode!r}) needs a size")
        if self.oversize not in ("resize", "crop"):
            raise ValueError(f"InputPolicy.oversize={self.oversize!r}; expected resize or crop")
        if not 0.0 <= self.pad_value <= 1.0:
            raise ValueError(f"InputPolicy.pad_value={self.pad_value} is a pixel value in [0, 1]")
        check_kernel(self.kernel, "kernel", INPUT_KERNELS)
        check_kernel(self.output_kernel, "output_kernel")


@dataclass
class Prediction:
    """``mask_prob`` ``[B, 1, h, w]`` in [0, 1]; ``image_score`` ``[B]`` or ``None``;
    ``extra_maps``: further per-pixel outputs by name (TruFor's ``confidence``), each
    ``[B, 1, h, w]`` in [0, 1] at the resolution of ``mask_prob``, exported by ``export-masks``."""

    mask_prob: torch.Tensor
    image_score: torch.Tensor | None = None
    extra_maps: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = self.mask_prob
        if m.ndim != 4 or m.shape[1] != 1:
            raise MethodContractError(f"Prediction.mask_prob must be [B, 1, H, W], got {tuple(m.shape)}")
        if self.image_score is not None and self.image_score.shape != (m.shape[0],):
            raise MethodContractError(f"Prediction.image_score must be [B]={m.shape[0]}, "
                             f"got {tuple(self.image_score.shape)}")
        for name, extra in self.extra_maps.items():
            if tuple(extra.shape) != tuple(m.shape):
                raise MethodContractError(f"Prediction.extra_maps[{name!r}] must have mask_prob's shape "
                                 f"{tuple(m.shape)}, got {tuple(extra.shape)}")


class Method(nn.Module):
    """Base class of localizers. Subclasses set ``name``-level metadata as class variables."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("native")
    trainable: ClassVar[bool] = False
    file_inputs: ClassVar[tuple[str, ...]] = ()
    """What this method needs from the image file besides its pixels (``("jpeg_dct",)``)."""
    needs_ground_truth: ClassVar[bool] = False
    """Test-only sanity methods (oracles) get the masks; the runner passes them to no one else."""
    reference: ClassVar[str] = ""
    """Paper the method implements (shown by ``imlbench list methods -v``)."""
    labelled_defaults: ClassVar[dict[str, object]] = {}
    """Options whose default changed after results were published (NCL's ``pivot``, MPC's
    ``kernel``): always written into the method's label, config identity and checkpoint
    lookup, so records and checkpoints made under the old default never pass for the new one."""
    weight_init_options: ClassVar[dict[str, object]] = {"pretrained_path": None}
    """Options that only choose the *initial* weights (an ImageNet file), with the value they
    take when a checkpoint is loaded: the checkpoint replaces those weights, so rebuilding a
    trained model must not need the initialisation file any more (it may be long gone)."""

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

    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
        """The state dict of a checkpoint imlbench did not write (an official release), in this
        class's names, for ``load_state_dict(strict=True)``. Default: the file as a state dict
        (``weights_only`` unless ``trust``), mapped by ``convert_state_dict`` when the class has
        one. Zoo methods override it to unwrap their official container (or folder)."""
        from imlbench.weights import read_state_dict

        if Path(path).is_dir():
            raise CheckpointError(f"{path} is a folder; method {cls.__name__} loads one weights file "
                             "(.safetensors or .pth)")
        state = read_state_dict(path, trust=trust)
        convert = getattr(cls, "convert_state_dict", None)
        return convert(state) if convert is not None else state

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates in the current stage (default: all requiring grad)."""
        return [p for p in self.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training losses by term; the key ``"loss"`` is the total that is back-propagated.

        ``batch``: ``image float [B,3,H,W]`` in [0,1], ``mask float [B,1,H,W]`` in {0,1},
        ``label long [B]``.
        """
        raise NotImplementedError(f"{type(self).__name__} is not trainable")


def build_config(method: str, config_class: type[ConfigT], options: dict[str, Any]) -> ConfigT:
    """``config_class(**options)`` for method ``method``; an unknown option is refused with the
    method's options listed (the CLI checks types first; this guards the Python API too)."""
    from dataclasses import fields

    from imlbench.errors import UnknownOptionError

    names = {f.name for f in fields(config_class)}
    if unknown := sorted(set(options) - names):
        raise UnknownOptionError(f"{method}: unknown option(s) {unknown}; options are {sorted(names)}")
    return config_class(**options)
