"""2D encoder to a Gaussian latent grid and 2D decoder to HDBF (ddmi_method.md §1.3–1.4, image rows).

Encoder: ``x [B,3,H,W] → (μ, log σ²) [B,z,H/f,W/f]`` with ``f = 2^(len(ch_mult)-1)``.
Decoder: ``z → [Ξ¹, Ξ², Ξ³]`` (coarse → fine). The coarse and mid fields are 1×1 convs of the
decoder's intermediate features (at ``H/f·…`` and the next resolution up); the fine field is the
decoder's final ``GN→SiLU→conv3×3`` output at full resolution. Each field is returned in the
basis-field layout ``[B, P=1, C_pe, h, w]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import rearrange

from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.blocks import AttnBlock, ResBlock, Upsample, down_path, group_norm


@dataclass
class Conv2dConfig:
    in_channels: int = 3                     # RGB
    ch: int = 64                             # base width (reference image: 128)
    ch_mult: tuple[int, ...] = (1, 2, 2)     # one level per entry; len-1 downsamplings (reference [1,2,4])
    num_res_blocks: int = 1                  # per level (reference: 2)
    z_channels: int = 8                      # latent channels (reference: 64)
    pe_channels: int = 64                    # C_pe of every basis field (reference: 64)
    n_scales: int = 3                        # HDBF scales emitted by the decoder (1 = single scale)
    mid_attention: bool = True               # self-attention in the bottleneck (reference: yes)
    dropout: float = 0.0


class Encoder2D(nn.Module):
    """Conv encoder: image ``[B,C,H,W]`` → moments ``[B,2z,H/f,W/f]`` (mean and log-variance)."""

    def __init__(self, cfg: Conv2dConfig):
        super().__init__()
        self.cfg = cfg
        chs = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1)
        self.down = nn.Sequential(*down_path(chs, cfg.num_res_blocks, dropout=cfg.dropout))
        prev = chs[-1]
        mid = [ResBlock(prev)] + ([AttnBlock(prev)] if cfg.mid_attention else []) + [ResBlock(prev)]
        self.mid = nn.Sequential(*mid)
        self.out = nn.Sequential(group_norm(prev), nn.SiLU(), nn.Conv2d(prev, 2 * cfg.z_channels, 3, padding=1))

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.cfg.ch_mult) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.downsample_factor
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels or x.shape[-1] % f or x.shape[-2] % f:
            raise DDMIError(
                f"encoder input must be [B,{self.cfg.in_channels},H,W] with H, W divisible by {f}, got {tuple(x.shape)}"
            )
        return self.out(self.mid(self.down(self.conv_in(x))))  # [B,2z,H/f,W/f]


class Decoder2D(nn.Module):
    """Conv decoder: latent ``[B,z,h,w]`` → list of basis fields ``[B,1,C_pe,h·2^k,w·2^k]`` coarse→fine."""

    def __init__(self, cfg: Conv2dConfig):
        super().__init__()
        self.cfg = cfg
        n_levels = len(cfg.ch_mult)
        if not 1 <= cfg.n_scales <= n_levels:
            raise DDMIError(f"n_scales={cfg.n_scales} must be between 1 and len(ch_mult)={n_levels}")
        chs = [cfg.ch * m for m in reversed(cfg.ch_mult)]  # coarse (lowest resolution) first
        self.conv_in = nn.Conv2d(cfg.z_channels, chs[0], 3, padding=1)
        mid = [ResBlock(chs[0])] + ([AttnBlock(chs[0])] if cfg.mid_attention else []) + [ResBlock(chs[0])]
        self.mid = nn.Sequential(*mid)
        self.levels = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level, c in enumerate(chs):
            # the upsampling conv already maps to the next level's (smaller) width: cheaper at high resolution
            self.levels.append(nn.Sequential(*[ResBlock(c, dropout=cfg.dropout) for _ in range(cfg.num_res_blocks)]))
            self.upsamples.append(Upsample(c, chs[level + 1]) if level < n_levels - 1 else nn.Identity())
        prev = chs[-1]
        # HDBF heads: 1×1 convs on intermediate levels (coarse, mid), the final conv for the finest.
        self.head_levels = list(range(n_levels - cfg.n_scales, n_levels - 1))
        self.heads = nn.ModuleDict({str(l): nn.Conv2d(chs[l], cfg.pe_channels, 1) for l in self.head_levels})
        self.out = nn.Sequential(group_norm(prev), nn.SiLU(), nn.Conv2d(prev, cfg.pe_channels, 3, padding=1))

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        if z.ndim != 4 or z.shape[1] != self.cfg.z_channels:
            raise DDMIError(f"decoder input must be a latent [B,{self.cfg.z_channels},h,w], got {tuple(z.shape)}")
        h = self.mid(self.conv_in(z))  # [B,C0,h,w]
        fields = []
        for level, (blocks, up) in enumerate(zip(self.levels, self.upsamples)):
            h = blocks(h)
            if str(level) in self.heads:
                fields.append(self.heads[str(level)](h))  # [B,C_pe,h·2^level,w·2^level]
            h = up(h)
        fields.append(self.out(h))  # finest field [B,C_pe,H,W]
        return [rearrange(f, "b c h w -> b 1 c h w") for f in fields]  # basis-field layout, P=1
