"""MPC's losses: the stage-1 multi-view pixel contrast and the stage-2 head losses.

Notation for one image: embeddings are L2-normalised, ``·`` is the dot product, ``τ`` the
temperature; A = authentic pixels, T = tampered pixels of a feature set.

``code`` form (what the official ``losses.py`` computes): authentic queries ``Q`` against
tampered negatives ``N``; the positive logit of a query is its *mean* similarity to the other
queries::

    ℓ(Q, N) = mean_i −log( e^{s̄_i/τ} / (e^{s̄_i/τ} + Σ_{n∈N} e^{q_i·n/τ}) ),
    s̄_i = mean_{j≠i} q_i·q_j

``paper`` form (our reading of the paper's figure and text: "supervised contrastive loss",
tampered pixels as anchors, positives drawn from the other scale/view): the pixel-wise
supervised contrastive loss of Wang et al. (ICCV 2021) with anchors ``a`` from T of one set,
positives ``P`` from T and negatives ``N`` from A of the other set (the same set, minus the
anchor itself, for the within-image term)::

    ℓ(a) = mean_{p∈P} −log( e^{a·p/τ} / (e^{a·p/τ} + Σ_{n∈N} e^{a·n/τ}) )

Both forms are summed over the same directed pairs of feature sets (X = scale 1, Y = scales
2–4 pooled, X' = scale 1 of the second encoder pass): ``within`` (X→X), ``scale`` (X→Y, Y→X),
``view`` (X→X', X'→X). Each term draws its own samples of at most ``max_samples`` pixels per
(set, class). Degenerate sets give 0 instead of the official NaN: a term needs at least two
queries (code form) or one anchor with a positive (paper form).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LossForm = Literal["code", "paper"]
TERMS = ("within", "scale", "view")
# Directed (anchor set, contrast set) pairs per term.
TERM_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "within": (("X", "X"),),
    "scale": (("X", "Y"), ("Y", "X")),
    "view": (("X", "X2"), ("X2", "X")),
}


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Ground truth at the network's output size, as the official loader makes it.

    The official loader applies ``cv2.resize`` (bilinear, ``INTER_LINEAR``) to the 0/255 mask
    and thresholds at 127; for a 4× reduction each output pixel is the mean of a 2×2 block, so a
    half-tampered block counts as tampered (127.5 rounds to 128). Same here: non-antialiased
    bilinear (half-pixel centres, the cv2 convention) and ``>= 0.5``.

    ``mask``: float ``[B, 1, H, W]`` in {0, 1} -> float ``[B, 1, *size]`` in {0, 1}.
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return (mask >= 0.5).to(mask.dtype)
    resized = F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=False)
    return (resized >= 0.5).to(mask.dtype)


def mask_pyramid(mask: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
    """Nearest-neighbour copies of an output-size mask at each feature size (the official
    ``F.interpolate(mode='nearest')`` to 1/2, 1/4, 1/8). ``mask``: ``[B, 1, h, w]`` -> list of
    bool ``[B, h_s, w_s]``."""
    return [F.interpolate(mask.float(), size=s, mode="nearest")[:, 0] > 0.5 for s in sizes]


def sample_indices(candidates: Tensor, cap: int, generator: torch.Generator | None = None) -> Tensor:
    """At most ``cap`` of the row indices where ``candidates`` (bool ``[N]``) is true, chosen
    uniformly without replacement with ``generator`` (CPU; ``None``: torch's global CPU
    generator) -> long ``[min(cap, count)]``."""
    idx = candidates.nonzero().squeeze(1)
    if idx.numel() <= cap:
        return idx
    pick = torch.randperm(idx.numel(), generator=generator)[:cap].to(idx.device)
    return idx[pick]


def code_form_loss(queries: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """``ℓ(Q, N)`` of the code form (module docstring). ``queries`` ``[q, D]``, ``negatives``
    ``[n, D]``, unit rows -> scalar; 0 when ``q < 2`` (no query pair to average)."""
    q = queries.shape[0]
    if q < 2:
        return queries.sum() * 0.0  # keeps the graph (and the dtype/device) for backward
    # Σ_{j≠i} q_i·q_j = q_i·(Σ_j q_j) − q_i·q_i: O(qD) instead of a q×q similarity matrix.
    mean_pos = (queries @ queries.sum(0) - (queries * queries).sum(1)) / (q - 1)
    logits = torch.cat([mean_pos[:, None], queries @ negatives.T], dim=1) / temperature
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def paper_form_loss(anchors: Tensor, positives: Tensor, negatives: Tensor, temperature: float,
                    same_set: bool) -> Tensor:
    """``ℓ`` of the paper form averaged over anchors that have a positive. ``anchors`` ``[a, D]``,
    ``positives`` ``[p, D]``, ``negatives`` ``[n, D]``; ``same_set``: positives are the anchors
    themselves (within-image term), so an anchor is not its own positive -> scalar."""
    pos = anchors @ positives.T / temperature
    valid = torch.ones_like(pos, dtype=torch.bool)
    if same_set:
        valid.fill_diagonal_(False)
    neg_lse = torch.logsumexp(anchors @ negatives.T / temperature, dim=1, keepdim=True)
    per_pair = torch.logaddexp(pos, neg_lse) - pos  # −log(e^pos / (e^pos + Σ e^neg))
    n_pos = valid.sum(1)
    has_pos = n_pos > 0
    if not has_pos.any():
        return pos.sum() * 0.0
    per_anchor = (per_pair * valid).sum(1)[has_pos] / n_pos[has_pos]
    return per_anchor.mean()


@dataclass(frozen=True)
class ContrastSettings:
    form: LossForm = "code"
    terms: tuple[str, ...] = TERMS
    temperature: float = 0.1
    max_samples: int = 5000


def image_contrast_loss(sets: dict[str, tuple[Tensor, Tensor]], settings: ContrastSettings,
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Stage-1 loss terms for one image.

    ``sets``: name (``"X"``, ``"Y"``, ``"X2"``; only those the terms need) -> (embeddings
    float ``[N, D]`` with unit rows, tampered bool ``[N]``). ``generator``: for the pixel
    sampling (see :func:`sample_indices`). Returns ``{term: scalar}``.
    """
    out = {}
    for term in settings.terms:
        cache: dict[tuple[str, bool], Tensor] = {}

        def sample(name: str, tampered: bool) -> Tensor:
            if (name, tampered) not in cache:  # one draw per (set, class) and term
                feats, is_tampered = sets[name]
                pick = is_tampered if tampered else ~is_tampered
                cache[name, tampered] = feats[sample_indices(pick, settings.max_samples, generator)]
            return cache[name, tampered]

        total = None
        for a, b in TERM_PAIRS[term]:
            if settings.form == "code":
                value = code_form_loss(sample(a, False), sample(b, True), settings.temperature)
            else:
                value = paper_form_loss(sample(a, True), sample(b, True), sample(b, False),
                                        settings.temperature, same_set=a == b)
            total = value if total is None else total + value
        out[term] = total
    return out


def sigmoid_focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.5, gamma: float = 2.0) -> Tensor:
    """Mean over pixels of ``α_t (1 − p_t)^γ BCE(logit, y)`` (Lin et al. 2017), the official
    stage-2 loss with α 0.5, γ 2. ``logits``/``target``: float ``[B, 1, h, w]`` -> scalar."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * bce).mean()
