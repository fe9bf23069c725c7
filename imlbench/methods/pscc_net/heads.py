"""PSCC-Net's two heads on the four HRNet branches: the progressive localisation head with
spatio-channel correlation (SCCM, official ``models/NLCDetection.py``) and the detection head
(official ``models/detection_head.py``). State-dict names are the official ones.

Both heads first bring the four branches to a **fixed grid** (``grid``², ``grid/2``²,
``grid/4``², ``grid/8``²; the official ``crop_size`` = 256) with bilinear, align_corners=True,
whatever the image size. The official guard meant to skip this at 256² compares a
``torch.Size`` with a list and never fires; the resampling to the same size is the identity,
so we always resample too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.methods.pscc_net.hrnet import BN_MOMENTUM, Bottleneck

REDUCE_SCALES = (4, 2, 2, 1)
"""Folding factor ``r`` of the SCCM on s1..s4 (official ``NLCDetection.__init__``)."""


def to_grid(features: list[Tensor], grid: int) -> list[Tensor]:
    """``[s1..s4]`` of any size → sizes ``grid / 2^k`` (bilinear, align_corners=True)."""
    return [F.interpolate(f, size=(grid >> k, grid >> k), mode="bilinear", align_corners=True)
            for k, f in enumerate(features)]


class SCCM(nn.Module):
    """Spatio-channel correlation module (official ``NonLocalMask``) on ``[B, C, H, W]``.

    The input is *reinterpreted in memory* as ``[B, C·r², H/r, W/r]`` (a raw reshape, not
    pixel-unshuffle); ``g``, ``theta``, ``phi`` are 1×1 convs on those ``C·r²`` channels.
    Spatial attention ``softmax(θᵀφ)`` over the ``N = HW/r²`` positions, channel attention
    ``softmax(θφᵀ)`` over the channels; the two results are viewed back as ``[B, C, H, W]`` —
    the spatial one after a transpose, the channel one *without* (its ``[N, C·r²]`` memory is
    read as ``[C, H, W]``), exactly as the released weights were trained.
    ``z = x + γ_s W_s(y_s) + γ_c W_c(y_c)`` (γ initialised to 1, as in the official code).

    ``forward`` returns the mask ``[B, 1, H, W]`` as a *probability*: the official module
    applies the sigmoid here, and the next finer scale is gated by that probability.
    """

    def __init__(self, channels: int, reduce_scale: int, hidden: int = 16) -> None:
        super().__init__()
        self.r = reduce_scale
        folded = channels * reduce_scale ** 2
        self.g = nn.Conv2d(folded, folded, 1)
        self.theta = nn.Conv2d(folded, folded, 1)
        self.phi = nn.Conv2d(folded, folded, 1)
        self.W_s = nn.Conv2d(channels, channels, 1)
        self.W_c = nn.Conv2d(channels, channels, 1)
        self.gamma_s = nn.Parameter(torch.ones(1))
        self.gamma_c = nn.Parameter(torch.ones(1))
        self.getmask = nn.Sequential(nn.Conv2d(channels, hidden, 3, 1, 1), nn.ReLU(),
                                     nn.Conv2d(hidden, 1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if h % self.r or w % self.r:
            raise ValueError(f"SCCM with r={self.r} needs H and W divisible by {self.r}, "
                             f"got {h}x{w}")
        folded = x.reshape(b, c * self.r ** 2, h // self.r, w // self.r)
        g = self.g(folded).flatten(2).transpose(1, 2)        # [B, N, C']
        theta = self.theta(folded).flatten(2)                 # [B, C', N]
        phi = self.phi(folded).flatten(2)                     # [B, C', N]
        spatial = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)   # [B, N, N]
        channel = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)   # [B, C', C']
        y_s = (spatial @ g).transpose(1, 2).contiguous().view(b, c, h, w)
        y_c = (g @ channel).view(b, c, h, w)  # no transpose: the official memory layout
        z = x + self.gamma_s * self.W_s(y_s) + self.gamma_c * self.W_c(y_c)
        return torch.sigmoid(self.getmask(z))


class ProgressiveMaskHead(nn.Module):
    """Coarse-to-fine masks (official ``NLCDetection``): ``mask4 = SCCM(s4)``, then each finer
    feature is multiplied by the bilinearly upsampled (align_corners=True) coarser *probability*
    before its own SCCM. ``forward(features) -> [mask1, mask2, mask3, mask4]``, probabilities
    ``[B, 1, grid/2^k, grid/2^k]``; ``mask1`` is the localisation map."""

    def __init__(self, widths: tuple[int, int, int, int], grid: int = 256, hidden: int = 16) -> None:
        super().__init__()
        self.grid = grid
        # official names and order: getmask4 on s4 (r=1) first ... getmask1 on s1 (r=4)
        for k in (4, 3, 2, 1):
            self.add_module(f"getmask{k}", SCCM(widths[k - 1], REDUCE_SCALES[k - 1], hidden))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        feats = to_grid(features, self.grid)
        masks: list[Tensor] = []
        gate: Tensor | None = None
        for k in (4, 3, 2, 1):
            f = feats[k - 1]
            if gate is not None:
                f = f * F.interpolate(gate, size=f.shape[-2:], mode="bilinear", align_corners=True)
            gate = getattr(self, f"getmask{k}")(f)
            masks.insert(0, gate)
        return masks


class DetectionHead(nn.Module):
    """Image-level head on the (un-gated) branches at the grid: a Bottleneck (expansion 2)
    per branch, stride-2 conv3×3(+bias)-BN-ReLU downsamplers summed into the next branch, a
    1×1 conv to ``width`` + BN + ReLU, global average pooling, ``Linear(width, hidden)`` →
    ReLU → ``Linear(hidden, 2)``. ``forward(features) -> logits [B, 2]`` (class 1 = forged)."""

    def __init__(self, widths: tuple[int, int, int, int], grid: int = 256, width: int = 128,
                 hidden: int = 16) -> None:
        super().__init__()
        self.grid = grid
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(w, w, expansion=2)) for w in widths)
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * a, 2 * b, 3, 2, 1), nn.BatchNorm2d(2 * b, momentum=BN_MOMENTUM),
                          nn.ReLU())
            for a, b in zip(widths[:-1], widths[1:]))
        self.final_layer = nn.Sequential(nn.Conv2d(2 * widths[-1], width, 1),
                                         nn.BatchNorm2d(width, momentum=BN_MOMENTUM), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, features: list[Tensor]) -> Tensor:
        feats = to_grid(features, self.grid)
        y = self.incre_modules[0](feats[0])
        for incre, down, f in zip(self.incre_modules[1:], self.downsamp_modules, feats[1:]):
            y = incre(f) + down(y)
        y = self.final_layer(y)
        return self.classifier(F.avg_pool2d(y, kernel_size=y.shape[-2:]).flatten(1))
