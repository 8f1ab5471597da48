"""D2C-VAE: the Gaussian posterior, the KL, the annealing schedule and the loss wiring."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from ddmi_lite import DDMIError
from ddmi_lite.domains.image import build_image_vae, image_vae_config
from ddmi_lite.fields import image_coords
from ddmi_lite.vae import DiagonalGaussian, kl_weight


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    moments = torch.randn(3, 8, 4, 4) * 2
    post = DiagonalGaussian(moments)
    ref = kl_divergence(Normal(post.mean, post.std), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(post.kl(), ref, rtol=1e-5, atol=1e-5)


def test_sample_has_posterior_moments():
    moments = torch.cat([torch.full((1, 1, 64, 64), 2.0), torch.full((1, 1, 64, 64), -1.0)], 1)
    post = DiagonalGaussian(moments)
    z = torch.stack([post.sample(torch.Generator().manual_seed(s)) for s in range(20)])
    assert abs(z.mean().item() - 2.0) < 0.02
    assert abs(z.var().item() - torch.exp(torch.tensor(-1.0)).item()) < 0.02


def test_logvar_is_clamped():
    post = DiagonalGaussian(torch.cat([torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 100.0)], 1))
    assert post.logvar.max().item() == 20.0


def test_kl_weight_anneals_linearly_to_beta_max():
    n = 1000
    betas = [kl_weight(s, n, beta_max=0.5) for s in range(n)]
    assert betas[0] == pytest.approx(1e-4, abs=1e-3)
    assert betas[-1] == 0.5 and max(betas) == 0.5
    assert all(b2 >= b1 for b1, b2 in zip(betas, betas[1:]))
    assert kl_weight(450, n, beta_max=0.5) == pytest.approx(1e-4 + (0.5 - 1e-4) * (450 - 0.1) / 900, rel=1e-6)


def test_loss_is_sum_reduced_per_sample():
    torch.manual_seed(0)
    vae = build_image_vae(image_vae_config("smoke"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    coords = image_coords(32)[None].expand(2, -1, -1)
    target = torch.zeros(2, 1024, 3)
    loss, logs = vae.loss(x, coords, target, beta=0.0, generator=torch.Generator().manual_seed(1))
    out = vae(x, coords, generator=torch.Generator().manual_seed(1)).out
    assert logs["rec"] == pytest.approx(out.abs().sum().item() / 2, rel=1e-5)
    with pytest.raises(DDMIError, match="target"):
        vae.loss(x, coords, target[:, :10], beta=0.0)


def test_bad_layout_and_input_shapes():
    vae = build_image_vae(image_vae_config("smoke"))
    with pytest.raises(DDMIError):
        vae.encode(torch.rand(2, 4, 32, 32))
    with pytest.raises(DDMIError):
        vae.encode(torch.rand(2, 3, 30, 30))
    from ddmi_lite.vae import D2CVAE
    with pytest.raises(DDMIError, match="layout"):
        D2CVAE(vae.encoder, vae.decoder, vae.readout, layout="cube")


def test_vae_forward_is_the_same_on_every_device(device):
    torch.manual_seed(0)
    vae = build_image_vae(image_vae_config("smoke")).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    coords = image_coords(32)[None].expand(2, -1, -1)
    with torch.no_grad():
        want = vae(x, coords, sample=False).out
        got = vae.to(device)(x.to(device), coords.to(device), sample=False).out
    assert got.device.type == device and got.shape == (2, 1024, 3)
    torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)
