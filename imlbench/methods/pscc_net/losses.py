"""PSCC-Net's training losses (official ``train.py:92-100, 138-197``).

Total = Σ_k mean(BCE(mask_k, gt_k) · w_k) over the four scales + weighted cross-entropy of the
detection logits; the terms are summed without weights.

* ``w_k``: per-batch median-frequency balancing: ``0.5 / freq(1)`` on positive pixels and
  ``0.5 / freq(0)`` on negative ones, frequencies over all pixels of the batch at that scale;
  all ones when the batch has no positive pixel.
* CE class weights ``[1 / authentic_ratio, 1 / (1 - authentic_ratio)]`` (official train_ratio
  0.25 → ``[4, 4/3]``); labels ``!= 0`` are class 1 (forged).
* ``gt_k``: official ``generate_4masks`` resizes the (already 256²) training mask with PIL's
  default bicubic filter to 1/2, 1/4, 1/8 and thresholds at 0.5; here the same from the batch
  mask with torch's antialiased bicubic (PIL's filter) and the same threshold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_pyramid(mask: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
    """``mask [B,1,H,W]`` in {0,1} → one binary target per size (bicubic, antialiased, > 0.5);
    a size equal to the mask's own is the mask itself."""
    out = []
    for size in sizes:
        if tuple(mask.shape[-2:]) == tuple(size):
            out.append((mask > 0.5).float())
        else:
            resized = F.interpolate(mask.float(), size=size, mode="bicubic", align_corners=False,
                                    antialias=True)
            out.append((resized > 0.5).float())
    return out


def balanced_bce(prob: Tensor, target: Tensor) -> Tensor:
    """``mean(BCE(prob, target) · w)`` with the official median-frequency weights ``w``.

    ``prob``, ``target``: same shape, probabilities and {0, 1}. Computed in float32 outside
    autocast (BCE on probabilities is not autocast-safe); no host sync."""
    with torch.autocast(device_type=prob.device.type, enabled=False):
        prob, target = prob.float(), target.float()
        n = target.numel()
        positive = target == 1
        n_pos = positive.sum()
        n_neg = n - n_pos
        w_pos = 0.5 * n / n_pos.clamp(min=1)
        w_neg = 0.5 * n / n_neg.clamp(min=1)
        weights = torch.where(positive, w_pos, w_neg)
        weights = torch.where(n_pos > 0, weights, torch.ones_like(weights))
        return (F.binary_cross_entropy(prob, target, reduction="none") * weights).mean()


def detection_ce(logits: Tensor, label: Tensor, authentic_ratio: float) -> Tensor:
    """Weighted CE of ``logits [B, 2]`` against ``label [B]`` (any non-zero label = forged)."""
    weight = torch.tensor([1.0 / authentic_ratio, 1.0 / (1.0 - authentic_ratio)],
                          device=logits.device)
    return F.cross_entropy(logits.float(), (label != 0).long(), weight=weight)
