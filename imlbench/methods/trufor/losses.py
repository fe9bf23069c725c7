"""TruFor's training losses (official ``TruFor_train_test/lib/core/criterion*.py``), written
for imlbench's batches: logits at the image size, ``mask float [B, 1, H, W]`` in {0, 1}.

* phase 2 (localisation): ``ce_weight * wCE + dice_weight * (1 - Dice)``; the weighted CE is
  PyTorch's (``sum_i w_{y_i} nll_i / sum_i w_{y_i}``), Dice is computed per image on the
  softmax tampered channel with a squared-sum denominator and ``+1e-5`` (smooth 0), then
  averaged over the batch. Paper: λ = 0.3.
* phase 3 (confidence + detection): MSE between ``sigmoid(conf)`` and the true-class
  probability (TCP), on the pixels inside the eroded mask or outside the dilated one; and a
  weighted BCE on the detection logit with label "more than 3 tampered pixels".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DICE_EPS = 1e-5


def weighted_cross_entropy(logits: Tensor, target: Tensor, class_weights: tuple[float, float]) -> Tensor:
    """``logits [B, 2, H, W]``, ``target long [B, H, W]`` in {0, 1} -> scalar."""
    weight = torch.tensor(class_weights, dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, target, weight=weight)


def dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """``1 - mean_b 2 Σ p t / (Σ p² + Σ t² + 1e-5)`` with ``p = softmax(logits)[:, 1]``."""
    p = logits.softmax(dim=1)[:, 1].flatten(1)
    t = target.flatten(1).to(p.dtype)
    dice = 2 * (p * t).sum(1) / ((p * p).sum(1) + (t * t).sum(1) + DICE_EPS)
    return 1 - dice.mean()


def localization_loss(logits: Tensor, mask: Tensor, class_weights: tuple[float, float],
                      ce_weight: float, dice_weight: float) -> dict[str, Tensor]:
    """``logits [B, 2, H, W]``, ``mask [B, 1, H, W]`` -> ``{"loss", "ce", "dice"}``."""
    target = (mask[:, 0] > 0.5).long()
    ce = weighted_cross_entropy(logits, target, class_weights)
    dice = dice_loss(logits, target)
    return {"loss": ce_weight * ce + dice_weight * dice, "ce": ce, "dice": dice}


def tcp_targets(mask: Tensor, erode: int, dilate: int) -> tuple[Tensor, Tensor]:
    """``mask [B, H, W]`` in {0, 1} -> ``(gt0, gt1)``: outside the mask dilated by a
    ``dilate``² square, inside the mask eroded by an ``erode``² square (max-pooling, whose
    padding ignores pixels outside the image, as in the official code)."""
    m = mask[:, None]
    gt1 = 1 - F.max_pool2d(1 - m, erode, stride=1, padding=(erode - 1) // 2)
    gt0 = 1 - F.max_pool2d(m, dilate, stride=1, padding=(dilate - 1) // 2)
    return gt0[:, 0], gt1[:, 0]


def confidence_loss(loc_logits: Tensor, conf_logits: Tensor, mask: Tensor,
                    erode: int = 15, dilate: int = 11) -> Tensor:
    """MSE(sigmoid(conf), TCP) over the pixels of gt0 ∪ gt1; ``TCP = p1 gt1 + p0 gt0``.
    ``loc_logits [B, 2, H, W]``, ``conf_logits [B, 1, H, W]``, ``mask [B, 1, H, W]``.
    No pixel in gt0 ∪ gt1 (a mask that is all edge band) gives 0, not NaN."""
    gt0, gt1 = tcp_targets((mask[:, 0] > 0.5).to(loc_logits.dtype), erode, dilate)
    p = loc_logits.softmax(dim=1)
    tcp = p[:, 1] * gt1 + p[:, 0] * gt0
    conf = torch.sigmoid(conf_logits[:, 0])
    valid = (gt0 > 0) | (gt1 > 0)
    if not valid.any():
        return (conf * 0).sum()
    return F.mse_loss(conf[valid], tcp[valid])


def detection_loss(det_logit: Tensor, mask: Tensor, min_pixels: int = 3,
                   weight_fake: float = 0.5 / 0.7, weight_real: float = 0.5 / 0.3) -> Tensor:
    """Weighted BCE on ``det_logit [B, 1]``; label 1 when the mask has more than
    ``min_pixels`` tampered pixels (``mask [B, 1, H, W]``)."""
    label = ((mask > 0.5).flatten(1).sum(1) > min_pixels).to(det_logit.dtype)
    weight = label * weight_fake + (1 - label) * weight_real
    return F.binary_cross_entropy_with_logits(det_logit[:, 0], label, weight=weight)
