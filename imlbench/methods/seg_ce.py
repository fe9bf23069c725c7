"""``seg_ce``: a plain segmentation baseline — DeepLabV3+ trained with pixel cross-entropy.

The same network NCL uses (:class:`~imlbench.methods.nets.DeepLabV3Plus`), without any
forensic loss: the control that tells how much a method's extra machinery adds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.methods.nets import DeepLabV3Plus, normalize_imagenet
from imlbench.registry import METHODS


@METHODS.register("seg_ce")
class SegCE(Method):
    """DeepLabV3+ (timm ResNet, output stride 16) trained with 2-class cross-entropy."""

    trainable = True
    reference = ("Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic "
                 "Image Segmentation (DeepLabV3+), ECCV 2018")

    def __init__(self, backbone: str = "resnet50", input_size: int = 512,
                 pretrained_path: str | Path | None = None, decoder_channels: int = 256) -> None:
        """``input_size``: side of the square the runner resizes images to. ``pretrained_path``:
        local ImageNet weights of ``backbone`` (random init when ``None``). ``decoder_channels``:
        width of ASPP and decoder (256 in the paper; the CPU ``quick`` recipe narrows it)."""
        super().__init__()
        self.input_policy = InputPolicy("resize", input_size)
        self.net = DeepLabV3Plus(backbone, num_classes=2, pretrained_path=pretrained_path,
                                 decoder_channels=decoder_channels)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"backbone": "resnet10t", "input_size": 32, "decoder_channels": 16}

    def outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` float [B,3,H,W] in [0,1] → the network's ``logits`` [B,2,H,W] (1 = tampered)
        and decoder ``features`` [B,C,H/4,W/4] (used by NCL's contrastive terms)."""
        return self.net(normalize_imagenet(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs(images)["logits"]

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prediction:
        prob = self.logits(images).float().softmax(dim=1)[:, 1:2]
        return Prediction(prob)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": pixel_ce(self.logits(batch["image"]), batch["mask"])}


def pixel_ce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """2-class pixel cross-entropy in float32: ``logits`` [B,2,H,W], ``mask`` float [B,1,H,W]."""
    return F.cross_entropy(logits.float(), mask[:, 0].long())
