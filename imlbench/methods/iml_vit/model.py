"""IML-ViT as an imlbench method: config, predict on the canvas, loss, checkpoint mapping.

Input: RGB in [0, 1] padded (black, before normalising) bottom/right to the ``canvas``² the
model always runs at, then ImageNet mean/std. Output: ``sigmoid`` of the logits upsampled
bilinearly (align_corners=False) from 1/4 to the canvas, cropped to the image; no image score.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import ConfigError, UsageError
from imlbench.methods.base import InputPolicy, Method, Prediction, build_config
from imlbench.methods.iml_vit.decoder import HeadNorm, PredictHead, SimpleFeaturePyramid
from imlbench.methods.iml_vit.keymap import official_to_ours, read_mae_encoder
from imlbench.methods.iml_vit.losses import edge_band, iml_vit_loss
from imlbench.methods.iml_vit.vit import ViTShape, WindowedViT
from imlbench.registry import METHODS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_VALUE = 0.0
"""Black, in [0, 1] pixel space before normalisation (albumentations PadIfNeeded(value=0) on
the uint8 image): after normalising the padding is -mean/std, not 0."""


@dataclass(frozen=True)
class IMLViTConfig:
    """Keywords of ``METHODS.build("iml_vit", ...)``; the defaults are the official model.

    Architecture (official values, iml_vit_model.py): ``canvas`` 1024, ``patch_size`` 16,
    ``embed_dim`` 768, ``depth`` 12, ``num_heads`` 12, ``mlp_ratio`` 4, ``window_size`` 14,
    ``global_blocks`` (2, 5, 8, 11), ``pos_grid`` 14 (MAE's 224-px position grid),
    ``drop_path_rate`` 0.1, ``fpn_channels`` 256 (pyramid and head width; the official
    ``mlp_embeding_dim`` must equal it), ``head_norm`` "BN" (also "IN", "LN").
    Loss (official): ``edge_lambda`` 20, ``edge_width`` 7.

    ``oversize`` (our choice; official code: "crop"): what happens to an image larger than the
    canvas. "crop": the official behaviour, the model sees the top-left ``canvas``² only and the
    rest of the map scores 0. "resize" (default): the long side is shrunk to the canvas
    (``oversize_kernel``) so every pixel gets a real prediction; scoring a region the model
    never looked at as authentic would change scores for reasons outside the method. Images
    that fit (CASIA, Columbia, Coverage, ...) are unaffected by either.

    ``pretrained_path``: MAE ImageNet ViT-B/16 weights for the encoder (the official
    initialisation, ``mae_pretrain_vit_base.pth``), loaded after the random init and checked
    strictly (:func:`~imlbench.methods.iml_vit.keymap.read_mae_encoder`).
    """

    canvas: int = 1024
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_blocks: tuple[int, ...] = (2, 5, 8, 11)
    pos_grid: int = 14
    drop_path_rate: float = 0.1
    fpn_channels: int = 256
    head_norm: HeadNorm = "BN"
    edge_lambda: float = 20.0
    edge_width: int = 7
    oversize: Literal["resize", "crop"] = "resize"
    oversize_kernel: str = "bilinear_aa"
    pretrained_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "global_blocks", tuple(self.global_blocks))  # YAML lists
        if self.canvas % self.patch_size:
            _bad("canvas", self.canvas, f"a multiple of patch_size ({self.patch_size})")
        if self.canvas // self.patch_size < 2:
            _bad("canvas", self.canvas, "at least 2 patches wide (p5 halves the token grid)")
        if self.embed_dim % 4 or self.embed_dim % self.num_heads:
            _bad("embed_dim", self.embed_dim, f"divisible by 4 (the x4 pyramid level) and by "
                 f"num_heads ({self.num_heads})")
        if any(not 0 <= i < self.depth for i in self.global_blocks):
            _bad("global_blocks", self.global_blocks, f"block indices in [0, {self.depth})")
        if self.window_size < 1:
            _bad("window_size", self.window_size, "a positive number of tokens")
        if self.head_norm not in ("BN", "IN", "LN"):
            _bad("head_norm", self.head_norm, "one of 'BN', 'IN', 'LN'")
        if self.edge_width < 1 or self.edge_width % 2 == 0:
            _bad("edge_width", self.edge_width, "a positive odd number")
        if self.oversize not in ("resize", "crop"):
            _bad("oversize", self.oversize, "'resize' or 'crop'")

    @property
    def vit_shape(self) -> ViTShape:
        return ViTShape(**{f.name: getattr(self, f.name) for f in fields(ViTShape)})


def _bad(field: str, value: object, expected: str) -> None:
    raise ConfigError(f"iml_vit: {field}={value!r} is invalid; expected {expected}")


@METHODS.register("iml_vit")
class IMLViT(Method):
    """IML-ViT: windowed ViT-B/16 + simple feature pyramid on a black-padded 1024² canvas."""

    trainable = True
    reference = ("Ma et al., IML-ViT: Benchmarking Image Manipulation Localization by Vision "
                 "Transformer, arXiv:2307.14863 (github.com/SunnyHaze/IML-ViT)")
    input_policy = InputPolicy("canvas", 1024, pad_value=PAD_VALUE, oversize="resize")

    def __init__(self, **kwargs: Any):
        super().__init__()
        cfg = self.config = build_config("iml_vit", IMLViTConfig, kwargs)
        self.input_policy = InputPolicy(  # type: ignore[misc]  (per instance: the canvas size)
            "canvas", cfg.canvas, pad_value=PAD_VALUE, oversize=cfg.oversize,
            kernel=cfg.oversize_kernel)
        self.encoder = WindowedViT(cfg.vit_shape)
        self.pyramid = SimpleFeaturePyramid(cfg.embed_dim, cfg.fpn_channels)
        self.head = PredictHead(cfg.fpn_channels, cfg.head_norm)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._init_weights()
        if cfg.pretrained_path is not None:
            self.load_pretrained_encoder(cfg.pretrained_path)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """The same code path at a 64² canvas: 8x8 tokens, windows of 3 (padded 8 -> 9 as the
        official 64 -> 70), one window and one global block, a 4x4 position grid resized
        bicubically, a 16-channel pyramid."""
        return {"canvas": 64, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
                "window_size": 3, "global_blocks": (1,), "pos_grid": 4, "fpn_channels": 16}

    # -- initialisation ---------------------------------------------------------------------
    def _init_weights(self) -> None:
        """As the official model: xavier-uniform Linear layers (bias 0), LayerNorms 1/0,
        truncated-normal (std 0.02) position embedding, zero relative-position tables, and
        PyTorch's defaults for the convolutions and the head norm."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.encoder.pos_embed, std=0.02)

    def load_pretrained_encoder(self, path: str | Path) -> None:
        """Fill the encoder from MAE ImageNet weights (all but the relative-position tables)."""
        shapes = {k: v.shape for k, v in self.encoder.state_dict().items()}
        weights = read_mae_encoder(path, shapes)
        result = self.encoder.load_state_dict(weights, strict=False)
        left = [k for k in result.missing_keys if ".rel_pos_" not in k]
        if left or result.unexpected_keys:  # read_mae_encoder checked the keys: a bug if hit
            raise RuntimeError(f"iml_vit: MAE load left {left} / {result.unexpected_keys}")

    # -- checkpoints ------------------------------------------------------------------------
    @classmethod
    def convert_state_dict(cls, state: dict[str, Any]) -> dict[str, Tensor]:
        """An official file (bare state_dict, or ``{"model": ...}`` from main_train.py) with the
        official names -> our names (:mod:`imlbench.methods.iml_vit.keymap`)."""
        return official_to_ours(state)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, canvas: Tensor) -> Tensor:
        """Normalised ``[B, 3, S, S]`` canvas -> logits ``[B, 1, S, S]``."""
        levels = self.pyramid(self.encoder(canvas))
        logits = self.head(levels)  # [B, 1, S/4, S/4]
        return F.interpolate(logits, size=canvas.shape[-2:], mode="bilinear", align_corners=False)

    def to_canvas(self, x: Tensor, value: float) -> Tensor:
        """Pad ``[B, C, h, w]`` (h, w <= canvas) bottom/right to ``[B, C, S, S]``."""
        s = self.config.canvas
        h, w = x.shape[-2:]
        if h > s or w > s:
            raise UsageError(f"iml_vit: got a {h}x{w} input, larger than the {s}x{s} canvas; "
                             f"the runner shapes images with input_policy ({self.input_policy}) "
                             "so that they fit")
        return F.pad(x, (0, s - w, 0, s - h), value=value) if (h, w) != (s, s) else x

    def normalise(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std

    @torch.no_grad()
    def predict(self, images: Tensor, masks: Tensor | None = None) -> Prediction:
        """``images [B, 3, h, w]`` in [0, 1], ``h, w <= canvas`` (smaller ones are padded here
        exactly as the input policy pads them) -> ``mask_prob [B, 1, h, w]``. One image per
        forward: each global block holds a ``heads x 4096²`` float32 attention map (0.8 GB)
        at the official canvas; the eval-mode result does not depend on the batch."""
        h, w = images.shape[-2:]
        probs = [torch.sigmoid(self(self.normalise(self.to_canvas(image, PAD_VALUE))))
                 for image in images.split(1)]
        return Prediction(torch.cat(probs)[:, :, :h, :w].float())

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The published loss (:mod:`imlbench.methods.iml_vit.losses`) on the canvas. The edge
        band is computed on the mask as given, then padded with 0 (the official order). Batches
        already at the canvas size (the runner padded them) get the band of the padded mask:
        it then also runs along a tampered region that touches the image's bottom/right edge."""
        image, mask = batch["image"], batch["mask"].float()
        edge = edge_band(mask, self.config.edge_width)
        logits = self(self.normalise(self.to_canvas(image, PAD_VALUE)))
        return iml_vit_loss(logits, self.to_canvas(mask, 0.0), self.to_canvas(edge, 0.0),
                            self.config.edge_lambda)
