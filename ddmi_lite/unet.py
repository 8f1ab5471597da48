"""The latent denoiser of DDMI stage 2: a scaled-down ADM UNet.

Reference §2 ("UNet configs"): DDMI trains an ADM ``UNetModel`` (Dhariwal & Nichol 2021,
"Diffusion Models Beat GANs", App. A) on the VAE latents: residual blocks with the time
embedding added after the first conv, multi-head self-attention at the low resolutions, conv
down/up-sampling, skip connections between the two paths, a time-embedding MLP of width
4·model_channels and a zero-initialised output conv. Tri-planes enter as one 2D image with the
three planes stacked along channels (e.g. 192×16×16).

An optional conditioning vector (a text or class embedding) is projected and *added to the
time embedding*; a learned null embedding replaces it when the condition is absent or dropped,
which is what classifier-free guidance needs (Ho & Salimans 2022).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.blocks import Upsample
from ddmi_lite.readout import sinusoidal_embedding


def zero_init(module: nn.Module) -> nn.Module:
    """Zero every parameter: a residual branch starts as the identity (ADM's ``zero_module``)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimeResBlock(nn.Module):
    """ADM residual block conditioned on the time (+ condition) embedding:
    h = conv(SiLU(GN(x))) + W·SiLU(emb);  out = skip(x) + zero-conv(Dropout(SiLU(GN(h))))."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float = 0.0, groups: int = 8):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_ch),
            nn.SiLU(),
            nn.Dropout(dropout),
            zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1)),
        )
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)  # [B, out, H, W]
        h = h + self.emb_proj(emb)[:, :, None, None]  # time (+ condition) added per channel
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, softmax(QKᵀ/√d)V, zero-init output."""

    def __init__(self, channels: int, *, num_heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % num_heads:
            raise DDMIError(f"num_heads={num_heads} must divide the attention width {channels}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        qkv = self.qkv(self.norm(x))  # [B, 3C, H, W]
        q, k, v = rearrange(qkv, "b (three n d) h w -> three b n (h w) d", three=3, n=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, H·W, C/heads]
        out = rearrange(out, "b n (h w) d -> b (n d) h w", h=h, w=w)
        return x + self.proj(out)


class StridedDownsample(nn.Module):
    """Stride-2 3×3 conv with symmetric padding 1: H, W → H/2, W/2 (ADM; the VAE's
    :class:`~ddmi_lite.nets.blocks.Downsample` pads asymmetrically instead)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResAttn(nn.Module):
    """One UNet unit: a :class:`TimeResBlock`, then self-attention when the level has it."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, attention: bool, num_heads: int,
                 dropout: float, groups: int):
        super().__init__()
        self.res = TimeResBlock(in_ch, out_ch, emb_dim, dropout=dropout, groups=groups)
        self.attn = AttentionBlock(out_ch, num_heads=num_heads, groups=groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, attend: bool = True) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x) if (self.attn is not None and attend) else x


class UNet(nn.Module):
    """ε-network ``(x [B,C,H,W], t [B], cond [B,cond_dim] | None) -> [B,C,H,W]``.

    ``attention_resolutions`` are feature-map sizes (min(H, W) of the map a block sees).  When
    ``image_size`` is given they are resolved at construction, as ADM does, and attention blocks
    exist only at those levels.  When it is ``None`` every level gets an attention block and the
    forward pass runs it only where the current size is listed; the blocks of unused levels then
    receive no gradient (pass ``find_unused_parameters=True`` to DDP, or give ``image_size``).
    The middle block always attends.  H and W must be divisible by 2**(len(channel_mult)-1).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        model_channels: int = 64,  # width of the first level
        channel_mult: Sequence[int] = (1, 2),  # width multiplier per level; one downsample between levels
        num_res_blocks: int = 2,  # residual blocks per level on the way down (one more on the way up)
        attention_resolutions: Sequence[int] = (8,),  # feature-map sizes that get self-attention
        num_heads: int = 4,
        cond_dim: int | None = None,  # size of the conditioning vector; None = unconditional
        dropout: float = 0.0,
        groups: int = 8,  # GroupNorm groups; must divide every width
        image_size: int | None = None,  # optional: fixes attention levels at construction (ADM style)
    ):
        super().__init__()
        if in_channels < 1:
            raise DDMIError(f"in_channels={in_channels} must be >= 1")
        if not channel_mult or any(int(m) < 1 for m in channel_mult):
            raise DDMIError(f"channel_mult={tuple(channel_mult)} must be a non-empty sequence of positive ints")
        if num_res_blocks < 1:
            raise DDMIError(f"num_res_blocks={num_res_blocks} must be >= 1")
        widths = [model_channels * int(m) for m in channel_mult]
        if any(w % groups for w in widths):
            raise DDMIError(f"groups={groups} must divide every level width {widths} (model_channels·channel_mult)")
        if cond_dim is not None and cond_dim < 1:
            raise DDMIError(f"cond_dim={cond_dim} must be a positive int or None")
        if not 0.0 <= dropout < 1.0:
            raise DDMIError(f"dropout={dropout} must be in [0, 1)")
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.num_levels = len(widths)
        self.cond_dim = cond_dim
        self.attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.image_size = image_size
        emb_dim = 4 * model_channels

        def has_attention(level: int) -> bool:
            if image_size is None:
                return True  # decided per forward pass from the feature-map size
            return image_size // 2**level in self.attention_resolutions

        unit = dict(emb_dim=emb_dim, num_heads=num_heads, dropout=dropout, groups=groups)

        # time embedding: sinusoid(model_channels) -> MLP -> 4·model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        if cond_dim is not None:
            self.cond_embed = nn.Sequential(nn.Linear(cond_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            self.null_cond = nn.Parameter(torch.zeros(emb_dim))  # learned "no condition" embedding

        # down path: record the width of every tensor pushed onto the skip stack
        self.conv_in = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        self.down_levels: list[int] = []
        skip_widths = [model_channels]
        ch = model_channels
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(ResAttn(ch, width, attention=has_attention(level), **unit))
                self.down_levels.append(level)
                ch = width
                skip_widths.append(ch)
            if level < self.num_levels - 1:
                self.down.append(StridedDownsample(ch))
                self.down_levels.append(level)
                skip_widths.append(ch)

        # middle: Res, Attn, Res at the lowest resolution
        self.mid_res1 = TimeResBlock(ch, ch, emb_dim, dropout=dropout, groups=groups)
        self.mid_attn = AttentionBlock(ch, num_heads=num_heads, groups=groups)
        self.mid_res2 = TimeResBlock(ch, ch, emb_dim, dropout=dropout, groups=groups)

        # up path: num_res_blocks + 1 units per level, each eating one skip tensor
        self.up = nn.ModuleList()
        self.up_levels: list[int] = []
        for level in reversed(range(self.num_levels)):
            width = widths[level]
            for j in range(num_res_blocks + 1):
                self.up.append(ResAttn(ch + skip_widths.pop(), width, attention=has_attention(level), **unit))
                self.up_levels.append(level)
                ch = width
                if level > 0 and j == num_res_blocks:
                    self.up.append(Upsample(ch))
                    self.up_levels.append(level)

        self.out = nn.Sequential(
            nn.GroupNorm(groups, ch), nn.SiLU(), zero_init(nn.Conv2d(ch, in_channels, 3, padding=1))
        )

    # ------------------------------------------------------------------------------------------
    def _attend(self, h: torch.Tensor) -> bool:
        return self.image_size is not None or min(h.shape[-2:]) in self.attention_resolutions

    def _embedding(self, t, cond, drop_cond, batch: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise DDMIError(f"t has shape {tuple(t.shape)}; expected a scalar or [{batch}] timesteps")
        emb = self.time_embed(sinusoidal_embedding(t, self.model_channels, formula="adm"))  # [B, 4·mc]
        if self.cond_dim is None:
            if cond is not None or drop_cond is not None:
                raise DDMIError("cond was given but this UNet was built with cond_dim=None")
            return emb
        null = self.null_cond.to(emb.dtype).expand(batch, -1)  # [B, 4·mc]
        if cond is None:
            return emb + null
        if cond.shape != (batch, self.cond_dim):
            raise DDMIError(f"cond has shape {tuple(cond.shape)}; expected [{batch}, {self.cond_dim}]")
        c = self.cond_embed(cond.to(device=device, dtype=emb.dtype))  # [B, 4·mc]
        if drop_cond is not None:
            drop = torch.as_tensor(drop_cond, device=device).to(torch.bool).reshape(batch, 1)
            c = torch.where(drop, null, c)  # dropped rows use the null embedding exactly
        return emb + c

    def forward(self, x: torch.Tensor, t, cond: torch.Tensor | None = None, *,
                drop_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the network output for ``x`` at timesteps ``t``; ``drop_cond`` [B] bool → null condition."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DDMIError(f"x has shape {tuple(x.shape)}; expected [B, {self.in_channels}, H, W]")
        factor = 2 ** (self.num_levels - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise DDMIError(
                f"x spatial size {tuple(x.shape[-2:])} must be divisible by {factor} = 2**(len(channel_mult)-1)"
            )
        emb = self._embedding(t, cond, drop_cond, x.shape[0], x.device)

        h = self.conv_in(x)  # [B, mc, H, W]
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, StridedDownsample) else block(h, emb, self._attend(h))
            skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)  # [B, ch, 2H, 2W]
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, self._attend(h))  # skip concat on channels
        return self.out(h)  # [B, C, H, W]


__all__ = ["AttentionBlock", "ResAttn", "StridedDownsample", "TimeResBlock", "UNet", "zero_init"]
