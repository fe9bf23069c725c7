"""The MVSS-Net network: edge-supervised RGB view + noise-sensitive view + dual-attention head.

``MVSSNetwork(x)`` takes the *normalised* tensor the official model takes (BGR order, ImageNet
statistics applied channel by channel as they come; :class:`~imlbench.methods.mvss_net.model.
MVSSNet` prepares it) and returns the official ``forward``'s ``(edge_logits, seg_logits)``
(``models/mvssnet.py:316-355``):

* RGB view: a dilated ResNet-50 gives ``c1..c4`` (strides 4, 8, 16, 16).
* Edge branch: each ``c_i`` through a Sobel gate and an ERB to one channel, summed from fine to
  coarse through three more ERBs (coarser maps upsampled bilinearly, ``align_corners=True``)
  -> edge logits at the resolution of ``c1`` (H/4). It does not feed the localisation map; it
  only receives the edge loss in training.
* Noise view: ``grey = 0.2989·ch2 + 0.5870·ch1 + 0.1140·ch0`` of the normalised input (the
  official ``rgb2gray`` reads channel 0 as blue: right for its BGR input), a Bayar-constrained
  5×5 conv to 3 channels, and a second dilated ResNet-50; only its ``c4`` is used.
* Head: dual attention on ``concat(c4_rgb, c4_noise)`` at stride 16, upsampled bilinearly
  (``align_corners=True``) to the input size -> segmentation logits ``[B, 1, H, W]``.

The official edge branch upsamples by fixed factors (2, 4, 4), so it crashes unless the
feature sizes line up (input sides that are multiples of 16); here the coarser map is
upsampled *to* the finer map's size, which is the same operation whenever the official one
runs (with ``align_corners=True`` the sampling grid depends on the sizes only) and also works
at other sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.methods.mvss_net.layers import ERB, BayarConv, DualAttentionHead, SobelGate
from imlbench.methods.mvss_net.resnet import DilatedResNet, ResNetSpec

GREY_WEIGHTS = (0.1140, 0.5870, 0.2989)
"""Weights of channels 0, 1, 2 (B, G, R of the official input) in the noise view's grey image."""


class EdgeBranch(nn.Module):
    """``(c1, c2, c3, c4) -> edge logits [B, 1, h1, w1]`` (the size of ``c1``)."""

    def __init__(self, channels: tuple[int, int, int, int]):
        super().__init__()
        self.sobel = nn.ModuleList(SobelGate(c) for c in channels)
        self.reduce = nn.ModuleList(ERB(c, 1) for c in channels)  # official erb_db_1..4
        self.fuse = nn.ModuleList(ERB(1, 1, final_relu=i < 2) for i in range(3))  # erb_trans_1..3

    def forward(self, feats: tuple[Tensor, ...]) -> Tensor:
        side = [reduce(sobel(f)) for sobel, reduce, f in zip(self.sobel, self.reduce, feats)]
        out = side[0]
        for fuse, coarse in zip(self.fuse, side[1:]):
            out = fuse(out + _upsample_to(coarse, out))
        return out


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x  # align_corners=True at equal size is the identity
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


def grey_view(x: Tensor) -> Tensor:
    """``[B, 3, H, W] -> [B, 1, H, W]``, official ``rgb2gray`` on the normalised tensor."""
    w0, w1, w2 = GREY_WEIGHTS
    return (w2 * x[:, 2] + w1 * x[:, 1] + w0 * x[:, 0]).unsqueeze(1)


class MVSSNetwork(nn.Module):
    """The full network; ``forward(x normalised [B,3,H,W]) -> (edge [B,1,H/4,W/4], seg [B,1,H,W])``
    logits."""

    def __init__(self, spec: ResNetSpec):
        super().__init__()
        channels = spec.channels
        self.rgb_backbone = DilatedResNet(spec)
        self.edge = EdgeBranch(channels)
        self.bayar = BayarConv(1, 3)
        self.noise_backbone = DilatedResNet(spec)
        self.head = DualAttentionHead(2 * channels[3])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.rgb_backbone(x)
        edge_logits = self.edge(feats)
        noise_c4 = self.noise_backbone(self.bayar(grey_view(x)))[3]
        seg = self.head(torch.cat((feats[3], noise_c4), dim=1))
        seg_logits = F.interpolate(seg, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return edge_logits, seg_logits
