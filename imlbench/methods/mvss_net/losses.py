"""MVSS-Net's multi-scale supervision, reconstructed from the paper (no training code was
released; ICCV 2021, Sec. 3.3):

``L = α·L_seg + β·L_clf + (1 − α − β)·L_edg`` with ``α = 0.16``, ``β = 0.04``:

* ``L_seg``: Dice loss of the sigmoid localisation map against the mask (pixel scale);
* ``L_edg``: Dice loss of the sigmoid edge map (H/4) against the mask's boundary (edge scale);
* ``L_clf``: binary cross-entropy of the global max pooling (GMP) of the sigmoid map against
  the image label (image scale).

Dice (paper): ``1 − 2·Σ p·g / (Σ p² + Σ g²)``, per image, averaged over the images it applies
to. Which choices are ours is listed in :class:`~imlbench.methods.mvss_net.model.MVSSNetConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossSettings:
    seg_weight: float = 0.16
    clf_weight: float = 0.04
    dice_smooth: float = 0.0
    edge_width: int = 7
    authentic_pixel_losses: bool = False
    clf_double_sigmoid: bool = False

    @property
    def edge_weight(self) -> float:
        return 1.0 - self.seg_weight - self.clf_weight


def dice_loss(prob: Tensor, target: Tensor, smooth: float = 0.0) -> Tensor:
    """Per-image Dice loss ``[B]``: ``1 − (2·Σ p·g + s) / (Σ p² + Σ g² + s)`` over each image's
    pixels (``prob``, ``target``: ``[B, 1, h, w]``)."""
    p, g = prob.flatten(1), target.flatten(1)
    return 1.0 - (2.0 * (p * g).sum(1) + smooth) / ((p * p).sum(1) + (g * g).sum(1) + smooth)


def boundary(mask: Tensor, width: int) -> Tensor:
    """Band of about ``width`` pixels across the mask's contour: dilation minus erosion by a
    ``width``×``width`` square (``mask`` ``[B, 1, H, W]`` in {0, 1}; ``width`` odd)."""
    pad = width // 2
    dilated = F.max_pool2d(mask, width, stride=1, padding=pad)
    eroded = -F.max_pool2d(-mask, width, stride=1, padding=pad)
    return dilated - eroded


def edge_target(mask: Tensor, size: tuple[int, int], width: int) -> Tensor:
    """Edge ground truth at the edge map's ``size`` (H/4): the full-resolution boundary band,
    then a cell is an edge when any of its pixels is (adaptive max pooling)."""
    return F.adaptive_max_pool2d(boundary(mask, width), size)


def mvss_losses(seg_logits: Tensor, edge_logits: Tensor, mask: Tensor, label: Tensor,
                settings: LossSettings) -> dict[str, Tensor]:
    """``seg_logits`` ``[B,1,H,W]``, ``edge_logits`` ``[B,1,h,w]``, ``mask`` ``[B,1,H,W]`` in
    {0, 1}, ``label`` ``[B]`` (1 = tampered) -> ``{"loss", "seg", "edge", "clf"}`` (float32).

    Images with label 0 contribute to ``clf`` only unless ``authentic_pixel_losses`` (the
    author: "real part: images[class == 0], fake part: images[class == 1]" go to different
    losses, issue #9; with the paper's Dice an all-zero target has no gradient anyway). A batch
    without a tampered image has ``seg = edge = 0``."""
    seg_prob = torch.sigmoid(seg_logits.float())
    edge_prob = torch.sigmoid(edge_logits.float())
    mask = mask.float()
    target = label.float()
    pixel = torch.ones_like(target, dtype=torch.bool) if settings.authentic_pixel_losses \
        else target > 0.5

    def mean_over(values: Tensor) -> Tensor:
        return values[pixel].mean() if pixel.any() else values.sum() * 0.0

    seg = mean_over(dice_loss(seg_prob, mask, settings.dice_smooth))
    edges = edge_target(mask, tuple(edge_prob.shape[-2:]), settings.edge_width)
    edge = mean_over(dice_loss(edge_prob, edges, settings.dice_smooth))
    score = seg_prob.flatten(1).amax(1)  # GMP
    with torch.autocast(seg_logits.device.type, enabled=False):
        if settings.clf_double_sigmoid:  # IMDL-BenCo / dddb11: BCE-with-logits on a probability
            clf = F.binary_cross_entropy_with_logits(score, target)
        else:
            clf = F.binary_cross_entropy(score, target)
    total = settings.seg_weight * seg + settings.clf_weight * clf + settings.edge_weight * edge
    return {"loss": total, "seg": seg, "edge": edge, "clf": clf}
