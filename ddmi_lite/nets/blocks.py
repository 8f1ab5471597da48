"""Convolutional building blocks shared by every encoder and decoder (ddmi_method.md §1.3–1.4).

Taming/LDM-style: ``ResBlock = GN→SiLU→conv3×3→GN→SiLU→conv3×3 (+1×1 skip)``, stride-2
downsampling with asymmetric padding, nearest ×2 upsampling followed by a conv, and a
single-head spatial self-attention block.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def group_norm(channels: int, *, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count ≤ ``max_groups`` that divides ``channels``."""
    groups = max(g for g in range(1, max_groups + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """Residual conv block: ``x + conv(SiLU(GN(conv(SiLU(GN(x))))))``."""

    def __init__(self, in_ch: int, out_ch: int | None = None, *, dropout: float = 0.0):
        super().__init__()
        out_ch = out_ch or in_ch
        self.body = nn.Sequential(
            group_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1),
            group_norm(out_ch), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Downsample(nn.Module):
    """×½ resolution: pad (0,1,0,1) then a stride-2 3×3 conv (reference encoder)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # [B,C,H,W] -> [B,C,H/2,W/2]


class Upsample(nn.Module):
    """×2 resolution: nearest-neighbour upsampling then a 3×3 conv (to ``out_ch`` channels)."""

    def __init__(self, ch: int, out_ch: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(ch, out_ch or ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # [B,C,2H,2W]


def down_path(widths: list[int], num_res_blocks: int, *, dropout: float = 0.0) -> list[nn.Module]:
    """The encoders' levels from ``widths[0]`` channels: ``num_res_blocks`` ResBlocks per level to
    ``widths[level]``, then a stride-2 Downsample between levels (none after the last)."""
    layers: list[nn.Module] = []
    prev = widths[0]
    for level, c in enumerate(widths):
        for _ in range(num_res_blocks):
            layers.append(ResBlock(prev, c, dropout=dropout))
            prev = c
        if level < len(widths) - 1:
            layers.append(Downsample(prev))
    return layers


class AttnBlock(nn.Module):
    """Single-head self-attention over the H·W positions of a feature map, residual."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three c) h w -> three b (h w) c", three=3)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # [B,HW,C]
        return x + self.proj(rearrange(out, "b (h w) c -> b c h w", h=H, w=W))
