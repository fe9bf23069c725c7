"""HRNet building blocks of CAT-Net, with the module names of the official code.

The attribute names (``conv1``, ``bn1``, ``downsample``, ``branches``, ``fuse_layers`` ...) and
their registration order reproduce the official ``state_dict`` exactly, so a released checkpoint
loads without renaming. Absent modules (a transition that keeps a branch unchanged, the diagonal
of a fuse matrix) are registered as ``None`` in their ``ModuleList``, as HRNet does, so the
indices of the present ones match.

Shapes: a multi-resolution state is a list of ``[B, C_i, H / 2^i, W / 2^i]`` tensors (halving
with ceil), branch 0 the finest.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

BN_MOMENTUM = 0.01
"""The official BatchNorm momentum (network_CAT.py); it matters only when training."""


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN, residual, ReLU (ResNet basic block)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = batch_norm(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1×1 - 3×3 - 1×1 conv-BN with 4× expansion, residual, ReLU."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = batch_norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = batch_norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = batch_norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int,
               blocks: int, stride: int = 1) -> nn.Sequential:
    """``blocks`` residual blocks; the first gets a 1×1 conv-BN shortcut when shapes change."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
            batch_norm(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def conv_bn_relu(c_in: int, c_out: int, stride: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), batch_norm(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def transition_layer(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Branch ``i`` of ``cur`` from branch ``i`` of ``pre`` (3×3 conv if the width changes, else
    ``None``), new branches by stride-2 3×3 convs from the coarsest ``pre`` branch."""
    layers: list[nn.Module | None] = []
    for i, c_out in enumerate(cur):
        if i < len(pre):
            layers.append(conv_bn_relu(pre[i], c_out, 1) if c_out != pre[i] else None)
        else:
            steps = i + 1 - len(pre)
            layers.append(nn.Sequential(*(
                conv_bn_relu(pre[-1], c_out if j == steps - 1 else pre[-1], 2)
                for j in range(steps))))
    return nn.ModuleList(layers)


def apply_transition(transition: nn.ModuleList, states: list[Tensor]) -> list[Tensor]:
    """Inputs of the next stage: existing branches through their transition (or unchanged), new
    branches from the coarsest existing one (``states[-1]``), as the official forward does."""
    out = []
    for i, layer in enumerate(transition):
        if i < len(states):
            out.append(states[i] if layer is None else layer(states[i]))
        else:
            out.append(layer(states[-1]))
    return out


class HighResolutionModule(nn.Module):
    """Parallel branches of residual blocks, then every output branch sums all inputs: finer
    ones through stride-2 3×3 convs, coarser ones through a 1×1 conv and bilinear upsampling."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], num_blocks: int,
                 in_channels: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            make_layer(block, in_channels[i], channels[i], num_blocks) for i in range(n))
        self.out_channels = [c * block.expansion for c in channels]
        self.fuse_layers = self._fuse_layers(self.out_channels) if n > 1 else None
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse_layers(c: Sequence[int]) -> nn.ModuleList:
        rows = []
        for i in range(len(c)):
            row: list[nn.Module | None] = []
            for j in range(len(c)):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(c[j], c[i], 1, 1, 0, bias=False),
                                             batch_norm(c[i])))
                elif j == i:
                    row.append(None)
                else:  # i - j stride-2 convs; ReLU between them, none after the last
                    row.append(nn.Sequential(*(
                        conv_bn_relu(c[j], c[i], 2, relu=False) if k == i - j - 1
                        else conv_bn_relu(c[j], c[j], 2) for k in range(i - j))))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        x = [branch(t) for branch, t in zip(self.branches, x)]
        if self.fuse_layers is None:
            return x
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, len(x)):
                if j == i:
                    y = y + x[j]
                elif j > i:
                    y = y + F.interpolate(row[j](x[j]), size=x[i].shape[-2:], mode="bilinear",
                                          align_corners=False)
                else:
                    y = y + row[j](x[j])
            fused.append(self.relu(y))
        return fused


def make_stage(modules: int, block: type[BasicBlock] | type[Bottleneck], num_blocks: int,
               in_channels: Sequence[int], channels: Sequence[int]) -> tuple[nn.Sequential, list[int]]:
    """``modules`` HighResolutionModules in a row; returns them and the output widths."""
    stage = []
    widths = list(in_channels)
    for _ in range(modules):
        stage.append(HighResolutionModule(block, num_blocks, widths, channels))
        widths = stage[-1].out_channels
    return nn.Sequential(*stage), widths


def run_stage(stage: nn.Sequential, x: list[Tensor]) -> list[Tensor]:
    for module in stage:
        x = module(x)
    return x
