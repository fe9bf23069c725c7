"""IML-ViT's decoder: the ViTDet simple feature pyramid and the fused 1x1 prediction head.

``[B, D, g, g]`` encoder features -> pyramid p2..p6 ``[B, C, 4g / 2^i, ...]`` (strides 4, 8, 16,
32, 64 of the canvas) -> head -> ``[B, 1, 4g, 4g]`` logits at 1/4 of the canvas.

Official layer order (window_attention_ViT.py ``SimpleFeaturePyramid``, decoderhead.py
``PredictHead``): each level resamples (x4: ConvT, channel-LN, GELU, ConvT; x2: ConvT; x1:
nothing; x0.5: max-pool 2), then a bias-free 1x1 conv and a bias-free 3x3 conv, each followed by
the *channel* LayerNorm over dim 1 (not ``nn.LayerNorm``); p6 takes every other pixel of p5
(the official ``max_pool2d(kernel_size=1, stride=2)``, which is a subsampling, not a max).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HeadNorm = Literal["BN", "IN", "LN"]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, H, W]`` (eps 1e-6), computed as the official
    code does: biased variance, ``(x - mean) / sqrt(var + eps)``, then the affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNorm(nn.Conv2d):
    """Bias-free conv followed by a channel LayerNorm held as ``.norm`` (the official
    detectron2-style ``Conv2d(..., norm=...)``, so the names are ``weight``, ``norm.*``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.norm = ChannelLayerNorm(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))


class Upsample4x(nn.Module):
    """``[B, D, g, g]`` -> ``[B, D/4, 4g, 4g]``: ConvT(k2, s2) to D/2, channel-LN, GELU,
    ConvT(k2, s2) to D/4."""

    def __init__(self, dim: int):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)
        self.norm = ChannelLayerNorm(dim // 2)
        self.act = nn.GELU()
        self.up2 = nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up2(self.act(self.norm(self.up1(x))))


class PyramidLevel(nn.Module):
    """``resample`` (may be absent), then ``lateral`` (1x1 ConvNorm to C) and ``output``
    (3x3 ConvNorm)."""

    def __init__(self, resample: nn.Module | None, c_in: int, channels: int):
        super().__init__()
        self.resample = resample if resample is not None else nn.Identity()
        self.lateral = ConvNorm(c_in, channels, 1)
        self.output = ConvNorm(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.lateral(self.resample(x)))


class SimpleFeaturePyramid(nn.Module):
    """``[B, D, g, g]`` -> ``[p2, p3, p4, p5, p6]``, each ``[B, C, ...]`` at 4g, 2g, g, g/2,
    g/4 (rounded up) pixels: the scales (4, 2, 1, 0.5) of the official model, plus p6."""

    def __init__(self, dim: int, channels: int):
        super().__init__()
        self.p2 = PyramidLevel(Upsample4x(dim), dim // 4, channels)
        self.p3 = PyramidLevel(nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
                               dim // 2, channels)
        self.p4 = PyramidLevel(None, dim, channels)
        self.p5 = PyramidLevel(nn.MaxPool2d(kernel_size=2, stride=2), dim, channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        levels = [self.p2(x), self.p3(x), self.p4(x), self.p5(x)]
        return levels + [levels[-1][:, :, ::2, ::2]]  # p6: subsampled p5


def head_norm(kind: HeadNorm, channels: int) -> nn.Module:
    """The official ``predict_head_norm`` choices: BN (the default and the released models),
    IN with running statistics and affine (same state_dict names as BN), channel LN."""
    if kind == "BN":
        return nn.BatchNorm2d(channels)
    if kind == "IN":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)
    return ChannelLayerNorm(channels)


class PredictHead(nn.Module):
    """Five pyramid maps -> bilinearly resized (align_corners=False) to p2's size ->
    concatenated (5C) -> 1x1 ``fuse`` to C -> ``norm`` -> dropout 0.5 -> 1x1 ``predict`` to 1."""

    def __init__(self, channels: int, norm: HeadNorm):
        super().__init__()
        self.fuse = nn.Conv2d(5 * channels, channels, kernel_size=1)
        self.norm = head_norm(norm, channels)
        self.dropout = nn.Dropout(0.5)
        self.predict = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, levels: list[Tensor]) -> Tensor:
        size = levels[0].shape[-2:]
        # p2 itself: a same-size bilinear resize is the identity, so it is skipped
        fused = torch.cat([levels[0]] + [F.interpolate(f, size=size, mode="bilinear",
                                                       align_corners=False)
                                         for f in levels[1:]], dim=1)
        return self.predict(self.dropout(self.norm(self.fuse(fused))))
