"""Patch labelling and the contrastive terms of NCL, as pure tensor functions.

Provenance: the three patch classes (tampered / authentic / contour) and the existence of a
pivot-consistent loss are the paper's (public, ICCV 2023); the formulas below (supervised
contrastive loss of Khosla et al., NeurIPS 2020, within each image; the two forms of the
pivot-consistent loss) are our reconstruction from its description, not a transcription of
its equations, which were not at hand (the authors' training code is not released). See
:mod:`imlbench.methods.ncl` for what is read from the paper and demo and what is ours.

Shapes: ``G`` groups that are contrasted separately (images, or the whole batch as one
group), ``P`` patches per group, ``D`` embedding size. Targets use ``IGNORE`` (-1) for patches
that take no part in a loss.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -1
"""Contrast target of a patch that is neither anchor nor candidate (a dropped contour patch)."""

ContourRole = Literal["tampered", "authentic", "drop"]


class PatchClass(IntEnum):
    """Ground-truth class of an image patch (paper, section "three categories of patches")."""

    AUTHENTIC = 0
    TAMPERED = 1
    CONTOUR = 2
    """Holds both tampered and authentic pixels: not mutually exclusive with either class."""


def _float32(like: Tensor) -> torch.autocast:
    """Autocast off: similarities divided by a small temperature and their log-sum-exp lose
    too much in half precision (autocast would cast the matmuls back down)."""
    return torch.autocast(like.device.type, enabled=False)


def label_patches(mask: Tensor, patch_size: int) -> Tensor:
    """Classify the non-overlapping ``patch_size``² patches of each mask.

    ``mask``: float ``[B, 1, H, W]``, tampered pixels ``> 0.5``. Returns long
    ``[B, ceil(H / patch_size), ceil(W / patch_size)]`` of :class:`PatchClass`: TAMPERED if
    every pixel of the patch is tampered, AUTHENTIC if none is, CONTOUR otherwise. When ``H``
    or ``W`` is not a multiple of ``patch_size`` the last row/column of patches is partial and
    is labelled from the pixels it covers (no padding is invented).
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be [B, 1, H, W], got {tuple(mask.shape)}")
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    tampered = (mask > 0.5).float()
    # ceil_mode max pooling: a partial border window only sees the pixels inside the image.
    any_tampered = F.max_pool2d(tampered, patch_size, ceil_mode=True)[:, 0] > 0
    any_authentic = F.max_pool2d(1 - tampered, patch_size, ceil_mode=True)[:, 0] > 0
    labels = torch.full_like(any_tampered, PatchClass.AUTHENTIC, dtype=torch.long)
    labels[any_tampered] = PatchClass.TAMPERED
    labels[any_tampered & any_authentic] = PatchClass.CONTOUR
    return labels


def contrast_targets(patch_class: Tensor, contour_as: ContourRole) -> Tensor:
    """Binary contrast targets (1 tampered, 0 authentic) with contour patches assigned to
    ``contour_as`` or, for ``"drop"``, set to :data:`IGNORE`. Same shape as ``patch_class``."""
    role = {"tampered": PatchClass.TAMPERED, "authentic": PatchClass.AUTHENTIC, "drop": IGNORE}
    if contour_as not in role:
        raise ValueError(f"contour_as must be one of {sorted(role)}, got {contour_as!r}")
    targets = patch_class.clone()
    targets[patch_class == PatchClass.CONTOUR] = role[contour_as]
    return targets


def supcon_loss(z: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the L_out form), within each group.

    ``z``: float ``[G, P, D]``, L2-normalised rows; ``targets``: long ``[G, P]`` (IGNORE allowed).
    For an anchor ``i`` with positives ``P(i)`` (same target, same group, not ``i``) and
    candidates ``A(i)`` (every other non-ignored patch of the group):
    ``l_i = -1/|P(i)| * sum_{p in P(i)} log(exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t))``.
    Returns the mean of ``l_i`` over anchors that have both a positive and a negative (an anchor
    without a negative has nothing to contrast: its term would only add the floor
    ``log|P(i)|`` and pull an authentic image's patches together); a zero that keeps the graph
    (no NaN) when no anchor qualifies, e.g. an image without tampered or authentic patches.
    """
    with _float32(z):
        return _supcon_loss(z.float(), targets, temperature)


def _supcon_loss(z: Tensor, targets: Tensor, temperature: float) -> Tensor:
    valid = targets != IGNORE
    n = z.shape[1]
    candidates = valid[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=z.device)
    positives = candidates & (targets[:, :, None] == targets[:, None, :])
    sim = (z @ z.transpose(1, 2)) / temperature
    # A finite fill (not -inf) keeps rows without candidates finite, so no NaN reaches backward.
    sim = sim.masked_fill(~candidates, torch.finfo(sim.dtype).min)
    log_prob = sim - torch.logsumexp(sim, dim=-1, keepdim=True)
    n_pos = positives.sum(-1)
    per_anchor = -torch.where(positives, log_prob, 0.0).sum(-1) / n_pos.clamp(min=1)
    anchors = valid & (n_pos > 0) & (candidates & ~positives).any(-1)
    return _masked_mean(per_anchor, anchors)


def _masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` where ``keep``; 0 (still in the graph, no host sync) when none is kept."""
    return (values * keep).sum() / keep.sum().clamp(min=1)


ConsistencyForm = Literal["similarity", "embedding"]


def pivot_consistency(z_t: Tensor, z_a: Tensor, patch_class: Tensor,
                      form: ConsistencyForm) -> Tensor:
    """Disagreement of the two branches on the patches whose role they share.

    ``z_t``, ``z_a``: float ``[G, P, D]`` L2-normalised embeddings of the contour-as-tampered and
    contour-as-authentic branches; ``patch_class``: long ``[G, P]`` (:class:`PatchClass`).
    Only tampered and authentic patches count: both branches give them the same target, so any
    disagreement there is damage done by the contour role switch.

    * ``"similarity"``: mean over ordered pairs ``i != j`` of such patches (same group) of
      ``(z_t[i].z_t[j] - z_a[i].z_a[j])²`` — the branches must agree on how patches relate,
      while each keeps its own embedding space (so contour patches may sit apart).
    * ``"embedding"``: mean over such patches of ``||z_t[i] - z_a[i]||²``.

    Returns a zero that keeps the graph when no patch (pair) counts.
    """
    with _float32(z_t):
        return _pivot_consistency(z_t.float(), z_a.float(), patch_class, form)


def _pivot_consistency(z_t: Tensor, z_a: Tensor, patch_class: Tensor,
                       form: ConsistencyForm) -> Tensor:
    shared = patch_class != PatchClass.CONTOUR
    if form == "embedding":
        return _masked_mean((z_t - z_a).pow(2).sum(-1), shared)
    if form != "similarity":
        raise ValueError(f"consistency form must be 'similarity' or 'embedding', got {form!r}")
    n = z_t.shape[1]
    not_self = ~torch.eye(n, dtype=torch.bool, device=z_t.device)
    pairs = shared[:, :, None] & shared[:, None, :] & not_self
    gap = z_t @ z_t.transpose(1, 2) - z_a @ z_a.transpose(1, 2)
    return _masked_mean(gap.pow(2), pairs)
