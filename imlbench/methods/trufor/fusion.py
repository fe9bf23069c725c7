"""CMX fusion of the RGB and Noiseprint++ streams, after every MiT stage (Zhang et al., CMX,
IEEE T-ITS 2023), and the dual encoder that uses it.

* :class:`RectifyModule` (CMX "FRM"): each stream gets the other one added back, weighted per
  channel (an MLP on global average+max pools of both) and per pixel (1×1 convs), λ = 0.5 each.
* :class:`FusionModule` (CMX "FFM"): a cross-path with *channel-wise* cross-attention
  (``k^T v`` is a C×C context per head; queries of one stream read the other's context), then
  a channel embedding (1×1 residual + 1×1 / depthwise 3×3 / 1×1 branch) back to one map.

Sub-module names (``channel_weights.mlp.0``, ``cross.kv1``, ``channel_emb.channel_embed.4``...)
follow the official state_dict so that :mod:`imlbench.methods.trufor.keymap` only renames the
encoder's structure, not every leaf.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from imlbench.methods.trufor.mit import MiTSpec, mit_stages

CROSS_NORM_EPS = 1e-5


class ChannelWeights(nn.Module):
    """``[B, C, h, w]`` ×2 -> weights ``[2, B, C, 1, 1]`` (for stream 1, stream 2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, 4 * dim), nn.ReLU(inplace=True),
                                 nn.Linear(4 * dim, 2 * dim), nn.Sigmoid())

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        b, c = x1.shape[:2]
        both = torch.cat((x1, x2), dim=1)
        pooled = torch.cat((both.mean(dim=(2, 3)), both.amax(dim=(2, 3))), dim=1)
        return self.mlp(pooled).reshape(b, 2, c, 1, 1).transpose(0, 1)


class SpatialWeights(nn.Module):
    """``[B, C, h, w]`` ×2 -> weights ``[2, B, 1, h, w]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(dim, 2, 1), nn.Sigmoid())

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.mlp(torch.cat((x1, x2), dim=1)).unsqueeze(2).transpose(0, 1)


class RectifyModule(nn.Module):
    def __init__(self, dim: int, lambda_c: float = 0.5, lambda_s: float = 0.5):
        super().__init__()
        self.lambda_c, self.lambda_s = lambda_c, lambda_s
        self.channel_weights = ChannelWeights(dim)
        self.spatial_weights = SpatialWeights(dim)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        cw, sw = self.channel_weights(x1, x2), self.spatial_weights(x1, x2)
        out1 = x1 + self.lambda_c * cw[1] * x2 + self.lambda_s * sw[1] * x2
        out2 = x2 + self.lambda_c * cw[0] * x1 + self.lambda_s * sw[0] * x1
        return out1, out2


class ChannelCrossAttention(nn.Module):
    """Tokens ``[B, N, C]`` ×2; keys/values without bias (as trained)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.kv1 = nn.Linear(dim, 2 * dim, bias=False)
        self.kv2 = nn.Linear(dim, 2 * dim, bias=False)

    def _split(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _context(self, kv: nn.Linear, x: Tensor) -> Tensor:
        """Per head ``softmax_over_keys(k^T v * scale)``: ``[B, heads, d, d]``."""
        b, n, c = x.shape
        k, v = kv(x).reshape(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return (k.transpose(-2, -1) @ v * self.scale).softmax(dim=-2)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        b, n, c = x1.shape
        ctx1, ctx2 = self._context(self.kv1, x1), self._context(self.kv2, x2)
        y1 = (self._split(x1) @ ctx2).transpose(1, 2).reshape(b, n, c)
        y2 = (self._split(x2) @ ctx1).transpose(1, 2).reshape(b, n, c)
        return y1, y2


class CrossPath(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.channel_proj1 = nn.Linear(dim, 2 * dim)
        self.channel_proj2 = nn.Linear(dim, 2 * dim)
        self.cross_attn = ChannelCrossAttention(dim, heads)
        self.end_proj1 = nn.Linear(2 * dim, dim)
        self.end_proj2 = nn.Linear(2 * dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=CROSS_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=CROSS_NORM_EPS)

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        y1, u1 = torch.relu(self.channel_proj1(x1)).chunk(2, dim=-1)
        y2, u2 = torch.relu(self.channel_proj2(x2)).chunk(2, dim=-1)
        v1, v2 = self.cross_attn(u1, u2)
        out1 = self.norm1(x1 + self.end_proj1(torch.cat((y1, v1), dim=-1)))
        out2 = self.norm2(x2 + self.end_proj2(torch.cat((y2, v2), dim=-1)))
        return out1, out2


class ChannelEmbed(nn.Module):
    """``[B, 2C, h, w] -> [B, C, h, w]``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.channel_embed = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
            nn.BatchNorm2d(out_channels))
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.residual(x) + self.channel_embed(x))


class FusionModule(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.cross = CrossPath(dim, heads)
        self.channel_emb = ChannelEmbed(2 * dim, dim)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        b, c, h, w = x1.shape
        t1, t2 = self.cross(x1.flatten(2).transpose(1, 2), x2.flatten(2).transpose(1, 2))
        merged = torch.cat((t1, t2), dim=-1).transpose(1, 2).reshape(b, 2 * c, h, w)
        return self.channel_emb(merged)


class DualEncoder(nn.Module):
    """Two MiT streams (``rgb``: the normalised image, ``noise``: the 3× tiled Noiseprint++),
    rectified and fused after each stage. ``forward(rgb, noise)``: ``[B, 3, H, W]`` ×2 ->
    four fused maps ``[B, embed_dims[i], ceil(H/4)/2^i, ...]`` (1/4 ... 1/32). Each stream
    continues from its own *rectified* map; only the fused maps leave the encoder."""

    def __init__(self, spec: MiTSpec):
        super().__init__()
        self.rgb = mit_stages(spec)
        self.noise = mit_stages(spec)
        self.rectify = nn.ModuleList(RectifyModule(d) for d in spec.embed_dims)
        self.fuse = nn.ModuleList(FusionModule(d, h) for d, h in zip(spec.embed_dims, spec.num_heads))

    def forward(self, rgb: Tensor, noise: Tensor) -> list[Tensor]:
        outs = []
        for rgb_stage, noise_stage, rectify, fuse in zip(self.rgb, self.noise, self.rectify, self.fuse):
            rgb, noise = rectify(rgb_stage(rgb), noise_stage(noise))
            outs.append(fuse(rgb, noise))
        return outs
