"""Samplers for the latent diffusion model (DDMI stage 2, reference §2 "Sampler").

Every sampler is a pure function with one signature::

    sampler(eps_fn, shape, schedule, *, steps, generator=None, device="cpu", x_T=None,
            callback=None, **kw) -> x0

``eps_fn(x, t)`` returns ε̂ for a batch ``x`` at integer timesteps ``t`` (a long tensor [B]).
``callback`` receives ``dict(x=…, step=i, t=…, x0=x̂_0, nfe=…)`` after every step, where
``nfe`` counts the network evaluations so far.  Network evaluations per call:

=============  =========  ==================================================================
sampler        NFE        notes
=============  =========  ==================================================================
``ddpm``       S          ancestral; S = T is the reference's DDPM, S < T respaces β
``ddim``       S          η = 0 deterministic (the reference's sampler), η = 1 ancestral
``dpmpp_2m``   S          second-order multistep; 15 steps match DDIM at 50
``heun``       2·S − 1    EDM second-order ODE solver on the Karras σ grid (~20 steps)
=============  =========  ==================================================================

``dpmpp_2m`` and ``heun`` round their λ- or σ-spaced targets to integer timesteps and drop
repeats, so from about 50 steps up they take slightly fewer steps than asked; the callback's
``nfe`` is always exact.

All samplers use the schedule's discrete ᾱ_t only (no continuous-time interpolation) and end
by returning x̂_0 predicted at their last timestep, as the reference DDIM does.  Noise is drawn
from ``generator`` (on its own device) and moved to ``device``, so a CPU generator gives the
same samples on CPU and CUDA up to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ddmi_lite.schedule import Schedule
from ddmi_lite.checks import check_shape, check_tensor
from ddmi_lite.errors import DDMIError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# shared pieces
def _noise(shape, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def _start(shape, generator, device, x_T) -> torch.Tensor:
    """x_T: ``shape`` (positive ints) of N(0, I) noise, or the given finite ``x_T`` of that shape."""
    shape = check_shape(shape)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise DDMIError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if x_T is None:
        return _noise(shape, generator, device)
    check_tensor(x_T, "x_T", layout=f"{tuple(shape)}")
    if tuple(x_T.shape) != tuple(shape):
        raise DDMIError(f"x_T has shape {tuple(x_T.shape)}; expected {tuple(shape)}")
    return x_T.to(device)


def _check_steps(steps: int, schedule: Schedule) -> int:
    if not (hasattr(schedule, "num_timesteps") and hasattr(schedule, "alphas_cumprod")):
        raise DDMIError(f"schedule must be a ddmi_lite.diffusion.Schedule, got {type(schedule).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= schedule.num_timesteps:
        raise DDMIError(f"steps={steps!r} must be an int in 1..{schedule.num_timesteps}")
    return steps


def _abar(schedule: Schedule, t: int) -> float:
    """ᾱ_t as a Python float (float64), with ᾱ_{−1} = 1 (no noise)."""
    return 1.0 if t < 0 else float(schedule.alphas_cumprod[t])


def _tvec(t: int, batch: int, device) -> torch.Tensor:
    return torch.full((batch,), int(t), dtype=torch.long, device=device)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The reference grid: ``linspace(−1, T−1, S+1)`` cast to int, reversed (T−1, …, −1)."""
    grid = torch.linspace(-1, num_timesteps - 1, steps + 1).int().tolist()
    return grid[::-1]


def solver_timesteps(schedule: Schedule, steps: int, *, spacing: str = "logsnr", rho: float = 7.0) -> list[int]:
    """S distinct decreasing integer timesteps from T−1 to 0, uniform in t, λ = log(α/σ), or Karras σ^(1/ρ)."""
    T = schedule.num_timesteps
    if spacing == "uniform":
        targets = torch.linspace(T - 1, 0, steps, dtype=torch.float64)
        ts = targets.round().long()
    elif spacing in ("logsnr", "karras"):
        lam = schedule.log_snr  # decreasing in t
        if spacing == "logsnr":
            want = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)  # λ_min → λ_max
        else:
            sig = torch.exp(-lam)  # σ/α = √((1−ᾱ)/ᾱ), the EDM noise level
            a, b = float(sig[-1]) ** (1 / rho), float(sig[0]) ** (1 / rho)
            ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
            want = -torch.log((a + ramp * (b - a)) ** rho)  # Karras et al. 2022, Eq. 5, as λ
        ts = (lam[None, :] - want[:, None]).abs().argmin(dim=1)  # nearest discrete timestep
    else:
        raise DDMIError(f"spacing={spacing!r} is not one of ('uniform', 'logsnr', 'karras')")
    out: list[int] = []
    for t in ts.tolist():  # keep the first occurrence of each timestep (the grid is monotone)
        if not out or t != out[-1]:
            out.append(int(t))
    return out


def _report(callback, x, step, t, x0, nfe):
    if callback is not None:
        callback(dict(x=x, step=step, t=t, x0=x0, nfe=nfe))


# ----------------------------------------------------------------------------------------------
# samplers
@torch.no_grad()
def ddpm(eps_fn: EpsFn, shape, schedule: Schedule, *, steps: int | None = None, generator=None, device="cpu",
         x_T=None, callback=None) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2 with variance β̃_t; S < T respaces β (Nichol & Dhariwal 2021 §4)."""
    steps = _check_steps(schedule.num_timesteps if steps is None else steps, schedule)
    x = _start(shape, generator, device, x_T)
    times = ddim_timesteps(schedule.num_timesteps, steps)
    for i, (t, t_prev) in enumerate(zip(times[:-1], times[1:])):
        eps = eps_fn(x, _tvec(t, x.shape[0], x.device))
        a, a_prev = _abar(schedule, t), _abar(schedule, t_prev)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)  # x̂_0
        beta = 1 - a / a_prev  # respaced β between the two kept timesteps (= β_t when S = T)
        # μ̃ = √ᾱ_prev·β/(1−ᾱ)·x̂_0 + √(1−β)·(1−ᾱ_prev)/(1−ᾱ)·x_t,  β̃ = (1−ᾱ_prev)/(1−ᾱ)·β
        mean = math.sqrt(a_prev) * beta / (1 - a) * x0 + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a) * x
        var = (1 - a_prev) / (1 - a) * beta
        x = mean + math.sqrt(var) * _noise(x.shape, generator, x.device) if t_prev >= 0 else mean
        _report(callback, x, i, t, x0, i + 1)
    return x


@torch.no_grad()
def ddim(eps_fn: EpsFn, shape, schedule: Schedule, *, steps: int = 50, eta: float = 0.0, generator=None,
         device="cpu", x_T=None, callback=None) -> torch.Tensor:
    """DDIM, Song et al. 2021 Eq. 12 on the reference grid; returns x̂_0 at t_next < 0, no clipping."""
    steps = _check_steps(steps, schedule)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta < float("inf"):
        raise DDMIError(f"eta={eta!r} must be a finite number >= 0")
    x = _start(shape, generator, device, x_T)
    times = ddim_timesteps(schedule.num_timesteps, steps)
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        eps = eps_fn(x, _tvec(t, x.shape[0], x.device))
        a, a_next = _abar(schedule, t), _abar(schedule, t_next)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)  # x̂_0
        if t_next < 0:
            x = x0
        else:
            # σ = η·√((1−ᾱ_next)/(1−ᾱ)·(1−ᾱ/ᾱ_next)),  x_next = √ᾱ_next·x̂_0 + √(1−ᾱ_next−σ²)·ε̂ + σ·z
            sigma = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
            x = math.sqrt(a_next) * x0 + math.sqrt(max(1 - a_next - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * _noise(x.shape, generator, x.device)
        _report(callback, x, i, t, x0, i + 1)
    return x


@torch.no_grad()
def dpmpp_2m(eps_fn: EpsFn, shape, schedule: Schedule, *, steps: int = 20, spacing: str = "logsnr", generator=None,
             device="cpu", x_T=None, callback=None) -> torch.Tensor:
    """DPM-Solver++(2M), Lu et al. 2022 Alg. 2: multistep data prediction in λ = log(α/σ), final step x̂_0.

    ``spacing="logsnr"`` (default: uniform in λ, mapped to the nearest discrete timestep) was the
    most accurate on the analytic Gaussian-mixture test; ``"uniform"`` (in t) and ``"karras"``
    are also available.  The last step goes to σ = 0, where the first-order update equals x̂_0.
    """
    steps = _check_steps(steps, schedule)
    x = _start(shape, generator, device, x_T)
    ts = solver_timesteps(schedule, steps, spacing=spacing)
    x0_prev, h_prev = None, None
    for i, t in enumerate(ts):
        eps = eps_fn(x, _tvec(t, x.shape[0], x.device))
        a = _abar(schedule, t)
        alpha, sigma = math.sqrt(a), math.sqrt(1 - a)
        x0 = (x - sigma * eps) / alpha  # data prediction D_i
        if i == len(ts) - 1:
            x = x0
        else:
            a_next = _abar(schedule, ts[i + 1])
            alpha_n, sigma_n = math.sqrt(a_next), math.sqrt(1 - a_next)
            h = math.log(alpha_n / sigma_n) - math.log(alpha / sigma)  # h = λ_next − λ
            if x0_prev is None:
                d = x0  # first step: DPM-Solver++(1) = DDIM
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev  # D = (1 + 1/2r)·D_i − 1/2r·D_{i−1}
            x = (sigma_n / sigma) * x - alpha_n * math.expm1(-h) * d  # x = σ'/σ·x − α'(e^{−h} − 1)·D
            x0_prev, h_prev = x0, h
        _report(callback, x, i, t, x0, i + 1)
    return x


@torch.no_grad()
def heun(eps_fn: EpsFn, shape, schedule: Schedule, *, steps: int = 10, spacing: str = "karras", rho: float = 7.0,
         generator=None, device="cpu", x_T=None, callback=None) -> torch.Tensor:
    """EDM Heun, Karras et al. 2022 Alg. 1 (deterministic): dy/dσ = ε̂ for y = x/√ᾱ, σ = √((1−ᾱ)/ᾱ)."""
    steps = _check_steps(steps, schedule)
    x = _start(shape, generator, device, x_T)
    ts = solver_timesteps(schedule, steps, spacing=spacing, rho=rho)
    batch = x.shape[0]
    y = x / math.sqrt(_abar(schedule, ts[0]))  # VP → VE variable, y = x_0 + σ·ε
    nfe = 0
    for i, t in enumerate(ts):
        a = _abar(schedule, t)
        sig = math.sqrt((1 - a) / a)
        d = eps_fn(y * math.sqrt(a), _tvec(t, batch, y.device))  # dy/dσ at (y, σ)
        nfe += 1
        x0 = y - sig * d
        if i == len(ts) - 1:
            y, a_new = x0, 1.0  # Euler step to σ = 0
        else:
            a_new = _abar(schedule, ts[i + 1])
            sig_n = math.sqrt((1 - a_new) / a_new)
            y_next = y + (sig_n - sig) * d  # Euler predictor
            d_next = eps_fn(y_next * math.sqrt(a_new), _tvec(ts[i + 1], batch, y.device))
            nfe += 1
            y = y + (sig_n - sig) * 0.5 * (d + d_next)  # trapezoidal corrector
        _report(callback, y * math.sqrt(a_new), i, t, x0, nfe)  # x in the VP variable
    return y


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddpm": ddpm, "ddim": ddim, "dpmpp_2m": dpmpp_2m, "heun": heun}


def sample(name: str, eps_fn: EpsFn, shape, schedule: Schedule, **kw) -> torch.Tensor:
    """Run the sampler registered under ``name`` (see :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise DDMIError(f"sampler={name!r} is not one of {tuple(SAMPLERS)}")
    return SAMPLERS[name](eps_fn, shape, schedule, **kw)
