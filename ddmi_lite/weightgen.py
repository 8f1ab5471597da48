"""Weight-generation baseline: a latent modulates one SIREN, Functa-style (DDMI §4.4, Table 5).

DDMI's first claim is that generating *adaptive positional embeddings* (basis fields decoded from
the latent, D2C-VAE) beats generating the *weights* of a network that reads the raw coordinate.
The weight-generation side follows Functa (Dupont et al. 2022, §3): one SIREN shared by every
sample, whose hidden layers are shifted by a per-sample modulation computed from the latent,

    s = W_s · vec(z) + b_s  ∈ ℝ^{L×H}                          latent → one shift vector per layer
    h₁ = sin(ω₀ (W₁ c + b₁) + s₁),   hₗ = sin(ω₀ (Wₗ hₗ₋₁ + bₗ) + sₗ),   ω̂(c) = W_o h_L + b_o

with SIREN's initialisation (Sitzmann et al. 2020, §3.2): W₁ ~ U(−1/d, 1/d) for a d-dimensional
coordinate, Wₗ ~ U(−√(6/H)/ω₀, √(6/H)/ω₀). The shift is added to the sine's argument after the
ω₀ scaling; adding it before (sin(ω₀(Wh + b + s))) is the same family of functions with W_s scaled
by ω₀. Functa's networks are much larger (hundreds of units, ten or more layers); here width and
depth are scaled to the budget (:class:`WeightGenConfig`).

Unlike Functa, the latent is not fitted per sample by meta-learning: the encoder produces it and
W_s is trained jointly with it through the ELBO (an amortised weight generator), so the baseline
and the D2C-VAE rows share the encoder, the latent size, the posterior, the ELBO and the training
loop (``D2CVAE.loss``); ``train_image_vae`` / ``train_shape_vae`` and the latent diffusion model
run on it unchanged. ``decode`` returns ``[shifts]`` (a one-element list, ``[B, L, H]``) where the
D2C-VAE returns basis fields, and ``query`` reads it out; there are no scales to switch off.
:class:`FourierFeatures` (a fixed encoding, used by notebook 01's comparison) lives here too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from einops import rearrange
from torch import nn

from ddmi_lite import fields as F_fields
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.conv2d import Encoder2D
from ddmi_lite.nets.triplane import TriplaneEncoder
from ddmi_lite.vae import D2CVAE


@dataclass
class WeightGenConfig:
    """The shift-modulated SIREN of the baseline (shifts only, as Functa's modulations)."""

    hidden: int = 128      # width of every layer
    n_layers: int = 4      # modulated sine layers, each with its own shift vector
    w0: float = 30.0       # SIREN frequency ω₀ of every sine layer (Functa, SIREN: 30)

    def check(self) -> WeightGenConfig:
        if self.hidden < 1 or self.n_layers < 1 or not self.w0 > 0:
            raise DDMIError(f"WeightGenConfig: hidden={self.hidden} and n_layers={self.n_layers} must be >= 1 "
                            f"and w0={self.w0} > 0")
        return self


class FourierFeatures(nn.Module):
    """Fixed encoding ``[B,N,D] → [B,N,D·(1+2K)]``: the coordinate and its sines/cosines at 2ᵏπ, k < K."""

    def __init__(self, coord_dim: int, n_freqs: int = 6):
        super().__init__()
        if coord_dim < 1 or n_freqs < 0:
            raise DDMIError(f"coord_dim={coord_dim} must be >= 1 and n_freqs={n_freqs} >= 0")
        self.coord_dim, self.n_freqs = coord_dim, n_freqs
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.coord_dim * (1 + 2 * self.n_freqs)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        args = coords[..., None] * self.freqs.to(coords.dtype)  # [B,N,D,K]
        feats = torch.cat([args.sin(), args.cos()], -1)  # [B,N,D,2K]
        return torch.cat([coords, rearrange(feats, "b n d k -> b n (d k)")], -1)  # [B,N,D(1+2K)]


class LatentToShifts(nn.Module):
    """Latent-to-modulation map: ``z [B, …] → [shifts [B, L, H]]``, one linear layer, s = W_s·vec(z) + b_s.

    Zero-initialised, so training starts from the unmodulated shared MLP.
    """

    def __init__(self, latent_shape: Sequence[int], *, n_layers: int, hidden: int):
        super().__init__()
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.n_layers, self.hidden = n_layers, hidden
        self.linear = nn.Linear(math.prod(self.latent_shape), n_layers * hidden)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        if tuple(z.shape[1:]) != self.latent_shape:
            raise DDMIError(f"latent must be [B, {', '.join(map(str, self.latent_shape))}], got {tuple(z.shape)}")
        shifts = self.linear(z.flatten(1))  # [B, L·H]
        return [rearrange(shifts, "b (l h) -> b l h", l=self.n_layers)]  # [B, L, H]


class ModulatedSIREN(nn.Module):
    """Shared SIREN over the raw coordinate whose sine layers are shifted per sample (Functa §3)."""

    def __init__(self, coord_dim: int, out_dim: int, cfg: WeightGenConfig):
        super().__init__()
        cfg.check()
        self.w0 = float(cfg.w0)
        dims = [coord_dim] + [cfg.hidden] * cfg.n_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.head = nn.Linear(cfg.hidden, out_dim)
        with torch.no_grad():  # SIREN initialisation (Sitzmann et al. 2020, §3.2)
            for l, layer in enumerate(self.layers):
                bound = 1.0 / coord_dim if l == 0 else math.sqrt(6.0 / layer.in_features) / self.w0
                layer.weight.uniform_(-bound, bound)
            bound = math.sqrt(6.0 / cfg.hidden) / self.w0
            self.head.weight.uniform_(-bound, bound)

    def forward(self, coords: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """``coords [B|1, N, D]``, ``shifts [B, L, H]`` → ``[B, N, out_dim]``."""
        h = coords
        for l, layer in enumerate(self.layers):
            h = torch.sin(self.w0 * layer(h) + shifts[:, l, None])  # sin(ω₀(W h + b) + s_l), [B,N,H]
        return self.head(h)


class WeightGenVAE(D2CVAE):
    """Encoder → Gaussian latent → per-layer shifts → a shift-modulated SIREN over the coordinate.

    Same interface as :class:`~ddmi_lite.vae.D2CVAE` (``encode``, ``decode``, ``query``, ``loss``);
    ``decode`` returns ``[shifts]`` instead of basis fields.
    """

    def __init__(self, encoder: nn.Module, latent_shape: Sequence[int], cfg: WeightGenConfig | None = None, *,
                 layout: str = "plane", out_dim: int = 3, recon: str = "l1", moments_dim: int = 1):
        cfg = cfg or WeightGenConfig()
        decoder = LatentToShifts(latent_shape, n_layers=cfg.n_layers, hidden=cfg.hidden)
        readout = ModulatedSIREN(F_fields.coord_dim(layout), out_dim, cfg)
        super().__init__(encoder, decoder, readout, layout=layout, aggregate="sum", recon=recon,
                         moments_dim=moments_dim)
        self.cfg = cfg

    def query(self, fields: Sequence[torch.Tensor], coords: torch.Tensor, *, scale=None, scale_mask=None,
              **readout_kw) -> torch.Tensor:
        """``[shifts]`` + coordinates ``[B,N,D]`` → ``[B,N,out_dim]``; ``scale`` is ignored (no fields)."""
        if scale_mask is not None and any(float(w) != 1.0 for w in scale_mask):
            raise DDMIError("scale_mask: the weight-generation baseline has no basis-field scales to switch off")
        shifts = fields[0]  # [B,L,H]
        if coords.shape[0] != shifts.shape[0]:
            coords = coords.expand(shifts.shape[0], -1, -1)
        return self.readout(coords.clamp(-1.0, 1.0).to(shifts.dtype), shifts)  # outside [-1, 1]: the border, as fields do


def build_image_weightgen(cfg, wg: WeightGenConfig | None = None, *, extra_down: int = 0) -> WeightGenVAE:
    """The image baseline: ``Encoder2D`` of ``cfg.net`` (an ImageVAEConfig), latent ``[z, R/f, R/f]``.

    ``extra_down`` adds encoder levels as :func:`ddmi_lite.ablations.coarse_field_image_vae` does, so the
    baseline's latent has the size of the coarse-field D2C-VAE rows it is compared with.
    """
    net = cfg.net
    if extra_down:
        net = replace(net, ch_mult=net.ch_mult + (net.ch_mult[-1],) * extra_down)
    enc = Encoder2D(net)
    r = cfg.resolution // enc.downsample_factor
    return WeightGenVAE(enc, (cfg.net.z_channels, r, r), wg, layout="plane", out_dim=cfg.net.in_channels,
                        recon=cfg.recon)


def build_shape_weightgen(cfg, wg: WeightGenConfig | None = None) -> WeightGenVAE:
    """The shape baseline: PointNet + ``TriplaneEncoder`` of ``cfg.net`` (a ShapeVAEConfig), latent ``[3, z, h, w]``."""
    net = cfg.net.check()
    return WeightGenVAE(TriplaneEncoder(net), net.latent_shape, wg, layout="triplane", out_dim=1, recon="bce",
                        moments_dim=2)


__all__ = [
    "FourierFeatures",
    "LatentToShifts",
    "ModulatedSIREN",
    "WeightGenConfig",
    "WeightGenVAE",
    "build_image_weightgen",
    "build_shape_weightgen",
]
