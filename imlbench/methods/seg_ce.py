"""``seg_ce``: a plain segmentation baseline — DeepLabV3+ trained with pixel cross-entropy.

The same network NCL uses (:class:`~imlbench.methods.nets.DeepLabV3Plus`), without any
forensic loss: the control that tells how much a method's extra machinery adds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from imlbench.errors import ConfigError
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.methods.nets import DeepLabV3Plus, normalize_imagenet
from imlbench.registry import METHODS


@METHODS.register("seg_ce")
class SegCE(Method):
    """DeepLabV3+ (timm ResNet, output stride 16) trained with 2-class cross-entropy."""

    trainable = True
    reference = ("Chen et al., Encoder-Decoder with Atrous Separable Convolution for Semantic "
                 "Image Segmentation (DeepLabV3+), ECCV 2018")

    weight_init_options: ClassVar[dict[str, Any]] = {"pretrained_path": None,
                                                     "require_pretrained": False}
    method_name: ClassVar[str] = "seg_ce"
    """The registered name, for messages (NCL subclasses this class)."""
    INPUT_MODES: ClassVar[tuple[str, ...]] = ("resize", "pad")
    PAD_MULTIPLE: ClassVar[int] = 32
    """Output stride 16 and the decoder's stride-4 skip: a multiple of 32 keeps every stage's
    grid exact, so the padded picture's map crops back without a half-pixel shift."""

    def __init__(self, backbone: str = "resnet50", input_size: int = 512,
                 pretrained_path: str | Path | None = None, decoder_channels: int = 256,
                 input_mode: Literal["resize", "pad"] = "resize", require_pretrained: bool = False) -> None:
        """``input_size``: side of the square the runner resizes images to (``input_mode=
        "resize"``); ``input_mode="pad"`` evaluates each picture at its own resolution instead,
        padded bottom/right to a multiple of 32 (for a network trained on native-resolution
        crops, recipe ``shaping: crop``). ``pretrained_path``: local ImageNet weights of
        ``backbone`` (random init when ``None``); ``require_pretrained``: refuse to start without
        them (the ``paper`` recipes set it). ``decoder_channels``: width of ASPP and decoder (256
        in the paper; the CPU ``quick`` recipe narrows it)."""
        super().__init__()
        if input_mode not in self.INPUT_MODES:
            raise ConfigError(f"{self.method_name}: input_mode must be one of "
                              f"{', '.join(self.INPUT_MODES)}, got {input_mode!r}")
        if require_pretrained and pretrained_path is None:
            raise ConfigError(
                f"{self.method_name}: this recipe starts {backbone} from ImageNet weights, as the "
                f"paper's code base does, and none were given (nothing is downloaded). Pass a "
                f"local {backbone} state dict (torchvision or timm) with --config "
                "pretrained_path=FILE, or train from random weights on purpose with --config "
                "require_pretrained=false")
        self.input_policy = (InputPolicy("resize", input_size) if input_mode == "resize"
                             else InputPolicy("pad", multiple=self.PAD_MULTIPLE))
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
