"""Tri-plane encoder and decoder with cross-plane mixing (DDMI §3.1–3.2; ddmi_method.md §1.3–1.4,
shape rows ``Encoder_triplane`` / ``Decoder_triplane``).

Planes are tensors ``[B, P=3, C, H, W]`` in the canonical order (xy, yz, xz). Every 2D layer is
**shared by the three planes** (they are folded into the batch, ``b p c h w -> (b p) c h w``);
only the cross-plane blocks see the planes together, by concatenating them along channels:

    [Π_xy ‖ Π_yz ‖ Π_xz]  (3C channels)  →  ResBlock(3C) → [Attn(3C)] → ResBlock(3C)  →  split

Encoder: point cloud → :class:`~ddmi_lite.nets.pointnet.LocalPoolPointNet` planes (R²) → conv
levels ``ch·ch_mult`` with a stride-2 downsampling between them (R → R/f), cross-plane blocks at
``cross_resolutions``, a per-plane mid Res/Attn/Res then a cross-plane one, GN→SiLU→conv, and a
per-plane 1×1 ``quant`` conv giving the moments (μ, log σ²) of a Gaussian latent ``[B, 3, 2z, h, w]``.

Decoder: ``z [B, 3, z, h, w]`` → per-plane 1×1 ``post_quant`` → conv_in → mid (per-plane, then
cross-plane) → levels from h to h·f, each followed by a cross-plane block where listed. The HDBF
Ξ = [Ξ¹, …, Ξᴸ] (coarse → fine) are a shared 1×1 conv of the intermediate features at the coarse
and middle levels and the final GN→SiLU→conv3×3 at full resolution, each ``[B, 3, C_pe, H_l, W_l]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import rearrange

from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.blocks import AttnBlock, Downsample, ResBlock, Upsample, group_norm
from ddmi_lite.nets.pointnet import LocalPoolPointNet

PLANES = 3


@dataclass
class TriplaneConfig:
    """Tri-plane VAE networks (reference values in brackets, ddmi_method.md §3.1 ``shapenet``)."""

    point_hidden: int = 64                     # PointNet width [256]
    point_blocks: int = 4                      # PointNet ResnetBlockFC blocks [7]
    plane_channels: int = 32                   # PointNet plane features c_dim [32]
    plane_resolution: int = 32                 # PointNet planes R [64]
    ch: int = 32                               # base conv width [64]
    ch_mult: tuple[int, ...] = (1, 2, 2)       # one level per entry, len−1 downsamplings [1,2,4]
    num_res_blocks: int = 1                    # ResBlocks per level [2]
    z_channels: int = 8                        # latent channels per plane [64]
    pe_channels: int = 32                      # C_pe of every basis field [64]
    n_scales: int = 3                          # HDBF scales (coarse, mid, fine) [3]
    cross_resolutions: tuple[int, ...] = (16, 8)   # plane sizes with a cross-plane block [64,32,16]
    attention_resolutions: tuple[int, ...] = (8,)  # sizes whose mid / cross blocks attend [all]
    dropout: float = 0.0
    point_features: int = 0                    # extra values per encoder point after xyz (NeRF: rgb, 3)

    @property
    def latent_resolution(self) -> int:
        return self.plane_resolution // 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(P, z, h, w) of one latent."""
        r = self.latent_resolution
        return (PLANES, self.z_channels, r, r)

    def check(self) -> TriplaneConfig:
        f = 2 ** (len(self.ch_mult) - 1)
        if not self.ch_mult or self.plane_resolution % f:
            raise DDMIError(f"plane_resolution={self.plane_resolution} must be divisible by 2^(len(ch_mult)-1)={f}")
        if not 1 <= self.n_scales <= len(self.ch_mult):
            raise DDMIError(f"n_scales={self.n_scales} must be between 1 and len(ch_mult)={len(self.ch_mult)}")
        return self


def fold(planes: torch.Tensor) -> torch.Tensor:
    return rearrange(planes, "b p c h w -> (b p) c h w")  # planes share the 2D layers


def unfold(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "(b p) c h w -> b p c h w", p=PLANES)


class CrossPlaneBlock(nn.Module):
    """Planes concatenated along channels → ResBlock(3C) [→ Attn(3C)] → ResBlock(3C) → split; residual."""

    def __init__(self, ch: int, *, attention: bool, dropout: float = 0.0):
        super().__init__()
        wide = PLANES * ch
        layers = [ResBlock(wide, dropout=dropout)] + ([AttnBlock(wide)] if attention else []) + \
                 [ResBlock(wide, dropout=dropout)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` folded ``[B·3, C, H, W]`` → same shape."""
        wide = rearrange(x, "(b p) c h w -> b (p c) h w", p=PLANES)  # [B, 3C, H, W], order xy, yz, xz
        return rearrange(self.body(wide), "b (p c) h w -> (b p) c h w", p=PLANES)


def _mid(ch: int, attention: bool, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResBlock(ch, dropout=dropout), *([AttnBlock(ch)] if attention else []),
                         ResBlock(ch, dropout=dropout))


class TriplaneEncoder(nn.Module):
    """Surface points ``[B, N, 3]`` in [-1, 1] → moments ``[B, 3, 2z, h, w]`` (mean, log-variance)."""

    def __init__(self, cfg: TriplaneConfig):
        super().__init__()
        self.cfg = cfg.check()
        self.pointnet = LocalPoolPointNet(hidden=cfg.point_hidden, c_dim=cfg.plane_channels,
                                          n_blocks=cfg.point_blocks, resolution=cfg.plane_resolution,
                                          features=cfg.point_features)
        chs = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.plane_channels, chs[0], 3, padding=1)
        layers: list[nn.Module] = []
        prev, res = chs[0], cfg.plane_resolution
        for level, c in enumerate(chs):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(prev, c, dropout=cfg.dropout))
                prev = c
            if res in cfg.cross_resolutions:
                layers.append(CrossPlaneBlock(prev, attention=res in cfg.attention_resolutions, dropout=cfg.dropout))
            if level < len(chs) - 1:
                layers.append(Downsample(prev))
                res //= 2
        self.down = nn.Sequential(*layers)
        attend = res in cfg.attention_resolutions
        self.mid = _mid(prev, attend, cfg.dropout)
        self.mid_cross = CrossPlaneBlock(prev, attention=attend, dropout=cfg.dropout)
        self.out = nn.Sequential(group_norm(prev), nn.SiLU(), nn.Conv2d(prev, prev, 3, padding=1))
        # per-plane 1×1 quant conv (groups = planes): its own Gaussian head for each plane
        self.quant = nn.Conv2d(PLANES * prev, PLANES * 2 * cfg.z_channels, 1, groups=PLANES)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        planes = self.pointnet(points)  # [B, 3, C_p, R, R]
        h = self.down(self.conv_in(fold(planes)))  # [B·3, C, h, w]
        h = self.out(self.mid_cross(self.mid(h)))
        wide = rearrange(h, "(b p) c h w -> b (p c) h w", p=PLANES)  # [B, 3C, h, w]
        return rearrange(self.quant(wide), "b (p c) h w -> b p c h w", p=PLANES)  # [B, 3, 2z, h, w]


class TriplaneDecoder(nn.Module):
    """Latent ``[B, 3, z, h, w]`` → basis fields, a list (coarse → fine) of ``[B, 3, C_pe, H_l, W_l]``."""

    def __init__(self, cfg: TriplaneConfig):
        super().__init__()
        self.cfg = cfg.check()
        n_levels = len(cfg.ch_mult)
        chs = [cfg.ch * m for m in reversed(cfg.ch_mult)]  # coarse (lowest resolution) first
        res = cfg.latent_resolution
        self.post_quant = nn.Conv2d(PLANES * cfg.z_channels, PLANES * chs[0], 1, groups=PLANES)  # per plane
        self.conv_in = nn.Conv2d(chs[0], chs[0], 3, padding=1)
        attend = res in cfg.attention_resolutions
        self.mid = _mid(chs[0], attend, cfg.dropout)
        self.mid_cross = CrossPlaneBlock(chs[0], attention=attend, dropout=cfg.dropout)
        self.levels, self.upsamples = nn.ModuleList(), nn.ModuleList()
        for level, c in enumerate(chs):
            blocks: list[nn.Module] = [ResBlock(c, dropout=cfg.dropout) for _ in range(cfg.num_res_blocks)]
            if res in cfg.cross_resolutions:
                blocks.append(CrossPlaneBlock(c, attention=res in cfg.attention_resolutions, dropout=cfg.dropout))
            self.levels.append(nn.Sequential(*blocks))
            self.upsamples.append(Upsample(c, chs[level + 1]) if level < n_levels - 1 else nn.Identity())
            res *= 2
        self.head_levels = list(range(n_levels - cfg.n_scales, n_levels - 1))
        self.heads = nn.ModuleDict({str(l): nn.Conv2d(chs[l], cfg.pe_channels, 1) for l in self.head_levels})
        self.out = nn.Sequential(group_norm(chs[-1]), nn.SiLU(), nn.Conv2d(chs[-1], cfg.pe_channels, 3, padding=1))

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        cfg = self.cfg
        expected = cfg.latent_shape
        if z.ndim != 5 or tuple(z.shape[1:3]) != expected[:2]:
            raise DDMIError(f"decoder input must be a tri-plane latent [B, {expected[0]}, {expected[1]}, h, w], "
                            f"got {tuple(z.shape)}")
        wide = self.post_quant(rearrange(z, "b p c h w -> b (p c) h w"))  # [B, 3·C0, h, w]
        h = self.conv_in(rearrange(wide, "b (p c) h w -> (b p) c h w", p=PLANES))  # [B·3, C0, h, w]
        h = self.mid_cross(self.mid(h))
        fields = []
        for level, (blocks, up) in enumerate(zip(self.levels, self.upsamples)):
            h = blocks(h)  # [B·3, C_l, h·2^l, w·2^l]
            if str(level) in self.heads:
                fields.append(unfold(self.heads[str(level)](h)))  # shared 1×1 head → [B, 3, C_pe, ·, ·]
            h = up(h)
        fields.append(unfold(self.out(h)))  # finest field [B, 3, C_pe, H, W]
        return fields


__all__ = ["TriplaneConfig", "TriplaneEncoder", "TriplaneDecoder", "CrossPlaneBlock", "PLANES", "fold", "unfold"]
