"""Video encoder and decoder on the (xy, xt, yt) planes (DDMI §3.1–3.2; ddmi_method.md §1.2–1.4 video rows).

The reference encodes a clip with a TimeSformer and collapses its token grid along each axis
with a small Transformer ("xy" attends over t, "xt" over y, "yt" over x). Here the same three
collapses follow a small convolutional trunk:

* per-frame 2D conv levels (shared by every frame, frames folded into the batch) take a frame
  from R² to S² = (R / 2^(L−1))²;
* a strided temporal conv takes T frames to T' = T / ``time_down`` rows, and a 3D residual block
  mixes space and time at the latent size, giving features ``[B, C, T', S_y, S_x]``;
* attention pooling collapses one axis per plane (weights softmax_a(wᵀh) over the collapsed
  axis a, one weight map per channel group):

      Π_xy(y, x) = Σ_t  α_t(y, x)·h(t, y, x)          height y, width x
      Π_xt(t, x) = Σ_y  α_y(t, x)·h(t, y, x)          height t, width x
      Π_yt(t, y) = Σ_x  α_x(t, y)·h(t, y, x)          height t, width y

  so the planes come out in the canonical order (xy, xt, yt), time planes with t on the height
  axis and the spatial coordinate on the width axis (fields.py ``xyt``);
* a per-plane ResBlock, a cross-plane block, SiLU→conv3×3 and a per-plane 1×1 quant conv give the
  Gaussian moments ``[B, 3, 2z, S, S]``, plus a linear **pixel shortcut**: the clip averaged along
  each plane's collapsed axis, area-pooled to S², through a per-plane 1×1 conv. No normalisation
  sits right before the moments: a GroupNorm there (one channel per group at these widths) is an
  instance norm of every plane and erases each clip's colour offsets, which left the decoder with
  almost nothing per clip (held-out PSNR at the data-set mean for hundreds of steps).

The latent keeps T' = S so the three planes have **one shape**, ``[3, z, S, S]`` — a time plane's
height (T' rows) is given explicitly by ``time_down`` and checked against S. The decoder is then
the tri-plane decoder (shared 2D layers, cross-plane mixing, HDBF heads) of
:mod:`ddmi_lite.nets.triplane`: it upsamples both axes of every plane, so the time planes' fields
have 2·T' and 4·T' rows (the reference upsamples the time planes along the spatial axis only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.blocks import ResBlock, down_path, group_norm
from ddmi_lite.nets.triplane import (
    PLANES,
    CrossPlaneBlock,
    TriplaneConfig,
    TriplaneDecoder,
    fold,
    unfold,
)

PLANE_ORDER = ("xy", "xt", "yt")


@dataclass
class VideoNetConfig:
    """Video VAE networks (reference values in brackets, ddmi_method.md §1.2–1.4, §3.1 ``skytimelapse``)."""

    frames: int = 16                           # T frames per clip [16]
    resolution: int = 32                       # frame side R [256]
    in_channels: int = 3
    ch: int = 32                               # base conv width [64]
    ch_mult: tuple[int, ...] = (1, 2, 2)       # per-frame 2D levels, len−1 stride-2 downsamplings
    time_down: int = 2                         # temporal stride: the time planes have T / time_down rows
    num_res_blocks: int = 1                    # ResBlocks per level [2]
    z_channels: int = 16                       # latent channels per plane [64]
    pe_channels: int = 32                      # C_pe of every basis field, per plane [64]
    n_scales: int = 3                          # HDBF scales (coarse, mid, fine) [3]
    pool_heads: int = 4                        # channel groups with their own attention-pooling weights
    cross_resolutions: tuple[int, ...] = (8,)  # plane sizes with a cross-plane block (decoder)
    attention_resolutions: tuple[int, ...] = (8,)
    dropout: float = 0.0
    logvar_init: float = -4.0                  # initial log σ² of the posterior (σ ≈ 0.14, see VideoEncoder)

    @property
    def latent_resolution(self) -> int:
        """S: the side of every latent plane (spatial S = R / 2^(L−1), time T' = T / time_down)."""
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_frames(self) -> int:
        """T': the rows of a time plane's latent."""
        return self.frames // self.time_down

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(P, z, h, w) of one latent."""
        s = self.latent_resolution
        return (PLANES, self.z_channels, s, s)

    def check(self) -> VideoNetConfig:
        f = 2 ** (len(self.ch_mult) - 1)
        if not self.ch_mult or self.resolution % f:
            raise DDMIError(f"resolution={self.resolution} must be divisible by 2^(len(ch_mult)-1)={f}")
        if self.time_down < 1 or self.frames % self.time_down:
            raise DDMIError(f"frames={self.frames} must be divisible by time_down={self.time_down}")
        if self.latent_frames != self.latent_resolution:
            raise DDMIError(
                f"the time planes' latent height frames/time_down = {self.latent_frames} must equal the spatial "
                f"latent side resolution/2^(len(ch_mult)-1) = {self.latent_resolution}, so that the planes "
                "(xy, xt, yt) share one shape; change time_down or ch_mult")
        if not 1 <= self.n_scales <= len(self.ch_mult):
            raise DDMIError(f"n_scales={self.n_scales} must be between 1 and len(ch_mult)={len(self.ch_mult)}")
        c = self.ch * self.ch_mult[-1]
        if c % self.pool_heads:
            raise DDMIError(f"pool_heads={self.pool_heads} must divide the top channel count {c}")
        return self

    def triplane(self) -> TriplaneConfig:
        """The decoder's configuration (a tri-plane decoder on the three video planes)."""
        return TriplaneConfig(plane_channels=self.pe_channels, plane_resolution=self.resolution, ch=self.ch,
                              ch_mult=self.ch_mult, num_res_blocks=self.num_res_blocks,
                              z_channels=self.z_channels, pe_channels=self.pe_channels, n_scales=self.n_scales,
                              cross_resolutions=self.cross_resolutions,
                              attention_resolutions=self.attention_resolutions, dropout=self.dropout)


class ResBlock3D(nn.Module):
    """Residual 3×3×3 conv block over (t, y, x): ``x + conv(SiLU(GN(conv(SiLU(GN(x))))))``."""

    def __init__(self, ch: int, *, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv3d(ch, ch, 3, padding=1),
                                  group_norm(ch), nn.SiLU(), nn.Dropout(dropout), nn.Conv3d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AxisPool(nn.Module):
    """Attention pooling of ``[B, C, T, Y, X]`` over one axis: Σ_a softmax_a(w_gᵀ h)·h per channel group g."""

    def __init__(self, ch: int, axis: str, *, heads: int = 4):
        super().__init__()
        if axis not in ("t", "y", "x"):
            raise DDMIError(f"axis={axis!r} is not one of ('t', 'y', 'x')")
        self.axis, self.heads = axis, heads
        self.score = nn.Conv3d(ch, heads, 1)
        nn.init.zeros_(self.score.weight)  # starts as the plain mean over the axis
        nn.init.zeros_(self.score.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        dim = {"t": 2, "y": 3, "x": 4}[self.axis]
        weights = self.score(h).softmax(dim=dim)  # [B, G, T, Y, X], sums to 1 along the axis
        grouped = rearrange(h, "b (g c) t y x -> b g c t y x", g=self.heads)
        pooled = (grouped * weights[:, :, None]).sum(dim=dim + 1)  # the axis removed
        return rearrange(pooled, "b g c h w -> b (g c) h w")  # xy: [B,C,Y,X]; xt: [B,C,T,X]; yt: [B,C,T,Y]


class VideoEncoder(nn.Module):
    """Clip ``[B, T, 3, R, R]`` in [−1, 1] → moments ``[B, 3, 2z, S, S]`` on the planes (xy, xt, yt)."""

    def __init__(self, cfg: VideoNetConfig):
        super().__init__()
        self.cfg = cfg.check()
        chs = [cfg.ch * m for m in cfg.ch_mult]
        self.frame_net = nn.Sequential(nn.Conv2d(cfg.in_channels, chs[0], 3, padding=1),
                                       *down_path(chs, cfg.num_res_blocks, dropout=cfg.dropout))
        prev = chs[-1]
        k = 2 * cfg.time_down - 1 if cfg.time_down > 1 else 3
        self.time_conv = nn.Conv3d(prev, prev, (k, 1, 1), stride=(cfg.time_down, 1, 1), padding=(k // 2, 0, 0))
        self.mix = ResBlock3D(prev, dropout=cfg.dropout)
        self.pools = nn.ModuleList(AxisPool(prev, axis, heads=cfg.pool_heads) for axis in ("t", "y", "x"))
        self.plane_block = ResBlock(prev, dropout=cfg.dropout)
        self.cross = CrossPlaneBlock(prev, attention=cfg.latent_resolution in cfg.attention_resolutions,
                                     dropout=cfg.dropout)
        self.out = nn.Sequential(nn.SiLU(), nn.Conv2d(prev, prev, 3, padding=1))  # no norm: see the module docstring
        self.quant = nn.Conv2d(PLANES * prev, PLANES * 2 * cfg.z_channels, 1, groups=PLANES)  # per plane
        # pixel shortcut: the clip averaged along each plane's collapsed axis, area-pooled to S², mapped
        # linearly (per plane) into the moments, so per-clip colours reach z without passing any norm
        self.shortcut = nn.Conv2d(PLANES * cfg.in_channels, PLANES * 2 * cfg.z_channels, 1, groups=PLANES)
        # Start with a small posterior σ: with σ ≈ 1 the sampled z of different clips are nearly
        # indistinguishable (μ spreads ≈ 0.1 across clips at initialisation) and the decoder learns
        # to ignore them; the KL term then sets σ during training.
        with torch.no_grad():
            bias = rearrange(self.quant.bias, "(p two z) -> p two z", p=PLANES, two=2)
            bias[:, 1] = cfg.logvar_init

    def pixel_planes(self, clips: torch.Tensor) -> torch.Tensor:
        return _pixel_planes(clips, self.cfg.latent_resolution, self.cfg.latent_frames)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        want = (cfg.frames, cfg.in_channels, cfg.resolution, cfg.resolution)
        if clips.ndim != 5 or tuple(clips.shape[1:]) != want:
            raise DDMIError(f"clips must be [B, {', '.join(map(str, want))}] (B, T, C, H, W), got {tuple(clips.shape)}")
        b = clips.shape[0]
        h = self.frame_net(rearrange(clips, "b t c h w -> (b t) c h w"))  # [B·T, C, S, S]
        h = rearrange(h, "(b t) c y x -> b c t y x", b=b)  # [B, C, T, S, S]
        h = self.mix(self.time_conv(h))  # [B, C, T', S, S]
        planes = torch.stack([pool(h) for pool in self.pools], dim=1)  # [B, 3, C, S, S] (xy, xt, yt)
        g = self.out(self.cross(self.plane_block(fold(planes))))  # [B·3, C, S, S]
        moments = self.quant(rearrange(unfold(g), "b p c h w -> b (p c) h w"))  # [B, 3·2z, S, S]
        moments = moments + self.shortcut(self.pixel_planes(clips))
        return rearrange(moments, "b (p c) h w -> b p c h w", p=PLANES)  # [B, 3, 2z, S, S]


def _pixel_planes(clips: torch.Tensor, size: int, rows: int) -> torch.Tensor:
    """Clip ``[B, T, C, R, R]`` → its means along t, y and x, area-pooled: ``[B, 3·C, S, S]`` (xy, xt, yt)."""
    xy = F.adaptive_avg_pool2d(clips.mean(1), (size, size))  # [B, C, S(y), S(x)]
    xt = F.adaptive_avg_pool2d(rearrange(clips.mean(3), "b t c x -> b c t x"), (rows, size))  # [B, C, T', S(x)]
    yt = F.adaptive_avg_pool2d(rearrange(clips.mean(4), "b t c y -> b c t y"), (rows, size))  # [B, C, T', S(y)]
    return torch.cat([xy, xt, yt], dim=1)


class VideoDecoder(TriplaneDecoder):
    """Latent ``[B, 3, z, S, S]`` → basis fields, a list (coarse → fine) of ``[B, 3, C_pe, S·2^l, S·2^l]``.

    The tri-plane decoder with the video configuration: plane p of every field is plane
    ``PLANE_ORDER[p]``; a time plane's height is t (S·2^l rows for T frames), its width x or y.
    """

    def __init__(self, cfg: VideoNetConfig):
        super().__init__(cfg.check().triplane())
        self.video_cfg = cfg


__all__ = ["PLANE_ORDER", "AxisPool", "ResBlock3D", "VideoDecoder", "VideoEncoder", "VideoNetConfig"]
