"""MVSS-Net's building blocks (our code, checked against ``models/mvssnet.py`` of the official
repository, whose line numbers are cited): the Sobel gate and ERB of the edge-supervised view,
the Bayar-constrained convolution of the noise view, and the dual-attention head.

Tensor shapes are ``[B, C, h, w]`` unless stated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import ConfigError

SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


class SobelGate(nn.Module):
    """``sigmoid(sqrt(gx² + gy²)) · f`` (official ``run_sobel``, :42-46).

    ``gx``/``gy``: a fixed Sobel 3×3 kernel repeated over the ``C`` input channels (one output
    channel), each followed by ``BatchNorm2d(1)`` (``get_sobel``, :9-39). The kernels are
    frozen in the official code (``nn.Parameter(requires_grad=False)``) and stored in the
    released files; here they are persistent buffers: the same state-dict entries, never trained.
    """

    def __init__(self, channels: int):
        super().__init__()
        for name, taps in (("kernel_x", SOBEL_X), ("kernel_y", SOBEL_Y)):
            self.register_buffer(name, torch.tensor(taps).expand(1, channels, 3, 3).contiguous())
        self.norm_x = nn.BatchNorm2d(1)
        self.norm_y = nn.BatchNorm2d(1)

    def forward(self, f: Tensor) -> Tensor:
        gx = self.norm_x(F.conv2d(f, self.kernel_x.to(f.dtype), padding=1))
        gy = self.norm_y(F.conv2d(f, self.kernel_y.to(f.dtype), padding=1))
        return torch.sigmoid(torch.sqrt(gx * gx + gy * gy)) * f


class ERB(nn.Module):
    """Edge residual block (:260-278): ``x = conv1(f)`` (1×1, bias), then
    ``x + conv3(relu(bn(conv2(x))))`` (3×3 convs with bias), ReLU unless ``final_relu=False``
    (the last ERB of the edge branch, whose output is the edge logit map)."""

    def __init__(self, in_channels: int, out_channels: int, final_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.final_relu = final_relu

    def forward(self, f: Tensor) -> Tensor:
        x = self.conv1(f)
        y = x + self.conv3(F.relu(self.bn(self.conv2(x))))
        return F.relu(y) if self.final_relu else y


class BayarConv(nn.Module):
    """Constrained 5×5 convolution, 1 → 3 channels, padding 2, no bias (:56-82, :313).

    ``kernel`` ``[1, 3, 24]`` holds the 24 off-centre taps of each filter (the official
    parameter layout, so the released tensor loads as it is). Every forward, eval included,
    each filter's taps are divided by their plain sum (no abs, no epsilon: as the official
    code) and ``-1`` is inserted at the centre (index 12 of 25).

    In training the normalised taps are written back into ``kernel`` (the official in-place
    ``kernel.data`` rewrite: a projection after each optimizer step, outside the autograd graph,
    so gradients reach the taps as the convolution sees them). In eval the same normalised
    kernel is computed without writing it back, so ``predict`` has no side effect and repeated
    predictions are bit-identical (re-normalising an already normalised kernel can move it by
    an ulp). The file's kernel need not be normalised: the first forward does it either way.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 3, kernel_size: int = 5):
        super().__init__()
        if in_channels != 1:
            # The official [in, out, k²] -> [out, in, k, k] reshape is only right for one input.
            raise ConfigError(f"mvss_net: the Bayar layer takes 1 (grey) channel, got {in_channels}")
        self.kernel_size = kernel_size
        self.kernel = nn.Parameter(torch.rand(in_channels, out_channels, kernel_size ** 2 - 1))

    def constrained_kernel(self) -> Tensor:
        """``[out, 1, k, k]``: taps summing to 1 around a centre of -1."""
        if self.training:
            with torch.no_grad():
                self.kernel.data.div_(self.kernel.data.sum(-1, keepdim=True))
            taps = self.kernel
        else:
            taps = self.kernel / self.kernel.sum(-1, keepdim=True)
        centre = self.kernel_size ** 2 // 2
        minus_one = taps.new_full((*taps.shape[:2], 1), -1.0)
        full = torch.cat((taps[..., :centre], minus_one, taps[..., centre:]), dim=-1)
        k = self.kernel_size
        return full.reshape(taps.shape[1], taps.shape[0], k, k)

    def forward(self, grey: Tensor) -> Tensor:
        weight = self.constrained_kernel()
        return F.conv2d(grey, weight.to(grey.dtype), padding=self.kernel_size // 2)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv (no bias), BN, ReLU; indices 0/1 match the official ``Sequential``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class PositionAttention(nn.Module):
    """PAM (:358-378): ``x + alpha · V·softmax(QᵀK)ᵀ`` over the ``h·w`` positions, with
    1×1 projections to ``C/8`` (query ``conv_b``, key ``conv_c``) and ``C`` (value ``conv_d``);
    ``alpha`` starts at 0."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_b = nn.Conv2d(channels, channels // 8, 1)
        self.conv_c = nn.Conv2d(channels, channels // 8, 1)
        self.conv_d = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query = self.conv_b(x).flatten(2).transpose(1, 2)  # [B, N, C/8]
        key = self.conv_c(x).flatten(2)  # [B, C/8, N]
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # [B, N, N]
        value = self.conv_d(x).flatten(2)  # [B, C, N]
        out = torch.bmm(value, attention.transpose(1, 2)).view(b, c, h, w)
        return self.alpha * out + x


class ChannelAttention(nn.Module):
    """CAM (:381-400): ``x + beta · softmax(max(E) - E)·A`` with ``E = A·Aᵀ`` over channels
    (``A``: ``x`` as ``[B, C, h·w]``); ``beta`` starts at 0. No parameters besides ``beta``."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        a = x.flatten(2)  # [B, C, N]
        energy = torch.bmm(a, a.transpose(1, 2))  # [B, C, C]
        attention = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
        return self.beta * torch.bmm(attention, a).view(b, c, h, w) + x


class DualAttentionHead(nn.Module):
    """``_DAHead(in, 1, aux=False)`` (:403-464): two branches ``conv(in → in/4)`` → PAM or CAM
    → ``conv(in/4 → in/4)``, summed, then Dropout(0.1) and a 1×1 conv with bias to one logit.
    ``[B, in, h, w] -> [B, 1, h, w]``. (``aux=True`` side outputs are never returned by the
    official model and are left out.)"""

    def __init__(self, in_channels: int):
        super().__init__()
        inter = in_channels // 4
        self.conv_p1 = conv_bn_relu(in_channels, inter)
        self.conv_c1 = conv_bn_relu(in_channels, inter)
        self.pam = PositionAttention(inter)
        self.cam = ChannelAttention()
        self.conv_p2 = conv_bn_relu(inter, inter)
        self.conv_c2 = conv_bn_relu(inter, inter)
        self.out = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(inter, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        position = self.conv_p2(self.pam(self.conv_p1(x)))
        channel = self.conv_c2(self.cam(self.conv_c1(x)))
        return self.out(position + channel)
