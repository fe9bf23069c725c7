"""TruFor as an imlbench method: Noiseprint++ + dual MiT encoder with CMX fusion, a localisation
decoder, a confidence decoder and a detector on pooled statistics of both maps.

Forward (:meth:`TruFor.forward`, input ``x float [B, 3, H, W]`` = uint8 / 256 as the official
loader gives it):

1. ``noise = noiseprint(x)`` ``[B, 1, H, W]``, tiled to 3 channels; the RGB stream gets
   ``(x - ImageNet mean) / std``.
2. The dual encoder gives four fused maps (1/4 ... 1/32); the two SegFormer MLP decoders map
   them to logits on the 1/4 grid (``ceil(H/4)``), bilinearly resized to ``H × W`` inside the
   forward (``size=``, align_corners False).
3. Detection: 4 pooled statistics (soft-min, soft-max, mean, mean square) of the confidence
   logits (uniform weights) and of the margin ``l1 - l0`` weighted by ``sigmoid(conf)``, over
   all full-resolution pixels -> ``Linear(8,128), ReLU, Dropout(0.5), Linear(128,1)``.

``predict`` multiplies imlbench's ``uint8 / 255`` by ``255 / 256`` first and returns
``softmax(loc)[:, 1]`` as ``mask_prob``, ``sigmoid(conf)`` as ``extra_maps["confidence"]`` and
``sigmoid(det)`` as the image score (the official outputs ``map``, ``conf``, ``score``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import CheckpointError, ConfigError, ImlbenchError
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.trufor import losses
from imlbench.methods.trufor.fusion import DualEncoder
from imlbench.methods.trufor.mit import MiTSpec, init_transformer_weights
from imlbench.methods.trufor.noiseprint import NoiseprintExtractor
from imlbench.registry import METHODS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PHASES = ("2", "3")


class ImageTooSmallError(ImlbenchError, ValueError):
    """An image below the encoder's minimum side (29 px for MiT-B2)."""


@dataclass(frozen=True)
class TruForConfig:
    """Keywords of ``METHODS.build("trufor", ...)``; defaults = the released TruFor.

    Architecture: ``embed_dims``, ``depths``, ``num_heads``, ``sr_ratios``, ``mlp_ratio``
    (MiT-B2), ``drop_path_rate`` (training only), ``decoder_dim`` (512), ``noiseprint_depth`` /
    ``noiseprint_width`` (17 convs of 64 channels).
    ``loc_bn_eps``: BatchNorm eps of the localisation decoder (1e-3, set by the official
    ``init_weight``). ``conf_bn_eps``: that of the confidence decoder: 1e-5 as the official
    inference code (``test_docker``) builds it; the training code used 1e-3 (its ``test.py``
    gives slightly different confidence maps and scores from the same weights).
    ``input_divisor``: the official loader divides uint8 by 256, not 255.
    ``phases``: which official training phases ``imlbench train`` runs (``"2"``: encoder +
    localisation decoder, Noiseprint++ frozen; ``"3"``: confidence decoder + detector, the
    rest frozen). Phase 1 (Noiseprint++ itself) is not released.
    ``noiseprint_weights``: optional path to the official ``noiseprint++.th`` loaded at
    construction (phase 2 starts from it). ``encoder_weights``: optional path to an ImageNet
    MiT file (SegFormer's ``mit_b2.pth``) loaded into *both* streams, as phase 2 starts.
    Loss weights (official values): ``class_weights``, ``ce_weight``, ``dice_weight`` (phase 2);
    ``conf_weight``, ``det_weight``, ``tcp_erode``, ``tcp_dilate``, ``det_min_pixels`` (phase 3).
    """

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1
    decoder_dim: int = 512
    noiseprint_depth: int = 17
    noiseprint_width: int = 64
    loc_bn_eps: float = 1e-3
    conf_bn_eps: float = 1e-5
    input_divisor: float = 256.0
    phases: tuple[str, ...] = PHASES
    noiseprint_weights: str | None = None
    encoder_weights: str | None = None
    class_weights: tuple[float, float] = (0.5, 2.5)
    ce_weight: float = 0.3
    dice_weight: float = 0.7
    conf_weight: float = 1.0
    det_weight: float = 0.5
    tcp_erode: int = 15
    tcp_dilate: int = 11
    det_min_pixels: int = 3

    def __post_init__(self) -> None:
        for name in ("embed_dims", "depths", "num_heads", "sr_ratios", "phases", "class_weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.phases or any(p not in PHASES for p in self.phases) or \
                list(self.phases) != sorted(set(self.phases)):
            raise ConfigError(f"trufor: phases must be a non-empty ordered subset of {PHASES}, "
                             f"got {self.phases}")
        if len(self.class_weights) != 2:
            raise ConfigError(f"trufor: class_weights needs 2 values, got {self.class_weights}")
        for name in ("tcp_erode", "tcp_dilate"):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f"trufor: {name} must be odd, got {getattr(self, name)}")

    @property
    def mit(self) -> MiTSpec:
        return MiTSpec(self.embed_dims, self.depths, self.num_heads, self.sr_ratios,
                       self.mlp_ratio, self.drop_path_rate)


class MLPDecoder(nn.Module):
    """SegFormer all-MLP decoder: per-scale Linear to ``dim``, bilinear to the 1/4 grid,
    concatenated coarse-to-fine (c4, c3, c2, c1), 1×1 conv + BN + ReLU, Dropout2d(0.1), 1×1
    conv to ``classes`` logits ``[B, classes, h1, w1]``."""

    def __init__(self, in_dims: tuple[int, ...], dim: int, classes: int, bn_eps: float):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(c, dim) for c in in_dims)
        self.fuse = nn.Sequential(nn.Conv2d(len(in_dims) * dim, dim, 1),
                                  nn.BatchNorm2d(dim, eps=bn_eps), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(dim, classes, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        maps = []
        for proj, f in zip(self.proj, feats):
            b, _, h, w = f.shape
            m = proj(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)
            maps.append(m if (h, w) == size else
                        F.interpolate(m, size=size, mode="bilinear", align_corners=False))
        return self.classifier(self.dropout(self.fuse(torch.cat(maps[::-1], dim=1))))

    def reset_parameters(self) -> None:
        """Official head initialisation: Kaiming-normal convs (fan_in, ReLU), unit BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def weighted_statistics(x: Tensor, log_w: Tensor | None = None) -> Tensor:
    """``x [B, C, H, W]`` (``log_w [B, 1, H, W]``: unnormalised log pixel weights, ``None`` =
    uniform) -> ``[B, 4C]``: soft-min ``-logsumexp(log w - x)``, soft-max
    ``logsumexp(log w + x)``, mean ``Σ w x`` and mean square ``Σ w x²`` with ``w`` normalised
    over the pixels."""
    x = x.flatten(2)
    if log_w is None:
        log_w = torch.zeros_like(x[:, :1])
    log_w = F.log_softmax(log_w.flatten(2), dim=-1)
    w = log_w.exp()
    return torch.cat((-torch.logsumexp(log_w - x, dim=-1), torch.logsumexp(log_w + x, dim=-1),
                      (w * x).sum(-1), (w * x * x).sum(-1)), dim=1)


@METHODS.register("trufor")
class TruFor(Method):
    """TruFor: Noiseprint++ and RGB through a CMX-fused MiT-B2, with confidence and detection."""

    trainable = True
    reference = ("Guillaro et al., TruFor: Leveraging all-round clues for trustworthy image "
                 "forgery detection and localization, CVPR 2023 (github.com/grip-unina/TruFor)")
    input_policy = InputPolicy("native")  # official: one image at a time at its own size
    weight_init_options = {"noiseprint_weights": None, "encoder_weights": None}
    stages = PHASES

    def __init__(self, **kwargs: Any):
        super().__init__()
        cfg = self.config = build_config("trufor", TruForConfig, kwargs)
        self.stages = cfg.phases  # type: ignore[misc]
        spec = cfg.mit
        self.min_side = spec.min_input_side()
        self.noiseprint = NoiseprintExtractor(cfg.noiseprint_depth, cfg.noiseprint_width)
        self.encoder = DualEncoder(spec)
        self.loc_head = MLPDecoder(spec.embed_dims, cfg.decoder_dim, 2, cfg.loc_bn_eps)
        self.conf_head = MLPDecoder(spec.embed_dims, cfg.decoder_dim, 1, cfg.conf_bn_eps)
        self.detector = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        init_transformer_weights(self.encoder)
        self.loc_head.reset_parameters()
        self.conf_head.reset_parameters()
        if cfg.noiseprint_weights:
            self.load_noiseprint(cfg.noiseprint_weights)
        if cfg.encoder_weights:
            self.load_imagenet_encoder(cfg.encoder_weights)
        self.stage: str | None = None

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """A tiny TruFor (same code path, 0.19 M parameters) for tests: 64² CPU forward in milliseconds."""
        return {"embed_dims": (8, 16, 24, 32), "depths": (1, 1, 1, 1), "num_heads": (1, 2, 3, 4),
                "decoder_dim": 16, "noiseprint_depth": 3, "noiseprint_width": 8}

    def load_noiseprint(self, path: str | Path) -> None:
        """Load the official ``noiseprint++.th`` (``{"network": {"0.weight": ...}, ...}``,
        tensors saved on CUDA) strictly into :attr:`noiseprint`."""
        from imlbench.methods.trufor.keymap import read_noiseprint
        self.noiseprint.layers.load_state_dict(read_noiseprint(Path(path)))

    def load_imagenet_encoder(self, path: str | Path) -> None:
        """Both MiT streams from an ImageNet MiT file (the fusion modules keep their init)."""
        from imlbench.methods.trufor.keymap import read_imagenet_mit
        state = read_imagenet_mit(Path(path))
        streams = {k for k in self.encoder.state_dict() if k.startswith(("rgb.", "noise."))}
        if missing := sorted(streams - set(state)):
            raise CheckpointError(f"{path} lacks {len(missing)} encoder weights (e.g. "
                                  f"{missing[:3]}); it does not fit embed_dims={self.config.embed_dims}, "
                                  f"depths={self.config.depths}")
        try:
            self.encoder.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not fit the encoder: {str(exc).splitlines()[-1].strip()}") from exc

    @classmethod
    def read_official_checkpoint(cls, path: Path, *, trust: bool) -> dict[str, Tensor]:
        """The released ``trufor.pth.tar`` (or a bare official state_dict) as our state_dict."""
        from imlbench.methods.trufor.keymap import read_official
        return read_official(path, trust=trust)

    # -- forward ------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> list[Tensor]:
        """``x [B, 3, H, W]`` = uint8 / ``input_divisor`` -> the four fused encoder maps."""
        h, w = x.shape[-2:]
        if min(h, w) < self.min_side:
            raise ImageTooSmallError(f"trufor: image {h}x{w} is too small: this encoder needs at least "
                             f"{self.min_side} px per side (its spatial-reduction convs); the "
                             f"official code skips such images")
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage is None):
            noise = self.noiseprint(x)  # frozen whenever a training phase is set
        return self.encoder((x - self.mean) / self.std, noise.repeat(1, 3, 1, 1))

    def localize(self, feats: list[Tensor], size: tuple[int, int]) -> Tensor:
        """Localisation logits ``[B, 2, H, W]`` (float32) at ``size``."""
        return F.interpolate(self.loc_head(feats).float(), size=size, mode="bilinear",
                             align_corners=False)

    def confidence_and_detection(self, feats: list[Tensor], loc: Tensor) -> tuple[Tensor, Tensor]:
        """Confidence logits ``[B, 1, H, W]`` (at ``loc``'s size) and detection logit ``[B, 1]``.
        The pooling runs over every pixel of the full-size maps: float32, outside autocast."""
        conf = F.interpolate(self.conf_head(feats).float(), size=loc.shape[-2:], mode="bilinear",
                             align_corners=False)
        with torch.autocast(loc.device.type, enabled=False):
            loc = loc.float()
            pooled = torch.cat((weighted_statistics(conf), weighted_statistics(
                loc[:, 1:2] - loc[:, 0:1], F.logsigmoid(conf))), dim=1)
            return conf, self.detector(pooled)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` = uint8 / ``input_divisor`` -> ``(loc [B, 2, H, W], conf [B, 1, H, W],
        det [B, 1])`` logits, the official ``(out, conf, det)``."""
        feats = self.encode(x)
        loc = self.localize(feats, tuple(x.shape[-2:]))
        conf, det = self.confidence_and_detection(feats, loc)
        return loc, conf, det

    @torch.no_grad()
    def predict(self, images: Tensor, masks: Tensor | None = None) -> Prediction:
        loc, conf, det = self(images * (255.0 / self.config.input_divisor))
        return Prediction(loc.softmax(dim=1)[:, 1:2], torch.sigmoid(det[:, 0]),
                          extra_maps={"confidence": torch.sigmoid(conf)})

    # -- training -----------------------------------------------------------------------------
    def set_stage(self, stage: str) -> None:
        super().set_stage(stage)
        self.stage = stage
        self.noiseprint.requires_grad_(False)  # Noiseprint++ stays frozen in phases 2 and 3
        self.encoder.requires_grad_(stage == "2")
        self.loc_head.requires_grad_(stage == "2")
        self.conf_head.requires_grad_(stage == "3")
        self.detector.requires_grad_(stage == "3")
        self.train(self.training)

    def train(self, mode: bool = True) -> "TruFor":
        super().train(mode)
        if self.stage is not None:  # frozen parts keep eval mode (BN statistics, no dropout)
            self.noiseprint.eval()
            if self.stage == "3":
                self.encoder.eval()
                self.loc_head.eval()
        return self

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.stage is None:
            raise RuntimeError(f"trufor: call set_stage(...) with one of {self.stages} before loss()")
        cfg = self.config
        x, mask = batch["image"] * (255.0 / cfg.input_divisor), batch["mask"]
        size = tuple(x.shape[-2:])
        if self.stage == "2":  # encoder + localisation decoder; the other heads do not run
            loc = self.localize(self.encode(x), size)
            return losses.localization_loss(loc, mask, cfg.class_weights, cfg.ce_weight, cfg.dice_weight)
        with torch.no_grad():  # phase 3: encoder and localisation decoder frozen
            feats = self.encode(x)
            loc = self.localize(feats, size)
        conf, det = self.confidence_and_detection(feats, loc)
        conf_term = losses.confidence_loss(loc, conf, mask, cfg.tcp_erode, cfg.tcp_dilate)
        det_term = losses.detection_loss(det, mask, cfg.det_min_pixels)
        return {"loss": cfg.conf_weight * conf_term + cfg.det_weight * det_term,
                "confidence": conf_term, "detection": det_term}
