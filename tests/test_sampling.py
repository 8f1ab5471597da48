"""Samplers against references: the DDIM grid, DDPM's posterior, and an analytic 2-D Gaussian mixture.

For a mixture p_0 = Σ_k w_k N(μ_k, Σ_k) the forward marginal is exactly
p_t = Σ_k w_k N(√ᾱ_t μ_k, ᾱ_t Σ_k + (1−ᾱ_t) I), so the ideal noise prediction is
ε*(x, t) = −√(1−ᾱ_t) ∇ log p_t(x).  Every sampler driven by ε* must reproduce p_0.
"""

import math

import numpy as np
import pytest
import torch

from ddmi_lite.errors import DDMIError
from ddmi_lite.metrics import frechet_distance
from ddmi_lite.sampling import SAMPLERS, ddim, ddim_timesteps, ddpm, sample, solver_timesteps
from ddmi_lite.schedule import Schedule

F64 = torch.float64
MU = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=F64)
COV = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]], [[0.5, 0.0], [0.0, 0.1]]], dtype=F64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
N = 2000


def _log_resp(x, abar: float):
    """Per-component log w_k N(x; √ᾱ μ_k, ᾱ Σ_k + (1−ᾱ) I) [N, K], the precisions [K, 2, 2] and x − mean_k."""
    x = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x
    cov = abar * COV.numpy() + (1 - abar) * np.eye(2)  # [K, 2, 2]
    prec = np.linalg.inv(cov)
    diff = x[:, None, :] - math.sqrt(abar) * MU.numpy()[None]  # [N, K, 2]
    maha = np.einsum("nki,kij,nkj->nk", diff, prec, diff, optimize=True)
    logp = np.log(WEIGHTS.numpy())[None] - 0.5 * maha - 0.5 * np.linalg.slogdet(cov)[1][None]
    return logp, prec, diff


def make_gmm_eps(schedule: Schedule):
    """The exact ε*(x, t) = −√(1−ᾱ_t)·∇ log p_t(x) of the mixture (numpy float64)."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert bool((t == t[0]).all())
        abar = float(schedule.alphas_cumprod[int(t[0])])
        logp, prec, diff = _log_resp(x, abar)
        resp = np.exp(logp - logp.max(1, keepdims=True))
        resp /= resp.sum(1, keepdims=True)  # [N, K] posterior over components
        score = -np.einsum("nk,kij,nkj->ni", resp, prec, diff, optimize=True)  # ∇ log p_t
        return torch.from_numpy(-math.sqrt(1 - abar) * score).to(x.dtype)

    return eps_fn


def exact_samples(n: int, gen: torch.Generator) -> torch.Tensor:
    k = torch.multinomial(WEIGHTS, n, replacement=True, generator=gen)
    chol = torch.linalg.cholesky(COV)
    z = torch.randn(n, 2, generator=gen, dtype=F64)
    return MU[k] + torch.einsum("nij,nj->ni", chol[k], z)


def assign(x: torch.Tensor) -> np.ndarray:
    """Component fractions when every point is given to its most probable component under p_0."""
    logp, _, _ = _log_resp(x, 1.0)
    return np.bincount(logp.argmax(1), minlength=3) / x.shape[0]


@pytest.fixture(scope="module")
def schedule():
    return Schedule()


@pytest.fixture(scope="module")
def reference():
    """Large exact sample for standard errors, and the sample-vs-sample FD of size-N sets."""
    gen = torch.Generator().manual_seed(1234)
    big = exact_samples(200_000, gen)
    centred = big - big.mean(0)
    prods = torch.stack([centred[:, i] * centred[:, j] for i in range(2) for j in range(2)], 1)
    fd_pairs = [frechet_distance(exact_samples(N, gen).numpy(), exact_samples(N, gen).numpy()) for _ in range(8)]
    return dict(
        mean=(WEIGHTS[:, None] * MU).sum(0).numpy(),  # analytic mixture mean
        cov=np.cov(big.numpy(), rowvar=False),
        mean_se=big.std(0).numpy() / math.sqrt(N),
        cov_se=(prods.std(0) / math.sqrt(N)).reshape(2, 2).numpy(),
        frac=assign(big),
        fd_ref=float(np.mean(fd_pairs)),
        heldout=exact_samples(N, gen).numpy(),
    )


@pytest.mark.parametrize(
    "name,kw",
    [
        ("ddpm", dict(steps=1000)),
        ("ddpm", dict(steps=100)),
        ("ddim", dict(steps=50)),
        ("dpmpp_2m", dict(steps=15)),
        ("heun", dict(steps=20)),
    ],
)
def test_samplers_reproduce_gaussian_mixture(schedule, reference, name, kw):
    x = sample(name, make_gmm_eps(schedule), (N, 2), schedule, generator=torch.Generator().manual_seed(7), **kw)
    x = x.to(F64)
    assert torch.isfinite(x).all()
    # moments within 4 standard errors of the target's
    assert np.all(np.abs(x.mean(0).numpy() - reference["mean"]) < 4 * reference["mean_se"])
    assert np.all(np.abs(np.cov(x.numpy(), rowvar=False) - reference["cov"]) < 4 * reference["cov_se"])
    # mixture weights: same assignment rule as applied to the exact distribution
    frac_se = np.sqrt(reference["frac"] * (1 - reference["frac"]) / N)
    assert np.all(np.abs(assign(x) - reference["frac"]) < 4 * frac_se + 0.005)
    # Fréchet distance to held-out exact points, against the exact-vs-exact FD at the same size
    fd = frechet_distance(x.numpy(), reference["heldout"])
    assert fd < 5 * reference["fd_ref"], (fd, reference["fd_ref"])


def test_ddim_grid_is_the_reference_grid():
    got = ddim_timesteps(1000, 50)
    want = np.linspace(-1, 999, 51).astype(np.int64)[::-1].tolist()
    assert got == want and got[0] == 999 and got[-1] == -1
    assert ddim_timesteps(1000, 1000) == list(range(999, -2, -1))
    for spacing in ("uniform", "logsnr", "karras"):
        ts = solver_timesteps(Schedule(), 20, spacing=spacing)
        assert ts[0] == 999 and ts[-1] == 0 and all(a > b for a, b in zip(ts, ts[1:]))


def test_ddim_eta0_is_deterministic(schedule):
    eps_fn = make_gmm_eps(schedule)
    a = ddim(eps_fn, (64, 2), schedule, steps=20, generator=torch.Generator().manual_seed(3))
    b = ddim(eps_fn, (64, 2), schedule, steps=20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(4))
    c = ddim(eps_fn, (64, 2), schedule, steps=20, x_T=x_T, generator=torch.Generator().manual_seed(5))
    d = ddim(eps_fn, (64, 2), schedule, steps=20, x_T=x_T, generator=torch.Generator().manual_seed(6))
    assert torch.equal(c, d)  # η = 0 draws no noise after x_T


def test_ddpm_and_ddim_eta1_follow_the_posterior():
    """x_{t−1} = μ̃(x̂_0, x_t) + √β̃_t·z step by step (Ho et al. 2020, Alg. 2) with the same z stream."""
    sch = Schedule(num_timesteps=12)
    eps_fn = make_gmm_eps(sch)
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(9)
    x = x_T.clone()
    for t in range(sch.num_timesteps - 1, -1, -1):
        tt = torch.full((32,), t, dtype=torch.long)
        x0 = sch.predict_x0(x, tt, eps_fn(x, tt))
        mean, var = sch.posterior_mean_var(x0, x, tt)
        x = mean + var.sqrt() * torch.randn(x.shape, generator=gen) if t > 0 else mean
    got_ddpm = ddpm(eps_fn, (32, 2), sch, x_T=x_T, generator=torch.Generator().manual_seed(9))
    got_ddim = ddim(eps_fn, (32, 2), sch, steps=12, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(got_ddpm, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_ddim, x, rtol=1e-5, atol=1e-5)


def test_ddim_eta1_full_grid_equals_ddpm(schedule):
    eps_fn = make_gmm_eps(schedule)
    a = ddpm(eps_fn, (100, 2), schedule, generator=torch.Generator().manual_seed(2))
    b = ddim(eps_fn, (100, 2), schedule, steps=1000, eta=1.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,steps,nfe", [("ddpm", 10, 10), ("ddim", 10, 10), ("dpmpp_2m", 10, 10), ("heun", 6, 11)])
def test_callback_reports_every_step(schedule, name, steps, nfe):
    seen = []
    out = sample(name, make_gmm_eps(schedule), (8, 2), schedule, steps=steps, callback=seen.append,
                 generator=torch.Generator().manual_seed(0))
    assert set(seen[0]) == {"x", "step", "t", "x0", "nfe"}
    assert [d["step"] for d in seen] == list(range(len(seen)))
    assert seen[-1]["nfe"] == nfe
    torch.testing.assert_close(seen[-1]["x"], out)


def test_bad_arguments_raise(schedule):
    eps_fn = make_gmm_eps(schedule)
    with pytest.raises(DDMIError, match="sampler"):
        sample("euler_a", eps_fn, (4, 2), schedule, steps=4)
    with pytest.raises(DDMIError, match="steps"):
        ddim(eps_fn, (4, 2), schedule, steps=0)
    with pytest.raises(DDMIError, match="x_T"):
        ddim(eps_fn, (4, 2), schedule, steps=4, x_T=torch.zeros(3, 2))
    with pytest.raises(DDMIError, match="spacing"):
        sample("dpmpp_2m", eps_fn, (4, 2), schedule, steps=4, spacing="cosine")
    assert set(SAMPLERS) >= {"ddpm", "ddim", "dpmpp_2m"}
