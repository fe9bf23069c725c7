"""Mix Transformer (SegFormer MiT) stages, as the dual encoder of TruFor uses them.

One stage = overlapping patch embedding (strided conv + LayerNorm) -> ``depth`` transformer
blocks (spatial-reduction attention + Mix-FFN with a depthwise 3×3 conv) -> LayerNorm.
Tokens are ``[B, N, C]`` with ``N = h * w`` in row-major order; a stage returns the
``[B, C, h, w]`` map.

Epsilons (not in any state_dict, but they change the outputs): LayerNorm eps 1e-6 in the blocks
and the stage norm, 1e-5 in the patch-embed norm and the attention's spatial-reduction norm, as
in the CMX encoder TruFor was trained with (mmseg/timm MiT use 1e-6 everywhere).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from imlbench.errors import ConfigError

BLOCK_EPS = 1e-6
EMBED_EPS = 1e-5


@dataclass(frozen=True)
class MiTSpec:
    """Widths and depths of the four stages (defaults: MiT-B2)."""

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("embed_dims", "depths", "num_heads", "sr_ratios"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 4:
                raise ConfigError(f"trufor: MiT {name} needs 4 values (one per stage), got {value}")
        for dim, heads in zip(self.embed_dims, self.num_heads):
            if dim % heads:
                raise ConfigError(f"trufor: MiT width {dim} is not divisible by {heads} heads")

    def min_input_side(self) -> int:
        """Smallest image side the encoder accepts: every stage grid (ceil(side/4) halved per
        stage, rounding up) must be at least that stage's spatial-reduction kernel."""
        side = 1
        while True:
            grid = math.ceil(side / 4)
            ok = True
            for sr in self.sr_ratios:
                if grid < sr:
                    ok = False
                    break
                grid = math.ceil(grid / 2)
            if ok:
                return side
            side += 1


class PatchEmbed(nn.Module):
    """``[B, C_in, H, W] -> tokens [B, h*w, dim]``; conv ``kernel`` / ``stride``, padding k//2."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel, stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim, eps=EMBED_EPS)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class ReducedAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from the map shrunk ``sr``× by a
    strided conv (queries keep full resolution)."""

    def __init__(self, dim: int, heads: int, sr: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr
        if sr > 1:
            self.sr = nn.Conv2d(dim, dim, sr, sr)
            self.norm = nn.LayerNorm(dim, eps=EMBED_EPS)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).transpose(1, 2)
        src = x
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(b, c, h, w)
            src = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        k, v = self.kv(src).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """Linear -> depthwise 3×3 conv on the token grid -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.fc1(x)
        b, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Block(nn.Module):
    """Pre-norm transformer block with stochastic depth on both residual branches."""

    def __init__(self, dim: int, heads: int, sr: int, mlp_ratio: int, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.attn = ReducedAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.mlp = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = drop_path

    def _drop(self, x: Tensor) -> Tensor:
        """Stochastic depth: drop the whole branch per sample while training."""
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self._drop(self.attn(self.norm1(x), h, w))
        return x + self._drop(self.mlp(self.norm2(x), h, w))


class Stage(nn.Module):
    """``[B, C_in, H, W] -> [B, dim, h, w]``: patch embedding, blocks, LayerNorm."""

    def __init__(self, in_channels: int, dim: int, kernel: int, stride: int, heads: int,
                 sr: int, mlp_ratio: int, drop_paths: list[float]):
        super().__init__()
        self.embed = PatchEmbed(in_channels, dim, kernel, stride)
        self.blocks = nn.ModuleList(Block(dim, heads, sr, mlp_ratio, p) for p in drop_paths)
        self.norm = nn.LayerNorm(dim, eps=BLOCK_EPS)

    def forward(self, x: Tensor) -> Tensor:
        tokens, h, w = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def mit_stages(spec: MiTSpec, in_channels: int = 3) -> nn.ModuleList:
    """The four stages of one MiT stream: stage 1 embeds with a 7×7/4 conv, the others 3×3/2.
    Drop-path rates rise linearly over all blocks (0 to ``drop_path_rate``)."""
    n = sum(spec.depths)
    rates = [spec.drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    stages, start, c_in = [], 0, in_channels
    for i, (dim, depth) in enumerate(zip(spec.embed_dims, spec.depths)):
        kernel, stride = (7, 4) if i == 0 else (3, 2)
        stages.append(Stage(c_in, dim, kernel, stride, spec.num_heads[i], spec.sr_ratios[i],
                            spec.mlp_ratio, rates[start:start + depth]))
        start, c_in = start + depth, dim
    return nn.ModuleList(stages)


def init_transformer_weights(module: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal (std 0.02) linear weights, zero biases,
    unit LayerNorms, convs normal with std sqrt(2 / fan_out)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
