"""Noiseprint++: the camera-trace extractor of TruFor, a plain DnCNN-style conv stack.

``depth`` 3×3 convs (padding 1): ``3 -> width``, ``depth - 2`` × (``width -> width``, no bias,
BatchNorm), ``width -> 1``; ReLU after every conv but the last; no residual connection. The
layer order inside :attr:`NoiseprintExtractor.layers` (conv, [BN], ReLU, ...) is the official
``nn.Sequential``'s, so its indices (``0``, ``2``, ``3``, ..., ``47`` at depth 17) are the
official ``dncnn.<i>`` keys and the released ``noiseprint++.th`` loads into it unchanged.

Input: RGB in [0, 255/256] (TruFor divides uint8 by 256), *not* normalised. Output: one
channel ``[B, 1, H, W]`` at full resolution.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from imlbench.errors import ConfigError


class NoiseprintExtractor(nn.Module):
    def __init__(self, depth: int = 17, width: int = 64, in_channels: int = 3):
        super().__init__()
        if depth < 2:
            raise ConfigError(f"trufor: noiseprint_depth must be >= 2, got {depth}")
        layers: list[nn.Module] = []
        for i in range(depth):
            c_in = in_channels if i == 0 else width
            c_out = 1 if i == depth - 1 else width
            has_bn = 0 < i < depth - 1
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not has_bn))
            if has_bn:
                layers.append(nn.BatchNorm2d(c_out, momentum=0.1))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DnCNN's initialisation (conv std sqrt(2 / (k² · C_out)), BN weights drawn with the
        same rule, zero biases); only matters when Noiseprint++ is not loaded."""
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (9 * m.num_features)))
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
