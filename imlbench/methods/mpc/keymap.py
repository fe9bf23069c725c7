"""The one key mapping between the official MPC checkpoints and our ``mpc`` state_dict.

Official files (github.com/multimediaFor/MPC, ``CATNet_dataset_train``):

* stage 1 saves the bare ``HighResolutionTransformer.state_dict()``: ``conv1.weight``,
  ``convs.0.conv.weight``, ``stage2.0.branches.0.0.attn.attn.q_proj.weight``, ...
* stage 2 saves ``MyModel.state_dict()``: ``encoder.`` + the stage-1 keys, and
  ``decoder.classifier.<i>.*`` for the head.

The official stage-2 script loads the stage-1 file by keeping only keys whose name *and*
shape match; as the stage-1 keys lack the ``encoder.`` prefix, nothing matches and stage 2
silently trains its head on the randomly initialised encoder. Here both files go through this mapping and load
with ``strict=True``, so a mismatch is an error, never a silent skip.

Renames, official -> ours (reversed for ours -> official):

=======================  ==================  ============================================
official                 ours                why
=======================  ==================  ============================================
``conv1. bn1. conv2.``   ``stem.<same>``     the stem is one sub-module (key start only)
``bn2.``
``convs.``               ``embed.``          per-scale projections to the embedding width
``.attn.attn.``          ``.attn.``          no wrapper module around the attention
``decoder.classifier.``  ``head.``           model level (stage-2 files)
``encoder.``             ``encoder.``        model level (stage-2 files)
=======================  ==================  ============================================
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from imlbench.errors import CheckpointError

if TYPE_CHECKING:
    from imlbench.methods.mpc.model import MPC

CheckpointKind = Literal["stage1", "stage2"]


@dataclass(frozen=True)
class Rename:
    official: str
    ours: str
    at_start: bool = True
    """``True``: the fragment must begin the key; ``False``: first occurrence anywhere."""

    def apply(self, key: str, to_ours: bool) -> str | None:
        src, dst = (self.official, self.ours) if to_ours else (self.ours, self.official)
        if self.at_start:
            return dst + key[len(src):] if key.startswith(src) else None
        return key.replace(src, dst, 1) if src in key else None


ENCODER_RENAMES = (
    Rename("conv1.", "stem.conv1."), Rename("bn1.", "stem.bn1."),
    Rename("conv2.", "stem.conv2."), Rename("bn2.", "stem.bn2."),
    Rename("convs.", "embed."),
    Rename(".attn.attn.", ".attn.", at_start=False),
)
ENCODER_PREFIX = "encoder."
HEAD_RENAME = Rename("decoder.classifier.", "head.")


def encoder_key(key: str, *, to_ours: bool) -> str:
    """Map an encoder-relative key (a stage-1 file's key, or ours without ``encoder.``)."""
    for rule in ENCODER_RENAMES:
        key = rule.apply(key, to_ours) or key
    return key


def model_key(key: str, *, to_ours: bool) -> str:
    """Map a whole-model key (a stage-2 file's key, or a key of ``MPC.state_dict()``)."""
    if key.startswith(ENCODER_PREFIX):
        return ENCODER_PREFIX + encoder_key(key[len(ENCODER_PREFIX):], to_ours=to_ours)
    head = HEAD_RENAME.apply(key, to_ours)
    if head is None:
        side, head_prefix = ("an official stage-2", HEAD_RENAME.official) if to_ours \
            else ("an mpc", HEAD_RENAME.ours)
        raise CheckpointError(f"{key!r} is not a key of {side} model (expected a key starting with "
                       f"{ENCODER_PREFIX!r} or {head_prefix!r})")
    return head


def checkpoint_kind(state_dict: dict[str, Tensor]) -> CheckpointKind:
    """``stage2`` when the keys carry the model-level prefixes, else ``stage1`` (bare encoder)."""
    prefixes = (ENCODER_PREFIX, HEAD_RENAME.official)
    return "stage2" if any(k.startswith(prefixes) for k in state_dict) else "stage1"


def official_to_ours(state_dict: dict[str, Tensor]) -> tuple[CheckpointKind, dict[str, Tensor]]:
    """Rename an official state_dict. Stage-1 files give encoder-relative keys (for
    ``method.encoder``), stage-2 files whole-model keys (for ``method``)."""
    kind = checkpoint_kind(state_dict)
    rename = (lambda k: encoder_key(k, to_ours=True)) if kind == "stage1" \
        else (lambda k: model_key(k, to_ours=True))
    return kind, {rename(k): v for k, v in state_dict.items()}


def ours_to_official(state_dict: dict[str, Tensor], kind: CheckpointKind) -> dict[str, Tensor]:
    """Inverse of :func:`official_to_ours`: ``kind="stage1"`` takes ``method.encoder``'s
    state_dict, ``"stage2"`` the whole method's."""
    if kind == "stage1":
        return {encoder_key(k, to_ours=False): v for k, v in state_dict.items()}
    return {model_key(k, to_ours=False): v for k, v in state_dict.items()}


def load_official_checkpoint(method: "MPC", path: str | Path) -> CheckpointKind:
    """Load an official MPC ``.pth`` (stage-1 encoder or stage-2 model) into ``method`` with
    ``strict=True``; returns which kind it was. A stage-1 file fills the encoder only (train
    stage ``"2"`` next); a stage-2 file fills encoder and head (ready to ``predict``).

    ``method`` must have the official shapes: ``backbone="base"``, ``embed_dim=256`` and
    ``head_widths=(512, 256, 128)`` (the released CASIAv2 model: ``(512, 256, 128, 64)``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official MPC checkpoint {path} does not exist; download it as "
                                "the MPC README says (e.g. MPC_CATNet_stage2_weights.pth)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a plain state_dict (name -> tensor) as the official "
                         f"training scripts save, got {type(state).__name__}")
    kind, mapped = official_to_ours(state)
    target = method.encoder if kind == "stage1" else method
    try:
        target.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(
            f"{path} ({kind} checkpoint) does not fit this mpc model: {exc}\nBuild the method "
            "with backbone='base', embed_dim=256 and head_widths=(512, 256, 128), or "
            "(512, 256, 128, 64) for the released CASIAv2 model.") from exc
    return kind


IMAGENET_HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
"""The classification head of the ImageNet HRFormer checkpoints (``hrt_base.pth``), which the
MPC encoder has no use for; the official ``load_model`` drops them by name as well."""


def encoder_init_state(state: dict[str, Tensor], path: str | Path,
                       our_keys: set[str]) -> tuple[dict[str, Tensor], list[str]]:
    """Map an encoder initialisation file onto ``method.encoder``'s keys, strictly.

    ``state``: an ImageNet HRFormer checkpoint (``{"model": ...}`` as ``hrt_base.pth`` is
    distributed, or bare) or an official stage-1 file. Returns the mapped state and the
    encoder keys it leaves at their initialisation: only the per-scale embedding projections
    (``embed.*``), which MPC adds to HRFormer and an ImageNet file cannot hold. Any other missing
    or unexpected key is an error naming it, never a silent partial load (the official
    ``load_model`` skips whatever does not match).
    """
    if isinstance(state.get("model"), dict):
        state = state["model"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    mapped = {encoder_key(k, to_ours=True): v for k, v in state.items()
              if not k.startswith(IMAGENET_HEAD_PREFIXES)}
    unexpected = sorted(set(mapped) - our_keys)
    missing = sorted(our_keys - set(mapped))
    left = [k for k in missing if k.startswith("embed.")]
    missing = [k for k in missing if not k.startswith("embed.")]
    if unexpected or missing:
        raise CheckpointError(
            f"encoder weights {path} do not fit this mpc encoder: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); give an "
            "ImageNet HRFormer checkpoint of the same backbone (hrt_base.pth for backbone=base) "
            "or an official MPC stage-1 file")
    return mapped, left
