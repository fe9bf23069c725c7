"""The one key mapping between official IML-ViT files and our ``iml_vit`` state_dict, and the
strict reading of MAE ImageNet weights for the encoder.

Released files (README Drive folder: ``iml-vit_checkpoint.pth``, ``iml-vit_casiav2_20231014.pth``,
``iml-vit_trufor_20231014.pth``) hold the bare ``iml_vit_model().state_dict()`` (Demo.ipynb,
issue #17); the repository's own training checkpoints wrap it as ``{"model": ..., "optimizer",
"epoch", "scaler", "args"}`` (utils/misc.py), whose ``args`` (an ``argparse.Namespace``) only
loads with ``--trust-checkpoint``. Both go through :func:`official_to_ours` and load strictly.

Renames, official -> ours (longest official prefix first; everything after it is kept):

=====================================  ==============================  =========================
official                               ours                            why
=====================================  ==============================  =========================
``encoder_net.``                       ``encoder.``                    MAE names below it
``featurePyramid_net.simfp_2.0.``      ``pyramid.p2.resample.up1.``    x4: ConvT
``featurePyramid_net.simfp_2.1.``      ``pyramid.p2.resample.norm.``   x4: channel LN
``featurePyramid_net.simfp_2.3.``      ``pyramid.p2.resample.up2.``    x4: ConvT
``featurePyramid_net.simfp_2.4.``      ``pyramid.p2.lateral.``         1x1 conv + ``norm``
``featurePyramid_net.simfp_2.5.``      ``pyramid.p2.output.``          3x3 conv + ``norm``
``featurePyramid_net.simfp_3.0.``      ``pyramid.p3.resample.``        x2: ConvT
``featurePyramid_net.simfp_3.1./.2.``  ``pyramid.p3.lateral./output.``
``featurePyramid_net.simfp_4.0./.1.``  ``pyramid.p4.lateral./output.`` x1: no resampling
``featurePyramid_net.simfp_5.1./.2.``  ``pyramid.p5.lateral./output.`` x0.5: max-pool (no keys)
``predict_head.linear_fuse.``          ``head.fuse.``
``predict_head.norm.``                 ``head.norm.``
``predict_head.linear_predict.``       ``head.predict.``
=====================================  ==============================  =========================

The official pyramid is one ``nn.Sequential`` per level, so its keys are layer positions; ours
name the role of each layer (which also lets the paper recipe exclude every norm and bias from
weight decay by name, as timm's optimizer factory does by dimension).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from imlbench.errors import CheckpointError, CheckpointNotFoundError

OFFICIAL_TO_OURS: tuple[tuple[str, str], ...] = (
    ("encoder_net.", "encoder."),
    ("featurePyramid_net.simfp_2.0.", "pyramid.p2.resample.up1."),
    ("featurePyramid_net.simfp_2.1.", "pyramid.p2.resample.norm."),
    ("featurePyramid_net.simfp_2.3.", "pyramid.p2.resample.up2."),
    ("featurePyramid_net.simfp_2.4.", "pyramid.p2.lateral."),
    ("featurePyramid_net.simfp_2.5.", "pyramid.p2.output."),
    ("featurePyramid_net.simfp_3.0.", "pyramid.p3.resample."),
    ("featurePyramid_net.simfp_3.1.", "pyramid.p3.lateral."),
    ("featurePyramid_net.simfp_3.2.", "pyramid.p3.output."),
    ("featurePyramid_net.simfp_4.0.", "pyramid.p4.lateral."),
    ("featurePyramid_net.simfp_4.1.", "pyramid.p4.output."),
    ("featurePyramid_net.simfp_5.1.", "pyramid.p5.lateral."),
    ("featurePyramid_net.simfp_5.2.", "pyramid.p5.output."),
    ("predict_head.linear_fuse.", "head.fuse."),
    ("predict_head.norm.", "head.norm."),
    ("predict_head.linear_predict.", "head.predict."),
)

MAE_EXTRA_KEYS = frozenset({"cls_token", "norm.weight", "norm.bias"})
"""Keys of MAE's ``mae_pretrain_vit_base.pth`` that the encoder has no use for (the official
code drops them silently through ``strict=False``; here they are the only keys allowed to be
left over)."""


def _rename(key: str, table: tuple[tuple[str, str], ...], side: str) -> str:
    for src, dst in sorted(table, key=lambda pair: len(pair[0]), reverse=True):
        if key.startswith(src):
            return dst + key[len(src):]
    raise CheckpointError(f"{key!r} is not a key of {side} IML-ViT state_dict (expected one of the "
                   f"prefixes {sorted({s.split('.')[0] + '.' for s, _ in table})})")


def official_key(ours: str) -> str:
    return _rename(ours, tuple((o, f) for f, o in OFFICIAL_TO_OURS), "an iml_vit")


def our_key(official: str) -> str:
    return _rename(official, OFFICIAL_TO_OURS, "an official")


def unwrap(state: Mapping[str, object], source: str) -> dict[str, Tensor]:
    """The name -> tensor mapping of a released file (bare) or a training checkpoint
    (``{"model": state_dict, ...}``)."""
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    bad = sorted(k for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise CheckpointError(f"{source}: expected a state_dict (name -> tensor) or a dict with one "
                         f"under 'model', got non-tensor entries {bad[:5]}")
    return dict(state)  # type: ignore[arg-type]


def official_to_ours(state: Mapping[str, object], source: str = "checkpoint") -> dict[str, Tensor]:
    return {our_key(k): v for k, v in unwrap(state, source).items()}


def ours_to_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {official_key(k): v for k, v in state.items()}


def read_mae_encoder(path: str | Path, encoder_keys: Mapping[str, torch.Size]
                     ) -> dict[str, Tensor]:
    """MAE ImageNet weights for :class:`~imlbench.methods.iml_vit.vit.WindowedViT`, checked
    strictly: every encoder key but the relative-position tables (absent from MAE: they keep
    their zero init, as in the official code) must be there with our shape, and nothing but
    :data:`MAE_EXTRA_KEYS` may be left over. ``encoder_keys``: our encoder's names -> shapes.
    Reads with ``weights_only=True`` (``mae_pretrain_vit_base.pth`` is ``{"model": ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"iml_vit: pretrained_path {str(path)!r} does not exist; download MAE's ViT-B "
            "encoder (mae_pretrain_vit_base.pth, see the official repository's "
            "pretrained-weights/mae_download_page.md) or set pretrained_path: null")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors have many types; the message says what to do
        raise CheckpointError(f"iml_vit: pretrained_path {path} cannot be read as plain tensors "
                         f"(weights_only=True: {exc}); re-save its state_dict with "
                         "torch.save({'model': state_dict}, path)") from exc
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"iml_vit: pretrained_path {path} holds a {type(raw).__name__}, "
                         "expected a state_dict or {'model': state_dict}")
    state = unwrap(raw, str(path))
    needed = {k for k in encoder_keys if ".rel_pos_" not in k}
    missing = sorted(needed - set(state))
    unexpected = sorted(set(state) - set(encoder_keys) - MAE_EXTRA_KEYS)
    wrong = sorted(f"{k}: file {tuple(state[k].shape)}, model {tuple(encoder_keys[k])}"
                   for k in needed & set(state) if state[k].shape != encoder_keys[k])
    if missing or unexpected or wrong:
        raise CheckpointError(f"iml_vit: {path} is not an MAE ViT encoder for this model: missing "
                         f"{missing[:8]}, unexpected {unexpected[:8]}, shape mismatches "
                         f"{wrong[:8]} (MAE ViT-B/16 at 224 px fits the default config)")
    return {k: state[k] for k in needed}
