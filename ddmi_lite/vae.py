"""D2C-VAE: discrete data → Gaussian grid latent → basis fields → continuous readout (DDMI §3.1–3.3).

Domain-agnostic: the encoder, decoder and readout come from a domain; this module only wires

    q_φ(z|x) = N(μ, diag σ²)              encoder, log σ² clamped to [−30, 20]
    Ξ = D_ψ(z) = [Ξ¹, …, Ξᴸ]               decoder → HDBF, coarse → fine
    pˡ(c) = γ(c; Ξˡ)                      bilinear query (fields.py)
    ω̂(c) = π_θ(p¹(c), …, pᴸ(c))           CFC readout (readout.py)

and the stage-1 objective (reference §1.8: reconstruction and KL are *sums* per sample,
averaged over the batch)

    L = Σ_c rec(ω̂(c), ω(c)) + β(t)·KL(q_φ(z|x) ‖ N(0, I))

with β(t) annealed linearly (``kl_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddmi_lite import fields as F_fields
from ddmi_lite.checks import check_tensor, module_call
from ddmi_lite.device import module_device
from ddmi_lite.errors import DDMIError


class DiagonalGaussian:
    """Posterior ``N(μ, diag σ²)`` from encoder moments split along ``dim`` (mean first)."""

    def __init__(self, moments: torch.Tensor, *, dim: int = 1):
        self.mean, logvar = moments.chunk(2, dim=dim)
        self.logvar = logvar.clamp(-30.0, 20.0)  # reference clamp
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ·ε (reparameterised)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype) \
            if generator is not None else torch.randn_like(self.mean)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(N(μ,σ²) ‖ N(0,1)) = ½ Σ (μ² + σ² − 1 − log σ²), summed over all but the batch dim → [B]."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)


def kl_weight(step: int, total_steps: int, *, beta_max: float, beta_min: float = 1e-4,
              anneal_portion: float = 0.9, const_portion: float = 1e-4) -> float:
    """Linear KL anneal of the reference: β = clip(β_min + (β_max−β_min)(t − c·N)/(a·N), β_min, β_max)."""
    if total_steps <= 0:
        return beta_max
    beta = beta_min + (beta_max - beta_min) * (step - const_portion * total_steps) / (anneal_portion * total_steps)
    return float(min(max(beta, beta_min), beta_max))


RECON_LOSSES = ("l1", "mse", "bce")


@dataclass
class VAEOutput:
    out: torch.Tensor                  # [B,N,out_dim] readout at the query coordinates
    posterior: DiagonalGaussian
    z: torch.Tensor
    fields: list[torch.Tensor]


class D2CVAE(nn.Module):
    """Encoder → Gaussian latent → decoder (HDBF) → shared readout, for any plane layout."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        readout: nn.Module,
        *,
        layout: str = "plane",        # "plane" | "triplane" | "xyt" (fields.LAYOUTS)
        aggregate: str = "sum",       # plane samples: "sum" (shapes) | "concat" (NeRF) | "concat_prod" (video)
        recon: str = "l1",            # per-output reconstruction loss, summed over outputs
        moments_dim: int = 1,         # axis of the encoder output holding (mean, logvar)
    ):
        super().__init__()
        if layout not in F_fields.LAYOUTS:
            raise DDMIError(f"layout={layout!r} is not one of {tuple(F_fields.LAYOUTS)}")
        F_fields.embedding_channels(1, layout, aggregate=aggregate)  # checks the aggregate and its layout
        if recon not in RECON_LOSSES:
            raise DDMIError(f"recon={recon!r} is not one of {RECON_LOSSES}")
        self.encoder, self.decoder, self.readout = encoder, decoder, readout
        self.layout, self.aggregate, self.recon, self.moments_dim = layout, aggregate, recon, moments_dim

    # -- the four operations --------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """Discrete data → posterior q_φ(z|x).

        ``x`` must be a finite floating-point tensor with a batch dimension, in the layout the
        domain's encoder takes (images ``[B,3,H,W]``, point clouds ``[B,N,3]``, ...); anything
        else raises :class:`DDMIError` naming ``x`` and its shape.
        """
        check_tensor(x, "x", ndim=(2, 3, 4, 5, 6), layout="(a batch of the domain's data)")
        moments = module_call(self.encoder, x, what="encoder", name="x")
        if moments.shape[self.moments_dim] % 2:
            raise DDMIError(f"the encoder returned {moments.shape[self.moments_dim]} channels on dim "
                            f"{self.moments_dim}; expected an even number (mean and log-variance)")
        return DiagonalGaussian(moments, dim=self.moments_dim)

    def decode(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Latent → basis fields, a list of ``[B,P,C,H,W]`` coarse → fine.

        ``z`` must be a finite floating-point latent of the shape the encoder produces; a wrong
        shape or NaN/inf raises :class:`DDMIError`.
        """
        check_tensor(z, "z", ndim=(2, 3, 4, 5), layout="(a latent as returned by encode)")
        return module_call(self.decoder, z, what="decoder", name="z")

    def query(self, fields: Sequence[torch.Tensor], coords: torch.Tensor, *, scale=None,
              scale_mask: Sequence[float] | None = None, **readout_kw) -> torch.Tensor:
        """Basis fields + coordinates ``[B,N,D]`` → readout ``[B,N,out_dim]``.

        ``coords`` must be finite floats (NaN/inf raise :class:`DDMIError`); values outside
        ``[-1, 1]`` are **clamped** to it, which reads the border value of every field, as
        ``grid_sample`` with border padding would (see :func:`ddmi_lite.fields.query_fields`).
        """
        pes = F_fields.query_fields(fields, coords, self.layout, aggregate=self.aggregate, scale_mask=scale_mask)
        kw = dict(readout_kw)
        if getattr(self.readout, "scale_cond", False):
            kw["scale"] = scale
        if getattr(self.readout, "coord_dim", 0):
            kw["coords"] = coords
        return self.readout(pes, **kw)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, *, sample: bool = True, scale=None,
                generator: torch.Generator | None = None, **readout_kw) -> VAEOutput:
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        fields = self.decode(z)
        return VAEOutput(self.query(fields, coords, scale=scale, **readout_kw), posterior, z, fields)

    def loss(self, x: torch.Tensor, coords: torch.Tensor, target: torch.Tensor, *, beta: float,
             scale=None, generator: torch.Generator | None = None, **readout_kw) -> tuple[torch.Tensor, dict]:
        """Stage-1 ELBO: Σ rec + β·KL per sample, averaged over the batch; returns (loss, logs)."""
        out = self(x, coords, scale=scale, generator=generator, **readout_kw)
        check_tensor(target, "target", layout="[B, N, out_dim]")
        if out.out.shape != target.shape:
            raise DDMIError(f"target must have the readout's shape {tuple(out.out.shape)}, got {tuple(target.shape)}")
        if self.recon == "l1":
            rec = (out.out - target).abs()
        elif self.recon == "mse":
            rec = (out.out - target).pow(2)
        else:
            rec = F.binary_cross_entropy_with_logits(out.out, target, reduction="none")
        rec = rec.flatten(1).sum(1).mean()
        kl = out.posterior.kl().mean()
        loss = rec + beta * kl
        return loss, {"rec": float(rec.detach()), "kl": float(kl.detach()), "beta": float(beta)}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def encode_means(vae: D2CVAE, inputs: torch.Tensor, *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations of encoder inputs (e.g. point clouds [n, S, 3]) → two [n, *z] (CPU)."""
    device, means, stds = module_device(vae), [], []
    for start in range(0, len(inputs), batch_size):
        post = vae.encode(inputs[start:start + batch_size].to(device))
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


__all__ = ["D2CVAE", "DiagonalGaussian", "VAEOutput", "kl_weight", "count_parameters", "encode_means", "RECON_LOSSES"]
