"""The one key mapping between the official TruFor files and our ``trufor`` state_dict.

Official files (github.com/grip-unina/TruFor):

* ``trufor.pth.tar`` (in ``TruFor_weights.zip``): ``{"epoch": 81, "best_value": numpy.float64,
  "best_key": "avg_det_bacc", "state_dict": ..., "optimizer": ...}``; ``state_dict`` is the
  official ``myEncoderDecoder.state_dict()`` (952 entries, no ``module.`` prefix). The numpy
  scalar makes ``torch.load(weights_only=True)`` refuse the file, so it needs
  ``--trust-checkpoint`` (only ``state_dict`` is used; epoch, score and optimizer are dropped).
* ``noiseprint++.th``: ``{"network": <the bare Noiseprint++ Sequential>, "global_step": 39}``,
  saved from CUDA; it loads with ``weights_only=True`` and ``map_location="cpu"``.
* ``mit_b2.pth`` (ImageNet SegFormer MiT-B2, phase-2 initialisation): ``patch_embed<i>.``,
  ``block<i>.``, ``norm<i>.`` (+ a classifier ``head.``); the official ``load_dualpath_model``
  copies it into both streams, and so does :func:`read_imagenet_mit`.

Renames, official -> ours (``i`` = stage 1..4, ours counts from 0):

=====================================  ===============================  =======================
official                               ours                             why
=====================================  ===============================  =======================
``dncnn.<k>``                          ``noiseprint.layers.<k>``        named for what it is
``backbone.patch_embed<i>.``           ``encoder.rgb.<i-1>.embed.``     a stream is 4 stages
``backbone.block<i>.``                 ``encoder.rgb.<i-1>.blocks.``    of (embed, blocks,
``backbone.norm<i>.``                  ``encoder.rgb.<i-1>.norm.``      norm)
``backbone.extra_<same>``              ``encoder.noise.<same>``         the Noiseprint++ stream
``backbone.FRMs.``                     ``encoder.rectify.``             CMX's FRM
``backbone.FFMs.``                     ``encoder.fuse.``                CMX's FFM
``.mlp.dwconv.dwconv.`` (in blocks)    ``.mlp.dwconv.``                 no wrapper module
``decode_head.``                       ``loc_head.``                    localisation decoder
``decode_head_conf.``                  ``conf_head.``                   confidence decoder
``<head>.linear_c<i>.proj.``           ``<head>.proj.<i-1>.``           one list of projections
``<head>.linear_fuse.``                ``<head>.fuse.``
``<head>.linear_pred.``                ``<head>.classifier.``
``detection.``                         ``detector.``
=====================================  ===============================  =======================

Every other part of a name (``attn.q``, ``channel_emb.channel_embed.4``, ...) is the same.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from imlbench.errors import CheckpointError
from imlbench.weights import read_state_dict

_STREAM = {"": "rgb", "extra_": "noise"}
_STREAM_BACK = {v: k for k, v in _STREAM.items()}
_PART = {"patch_embed": "embed", "block": "blocks", "norm": "norm"}
_PART_BACK = {v: k for k, v in _PART.items()}
_HEADS = {"decode_head": "loc_head", "decode_head_conf": "conf_head"}
_HEADS_BACK = {v: k for k, v in _HEADS.items()}
_HEAD_PARTS = {"linear_fuse": "fuse", "linear_pred": "classifier"}
_HEAD_PARTS_BACK = {v: k for k, v in _HEAD_PARTS.items()}

_OFF_STREAM = re.compile(r"^backbone\.(extra_)?(patch_embed|block|norm)([1-4])\.(.+)$")
_OFF_HEAD = re.compile(r"^(decode_head|decode_head_conf)\.(.+)$")
_OURS_STREAM = re.compile(r"^encoder\.(rgb|noise)\.([0-3])\.(embed|blocks|norm)\.(.+)$")
_OURS_HEAD = re.compile(r"^(loc_head|conf_head)\.(.+)$")


def official_to_ours(key: str) -> str | None:
    """Our name for official ``key`` (``None``: not a TruFor model key)."""
    if m := _OFF_STREAM.match(key):
        extra, part, stage, rest = m.groups()
        if part == "block":
            rest = rest.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
        return f"encoder.{_STREAM[extra or '']}.{int(stage) - 1}.{_PART[part]}.{rest}"
    if m := _OFF_HEAD.match(key):
        head, rest = m.groups()
        if p := re.match(r"^linear_c([1-4])\.proj\.(.+)$", rest):
            rest = f"proj.{int(p.group(1)) - 1}.{p.group(2)}"
        elif (part := rest.split(".", 1)[0]) in _HEAD_PARTS:
            rest = _HEAD_PARTS[part] + rest[len(part):]
        else:
            return None
        return f"{_HEADS[head]}.{rest}"
    for official, ours in (("dncnn.", "noiseprint.layers."), ("backbone.FRMs.", "encoder.rectify."),
                           ("backbone.FFMs.", "encoder.fuse."), ("detection.", "detector.")):
        if key.startswith(official):
            return ours + key[len(official):]
    return None


def ours_to_official(key: str) -> str:
    """The official name of our ``key`` (the inverse of :func:`official_to_ours`)."""
    if m := _OURS_STREAM.match(key):
        stream, stage, part, rest = m.groups()
        if part == "blocks":
            rest = rest.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")
        return f"backbone.{_STREAM_BACK[stream]}{_PART_BACK[part]}{int(stage) + 1}.{rest}"
    if m := _OURS_HEAD.match(key):
        head, rest = m.groups()
        if p := re.match(r"^proj\.([0-3])\.(.+)$", rest):
            rest = f"linear_c{int(p.group(1)) + 1}.proj.{p.group(2)}"
        else:
            part = rest.split(".", 1)[0]
            rest = _HEAD_PARTS_BACK[part] + rest[len(part):]
        return f"{_HEADS_BACK[head]}.{rest}"
    for official, ours in (("dncnn.", "noiseprint.layers."), ("backbone.FRMs.", "encoder.rectify."),
                           ("backbone.FFMs.", "encoder.fuse."), ("detection.", "detector.")):
        if key.startswith(ours):
            return official + key[len(ours):]
    raise KeyError(f"trufor: {key!r} has no official name")


def convert_official(state: Mapping[str, Tensor], source: str = "state_dict") -> dict[str, Tensor]:
    """Official TruFor state_dict -> ours; a key outside the mapping is an error."""
    out, unknown = {}, []
    for key, value in state.items():
        ours = official_to_ours(key)
        if ours is None:
            unknown.append(key)
        else:
            out[ours] = value
    if unknown:
        raise CheckpointError(f"{source}: {len(unknown)} key(s) are not TruFor weights (e.g. "
                         f"{unknown[:3]}); expected the official trufor.pth.tar or its state_dict")
    return out


def to_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state_dict in the official names (for writing files the official code reads)."""
    return {ours_to_official(k): v for k, v in state.items()}


def read_official(path: Path, *, trust: bool) -> dict[str, Tensor]:
    """``trufor.pth.tar`` (``{"state_dict": ..., ...}``) or a bare official state_dict -> ours.
    Read with ``weights_only=True`` unless ``trust`` (the released file needs it: numpy scalar)."""
    if Path(path).is_dir():
        raise CheckpointError(f"{path} is a folder; trufor loads one file (trufor.pth.tar from "
                         "TruFor_weights.zip)")
    state = read_state_dict(path, trust=trust)
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    return convert_official(state, str(path))


def read_noiseprint(path: Path) -> dict[str, Tensor]:
    """The official ``noiseprint++.th`` -> the state_dict of ``NoiseprintExtractor.layers``."""
    state = read_state_dict(path)
    if isinstance(state.get("network"), Mapping):
        state = state["network"]
    return dict(state)


def read_imagenet_mit(path: Path) -> dict[str, Tensor]:
    """An ImageNet MiT file (``mit_b2.pth``; ``{"model": ...}`` / ``{"state_dict": ...}``
    wrappers accepted, ``head.*`` dropped) -> a state_dict of both encoder streams, in the keys
    of :class:`~imlbench.methods.trufor.fusion.DualEncoder` (``rgb.*`` and ``noise.*``)."""
    state = read_state_dict(path)
    for wrapper in ("model", "state_dict"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    out, unknown = {}, []
    for key, value in state.items():
        if key.startswith("head."):
            continue
        rgb, noise = official_to_ours(f"backbone.{key}"), official_to_ours(f"backbone.extra_{key}")
        if rgb is None or noise is None or not rgb.startswith("encoder.rgb."):
            unknown.append(key)
            continue
        out[rgb.removeprefix("encoder.")] = value
        out[noise.removeprefix("encoder.")] = value
    if unknown:
        raise CheckpointError(f"{path}: {len(unknown)} key(s) are not MiT encoder weights (e.g. "
                              f"{unknown[:3]}); expected SegFormer's ImageNet mit_b2.pth")
    return out
