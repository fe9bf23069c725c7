"""DeepLabV3+ segmentation network on a timm ResNet encoder (shared by ``seg_ce`` and NCL).

Architecture as in Chen et al., "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", ECCV 2018: encoder at output stride 16 (last stage dilated),
ASPP with a 1×1 branch, three 3×3 atrous branches (rates 6/12/18 at stride 16, doubled at
stride 8) and image pooling; decoder reduces the stride-4 features to 48 channels, concatenates
them with the upsampled ASPP output and applies two 3×3 convolutions.

The encoder is built with ``pretrained=False``: nothing is ever downloaded. An ImageNet
initialisation is only loaded from a local weights file the user names (``pretrained_path``).

Attribution and licence: the architecture is the paper's (its reference implementation is
tensorflow/models ``research/deeplab``, Apache-2.0); this module is written independently from
the paper, no code of any implementation was copied. The encoder is timm's ResNet (timm,
Apache-2.0, a declared dependency, used as a library). See ``NOTICE``.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.weights import load_pretrained
from imlbench.errors import ConfigError

ASPP_RATES_AT_STRIDE_16 = (6, 12, 18)
LOW_LEVEL_CHANNELS = 48


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``[B, c_in, h, w] -> [B, channels, h, w]``."""

    def __init__(self, c_in: int, channels: int, rates: tuple[int, ...], dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(c_in, channels, 1)]
            + [_conv_bn_relu(c_in, channels, 3, dilation=r) for r in rates])
        # No BN in the pooling branch: a pooled 1×1 map has one value per channel and image, so
        # BatchNorm would fail (or be meaningless) when training with batch size 1.
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, channels, 1),
                                        nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn_relu(channels * (len(rates) + 2), channels, 1),
                                     nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al., ECCV 2018): timm ResNet encoder (features_only, output stride 16
    via dilation), ASPP rates 6/12/18 (+ image pooling), 48-channel low-level skip from stride 4,
    3×3 decoder convs (``decoder_channels``).

    ``forward(x)``: ``x`` float ``[B, 3, H, W]``, already normalised. Returns
    ``{"logits": [B, num_classes, H, W]`` (bilinearly upsampled to the input size),
    ``"features": [B, decoder_channels, ceil(H/4), ceil(W/4)]`` (decoder output before the
    classifier)}.
    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 2,
                 pretrained_path: str | Path | None = None, output_stride: int = 16,
                 decoder_channels: int = 256):
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"output_stride must be 8 or 16, got {output_stride}")
        try:
            self.encoder = timm.create_model(backbone, pretrained=False, features_only=True,
                                             out_indices=(1, 4), output_stride=output_stride)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ConfigError(f"timm has no backbone {backbone!r} ({exc}); pick one from "
                             "timm.list_models('resnet*'), e.g. resnet18 or resnet50") from exc
        low_ch, high_ch = self.encoder.feature_info.channels()
        if self.encoder.feature_info.reduction()[0] != 4:
            raise ValueError(f"backbone {backbone!r}: DeepLabV3+ needs stride-4 features at "
                             f"feature index 1, got stride {self.encoder.feature_info.reduction()[0]}")
        rates = tuple(r * 16 // output_stride for r in ASPP_RATES_AT_STRIDE_16)
        self.aspp = ASPP(high_ch, decoder_channels, rates)
        self.low_level = _conv_bn_relu(low_ch, LOW_LEVEL_CHANNELS, 1)
        self.decoder = nn.Sequential(
            _conv_bn_relu(decoder_channels + LOW_LEVEL_CHANNELS, decoder_channels, 3),
            _conv_bn_relu(decoder_channels, decoder_channels, 3))
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        if pretrained_path is not None:
            load_pretrained(self.encoder, pretrained_path)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        low, high = self.encoder(x)
        context = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear",
                                align_corners=False)
        features = self.decoder(torch.cat([context, self.low_level(low)], dim=1))
        logits = F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        return {"logits": logits, "features": features}
