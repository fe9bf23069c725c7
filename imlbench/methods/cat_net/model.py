"""CAT-Net's network: an HRNet RGB stream, a DCT stream, and their fusion (or the DCT stream alone).

``CATNet(cfg)(rgb, dct_volume, qtable)``:

* ``rgb``: ``float [B, 3, H, W]`` normalised to ``(x - 127.5) / 127.5``; ``H, W`` multiples of 8.
* ``dct_volume``: ``float [B, 21, H, W]`` one-hot of ``min(|c|, 20)`` of the quantised Y
  coefficients ``c`` in the 2-D block layout (:func:`dct_volume`).
* ``qtable``: ``float [B, 8, 8]`` Y quantisation table, natural order (row = vertical frequency).
* returns 2-class logits ``[B, 2, H/4, W/4]`` (full) or ``[B, 2, H/8, W/8]`` (``dct_only``).

Module names and order reproduce the official ``CAT_Net`` / ``DCT_Stream`` state dicts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.methods.cat_net.hrnet import (BasicBlock, Bottleneck, apply_transition, batch_norm,
                                            make_layer, make_stage, run_stage, transition_layer)

DCT_CLIP = 20
"""``T`` of the official DCT volume: channels for |c| = 0 .. T-1 and one for |c| >= T."""
DCT_CHANNELS = DCT_CLIP + 1


@dataclass(frozen=True)
class CatNetConfig:
    """Architecture of CAT-Net (defaults: ``experiments/CAT_full.yaml`` of the official code).

    ``variant``: ``full`` (CAT_full_v2: RGB + DCT streams fused in stage 5, output at 1/4) or
    ``dct_only`` (DCT_only_v2, ``network_DCT.py``: the DCT stream and its own head, output at 1/8).
    ``blocks``: residual blocks per branch in every stage (and in ``layer1``/``dc_layer2``).
    ``rgb_modules``/``dc_modules``/``fusion_modules``: HighResolutionModules of stages 2-4,
    DC stages 3-4 and stage 5. The widths are the per-branch channels of the last stage of each
    stream (stage 2 uses the first two RGB widths, stage 3 the first three; DC stage 3 the first
    two DC widths). ``dc_stem_width`` is the dilated conv's output, ``dc_tail`` the channels
    regrouped per 8×8 block (``dc_tail * 64`` per copy, with and without the table).
    ``bn_momentum``: of every BatchNorm (official 0.01, tuned for 100k steps; a short run needs a
    larger one, or its running statistics still lean on their initial values when it is scored).
    """

    variant: Literal["full", "dct_only"] = "full"
    blocks: int = 4
    stem_width: int = 64
    stage1_planes: int = 64
    rgb_widths: tuple[int, ...] = (48, 96, 192, 384)
    rgb_modules: tuple[int, int, int] = (1, 4, 3)
    dc_stem_width: int = 64
    dc_tail: int = 4
    dc_widths: tuple[int, ...] = (96, 192, 384)
    dc_modules: tuple[int, int] = (3, 2)
    fusion_widths: tuple[int, ...] = (24, 48, 96, 192)
    fusion_modules: int = 1
    bn_momentum: float = 0.01

    def __post_init__(self) -> None:
        for name in ("rgb_widths", "rgb_modules", "dc_widths", "dc_modules", "fusion_widths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.variant not in ("full", "dct_only"):
            raise ValueError(f"cat_net: variant must be 'full' or 'dct_only', got {self.variant!r}")
        for name, n in (("rgb_widths", 4), ("rgb_modules", 3), ("dc_widths", 3),
                        ("dc_modules", 2), ("fusion_widths", 4)):
            if len(getattr(self, name)) != n:
                raise ValueError(f"cat_net: {name} needs {n} values, got {getattr(self, name)}")

    @property
    def stride(self) -> int:
        """Input pixels per output pixel."""
        return 4 if self.variant == "full" else 8


class CATNet(nn.Module):
    def __init__(self, cfg: CatNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        full = cfg.variant == "full"
        if full:
            self._build_rgb_stream(cfg)
        self._build_dct_stream(cfg)
        if full:
            # stage 5: RGB 1/4 alone; RGB 1/8, 1/16, 1/32 concatenated with DC of the same scale
            fused_in = [cfg.rgb_widths[0]] + [r + d for r, d in zip(cfg.rgb_widths[1:], cfg.dc_widths)]
            self.transition4 = transition_layer(fused_in, cfg.fusion_widths)
            self.stage5, head_in = make_stage(cfg.fusion_modules, BasicBlock, cfg.blocks,
                                              cfg.fusion_widths, cfg.fusion_widths)
        else:
            head_in = list(cfg.dc_widths)
        c = sum(head_in)
        self.last_layer = nn.Sequential(nn.Conv2d(c, c, 1), batch_norm(c), nn.ReLU(inplace=True),
                                        nn.Conv2d(c, 2, 1))
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = cfg.bn_momentum

    def _build_rgb_stream(self, cfg: CatNetConfig) -> None:
        w = cfg.rgb_widths
        self.conv1 = nn.Conv2d(3, cfg.stem_width, 3, 2, 1, bias=False)
        self.bn1 = batch_norm(cfg.stem_width)
        self.conv2 = nn.Conv2d(cfg.stem_width, cfg.stem_width, 3, 2, 1, bias=False)
        self.bn2 = batch_norm(cfg.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, cfg.stem_width, cfg.stage1_planes, cfg.blocks)
        widths = [cfg.stage1_planes * Bottleneck.expansion]
        for k, (name_t, name_s) in enumerate((("transition1", "stage2"), ("transition2", "stage3"),
                                              ("transition3", "stage4"))):
            cur = list(w[:k + 2])
            setattr(self, name_t, transition_layer(widths, cur))
            stage, widths = make_stage(cfg.rgb_modules[k], BasicBlock, cfg.blocks, cur, cur)
            setattr(self, name_s, stage)

    def _build_dct_stream(self, cfg: CatNetConfig) -> None:
        # a 3×3 conv with dilation 8 sees the same frequency in the 8 neighbouring blocks
        self.dc_layer0_dil = nn.Sequential(
            nn.Conv2d(DCT_CHANNELS, cfg.dc_stem_width, 3, 1, padding=8, dilation=8),
            batch_norm(cfg.dc_stem_width), nn.ReLU(inplace=True))
        self.dc_layer1_tail = nn.Sequential(
            nn.Conv2d(cfg.dc_stem_width, cfg.dc_tail, 1, bias=False), batch_norm(cfg.dc_tail),
            nn.ReLU(inplace=True))
        w = cfg.dc_widths
        self.dc_layer2 = make_layer(BasicBlock, cfg.dc_tail * 64 * 2, w[0], cfg.blocks)
        self.dc_transition2 = transition_layer([w[0]], list(w[:2]))
        self.dc_stage3, widths = make_stage(cfg.dc_modules[0], BasicBlock, cfg.blocks, w[:2], w[:2])
        self.dc_transition3 = transition_layer(widths, list(w))
        self.dc_stage4, _ = make_stage(cfg.dc_modules[1], BasicBlock, cfg.blocks, w, w)

    def rgb_stream(self, rgb: Tensor) -> list[Tensor]:
        """``[B, 3, H, W]`` -> four branches at 1/4, 1/8, 1/16, 1/32 (HRNetV2 up to stage 4)."""
        x = self.relu(self.bn1(self.conv1(rgb)))
        x = self.layer1(self.relu(self.bn2(self.conv2(x))))
        states = [x]
        for transition, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            states = run_stage(stage, apply_transition(transition, states))
        return states

    def dct_stream(self, volume: Tensor, qtable: Tensor) -> list[Tensor]:
        """``[B, 21, H, W]``, ``[B, 8, 8]`` -> three branches at 1/8, 1/16, 1/32."""
        x = self.dc_layer1_tail(self.dc_layer0_dil(volume))
        b, c, h, w = x.shape
        # per 8×8 block: channel index c*64 + u*8 + v, once as is and once times q[u, v]
        blocks = x.reshape(b, c, h // 8, 8, w // 8, 8).permute(0, 1, 3, 5, 2, 4)
        scaled = blocks * qtable.reshape(b, 1, 8, 8, 1, 1).to(blocks.dtype)
        x = torch.cat([blocks.reshape(b, 64 * c, h // 8, w // 8),
                       scaled.reshape(b, 64 * c, h // 8, w // 8)], dim=1)
        states = run_stage(self.dc_stage3, apply_transition(self.dc_transition2, [self.dc_layer2(x)]))
        return run_stage(self.dc_stage4, apply_transition(self.dc_transition3, states))

    def forward(self, rgb: Tensor | None, volume: Tensor, qtable: Tensor) -> Tensor:
        dct = self.dct_stream(volume, qtable)
        if self.cfg.variant == "full":
            assert rgb is not None, "the full CAT-Net needs the RGB image"
            rgb_states = self.rgb_stream(rgb)
            x = [rgb_states[0]] + [torch.cat([r, d], 1) for r, d in zip(rgb_states[1:], dct)]
            x = run_stage(self.stage5, apply_transition(self.transition4, x))
        else:
            x = dct
        size = x[0].shape[-2:]
        x = torch.cat([x[0]] + [F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                                for t in x[1:]], 1)
        return self.last_layer(x)


def dct_volume(coef: Tensor) -> Tensor:
    """``[B, H, W]`` quantised coefficients -> ``float [B, 21, H, W]`` one-hot of ``min(|c|, 20)``
    (the sign is dropped, as in the official ``DCTvol``)."""
    level = coef.abs().clamp_(max=DCT_CLIP).long()
    return F.one_hot(level, DCT_CHANNELS).permute(0, 3, 1, 2).float()
