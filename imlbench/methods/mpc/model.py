"""MPC: multi-view pixel contrast (Lou et al., IEEE TIFS 2025) as an imlbench method.

Two training stages:

* ``"1"``: the HRFormer encoder alone, trained with the multi-view pixel contrast
  (:mod:`imlbench.methods.mpc.losses`) on L2-normalised 256-d embeddings of four scales.
* ``"2"``: a 1×1-conv localisation head on the four scales upsampled to 1/4 and concatenated
  (raw, not normalised, as in the official stage 2), trained with a sigmoid focal loss (or
  BCE). The encoder is *really* frozen here: no gradients, and eval mode (BatchNorm statistics
  fixed, drop-path off) however often the training loop calls ``train()`` — the official code
  left it in train mode, so its statistics drifted during stage 2.

"MPC without stage 1" (``stage1=False``, for the ablation "mpc vs mpc without stage 1 vs
seg_ce at equal budget"): stages are ``("2",)`` and encoder and head are trained *jointly*
from random initialisation with the head loss. That isolates what the contrastive
pre-training adds over plain supervised training of the same network; a frozen random encoder
would only measure a random feature extractor. Give that run the whole budget (both stages).
It is registered as ``mpc_no_stage1`` too: the training loop reads ``stages`` from the class,
and a per-method recipe can give its single stage the stage-1 learning rate.

Input: RGB in [0, 1] resized to ``input_size``² (no mean/std) with ``cv2.resize`` INTER_LINEAR
on the uint8 image, as the official dataset code does. Output: probabilities at 1/4 of the
input, which the runner resizes straight to the ground truth with ``cv2.resize`` (float32,
INTER_LINEAR), as the official test script does. Both kernels are config fields (``kernel``,
``output_kernel``; ``bilinear_aa`` gives imlbench's torch resampling).

Official weights: ``imlbench run --method mpc --checkpoint MPC_CATNet_stage2_weights.pth``
(``--config head_widths=[512,256,128,64]`` for the released CASIAv2 file). ImageNet start:
``--config pretrained_path=hrt_base.pth`` (or an official stage-1 file) initialises the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import CheckpointError, ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.mpc.hrformer import HRFORMER_PRESETS, HRFormer
from imlbench.methods.mpc.keymap import encoder_init_state, official_to_ours
from imlbench.methods.mpc.losses import (TERMS, ContrastSettings, LossForm, image_contrast_loss,
                                         mask_pyramid, resize_mask, sigmoid_focal_loss)
from imlbench.registry import METHODS
from imlbench.weights import read_state_dict


@dataclass(frozen=True)
class MPCConfig:
    """Switches of the ``mpc`` method (all are ``METHODS.build("mpc", **kwargs)`` keywords).

    ``backbone``: HRFormer preset (``base`` = HRFormer-B of the paper, ``small``, ``tiny``).
    ``drop_path_rate``: overrides the preset's stochastic depth (it makes the two views differ).
    ``head_widths``: hidden widths of the head; ``(512, 256, 128)`` is the official head,
    ``(512, 256, 128, 64)`` the one of the released CASIAv2 checkpoint.
    ``freeze_encoder``: ``None`` = frozen in stage 2 exactly when stage 1 ran.
    ``views``: contrast terms for ablations, a subset of ``within``, ``scale``, ``view``.
    ``max_samples``: pixels sampled per (feature set, class) and term (official 5000). The
    draws come from torch's global CPU generator, which the training loop seeds and checkpoints:
    a run is reproducible and resumes with the same draws.
    """

    backbone: str = "base"
    drop_path_rate: float | None = None
    embed_dim: int = 256
    head_widths: tuple[int, ...] = (512, 256, 128)
    input_size: int = 512
    stage1: bool = True
    freeze_encoder: bool | None = None
    loss_form: LossForm = "code"
    views: tuple[str, ...] = TERMS
    head_loss: Literal["focal", "ce"] = "focal"
    focal_alpha: float = 0.5
    focal_gamma: float = 2.0
    temperature: float = 0.1
    max_samples: int = 5000
    kernel: str = "cv2_linear"
    """Input resize (official: ``cv2.resize`` INTER_LINEAR of the uint8 RGB image, mydatasets.py)."""
    output_kernel: str = "cv2_linear"
    """Map back to the image (official test.py: ``cv2.resize`` of the 1/4-resolution sigmoid map
    straight to the image size); ``predict`` therefore returns the 1/4 map."""
    pretrained_path: str | None = None
    """Encoder initialisation before training: an ImageNet HRFormer checkpoint (``hrt_base.pth``,
    as the official stage 1 starts from) or an official MPC stage-1 file; mapped strictly (only
    the embedding projections MPC adds may be absent). ``None``: random initialisation."""
    require_pretrained: bool = False
    """Refuse to start without ``pretrained_path`` (the ``paper`` recipes set it: the official
    stage 1 starts HRFormer-B from ImageNet ``hrt_base.pth``)."""

    def __post_init__(self) -> None:
        # YAML gives lists; keep the config hashable and comparable.
        object.__setattr__(self, "head_widths", tuple(self.head_widths))
        object.__setattr__(self, "views", tuple(self.views))
        if self.backbone not in HRFORMER_PRESETS:
            raise ConfigError(f"mpc: unknown backbone {self.backbone!r}; "
                             f"choose one of {sorted(HRFORMER_PRESETS)}")
        _check_choice("loss_form", self.loss_form, ("code", "paper"))
        _check_choice("head_loss", self.head_loss, ("focal", "ce"))
        unknown = set(self.views) - set(TERMS)
        if unknown or not self.views:
            raise ConfigError(f"mpc: views must be a non-empty subset of {TERMS}, got {self.views}")
        if not self.stage1 and self.freeze_encoder:
            raise ConfigError("mpc: stage1=False with freeze_encoder=True would train a head on a "
                             "random frozen encoder; leave freeze_encoder unset (joint training)")
        if self.require_pretrained and self.pretrained_path is None:
            raise ConfigError(
                f"mpc: this recipe starts HRFormer-{self.backbone} from ImageNet weights, as the "
                "official stage 1 does (hrt_base.pth, from the HRFormer releases), and none were "
                "given (nothing is downloaded). Pass the local file with --config "
                "pretrained_path=FILE, or train from random weights on purpose with --config "
                "require_pretrained=false")
        if self.input_size % 32:
            raise ConfigError(f"mpc: input_size must be a multiple of 32 (four scales down to "
                             f"stride 32), got {self.input_size}")

    @property
    def encoder_frozen_in_stage2(self) -> bool:
        return self.stage1 if self.freeze_encoder is None else self.freeze_encoder


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"mpc: {name} must be one of {choices}, got {value!r}")


def localization_head(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """``(BN, ReLU, 1×1 conv)`` per width, then ``(BN, ReLU, 1×1 conv -> 1 logit)``:
    ``[B, in_channels, h, w] -> [B, 1, h, w]`` (indices match the official ``classifier``)."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip((in_channels, *widths), (*widths, 1)):
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1)]
    return nn.Sequential(*layers)


@METHODS.register("mpc")
class MPC(Method):
    """Multi-view pixel contrast: HRFormer pre-trained with pixel contrast, then a 1×1 head."""

    trainable = True
    reference = ("Lou et al., Exploring Multi-View Pixel Contrast for General and Robust Image "
                 "Forgery Localization, IEEE TIFS 2025 (github.com/multimediaFor/MPC)")
    input_policy = InputPolicy("resize", 512)
    stages = ("1", "2")
    weight_init_options = {"pretrained_path": None, "require_pretrained": False}
    labelled_defaults = {"kernel": MPCConfig.kernel}
    """Records and checkpoints made before 2026-12-01 used torch resampling (``bilinear_aa``):
    the label says which kernel an ``mpc`` result was made with (``mpc[kernel=cv2_linear]``)."""

    def __init__(self, **kwargs: Any):
        super().__init__()
        cfg = self.config = build_config("mpc", MPCConfig, kwargs)
        # Per-instance: the input size and the stage list follow the config.
        self.input_policy = InputPolicy("resize", cfg.input_size, kernel=cfg.kernel,  # type: ignore[misc]
                                        output_kernel=cfg.output_kernel)
        self.stages = ("1", "2") if cfg.stage1 else ("2",)  # type: ignore[misc]
        backbone = HRFORMER_PRESETS[cfg.backbone]
        if cfg.drop_path_rate is not None:
            backbone = replace(backbone, drop_path_rate=cfg.drop_path_rate)
        self.encoder = HRFormer(backbone, cfg.embed_dim)
        self.head = localization_head(4 * cfg.embed_dim, cfg.head_widths)
        self.stage: str | None = None
        if cfg.pretrained_path is not None:
            self.load_encoder(cfg.pretrained_path)

    def load_encoder(self, path: str | Path) -> list[str]:
        """Initialise the encoder from ImageNet HRFormer weights or an official stage-1 file
        (strict, see :func:`~imlbench.methods.mpc.keymap.encoder_init_state`); returns the keys
        left at their initialisation."""
        state, left = encoder_init_state(read_state_dict(path), path,
                                         set(self.encoder.state_dict()))
        self.encoder.load_state_dict(state, strict=False)  # strictness checked by the mapping
        return left

    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool = False) -> dict[str, Tensor]:
        """An official stage-2 file (``MPC_CATNet_stage2_weights.pth``: a bare ``MyModel``
        state dict) in our names; a stage-1 file holds no head and is refused with what to do."""
        state = read_state_dict(path, trust=trust)
        kind, mapped = official_to_ours(state)
        if kind == "stage1":
            raise CheckpointError(
                f"{path} is an official MPC stage-1 file (the encoder alone, no localisation "
                "head); pass the stage-2 file to --checkpoint, or train the head on this encoder "
                f"with `imlbench train --method mpc --stage 2 --config pretrained_path={path}`")
        return mapped

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Keywords for a tiny MPC that trains a step on 64² CPU images in well under a second."""
        return {"backbone": "tiny", "embed_dim": 16, "head_widths": (16, 8), "input_size": 64,
                "max_samples": 256}

    # -- stages ---------------------------------------------------------------------------
    @property
    def encoder_frozen(self) -> bool:
        return self.stage == "2" and self.config.encoder_frozen_in_stage2

    def set_stage(self, stage: str) -> None:
        super().set_stage(stage)
        self.stage = stage
        self.encoder.requires_grad_(not self.encoder_frozen)
        self.head.requires_grad_(stage == "2")  # the head plays no part in stage 1
        self.train(self.training)

    def train(self, mode: bool = True) -> "MPC":
        super().train(mode)
        if self.encoder_frozen:  # stays in eval mode even when the loop calls train()
            self.encoder.eval()
        return self

    # -- forward --------------------------------------------------------------------------
    def features(self, images: Tensor) -> list[Tensor]:
        """Four ``[B, embed_dim, H/4/2^i, W/4/2^i]`` maps (not normalised)."""
        return self.encoder(images)

    def logits(self, feats: list[Tensor]) -> Tensor:
        """Head on the four scales upsampled (bilinear, align_corners as in the official code)
        to 1/4 and concatenated -> ``[B, 1, H/4, W/4]`` logits."""
        size = feats[0].shape[-2:]
        fused = torch.cat([feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=True)
                                        for f in feats[1:]], dim=1)
        return self.head(fused)

    @torch.no_grad()
    def predict(self, images: Tensor, masks: Tensor | None = None) -> Prediction:
        """Probabilities ``[B, 1, H/4, W/4]``: the runner resizes them to the image with
        ``output_kernel``, as the official test script does (no intermediate upsampling)."""
        return Prediction(torch.sigmoid(self.logits(self.features(images))))

    # -- losses ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.stage is None:
            raise RuntimeError(f"mpc: call set_stage(...) with one of {self.stages} before loss()")
        if self.stage == "1":
            return self._contrast_loss(batch["image"], batch["mask"])
        return self._head_loss(batch["image"], batch["mask"])

    def _contrast_loss(self, images: Tensor, mask: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        passes = 2 if "view" in cfg.views else 1  # the views differ only by stochastic depth
        raw = [self.features(images) for _ in range(passes)]
        # Similarities go through e^{s/τ} with τ = 0.1: keep them in float32 under AMP.
        with torch.autocast(images.device.type, enabled=False):
            return self._contrast_terms([[F.normalize(f.float(), dim=1) for f in fs] for fs in raw], mask)

    def _contrast_terms(self, feats: list[list[Tensor]], mask: Tensor) -> dict[str, Tensor]:
        """``feats[pass][scale]``: unit-norm ``[B, D, h_s, w_s]``; ``mask`` ``[B, 1, H, W]``."""
        cfg = self.config
        sizes = [tuple(f.shape[-2:]) for f in feats[0]]
        masks = mask_pyramid(resize_mask(mask, sizes[0]), sizes)
        settings = ContrastSettings(cfg.loss_form, cfg.views, cfg.temperature, cfg.max_samples)

        def pixels(f: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
            return f.flatten(1).T, m.flatten()

        per_image = []
        for b in range(mask.shape[0]):
            sets = {"X": pixels(feats[0][0][b], masks[0][b])}
            if "scale" in cfg.views:
                coarse = [pixels(f[b], m[b]) for f, m in zip(feats[0][1:], masks[1:])]
                sets["Y"] = (torch.cat([c[0] for c in coarse]), torch.cat([c[1] for c in coarse]))
            if "view" in cfg.views:
                sets["X2"] = pixels(feats[1][0][b], masks[0][b])
            per_image.append(image_contrast_loss(sets, settings))
        terms = {t: torch.stack([img[t] for img in per_image]).mean() for t in cfg.views}
        return {"loss": sum(terms.values()), **terms}

    def _head_loss(self, images: Tensor, mask: Tensor) -> dict[str, Tensor]:
        if self.encoder_frozen:
            with torch.no_grad():
                feats = self.features(images)
        else:
            feats = self.features(images)
        logits = self.logits(feats).float()
        target = resize_mask(mask, tuple(logits.shape[-2:])).float()
        if self.config.head_loss == "focal":
            value = sigmoid_focal_loss(logits, target, self.config.focal_alpha, self.config.focal_gamma)
        else:
            value = F.binary_cross_entropy_with_logits(logits, target)
        return {"loss": value, self.config.head_loss: value}


@METHODS.register("mpc_no_stage1")
class MPCNoStage1(MPC):
    """MPC without the contrastive stage: encoder and head trained jointly (ablation)."""

    stages = ("2",)

    def __init__(self, **kwargs: Any):
        if kwargs.get("stage1", False):
            raise ConfigError("mpc_no_stage1 always skips stage 1; use 'mpc' for the two-stage method")
        super().__init__(**{**kwargs, "stage1": False})
