"""IML-ViT's encoder: a ViTDet-style plain ViT with windowed and global blocks.

Shapes: ``[B, 3, S, S]`` normalised canvas -> ``[B, D, S/p, S/p]`` (``p`` the patch size).

Parameter names are MAE's (``patch_embed.proj``, ``pos_embed``, ``blocks.<i>.norm1``,
``.attn.qkv``, ``.attn.proj``, ``.norm2``, ``.mlp.fc1``, ``.mlp.fc2``) plus the decomposed
relative-position tables ``.attn.rel_pos_h`` / ``.attn.rel_pos_w``, so an MAE ImageNet
checkpoint fills this module without renames (see :mod:`imlbench.methods.iml_vit.keymap`).

The ops follow the official code exactly, because the released weights were trained with them:

* the absolute position embedding keeps MAE's 224-px layout (a cls slot and a 14x14 grid); on
  every forward the cls entry is dropped and the grid is resized to the token grid with
  ``F.interpolate(mode="bicubic", align_corners=False)``;
* window blocks zero-pad the token grid (after ``norm1``) to a multiple of the window (64 -> 70
  at the official 1024 canvas with windows of 14), attend inside each window and crop back;
* every attention adds decomposed relative positions (MViTv2): a height term and a width term
  looked up by relative offset, ``(2w - 1, head_dim)`` tables in window blocks and
  ``(2g - 1, head_dim)`` in global blocks (``g`` the token grid). The model always runs at its
  canvas size, so the tables never need the official code's interpolation branch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn


@dataclass(frozen=True)
class ViTShape:
    """Architecture of the encoder; the official values are the defaults of
    :class:`~imlbench.methods.iml_vit.model.IMLViTConfig`, which builds it."""

    canvas: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    window_size: int
    global_blocks: tuple[int, ...]
    pos_grid: int
    drop_path_rate: float

    @property
    def grid(self) -> int:
        return self.canvas // self.patch_size


def relative_offsets(size: int) -> Tensor:
    """``[size, size]`` long: row ``i``, column ``j`` holds ``i - j + size - 1``, the index of
    the offset between query ``i`` and key ``j`` in a ``(2 size - 1)``-row table."""
    coords = torch.arange(size)
    return coords[:, None] - coords[None, :] + (size - 1)


class Attention(nn.Module):
    """Multi-head self-attention on a ``[B, h, w, D]`` grid with decomposed relative positions."""

    def __init__(self, dim: int, num_heads: int, grid: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # zero-initialised as in ViTDet; MAE has no such tables, so they start at zero there too
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        n = b * self.num_heads
        # [B, h*w, 3, heads, hd] -> 3 x [B*heads, h*w, hd]
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4) \
            .reshape(3, n, h * w, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = self._add_relative_positions(attn, q, h, w)
        out = attn.softmax(dim=-1) @ v
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)

    def _add_relative_positions(self, attn: Tensor, q: Tensor, h: int, w: int) -> Tensor:
        """``attn [N, h*w, h*w]`` + the query's dot products with the height and width tables of
        the (query row - key row) and (query column - key column) offsets."""
        if self.rel_pos_h.shape[0] != 2 * h - 1 or self.rel_pos_w.shape[0] != 2 * w - 1:
            raise ValueError(f"iml_vit: attention over a {h}x{w} grid needs relative-position "
                             f"tables of {2 * h - 1} and {2 * w - 1} rows, this block has "
                             f"{self.rel_pos_h.shape[0]} and {self.rel_pos_w.shape[0]} (the "
                             "model runs at its canvas size only)")
        table_h = self.rel_pos_h[relative_offsets(h).to(q.device)]  # [h, h, hd]
        table_w = self.rel_pos_w[relative_offsets(w).to(q.device)]  # [w, w, hd]
        n = q.shape[0]
        q_grid = q.reshape(n, h, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", q_grid, table_h)
        rel_w = torch.einsum("bhwc,wkc->bhwk", q_grid, table_w)
        attn = attn.view(n, h, w, h, w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
        return attn.view(n, h * w, h * w)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def to_windows(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """``[B, h, w, D]`` -> ``[B * nh * nw, window, window, D]`` after zero-padding bottom/right
    to multiples of ``window``; also returns the padded ``(H, W)``."""
    b, h, w, d = x.shape
    pad_h, pad_w = -h % window, -w % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, d)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, d), (hp, wp)


def from_windows(windows: Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
                 ) -> Tensor:
    """Inverse of :func:`to_windows`: ``[B * nh * nw, window, window, D]`` -> ``[B, h, w, D]``."""
    hp, wp = padded
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :size[0], :size[1]].contiguous()


class Block(nn.Module):
    """Pre-norm transformer block; ``window > 0`` attends inside windows, ``0`` globally."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window: int, grid: int,
                 drop_path: float):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, window if window else grid)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        if self.window:
            size = (y.shape[1], y.shape[2])
            windows, padded = to_windows(y, self.window)
            y = from_windows(self.attn(windows), self.window, padded, size)
        else:
            y = self.attn(y)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # [B, D, h, w] -> [B, h, w, D]


class WindowedViT(nn.Module):
    """``[B, 3, S, S]`` -> ``[B, D, S/p, S/p]`` (the official ``encoder_net``)."""

    def __init__(self, shape: ViTShape):
        super().__init__()
        self.shape = shape
        self.patch_embed = PatchEmbed(shape.patch_size, shape.embed_dim)
        # MAE's layout: one cls slot (dropped on use) + a pos_grid^2 grid, learnable here
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + shape.pos_grid ** 2, shape.embed_dim))
        # float32 linspace as the official code (and on CPU: the model may be built on "meta")
        rates = torch.linspace(0, shape.drop_path_rate, shape.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(shape.embed_dim, shape.num_heads, shape.mlp_ratio,
                  0 if i in shape.global_blocks else shape.window_size, shape.grid, rates[i])
            for i in range(shape.depth))

    def position_embedding(self, h: int, w: int) -> Tensor:
        """``[1, h, w, D]``: the grid part of ``pos_embed``, bicubically resized to ``h x w``
        on every call (as the official code does; the resize is part of the learned model)."""
        g = self.shape.pos_grid
        grid = self.pos_embed[:, 1:].reshape(1, g, g, -1)
        if (g, g) == (h, w):
            return grid
        resized = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bicubic",
                                align_corners=False)
        return resized.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return x.permute(0, 3, 1, 2)
