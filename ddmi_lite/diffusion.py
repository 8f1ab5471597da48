"""Latent diffusion for DDMI stage 2: noise schedule, mixed prediction, loss, guidance.

Reference §2 (read from the official code):

* Gaussian DDPM (Ho et al. 2020) with T = 1000 and ε-prediction, trained with the plain MSE on ε
  averaged over all dimensions, t ~ U{0, …, T−1}.
* LDM "scaled linear" schedule: β_t = (linspace(√0.0015, √0.0195, T))², computed in float64.
* LSGM mixed prediction (Vahdat et al. 2021, §3.2): ε̂ = (1 − s)·√(1−ᾱ_t)·x_t + s·net(x_t, t),
  s = sigmoid(m), m a learnable per-channel logit initialised to −6.  The first term is the exact
  ε of a standard-normal latent, so the network only learns a residual.
* Targets are posterior *samples* z ~ q(z|x) with no rescaling (``latent_scale`` = 1, the default).
* Classifier-free guidance (Ho & Salimans 2022): ε = (1 + w)·ε(x, c) − w·ε(x, ∅).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

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


class LatentDiffusion(nn.Module):
    """ε-prediction diffusion on VAE latents, with LSGM mixed prediction and classifier-free guidance.

    ``net(x, t)`` (or ``net(x, t, cond, drop_cond=mask)`` when a condition is used, as
    :class:`ddmi_lite.unet.UNet` accepts) returns a tensor shaped like ``x``.
    ``latent_scale`` multiplies latents before diffusion and divides samples after it; it is 1
    (off) by default, as in the reference, which diffuses raw posterior samples.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        channels: int | None = None,  # latent channels C; read from net.in_channels when omitted
        schedule: Schedule | None = None,  # default: Schedule() = scaled linear, T = 1000
        mixed_prediction: bool = True,  # LSGM mixed prediction (always on in the reference)
        mixed_init: float = -6.0,  # initial per-channel logit m, s = sigmoid(m) ≈ 0.0025
        latent_scale: float = 1.0,
    ):
        super().__init__()
        self.net = net
        self.schedule = schedule if schedule is not None else Schedule()
        channels = channels if channels is not None else getattr(net, "in_channels", None)
        if mixed_prediction and (not isinstance(channels, int) or channels < 1):
            raise DDMIError("channels must be given (a positive int) when net has no in_channels attribute")
        self.channels = channels
        self.mixed_prediction = bool(mixed_prediction)
        if self.mixed_prediction:
            self.mix_logit = nn.Parameter(torch.full((1, channels, 1, 1), float(mixed_init)))  # m, [1, C, 1, 1]
        else:
            self.register_parameter("mix_logit", None)
        if not latent_scale > 0:
            raise DDMIError(f"latent_scale={latent_scale} must be > 0")
        self.latent_scale = float(latent_scale)

    @property
    def mixing_weight(self) -> torch.Tensor | None:
        """s = sigmoid(m), [1, C, 1, 1], or None without mixed prediction."""
        return None if self.mix_logit is None else torch.sigmoid(self.mix_logit)

    def param_groups(self, lr: float, *, mix_lr: float | None = None, weight_decay: float = 0.0) -> list[dict]:
        """Optimiser groups: the network, and the mixing logit (optionally with its own learning rate).

        With s ≈ 0.0025 at init the network's output is scaled down 400×; a larger ``mix_lr``
        lets short runs move m (the reference uses one lr 1e-4 for both over days of training).
        """
        groups = [{"params": list(self.net.parameters()), "lr": lr, "weight_decay": weight_decay}]
        if self.mix_logit is not None:
            groups.append({"params": [self.mix_logit], "lr": lr if mix_lr is None else mix_lr, "weight_decay": 0.0})
        return groups

    # ------------------------------------------------------------------------------------------
    def _eps(self, x_t: torch.Tensor, t, cond=None, drop_cond=None) -> torch.Tensor:
        if cond is None and drop_cond is None:
            out = self.net(x_t, t)
        else:
            out = self.net(x_t, t, cond, drop_cond=drop_cond)
        if self.mix_logit is None:
            return out  # plain ε̂ = net(x_t, t)
        s = torch.sigmoid(self.mix_logit).reshape(1, -1, *([1] * (x_t.ndim - 2))).to(out.dtype)  # [1, C, 1, …]
        # ε̂ = (1 − s)·√(1−ᾱ_t)·x_t + s·net(x_t, t)   (LSGM mixed prediction)
        return (1.0 - s) * self.schedule.at(self.schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t + s * out

    def eps(self, x_t: torch.Tensor, t, cond: torch.Tensor | None = None, guidance: float = 0.0) -> torch.Tensor:
        """ε̂(x_t, t[, c]); with guidance w: (1 + w)·ε̂(x_t, c) − w·ε̂(x_t, ∅)  (Ho & Salimans 2022, Eq. 6)."""
        if guidance == 0.0 or cond is None:
            return self._eps(x_t, t, cond)  # w = 0 (or no condition): exactly the plain model
        batch = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        t = t.expand(batch) if t.ndim == 0 else t
        drop = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(x_t.device)
        both = self._eps(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, cond]), drop)  # [2B, …]
        eps_c, eps_u = both.chunk(2)
        return (1.0 + guidance) * eps_c - guidance * eps_u

    def loss(self, x0: torch.Tensor, cond: torch.Tensor | None = None, *,
             generator: torch.Generator | None = None, p_uncond: float = 0.1) -> tuple[torch.Tensor, dict]:
        """L = E_{t,ε} ‖ε − ε̂(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t, c)‖² / dim  (Ho et al. 2020, Eq. 14; t uniform)."""
        if not 0.0 <= p_uncond <= 1.0:
            raise DDMIError(f"p_uncond={p_uncond} must be in [0, 1]")
        x0 = x0 * self.latent_scale
        batch, device = x0.shape[0], x0.device
        gen_device = generator.device if generator is not None else device
        t = torch.randint(0, self.schedule.num_timesteps, (batch,), generator=generator, device=gen_device).to(device)
        noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(device)
        drop = None
        if cond is not None and p_uncond > 0.0:
            # drop the condition per sample with probability p_uncond (replaced by the null embedding)
            drop = (torch.rand(batch, generator=generator, device=gen_device) < p_uncond).to(device)
        x_t = self.schedule.q_sample(x0, t, noise)
        loss = F.mse_loss(self._eps(x_t, t, cond, drop), noise)
        logs = {"loss": float(loss.detach())}
        if self.mix_logit is not None:
            logs["mix_weight"] = float(torch.sigmoid(self.mix_logit.detach()).mean())
        if drop is not None:
            logs["uncond_fraction"] = float(drop.float().mean())
        return loss, logs

    @torch.no_grad()
    def sample(self, shape, *, sampler: str = "ddim", steps: int = 50, cond: torch.Tensor | None = None,
               guidance: float = 0.0, generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
               callback: Callable[[dict], None] | None = None, **kw) -> torch.Tensor:
        """Draw latents of ``shape`` [N, C, …] with a sampler of :mod:`ddmi_lite.sampling` (eval mode)."""
        from ddmi_lite.sampling import sample  # sampling imports Schedule from this module

        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            z = sample(sampler, lambda x, t: self.eps(x, t, cond, guidance), tuple(shape), self.schedule,
                       steps=steps, generator=generator, device=device, x_T=x_T, callback=callback, **kw)
        finally:
            self.train(was_training)
        return z / self.latent_scale
