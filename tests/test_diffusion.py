"""Schedule and LatentDiffusion against closed forms, plus a short training run."""

import math

import numpy as np
import pytest
import torch

from ddmi_lite.diffusion import LatentDiffusion
from ddmi_lite.errors import DDMIError
from ddmi_lite.schedule import Schedule
from ddmi_lite.unet import UNet


pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedule_matches_independent_cumulative_product():
    sch = Schedule()
    betas = np.linspace(math.sqrt(0.0015), math.sqrt(0.0195), 1000) ** 2
    abar, prod = np.empty(1000), 1.0
    for t, b in enumerate(betas):  # ᾱ_t = Π_{s≤t} (1 − β_s), written as a loop
        prod *= 1.0 - b
        abar[t] = prod
    assert sch.betas.dtype == torch.float64
    np.testing.assert_allclose(sch.betas.numpy(), betas, rtol=1e-12)
    np.testing.assert_allclose(sch.alphas_cumprod.numpy(), abar, rtol=1e-10)
    assert sch.betas[0] == pytest.approx(0.0015) and sch.betas[-1] == pytest.approx(0.0195)
    np.testing.assert_allclose(sch.log_snr.numpy(), 0.5 * np.log(abar / (1 - abar)), rtol=1e-10)
    lin = Schedule(kind="linear", beta_start=1e-4, beta_end=0.02)
    np.testing.assert_allclose(lin.betas.numpy(), np.linspace(1e-4, 0.02, 1000), rtol=1e-12)
    with pytest.raises(DDMIError, match="kind"):
        Schedule(kind="cosine")


def test_q_sample_moments():
    sch = Schedule()
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 1.5)
    for t in (0, 100, 500, 999):
        xt = sch.q_sample(x0, t, torch.randn(n, 1, generator=gen))
        abar = float(sch.alphas_cumprod[t])
        se_mean = math.sqrt((1 - abar) / n)
        assert abs(float(xt.mean()) - math.sqrt(abar) * 1.5) < 5 * se_mean + 1e-6
        assert float(xt.var()) == pytest.approx(1 - abar, rel=0.02, abs=1e-5)


def test_predictions_invert_q_sample_and_posterior_is_bayes():
    sch = Schedule()
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64), torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 300, 700, 999])
    xt = sch.q_sample(x0, t, eps)
    torch.testing.assert_close(sch.predict_x0(xt, t, eps), x0)
    torch.testing.assert_close(sch.predict_eps(xt, t, x0), eps)
    # q(x_{t−1}|x_t,x_0) ∝ N(x_t; √α_t x_{t−1}, β_t) N(x_{t−1}; √ᾱ_{t−1} x_0, 1−ᾱ_{t−1}): product of Gaussians
    mean, var = sch.posterior_mean_var(x0, xt, t)
    for i, ti in enumerate(t.tolist()):
        if ti == 0:
            continue
        b, a, ap = float(sch.betas[ti]), float(sch.alphas[ti]), float(sch.alphas_cumprod[ti - 1])
        prec = a / b + 1 / (1 - ap)
        want_mean = (math.sqrt(a) * xt[i] / b + math.sqrt(ap) * x0[i] / (1 - ap)) / prec
        torch.testing.assert_close(mean[i], want_mean)
        assert float(var[i]) == pytest.approx(1 / prec, rel=1e-10)


def _unet(cond_dim=None):
    return UNet(4, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                cond_dim=cond_dim)


def _randomise(net):
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return net


def test_mixed_prediction_formula_and_init():
    torch.manual_seed(0)
    net = _randomise(_unet())
    model = LatentDiffusion(net)
    s = model.mixing_weight
    assert s.shape == (1, 4, 1, 1)
    torch.testing.assert_close(s, torch.full((1, 4, 1, 1), 1 / (1 + math.exp(6.0))))
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([20, 800])
    coef = model.schedule.sqrt_one_minus_alphas_cumprod[t].float().view(2, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model.eps(x, t), (1 - s) * coef * x + s * net(x, t))
        plain = LatentDiffusion(net, mixed_prediction=False)
        assert plain.mix_logit is None
        torch.testing.assert_close(plain.eps(x, t), net(x, t))
    with pytest.raises(DDMIError, match="channels"):
        LatentDiffusion(torch.nn.Identity())


class _OnesNet(torch.nn.Module):
    """net(x, t) = 1 in the dtype a conv would give (bf16 under CPU autocast): ε̂(0, t) is then s itself."""

    in_channels = 4

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 1)

    def forward(self, x, t):
        return torch.ones_like(self.conv(x))


def test_mixed_prediction_in_float32_under_bf16_autocast():
    """Under bf16 autocast the mixing weight s and the mix stay float32: the same s as the float32 path."""
    torch.manual_seed(0)
    model = LatentDiffusion(_OnesNet())
    with torch.no_grad():
        model.mix_logit.copy_(torch.tensor([-6.0, -2.3, 0.7, 3.1]).view(1, 4, 1, 1))
    zeros, t = torch.zeros(2, 4, 3, 3), torch.tensor([5, 700])
    s32 = torch.sigmoid(model.mix_logit.detach())  # [1, 4, 1, 1] float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.net(zeros, t).dtype == torch.bfloat16  # the network does run in bf16
        used = model.eps(zeros, t)  # (1 − s)·c·0 + s·1 = s
    assert used.dtype == torch.float32
    assert torch.equal(used, s32.expand_as(used))  # exactly the float32 weight, not its bf16 rounding
    assert not torch.equal(s32.bfloat16().float(), s32)  # (which would differ)
    # a real UNet under autocast: float32 prediction and loss, gradient reaches the logit
    net = _randomise(_unet())
    model = LatentDiffusion(net)
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.eps(x0, t).dtype == torch.float32
        loss, _ = model.loss(x0, generator=torch.Generator().manual_seed(2))
    loss.backward()
    assert loss.dtype == torch.float32 and model.mix_logit.grad is not None
    assert torch.isfinite(model.mix_logit.grad).all() and model.mix_logit.grad.abs().sum() > 0


class _TimeConv(torch.nn.Module):
    in_channels = 4

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, t):
        return self.conv(x) * (1 + t.to(x.dtype).view(-1, 1, 1, 1) / 1000)


def test_mixed_prediction_float32_path_is_the_plain_formula_bit_for_bit():
    """Without autocast the mix is exactly (1 − s)·√(1−ᾱ_t)·x_t + s·net(x_t, t) as written, in the input dtype."""
    torch.manual_seed(0)
    for dtype, net in ((torch.float32, _randomise(_unet())), (torch.float64, _TimeConv(torch.nn.Conv2d(4, 4, 3, padding=1)))):
        model = LatentDiffusion(net).to(dtype)
        with torch.no_grad():
            model.mix_logit.normal_()
            x, t = torch.randn(3, 4, 8, 8, dtype=dtype), torch.tensor([0, 321, 999])
            s = torch.sigmoid(model.mix_logit).reshape(1, -1, 1, 1).to(dtype)
            want = (1.0 - s) * model.schedule.at(model.schedule.sqrt_one_minus_alphas_cumprod, t, x) * x + s * net(x, t)
            got = model.eps(x, t)
            assert got.dtype == dtype and torch.equal(got, want)


def test_guidance_zero_is_conditional_and_dropped_condition_is_null():
    torch.manual_seed(0)
    model = LatentDiffusion(_randomise(_unet(cond_dim=5))).eval()
    gen = torch.Generator().manual_seed(3)
    x, c, t = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 5, generator=gen), torch.tensor([5, 400, 990])
    with torch.no_grad():
        eps_c, eps_u = model.eps(x, t, c), model.eps(x, t, None)
        assert not torch.allclose(eps_c, eps_u)
        assert torch.equal(model.eps(x, t, c, guidance=0.0), eps_c)
        torch.testing.assert_close(model.eps(x, t, c, guidance=2.5), 3.5 * eps_c - 2.5 * eps_u, rtol=1e-4, atol=1e-5)
    # a loss whose condition is always dropped equals the loss without a condition (same t, ε)
    x0 = torch.randn(6, 4, 8, 8, generator=gen)
    cond = torch.randn(6, 5, generator=gen)
    dropped, logs = model.loss(x0, cond, generator=torch.Generator().manual_seed(4), p_uncond=1.0)
    none, _ = model.loss(x0, None, generator=torch.Generator().manual_seed(4))
    kept, _ = model.loss(x0, cond, generator=torch.Generator().manual_seed(4), p_uncond=0.0)
    assert logs["uncond_fraction"] == 1.0
    assert torch.equal(dropped, none) and not torch.equal(kept, none)
    with pytest.raises(DDMIError, match="p_uncond"):
        model.loss(x0, cond, p_uncond=1.5)


def test_latent_scale_and_sample_shapes():
    torch.manual_seed(0)
    model = LatentDiffusion(_unet(), latent_scale=2.0)
    x0 = torch.randn(4, 4, 8, 8)
    scaled, _ = model.loss(x0, generator=torch.Generator().manual_seed(0))
    model.latent_scale = 1.0
    direct, _ = model.loss(2.0 * x0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(scaled, direct)
    model.latent_scale = 2.0
    x_T = torch.randn(2, 4, 8, 8)
    z = model.sample((2, 4, 8, 8), steps=3, x_T=x_T)
    model.latent_scale = 1.0
    torch.testing.assert_close(z * 2.0, model.sample((2, 4, 8, 8), steps=3, x_T=x_T))
    assert model.training  # sampling restores the mode


def _toy_latents(n, gen):
    """Structured 4×8×8 latents: plane waves in one of four directions, random phase and amplitude."""
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]) * (2 * math.pi / 8)
    d = directions[torch.randint(0, 4, (n,), generator=gen)]
    phase = d[:, 0, None, None] * xx + d[:, 1, None, None] * yy + 2 * math.pi * torch.rand(n, 1, 1, generator=gen)
    amp = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    return amp * torch.stack([phase.sin(), -phase.sin(), phase.cos(), phase.sin() ** 2 - 0.5], dim=1)  # [n, 4, 8, 8]


def test_short_training_run_lowers_the_loss():
    """150 steps take the loss well below the mixed-prediction start, the exact ε of an N(0, I) latent."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data, held_out = _toy_latents(512, gen), _toy_latents(256, torch.Generator().manual_seed(99))
    model = LatentDiffusion(_unet())
    opt = torch.optim.Adam(model.param_groups(2e-3, mix_lr=0.05))

    def held_out_loss():
        with torch.no_grad():
            return float(model.loss(held_out, generator=torch.Generator().manual_seed(5))[0])

    start = held_out_loss()
    for _ in range(150):
        loss, logs = model.loss(data[torch.randint(0, 512, (32,), generator=gen)], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.isfinite(logs["loss"]) and logs["mix_weight"] > 1 / (1 + math.exp(6.0))
    assert held_out_loss() < 0.6 * start
