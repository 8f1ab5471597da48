"""Latent diffusion for DDMI stage 2: mixed prediction, loss, guidance (the schedule: :mod:`ddmi_lite.schedule`).

Reference §2 (read from the official code):

* Gaussian DDPM (Ho et al. 2020) with T = 1000 and ε-prediction, trained with the plain MSE on ε
  averaged over all dimensions, t ~ U{0, …, T−1}.
* LDM "scaled linear" schedule: β_t = (linspace(√0.0015, √0.0195, T))², computed in float64.
* LSGM mixed prediction (Vahdat et al. 2021, §3.2): ε̂ = (1 − s)·√(1−ᾱ_t)·x_t + s·net(x_t, t),
  s = sigmoid(m), m a learnable per-channel logit initialised to −6; s and the mix are computed in
  float32 even when the network runs under bf16 autocast.  For a standard-normal latent
  the first term is the MSE-optimal prediction E[ε | x_t] (not ε itself, which x_t does not
  determine), so the network only learns a residual.
* Targets are posterior *samples* z ~ q(z|x) with no rescaling (``latent_scale`` = 1, the default).
* Classifier-free guidance (Ho & Salimans 2022): ε = (1 + w)·ε(x, c) − w·ε(x, ∅).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddmi_lite.device import module_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.sampling import sample
from ddmi_lite.schedule import Schedule

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
        return self._mix(x_t, t, out)

    def _mix(self, x_t: torch.Tensor, t, out: torch.Tensor) -> torch.Tensor:
        """ε̂ = (1 − s)·√(1−ᾱ_t)·x_t + s·net(x_t, t) (LSGM mixed prediction), in float32 or wider.

        Under bf16 autocast the network's output is bf16; the weight s = sigmoid(m) and the mix are
        still computed in float32 (autocast off, operands upcast), so training under autocast and
        sampling in float32 use the same s. Float32 and float64 inputs are computed as they are.
        """
        dtype = torch.promote_types(torch.promote_types(out.dtype, x_t.dtype), torch.float32)
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            x = x_t.to(dtype)
            m = self.mix_logit.to(torch.promote_types(self.mix_logit.dtype, torch.float32))
            s = torch.sigmoid(m).reshape(1, -1, *([1] * (x.ndim - 2))).to(dtype)  # [1, C, 1, …]
            return (1.0 - s) * self.schedule.at(self.schedule.sqrt_one_minus_alphas_cumprod, t, x) * x + s * out.to(dtype)

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
        device = module_device(self)
        was_training = self.training
        self.eval()
        try:
            z = sample(sampler, lambda x, t: self.eps(x, t, cond, guidance), tuple(shape), self.schedule,
                       steps=steps, generator=generator, device=device, x_T=x_T, callback=callback, **kw)
        finally:
            self.train(was_training)
        return z / self.latent_scale


def training_step_cost(model: LatentDiffusion, x0: torch.Tensor, *, repeats: int = 3, lr: float = 1e-4) -> dict:
    """What one training step costs on the batch ``x0``: time, and the memory autograd keeps for backward.

    A copy of ``model`` takes ``1 + repeats`` AdamW steps (loss, backward, update; the first is a
    warm-up and not timed), so the caller's weights are untouched. Returns ``sec_per_step`` (the
    median of the timed steps), ``saved_bytes`` (the distinct tensors autograd saved for backward
    in one step, parameters excluded: the activations, which grow with the input's size) and
    ``param_bytes`` (the weights; AdamW adds a gradient and two moments of the same size).
    """
    if repeats < 1:
        raise DDMIError(f"repeats={repeats} must be >= 1")
    model = copy.deepcopy(model).train()
    params = list(model.parameters())
    weights = {p.untyped_storage().data_ptr() for p in params}
    optimizer = torch.optim.AdamW(params, lr=lr)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    times = []
    for i in range(1 + repeats):
        saved.clear()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _ = model.loss(x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return {"sec_per_step": float(sorted(times)[len(times) // 2]), "saved_bytes": int(sum(saved.values())),
            "param_bytes": int(sum(p.numel() * p.element_size() for p in params))}
