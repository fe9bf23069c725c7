"""``ncl``: Non-mutually exclusive Contrastive Learning (Zhou et al., ICCV 2023, arXiv 2309.14900).

Provenance. The paper is public (ICCV 2023 open access; arXiv 2309.14900); the authors' training
code is not — their repository (Knightzjz/NCL-IML, commit e930593) holds an inference demo only.

Read from the paper (its stated method):

* no manipulation-specific pre-training; contrastive learning over image patches that fall in
  three classes by the ground truth — tampered, authentic and contour (both kinds of pixels).
  Contour patches are not mutually exclusive with the other two, and abnegating them costs a
  lot (our ablation ``contour="drop"``);
* a pivot structure with dual branches that switches the role of contour patches between
  positives and negatives *while training* — our default ``pivot="alternate"``, one branch's
  contrast per step in turn — and a pivot-consistent loss against the spatial corruption the
  switching causes.

Read from the released demo (``NCL_IML.ipynb``): a pickled model whose forward returns four
tensors, the last the 2-class logits read by argmax; input resized bilinearly to 512² and
standardised with the ImageNet mean/std. Its helper imports (``custom_transforms``,
``utils.decode_seg_map_sequence``) are those of the pytorch-deeplab-xception code base, whose
default model is a ResNet-101 DeepLabV3+ started from ImageNet weights — hence the ``paper``
recipe's ResNet-101 at 512² and its demand for those weights (``require_pretrained``).

Reconstructed (ours; written from the description above, not checked against the paper's
equations or its training settings, which were not at hand — compare them before claiming
fidelity): the loss formulas in :mod:`imlbench.methods.ncl_losses`, every field of
:class:`NCLConfig` (patch size, temperature, projection sizes, loss weights, switching period;
each documented with the reason for its default), the ``both`` reading of the pivot (ablation),
and where the branches fork: the decoder feature map, pooled per patch, feeds two projection
branches — one sees contour patches as tampered, the other as authentic — each with a supervised
contrastive loss; the pivot-consistent loss ties the branches where they agree on the role. The network is the shared :class:`~imlbench.methods.nets.DeepLabV3Plus` of
``seg_ce`` (ImageNet normalisation, 2-class cross-entropy, map = softmax probability of the
tampered class; the demo's three auxiliary outputs are not reproduced), so
``NCL(contrast_weight=0)`` *is* ``seg_ce`` and any difference between the two is the
contrastive machinery's.

Ablations of the paper's argument, as method configs: ``contour="drop"`` (abnegate contour
patches), ``contour="tampered"`` / ``"authentic"`` (a single branch, fixed role),
``consistency_weight=0`` (no pivot-consistent loss), ``contrast_weight=0`` (= ``seg_ce``).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import ConfigError, UnknownOptionError
from imlbench.methods.ncl_losses import (
    ConsistencyForm, ContourRole, contrast_targets, label_patches, pivot_consistency, supcon_loss)
from imlbench.methods.seg_ce import SegCE, pixel_ce
from imlbench.registry import METHODS

FEATURE_STRIDE = 4
"""DeepLabV3+ decoder features are at 1/4 of the input size (see ``DeepLabV3Plus``)."""

DEFAULT_PATCH_GRID = 16
"""Patches per image side when ``NCLConfig.patch_size`` is not given."""

CONTOUR_BRANCHES: dict[str, tuple[ContourRole, ...]] = {
    "dual": ("tampered", "authentic"),
    "tampered": ("tampered",),
    "authentic": ("authentic",),
    "drop": ("drop",),
}
"""Contour policy -> the role contour patches take in each projection branch."""


@dataclass(frozen=True)
class NCLConfig:
    """NCL's training choices. Every value is our reconstruction (module docstring: what the
    paper and demo fix and what they leave open); the docstring of each says why we chose its
    default."""

    contour: Literal["dual", "tampered", "authentic", "drop"] = "dual"
    """How contour patches enter the contrast. ``dual`` (NCL): two projection branches, one
    treats them as tampered, the other as authentic. Ablations: ``tampered`` / ``authentic``
    (one branch, a fixed role), ``drop`` (one branch, contour patches abnegated)."""
    pivot: Literal["both", "alternate"] = "alternate"
    """How the pivot switches the contour role (``dual`` only). ``alternate`` (default): one
    branch's contrastive loss per step, switching every ``switch_every`` steps — the paper's
    "constantly switch the role of contour patches between positives and negatives while
    training"; the idle branch still learns through the pivot-consistent loss. ``both``
    (ablation): every step trains both branches on the shared (pivot) features, so they see
    contour patches as positives and as negatives at once. ``both`` was the default until
    2026-12-01 (the committed ``docs/results/ncl_vs_seg_ce.md`` used it); since then
    ``pivot`` is always part of ncl's label (``NCL.labelled_defaults``), so records and
    checkpoints made under the old default are never taken for the new one."""
    switch_every: int = 1
    """Optimizer steps per branch when ``pivot="alternate"`` (counted by the training loop's
    ``step_in_stage``, so a resumed run continues on the right branch)."""
    patch_size: int | None = None
    """Side of a square patch in input pixels (a multiple of the feature stride 4). ``None``:
    ``input_size / 16`` rounded down to a multiple of 4 (at least 4), i.e. a 16×16 grid — 32
    pixels at the paper's 512²: contour patches form a thin band along the tampered boundary,
    and each patch still pools 8×8 decoder cells. Following the input size keeps the grid the
    same when a recipe trains at a smaller size."""
    scope: Literal["image", "batch"] = "image"
    """Which patches are contrasted together. ``image``: tampered vs authentic within each
    image — authenticity is relative to the rest of the photo (camera, compression), so
    patches of different photos are weak positives. ``batch``: all patches of the batch."""
    temperature: float = 0.1
    """SupCon temperature; 0.1 as in supervised/pixel contrastive segmentation (Khosla et al.
    2020; Wang et al., ICCV 2021)."""
    proj_hidden: int | None = None
    proj_dim: int = 128
    """Projection head Linear(C, hidden)-ReLU-Linear(hidden, dim) per branch on patch-pooled
    decoder features (C channels), L2-normalised; hidden ``None`` = C. The SimCLR/SupCon head
    (hidden as wide as its input, 128-d output)."""
    contrast_weight: float = 0.1
    """Weight of the contrastive term (mean of the active branches' SupCon) beside the pixel
    cross-entropy, as in pixel-contrast segmentation (Wang et al. 2021). 0 turns the contrast
    off entirely: no heads are built and the method is exactly ``seg_ce``."""
    consistency: ConsistencyForm = "similarity"
    """Pivot-consistent loss form (``dual`` only), see :func:`pivot_consistency`. ``similarity``
    ties the branches' patch-to-patch similarities on tampered/authentic patches (which both
    branches label alike) without forcing one embedding space; ``embedding`` ties the
    embeddings themselves."""
    consistency_weight: float = 1.0
    """Weight of the pivot-consistent loss; 1 because it is already a mean of squared cosine
    gaps (in [0, 4]) of the same order as the contrastive term. 0 = no consistency."""

    def __post_init__(self) -> None:
        _check_choice("contour", self.contour, tuple(CONTOUR_BRANCHES))
        _check_choice("pivot", self.pivot, ("both", "alternate"))
        _check_choice("scope", self.scope, ("image", "batch"))
        _check_choice("consistency", self.consistency, ("similarity", "embedding"))
        if self.patch_size is not None and (self.patch_size < FEATURE_STRIDE
                                            or self.patch_size % FEATURE_STRIDE):
            raise ConfigError(f"patch_size must be a positive multiple of the feature stride "
                             f"{FEATURE_STRIDE}, got {self.patch_size}")
        for name in ("switch_every", "proj_hidden", "proj_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.contrast_weight < 0 or self.consistency_weight < 0:
            raise ConfigError(f"loss weights must be >= 0, got contrast_weight="
                             f"{self.contrast_weight}, "
                             f"consistency_weight={self.consistency_weight}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def projection_head(channels: int, hidden: int, dim: int) -> nn.Sequential:
    """``[..., channels] -> [..., dim]`` (normalised by the caller)."""
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))


@METHODS.register("ncl")
class NCL(SegCE):
    """DeepLabV3+ with dual-branch non-mutually exclusive patch contrast (NCL, ICCV 2023)."""

    reference = ("Zhou et al., Pre-Training-Free Image Manipulation Localization through "
                 "Non-Mutually Exclusive Contrastive Learning, ICCV 2023 (arXiv 2309.14900)")
    method_name = "ncl"
    labelled_defaults: dict[str, Any] = {"pivot": NCLConfig.pivot}
    """Options whose default changed after results were published: they are always written into
    the method's label, config identity and checkpoint lookup (``ncl[pivot=alternate]``), so a
    record or checkpoint made under the old default (``ncl`` before 2026-12-01 =
    ``pivot=both``) is never counted as, or reused for, the new one."""

    def __init__(self, backbone: str = "resnet101", input_size: int = 512, **kwargs: Any) -> None:
        """Paper defaults: ResNet-101, 512². ``require_pretrained``: refuse to start the encoder
        from random weights (the ``paper`` recipe sets it: the authors' code base starts from
        ImageNet weights). ``kwargs``: :class:`NCLConfig` fields (e.g. ``NCL(contour="drop")``)
        and the other network arguments of :class:`SegCE` (``pretrained_path``,
        ``decoder_channels``, ``input_mode``, ``require_pretrained``)."""
        fields = [f.name for f in dataclasses.fields(NCLConfig)]
        network = [n for n in inspect.signature(SegCE.__init__).parameters if n != "self"]
        for key in kwargs:
            if key not in fields + network:
                close = difflib.get_close_matches(key, fields + network, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise UnknownOptionError(f"ncl has no option {key!r}.{hint} Options: "
                                f"{', '.join(network + fields)}.")
        cfg = NCLConfig(**{k: v for k, v in kwargs.items() if k in fields})
        if input_size % FEATURE_STRIDE:
            raise ConfigError(f"input_size must be a multiple of {FEATURE_STRIDE} so that patches "
                             f"and decoder features share one grid, got {input_size}")
        if cfg.patch_size is None:
            grid_patch = input_size // DEFAULT_PATCH_GRID // FEATURE_STRIDE * FEATURE_STRIDE
            cfg = dataclasses.replace(cfg, patch_size=max(FEATURE_STRIDE, grid_patch))
        super().__init__(backbone=backbone, input_size=input_size,
                         **{k: v for k, v in kwargs.items() if k not in fields})
        self.config = cfg
        # Heads are built after the network, so a seed gives the same network as seg_ce's.
        self.heads = nn.ModuleDict()
        if cfg.contrast_weight > 0:
            channels = self.net.classifier.in_channels
            for role in CONTOUR_BRANCHES[cfg.contour]:
                self.heads[role] = projection_head(channels, cfg.proj_hidden or channels,
                                                   cfg.proj_dim)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Tiny model for tests: seg_ce's tiny network, 8-pixel patches (a 4×4 grid at 32²)."""
        return {**SegCE.tiny_config(), "patch_size": 8, "proj_dim": 8}

    def loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Terms: ``ce`` (seg_ce's loss), ``supcon_<role>`` per active branch, ``pivot`` (dual),
        ``loss`` = ce + contrast_weight · mean(supcon) + consistency_weight · pivot."""
        out = self.outputs(batch["image"])
        ce = pixel_ce(out["logits"], batch["mask"])
        terms = {"ce": ce}
        total = ce
        if self.heads:
            contrast = self.contrast_terms(out["features"], batch["mask"])
            supcon = [v for k, v in contrast.items() if k.startswith("supcon_")]
            total = total + self.config.contrast_weight * torch.stack(supcon).mean()
            if "pivot" in contrast:
                total = total + self.config.consistency_weight * contrast["pivot"]
            terms.update(contrast)
        terms["loss"] = total
        return terms

    def contrast_terms(self, features: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Contrastive terms of one batch: ``supcon_<role>`` per active branch and ``pivot``
        (dual). ``features`` float [B, C, H/4, W/4] (decoder output); ``mask`` float
        [B, 1, H, W]. Public so that analyses can feed features directly."""
        cfg = self.config
        patch_class = label_patches(mask, cfg.patch_size)  # [B, gh, gw]
        pooled = F.avg_pool2d(features, cfg.patch_size // FEATURE_STRIDE, ceil_mode=True)
        if pooled.shape[-2:] != patch_class.shape[-2:]:
            raise ValueError(
                f"patch grid of the features {tuple(pooled.shape[-2:])} != grid of the mask "
                f"{tuple(patch_class.shape[-2:])}: image size {tuple(mask.shape[-2:])} must be a "
                f"multiple of {FEATURE_STRIDE}")
        groups = pooled.shape[0] if cfg.scope == "image" else 1
        # [B, C, gh, gw] -> [G, P, C]
        patches = pooled.flatten(2).transpose(1, 2).reshape(groups, -1, pooled.shape[1])
        patch_class = patch_class.reshape(groups, -1)  # [G, P]
        embeddings = {role: F.normalize(head(patches), dim=-1) for role, head in self.heads.items()}

        roles = list(self.heads)
        if cfg.pivot == "alternate" and len(roles) == 2:
            roles = [roles[(self.step_in_stage // cfg.switch_every) % 2]]
        terms = {f"supcon_{role}": supcon_loss(
            embeddings[role], contrast_targets(patch_class, role), cfg.temperature)
            for role in roles}
        if len(self.heads) == 2 and cfg.consistency_weight > 0:
            terms["pivot"] = pivot_consistency(embeddings["tampered"], embeddings["authentic"],
                                               patch_class, cfg.consistency)
        return terms
