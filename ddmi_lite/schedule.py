"""The noise schedule of DDMI stage 2 (reference §2; Ho et al. 2020, LDM's "scaled linear" β).

β_t = (linspace(√0.0015, √0.0195, T))², computed in float64; ᾱ_t = Π_{s≤t} (1 − β_s).
:mod:`ddmi_lite.sampling` and :mod:`ddmi_lite.diffusion` both build on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ddmi_lite.errors import DDMIError

SCHEDULE_KINDS = ("scaled_linear", "linear")


@dataclass(eq=False)
class Schedule:
    """Discrete forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1−ᾱ_t) I), t = 0 … T−1 (float64 tables)."""

    num_timesteps: int = 1000  # T
    kind: str = "scaled_linear"  # "scaled_linear" (LDM/DDMI) or "linear" (DDPM)
    beta_start: float = 0.0015
    beta_end: float = 0.0195

    betas: torch.Tensor = field(init=False, repr=False)
    alphas: torch.Tensor = field(init=False, repr=False)
    alphas_cumprod: torch.Tensor = field(init=False, repr=False)
    alphas_cumprod_prev: torch.Tensor = field(init=False, repr=False)
    sqrt_alphas_cumprod: torch.Tensor = field(init=False, repr=False)
    sqrt_one_minus_alphas_cumprod: torch.Tensor = field(init=False, repr=False)
    log_snr: torch.Tensor = field(init=False, repr=False)
    posterior_variance: torch.Tensor = field(init=False, repr=False)
    posterior_mean_coef1: torch.Tensor = field(init=False, repr=False)
    posterior_mean_coef2: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        T = int(self.num_timesteps)
        if T < 2:
            raise DDMIError(f"num_timesteps={self.num_timesteps} must be >= 2")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise DDMIError(f"need 0 < beta_start={self.beta_start} <= beta_end={self.beta_end} < 1")
        f64 = torch.float64
        if self.kind == "scaled_linear":
            betas = torch.linspace(math.sqrt(self.beta_start), math.sqrt(self.beta_end), T, dtype=f64) ** 2
        elif self.kind == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, T, dtype=f64)
        else:
            raise DDMIError(f"kind={self.kind!r} is not one of {SCHEDULE_KINDS}")
        self.num_timesteps = T
        self.betas = betas  # β_t
        self.alphas = 1.0 - betas  # α_t = 1 − β_t
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # ᾱ_t = Π_{s≤t} α_s
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=f64), self.alphas_cumprod[:-1]])  # ᾱ_{t−1}, ᾱ_{−1} = 1
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        # λ_t = log(α_t/σ_t) with α_t = √ᾱ_t, σ_t = √(1−ᾱ_t): half the log signal-to-noise ratio
        self.log_snr = 0.5 * (self.alphas_cumprod.log() - (1.0 - self.alphas_cumprod).log())
        # q(x_{t−1} | x_t, x_0) = N(c1·x_0 + c2·x_t, β̃_t I)   (Ho et al. 2020, Eq. 6–7)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)

    # ------------------------------------------------------------------------------------------
    def index(self, t, batch: int) -> torch.Tensor:
        """Timesteps as a CPU long tensor [batch]; ``t`` may be an int, or a [batch] int/float tensor."""
        idx = torch.as_tensor(t).detach().to("cpu")
        if idx.is_floating_point():
            idx = idx.round()
        idx = idx.long()
        if idx.ndim == 0:
            idx = idx.expand(batch)
        if idx.shape != (batch,):
            raise DDMIError(f"t has shape {tuple(idx.shape)}; expected a scalar or [{batch}] timesteps")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.num_timesteps):
            raise DDMIError(f"t must lie in 0..{self.num_timesteps - 1}; got [{int(idx.min())}, {int(idx.max())}]")
        return idx

    def at(self, table: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
        """table[t] shaped [B, 1, …, 1] to broadcast against ``like``, in its dtype and device."""
        values = table[self.index(t, like.shape[0])]  # [B] float64
        return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε   (Ho et al. 2020, Eq. 4)."""
        return self.at(self.sqrt_alphas_cumprod, t, x0) * x0 + self.at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def predict_x0(self, xt: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t."""
        return (xt - self.at(self.sqrt_one_minus_alphas_cumprod, t, xt) * eps) / self.at(self.sqrt_alphas_cumprod, t, xt)

    def predict_eps(self, xt: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        """ε̂ = (x_t − √ᾱ_t·x_0) / √(1−ᾱ_t)."""
        return (xt - self.at(self.sqrt_alphas_cumprod, t, xt) * x0) / self.at(self.sqrt_one_minus_alphas_cumprod, t, xt)

    def posterior_mean_var(self, x0: torch.Tensor, xt: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean c1·x_0 + c2·x_t and variance β̃_t = β_t(1−ᾱ_{t−1})/(1−ᾱ_t) of q(x_{t−1} | x_t, x_0)."""
        mean = self.at(self.posterior_mean_coef1, t, xt) * x0 + self.at(self.posterior_mean_coef2, t, xt) * xt
        return mean, self.at(self.posterior_variance, t, xt)
