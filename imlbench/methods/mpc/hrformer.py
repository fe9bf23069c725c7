"""HRFormer backbone (Yuan et al., "HRFormer: High-Resolution Transformer for Dense Prediction",
NeurIPS 2021) with MPC's per-scale embedding projections.

Structure (HRFormer-B numbers): a stride-4 stem (two 3×3 stride-2 convs, 64 ch), two ResNet
bottlenecks (64 -> 256 ch), then three multi-resolution stages with 2/3/4 parallel branches of
78/156/312/624 channels at strides 4/8/16/32. Each branch stacks transformer blocks (local 7×7
window self-attention with a learned relative position bias, then a depth-wise conv FFN with
BatchNorm); after every module the branches exchange information through fuse layers
(1×1 conv + nearest upsampling from coarser branches, strided depth-wise convs from finer ones).
MPC adds one ``1×1 conv (no bias) + BN + ReLU`` per branch that projects it to ``embed_dim``.

Module names follow the official code except where :mod:`imlbench.methods.mpc.keymap`
renames them (``stem.*``, ``embed.*`` and the flattened ``attn.*``), so released checkpoints
load through that one mapping. Implementation written from the papers and the official code's
behaviour; numerically the same forward pass:

* windows are centre-padded with zeros (after LayerNorm) to a multiple of the window size and
  padded positions take part in attention unmasked, as in the official code;
* fuse layers upsample coarse branches with nearest ×2^k, then bilinearly (align_corners) to
  the exact size when the input is not a multiple of 32.

Attribution and licence: the architecture follows HRFormer (Yuan et al., NeurIPS 2021;
github.com/HRNet/HRFormer, MIT License, Copyright (c) 2021 HRT-group) in the variant that MPC's
official code (github.com/multimediaFor/MPC, which ships a copy of it and has no licence file)
trains. This module is written independently — no upstream code was copied — and was checked
against the official forward pass only numerically. See ``NOTICE``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

LAYERNORM_EPS = 1e-6


@dataclass(frozen=True)
class HRFormerConfig:
    """Widths, depths and attention settings of an HRFormer.

    ``widths``/``heads``: per branch (stride 4, 8, 16, 32). ``modules``: number of
    multi-resolution modules in stages 2, 3, 4 (stage ``k`` has ``k`` branches).
    ``blocks``: transformer blocks per branch and module. ``drop_path_rate``: the largest
    stochastic-depth rate; rates grow linearly over all transformer blocks (stage 2 to 4).
    """

    widths: tuple[int, int, int, int] = (78, 156, 312, 624)
    heads: tuple[int, int, int, int] = (2, 4, 8, 16)
    modules: tuple[int, int, int] = (1, 4, 2)
    blocks: int = 2
    stem_width: int = 64
    bottleneck_planes: int = 64
    bottleneck_blocks: int = 2
    window: int = 7
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.2

    def __post_init__(self) -> None:
        for width, heads in zip(self.widths, self.heads):
            if width % heads:
                raise ValueError(f"HRFormer branch width {width} is not divisible by its "
                                 f"{heads} heads; pick widths that are multiples of heads")


HRFORMER_PRESETS: dict[str, HRFormerConfig] = {
    # Official HRT-B (MPC's backbone): 44.34 M parameters with MPC's 256-d projections.
    "base": HRFormerConfig(),
    # Official HRT-S.
    "small": HRFormerConfig(widths=(32, 64, 128, 256), heads=(1, 2, 4, 8)),
    # Ours, for the CPU `quick` protocol and tests: HRT-S depth halved (one module per stage)
    # and narrower branches; same code path as HRT-B (windows, fuse layers, four scales).
    "tiny": HRFormerConfig(widths=(16, 32, 64, 128), heads=(1, 2, 4, 8), modules=(1, 1, 1),
                           blocks=2, stem_width=32, bottleneck_planes=16, bottleneck_blocks=1,
                           drop_path_rate=0.1),
}


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out)]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping ``window``² windows, with a learned
    relative position bias per head (Swin/HRFormer style).

    ``forward(x)``: ``x`` float ``[B, H, W, C]`` (channels last) -> ``[B, H, W, C]``.
    """

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.out_proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        # Index of the (dy, dx) offset between every pair of window positions, dy/dx shifted
        # to start at 0: a [window², window²] lookup into the bias table.
        index = (ys[:, None] - ys[None, :] + window - 1) * (2 * window - 1) \
            + (xs[:, None] - xs[None, :] + window - 1)
        self.register_buffer("relative_position_index", index)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        win = self.window
        pad_h, pad_w = -h % win, -w % win
        # Centre padding, as the official PadBlock does.
        x = F.pad(x, (0, 0, pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        hp, wp = h + pad_h, w + pad_w
        windows = (x.view(b, hp // win, win, wp // win, win, c).permute(0, 1, 3, 2, 4, 5)
                   .reshape(-1, win * win, c))
        n, tokens = windows.shape[:2]

        def split_heads(t: Tensor) -> Tensor:
            return t.view(n, tokens, self.heads, c // self.heads).transpose(1, 2)

        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, self.heads).permute(2, 0, 1).unsqueeze(0)
        out = F.scaled_dot_product_attention(split_heads(self.q_proj(windows)),
                                             split_heads(self.k_proj(windows)),
                                             split_heads(self.v_proj(windows)), attn_mask=bias)
        out = self.out_proj(out.transpose(1, 2).reshape(n, tokens, c))
        out = (out.view(b, hp // win, wp // win, win, win, c).permute(0, 1, 3, 2, 4, 5)
               .reshape(b, hp, wp, c))
        return out[:, pad_h // 2: pad_h // 2 + h, pad_w // 2: pad_w // 2 + w]


class ConvFFN(nn.Module):
    """HRFormer's FFN: 1×1 conv expand, 3×3 depth-wise conv, 1×1 conv project, each followed
    by BatchNorm and GELU. ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.norm1 = nn.Conv2d(dim, hidden, 1), nn.BatchNorm2d(hidden)
        self.dw3x3 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.fc2, self.norm3 = nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.norm1(self.fc1(x)))
        x = F.gelu(self.norm2(self.dw3x3(x)))
        return F.gelu(self.norm3(self.fc2(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + drop_path(attn(LN(x)))`` then ``x + drop_path(ffn(LN(x)))``.
    ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim, eps=LAYERNORM_EPS)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        ffn = self.mlp(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return (x + self.drop_path(ffn)).permute(0, 3, 1, 2)


def _fuse_path(widths: tuple[int, ...], src: int, dst: int) -> nn.Module:
    """Layer that brings branch ``src`` to the resolution and width of branch ``dst``."""
    if src == dst:
        return nn.Identity()
    if src > dst:  # coarser -> finer: 1×1 conv, BN, nearest upsampling
        return nn.Sequential(*_conv_bn(widths[src], widths[dst], 1),
                             nn.Upsample(scale_factor=2 ** (src - dst), mode="nearest"))
    steps = []  # finer -> coarser: one strided depth-wise conv + 1×1 conv per halving
    for k in range(dst - src):
        last = k == dst - src - 1
        c_out = widths[dst] if last else widths[src]
        layers = _conv_bn(widths[src], widths[src], 3, stride=2, groups=widths[src]) \
            + _conv_bn(widths[src], c_out, 1)
        steps.append(nn.Sequential(*layers) if last else nn.Sequential(*layers, nn.ReLU()))
    return nn.Sequential(*steps)


class HRFormerModule(nn.Module):
    """Parallel branches of transformer blocks followed by all-to-all fusion.

    ``forward(xs)``: list of ``[B, widths[i], H/2^i, W/2^i]`` -> list of the same shapes.
    """

    def __init__(self, cfg: HRFormerConfig, n_branches: int, drop_paths: list[float]):
        super().__init__()
        widths = cfg.widths[:n_branches]
        self.branches = nn.ModuleList(
            nn.Sequential(*(TransformerBlock(widths[i], cfg.heads[i], cfg.window, cfg.mlp_ratio, dp)
                            for dp in drop_paths))
            for i in range(n_branches))
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(widths, src, dst) for src in range(n_branches))
            for dst in range(n_branches))

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for dst, paths in enumerate(self.fuse_layers):
            size = xs[dst].shape[-2:]
            total = xs[dst]
            for src, path in enumerate(paths):
                if src == dst:
                    continue
                y = path(xs[src])
                if y.shape[-2:] != size:  # input size not a multiple of 32
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=True)
                total = total + y
            fused.append(F.relu(total))
        return fused


class ConvBNReLU(nn.Module):
    """``1×1 conv (no bias) + BN + ReLU``: MPC's per-scale projection to the embedding width."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)  # the official settings

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Stem(nn.Module):
    """Two 3×3 stride-2 convs with BN and ReLU: ``[B, 3, H, W] -> [B, C, H/4, W/4]``."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(3, width, 3, stride=2)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def _transition(c_in: int, c_out: int, new_branch: bool) -> nn.Module:
    """Transition into a stage: adapt an existing branch's width (3×3 conv) or open a new
    branch at half the resolution of the previous coarsest one (3×3 stride-2 conv)."""
    if not new_branch and c_in == c_out:
        return nn.Identity()
    layers = nn.Sequential(*_conv_bn(c_in, c_out, 3, stride=2 if new_branch else 1), nn.ReLU())
    return nn.Sequential(layers) if new_branch else layers  # nesting as in the official keys


class HRFormer(nn.Module):
    """HRFormer backbone with per-scale projections to ``embed_dim`` channels.

    ``forward(x)``: ``x`` float ``[B, 3, H, W]`` (MPC feeds RGB in [0, 1], no normalisation)
    -> list of four ``[B, embed_dim, ceil(H/4/2^i), ...]`` feature maps (strides 4, 8, 16, 32).
    """

    def __init__(self, cfg: HRFormerConfig, embed_dim: int = 256):
        super().__init__()
        self.cfg = cfg
        self.stem = Stem(cfg.stem_width)
        planes, expansion = cfg.bottleneck_planes, Bottleneck.expansion
        downsample = nn.Sequential(*_conv_bn(cfg.stem_width, planes * expansion, 1))
        self.layer1 = nn.Sequential(
            Bottleneck(cfg.stem_width, planes, downsample=downsample),
            *(Bottleneck(planes * expansion, planes) for _ in range(cfg.bottleneck_blocks - 1)))

        depth = [n * cfg.blocks for n in cfg.modules]
        rates = torch.linspace(0, cfg.drop_path_rate, sum(depth), device="cpu").tolist()
        prev = [planes * expansion]
        offset = 0
        for k, n_modules in enumerate(cfg.modules):
            n_branches = k + 2
            widths = list(cfg.widths[:n_branches])
            transition = nn.ModuleList(
                _transition(prev[min(i, len(prev) - 1)], widths[i], new_branch=i >= len(prev))
                for i in range(n_branches))
            stage = nn.Sequential(*(
                HRFormerModule(cfg, n_branches,
                               rates[offset + m * cfg.blocks: offset + (m + 1) * cfg.blocks])
                for m in range(n_modules)))
            offset += depth[k]
            setattr(self, f"transition{k + 1}", transition)
            setattr(self, f"stage{k + 2}", stage)
            prev = widths
        self.embed = nn.ModuleList(ConvBNReLU(w, embed_dim) for w in cfg.widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        xs = [self.layer1(self.stem(x))]
        for k in range(len(self.cfg.modules)):
            transition, stage = getattr(self, f"transition{k + 1}"), getattr(self, f"stage{k + 2}")
            # New branches start from the previous coarsest branch.
            xs = stage([t(xs[min(i, len(xs) - 1)]) for i, t in enumerate(transition)])
        return [proj(x) for proj, x in zip(self.embed, xs)]
