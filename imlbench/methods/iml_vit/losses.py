"""IML-ViT's published loss: BCE on the mask plus an edge-weighted BCE (iml_vit_model.py
``forward``, utils/edge_generator.py).

``loss = mean(BCE(logits, mask)) + edge_lambda * mean(edge * BCE(logits, mask))``, both means
over *every* pixel of the canvas (padding included, as authentic pixels); the edge term is not
normalised by the number of edge pixels. ``edge`` is the band where the cross-shaped dilations
(width ``k``) of the mask and of its complement overlap: about ``k // 2`` pixels either side of
each boundary, computed on the mask before it is padded to the canvas.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_dilate(mask: Tensor, width: int) -> Tensor:
    """``[B, 1, H, W]`` {0, 1} -> 1 where any pixel of the ``width``-long cross (a row and a
    column through the centre) is 1; outside the image counts as 0."""
    kernel = torch.zeros(1, 1, width, width, dtype=mask.dtype, device=mask.device)
    kernel[..., width // 2, :] = 1
    kernel[..., :, width // 2] = 1
    return (F.conv2d(mask, kernel, padding=width // 2) > 0).to(mask.dtype)


def edge_band(mask: Tensor, width: int = 7) -> Tensor:
    """``[B, 1, H, W]`` float {0, 1} -> ``[B, 1, H, W]`` float {0, 1}: pixels where the
    dilations of ``mask`` and of ``1 - mask`` are both 1 (the official ``EdgeGenerator``)."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"iml_vit: edge_width must be a positive odd number, got {width}")
    return cross_dilate(mask, width) * cross_dilate(1 - mask, width)


def iml_vit_loss(logits: Tensor, mask: Tensor, edge: Tensor, edge_lambda: float
                 ) -> dict[str, Tensor]:
    """``logits``, ``mask``, ``edge``: ``[B, 1, S, S]`` at the canvas size; returns
    ``{"loss": bce + edge, "bce": ..., "edge": edge_lambda * weighted BCE}`` (float32)."""
    logits, mask, edge = logits.float(), mask.float(), edge.float()
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    edge_term = edge_lambda * F.binary_cross_entropy_with_logits(logits, mask, weight=edge)
    return {"loss": bce + edge_term, "bce": bce, "edge": edge_term}
