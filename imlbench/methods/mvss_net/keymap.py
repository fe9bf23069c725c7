"""The one key mapping between the released MVSS-Net files and our ``mvss_net`` state_dict.

The released ``mvssnet_casia.pt`` / ``mvssnet_defacto.pt`` are a *bare* state_dict (800
tensors, no wrapper keys, no ``module.`` prefix): the official ``inference.py:58-59`` does
``model.load_state_dict(torch.load(path), strict=True)``. It holds plain tensors only, so it
loads with ``torch.load(weights_only=True)``. Every official key has exactly one of ours:

===============================  ==============================  ==========================
official                         ours                            what
===============================  ==============================  ==========================
``model.<k>``                    ``net.rgb_backbone.<k>``        RGB ResNet-50 (incl. ``fc``)
``noise_extractor.model.<k>``    ``net.noise_backbone.<k>``      noise ResNet-50 (incl. ``fc``)
``constrain_conv.kernel``        ``net.bayar.kernel``            Bayar taps ``[1, 3, 24]``
``sobel_x<i>.0.weight``          ``net.edge.sobel.<i-1>.kernel_x``  fixed Sobel kernel (buffer)
``sobel_x<i>.1.<k>``             ``net.edge.sobel.<i-1>.norm_x.<k>``  its BatchNorm2d(1)
``sobel_y<i>.*``                 ``net.edge.sobel.<i-1>.*_y*``   (the same for y)
``erb_db_<i>.<k>``               ``net.edge.reduce.<i-1>.<k>``   ERB of ``c_i`` -> 1 channel
``erb_trans_<i>.<k>``            ``net.edge.fuse.<i-1>.<k>``     fusing ERBs
``head.<k>``                     ``net.head.<k>``                dual-attention head
===============================  ==============================  ==========================

(``<i>`` is 1..4 for Sobel and ``erb_db``, 1..3 for ``erb_trans``; ``<k>`` is unchanged.)
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from imlbench.errors import CheckpointError


@dataclass(frozen=True)
class Rule:
    """``official`` and ``ours`` are regular expressions with the same groups: ``(?P<i>\\d)``
    (counted from 1 officially, from 0 here) and ``(?P<rest>.*)``."""

    official: str
    ours: str

    def apply(self, key: str, to_ours: bool) -> str | None:
        src, dst = (self.official, self.ours) if to_ours else (self.ours, self.official)
        match = re.fullmatch(src, key)
        if match is None:
            return None
        groups = match.groupdict()
        if "i" in groups:
            groups["i"] = str(int(groups["i"]) + (-1 if to_ours else 1))
        return _fill(dst, groups)


def _fill(pattern: str, groups: dict[str, str]) -> str:
    """The literal key a pattern stands for, given its groups."""
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: groups[m.group(1)], pattern)
    return text.replace("\\.", ".")


RULES = (
    Rule(r"noise_extractor\.model\.(?P<rest>.+)", r"net\.noise_backbone\.(?P<rest>.+)"),
    Rule(r"model\.(?P<rest>.+)", r"net\.rgb_backbone\.(?P<rest>.+)"),
    Rule(r"constrain_conv\.kernel", r"net\.bayar\.kernel"),
    Rule(r"sobel_x(?P<i>[1-4])\.0\.weight", r"net\.edge\.sobel\.(?P<i>\d)\.kernel_x"),
    Rule(r"sobel_y(?P<i>[1-4])\.0\.weight", r"net\.edge\.sobel\.(?P<i>\d)\.kernel_y"),
    Rule(r"sobel_x(?P<i>[1-4])\.1\.(?P<rest>.+)", r"net\.edge\.sobel\.(?P<i>\d)\.norm_x\.(?P<rest>.+)"),
    Rule(r"sobel_y(?P<i>[1-4])\.1\.(?P<rest>.+)", r"net\.edge\.sobel\.(?P<i>\d)\.norm_y\.(?P<rest>.+)"),
    Rule(r"erb_db_(?P<i>[1-4])\.(?P<rest>.+)", r"net\.edge\.reduce\.(?P<i>\d)\.(?P<rest>.+)"),
    Rule(r"erb_trans_(?P<i>[1-3])\.(?P<rest>.+)", r"net\.edge\.fuse\.(?P<i>\d)\.(?P<rest>.+)"),
    Rule(r"head\.(?P<rest>.+)", r"net\.head\.(?P<rest>.+)"),
)


def map_key(key: str, *, to_ours: bool) -> str:
    """One key, official -> ours (``to_ours``) or back; a key no rule knows is an error."""
    for rule in RULES:
        mapped = rule.apply(key, to_ours)
        if mapped is not None:
            return mapped
    side = "an official MVSS-Net" if to_ours else "an mvss_net"
    raise CheckpointError(f"{key!r} is not a key of {side} state_dict (see the table in "
                   f"imlbench/methods/mvss_net/keymap.py)")


def official_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # contiguous(): the released Bayar kernel was last written through a permuted view.
    return {map_key(k, to_ours=True): v.contiguous() for k, v in state.items()}


def ours_to_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {map_key(k, to_ours=False): v for k, v in state.items()}


def unwrap_released(state: object, source: str) -> dict[str, Tensor]:
    """The released container is the bare state_dict; anything else is refused in one line."""
    if isinstance(state, Mapping) and state and all(isinstance(v, Tensor) for v in state.values()):
        if any(str(k).startswith("module.") for k in state):
            raise CheckpointError(f"{source}: keys start with 'module.' (a DataParallel save); the "
                             "released MVSS-Net files have none; strip the prefix first")
        return dict(state)
    keys = sorted(state)[:5] if isinstance(state, Mapping) else []
    raise CheckpointError(f"{source}: expected the released MVSS-Net container, a bare state_dict "
                     f"(name -> tensor), got {type(state).__name__} with keys {keys}; "
                     "MVSS-Net++ files ('model_dict') have no official code and are not supported")
