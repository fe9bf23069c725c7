"""Network architectures and input normalisation shared by several methods (nothing registered)."""
from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from imlbench.methods.nets.deeplabv3plus import DeepLabV3Plus

__all__ = ["DeepLabV3Plus", "normalize_imagenet"]


def normalize_imagenet(images: torch.Tensor) -> torch.Tensor:
    """``float [B, 3, H, W]`` RGB in [0, 1] → standardised with the ImageNet mean/std."""
    mean = images.new_tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    return (images - mean) / std
