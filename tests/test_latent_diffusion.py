"""Stage-2 glue: encoding a dataset, building / training the latent model, sampling, decoding, scoring."""

import numpy as np
import pytest
import torch

from ddmi_lite.diffusion import LatentDiffusion
from ddmi_lite.domains.image import build_image_vae, image_ldm_config, image_vae_config
from ddmi_lite.domains.nerf import nerf_ldm_config
from ddmi_lite.domains.shape import shape_ldm_config
from ddmi_lite.domains.video import video_ldm_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.latent_diffusion import decode_to_images, encode_dataset, encode_posterior, fd_report, nearest_neighbours
from ddmi_lite.ldm import (LDMConfig, LatentPosterior, build_ldm, latent_shape_of, load_or_train_ldm,
                           model_fingerprint, resolve_latent_scale, sample_latents, train_ldm)
from ddmi_lite.presets import override


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_image_vae(image_vae_config("smoke")).eval()


def tiny_cfg(train: dict | None = None, **kw) -> LDMConfig:
    base = {"model_channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1, "num_heads": 2,
            "attention_resolutions": (4,), "mix_lr": 5e-2}
    base.update(kw)
    train_kw = {"steps": 40, "batch_size": 16, "lr": 2e-3, "warmup_steps": 2, "ema_decay": None,
                "precision": "fp32", "max_time_s": None}
    train_kw.update(train or {})
    return override(LDMConfig(), train=train_kw, **base)


def test_presets_exist_and_reject_unknown_values():
    for ldm_config in (image_ldm_config, shape_ldm_config, video_ldm_config, nerf_ldm_config):
        for profile in ("smoke", "cpu", "gpu"):
            cfg = ldm_config(profile)
            assert cfg.train.steps > 0 and cfg.n_samples >= 2
            assert set(cfg.sweep) <= {"ddpm", "ddim", "dpmpp_2m", "heun"}
    assert image_ldm_config("cpu").n_samples >= 466  # at least the size of the held-out split
    with pytest.raises(DDMIError, match="profile"):
        image_ldm_config("laptop")
    with pytest.raises(DDMIError, match="domain"):  # one preset function per domain, no domain= switch
        image_ldm_config("cpu", domain="audio")
    with pytest.raises(DDMIError, match="LDMConfig has no field 'stepz'"):
        image_ldm_config("cpu", stepz=3)


def test_encode_posterior_shapes_sample_vs_mean_and_flip(vae):
    images = torch.rand(6, 3, 32, 32)
    post = encode_posterior(vae, images, batch_size=4)
    z_ch = image_vae_config("smoke").net.z_channels
    assert post.mean.shape == post.std.shape == (6, z_ch, 8, 8) and post.shape == (z_ch, 8, 8)
    assert (post.std > 0).all()
    with torch.no_grad():
        ref = vae.encode(images * 2 - 1)  # the VAE's own posterior on [−1, 1] pixels
    torch.testing.assert_close(post.mean, ref.mean, rtol=1e-5, atol=1e-5)
    # the means are deterministic; samples are μ + σ·ε with the generator's ε
    torch.testing.assert_close(encode_dataset(vae, images, sample=False), post.mean, rtol=1e-5, atol=1e-5)
    z = encode_dataset(vae, images, sample=True, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, post.mean + post.std * eps, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(z, post.mean)
    # hflip appends the mirrored images' posteriors after the originals
    both = encode_posterior(vae, images, hflip=True)
    assert len(both) == 12
    torch.testing.assert_close(both.mean[6:], encode_posterior(vae, images.flip(-1)).mean)


def test_posterior_overall_std_is_the_law_of_total_variance():
    g = torch.Generator().manual_seed(0)
    post = LatentPosterior(3.0 * torch.randn(4000, 2, 2, 2, generator=g), torch.full((4000, 2, 2, 2), 4.0))
    # Var(z) = Var(μ) + E[σ²] = 9 + 16 → std 5, and samples agree
    assert post.overall_std() == pytest.approx(5.0, rel=0.03)
    assert float(post.sample(generator=g).std()) == pytest.approx(5.0, rel=0.03)
    assert resolve_latent_scale(tiny_cfg(latent_scale="auto"), post) == pytest.approx(0.2, rel=0.03)
    assert resolve_latent_scale(tiny_cfg()) == 1.0  # the reference: no scaling
    with pytest.raises(DDMIError, match="latent_scale"):
        resolve_latent_scale(tiny_cfg(latent_scale="big"))
    with pytest.raises(DDMIError, match="auto"):
        resolve_latent_scale(tiny_cfg(latent_scale="auto"))


def test_build_ldm_matches_the_latent_shape():
    ldm = build_ldm(tiny_cfg(), (4, 8, 8), latent_scale=0.5)
    assert isinstance(ldm, LatentDiffusion) and ldm.latent_scale == 0.5
    assert latent_shape_of(ldm) == (4, 8, 8)
    assert ldm.mixing_weight.shape == (1, 4, 1, 1)
    assert float(ldm.mixing_weight.detach().mean()) == pytest.approx(torch.sigmoid(torch.tensor(-6.0)).item())
    x = torch.randn(3, 4, 8, 8)
    assert ldm.eps(x, torch.tensor([0, 500, 999])).shape == x.shape
    with pytest.raises(DDMIError):
        build_ldm(tiny_cfg(), (4, 8))


def _evaluate(ldm, z, n_eval=8):
    """Mean loss on fixed (t, ε) draws: comparable before / after training."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        losses = [float(ldm.loss(z, generator=gen)[0]) for _ in range(n_eval)]
    return float(np.mean(losses))


def test_train_ldm_lowers_the_loss_and_moves_the_mixing_weight(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    # structured latents: a fixed pattern per channel plus small posterior noise
    pattern = torch.randn(1, 4, 8, 8, generator=g)
    mean = pattern + 0.1 * torch.randn(64, 4, 8, 8, generator=g)
    std = torch.full_like(mean, 0.05)
    # s = sigmoid(−1) so that the network's residual matters within a few steps (the reference's −6
    # needs hundreds); m has its own, larger learning rate
    cfg = tiny_cfg(model_channels=8, mixed_init=-1.0, mix_lr=0.1, train={"steps": 40, "lr": 5e-3})
    ldm = build_ldm(cfg, (4, 8, 8))
    before = _evaluate(ldm, mean[:32])
    s0 = float(ldm.mixing_weight.detach().mean())
    result = train_ldm(ldm, LatentPosterior(mean, std), cfg, ckpt_path=tmp_path / "ldm", progress=False)
    assert result.steps_done == 40
    after = _evaluate(ldm, mean[:32])
    assert after < 0.85 * before, (before, after)
    assert abs(float(ldm.mixing_weight.detach().mean()) - s0) > 0.02  # m is optimised
    # a second call reuses the finished checkpoint without training
    again = build_ldm(cfg, (4, 8, 8))
    reused = train_ldm(again, LatentPosterior(mean, std), cfg, ckpt_path=tmp_path / "ldm", progress=False)
    assert reused.resumed_from == 40 and reused.wall_s == 0.0
    for a, b in zip(ldm.parameters(), again.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(DDMIError, match="channels"):
        train_ldm(build_ldm(tiny_cfg(), (3, 8, 8)), LatentPosterior(mean, std), tiny_cfg(), progress=False)


def test_load_or_train_retrains_for_another_vae_and_returns_ema(tmp_path, vae):
    post = encode_posterior(vae, torch.rand(8, 3, 32, 32))
    cfg = tiny_cfg(train={"steps": 3, "ema_decay": 0.9})
    model, result = load_or_train_ldm(vae, post, cfg, ckpt_path=tmp_path / "ldm", progress=False)
    assert result.steps_done == 3 and result.ema is not None and model is result.ema.model and not model.training
    _, reused = load_or_train_ldm(vae, post, cfg, ckpt_path=tmp_path / "ldm", progress=False)
    assert reused.resumed_from == 3
    torch.manual_seed(1)
    other = build_image_vae(image_vae_config("smoke")).eval()
    assert model_fingerprint(other) != model_fingerprint(vae)
    _, fresh = load_or_train_ldm(other, post, cfg, ckpt_path=tmp_path / "ldm", progress=False)
    assert fresh.resumed_from is None and fresh.steps_done == 3


def test_sample_latents_batches_and_reports_progress():
    ldm = build_ldm(tiny_cfg(), (4, 8, 8)).eval()
    seen = []
    z = sample_latents(ldm, 5, sampler="ddim", steps=3, batch_size=2, generator=torch.Generator().manual_seed(0),
                       callback=lambda info: seen.append((info["batch"], info["step"], info["nfe"])))
    assert z.shape == (5, 4, 8, 8) and torch.isfinite(z).all()
    assert [b for b, _, _ in seen] == [0] * 3 + [1] * 3 + [2] * 3 and max(n for *_, n in seen) == 3
    # the same generator seed gives the same latents whatever the batching
    z2 = sample_latents(ldm, 5, sampler="ddim", steps=3, batch_size=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z2[:2], z[:2])
    with pytest.raises(DDMIError, match="sampler"):
        sample_latents(ldm, 2, sampler="euler")


def test_decode_to_images_is_in_unit_range_at_any_size(vae):
    z = 3.0 * torch.randn(3, image_vae_config("smoke").net.z_channels, 8, 8)
    for size in (16, 32, 48):
        images = decode_to_images(vae, z, size, batch_size=2)
        assert images.shape == (3, 3, size, size)
        assert images.min() >= 0.0 and images.max() <= 1.0


def test_nearest_neighbours_against_brute_force():
    g = torch.Generator().manual_seed(0)
    pool = torch.rand(70, 3, 4, 4, generator=g)
    queries = torch.cat([pool[[5, 42]] + 0.001, torch.rand(3, 3, 4, 4, generator=g)])
    idx, dist = nearest_neighbours(queries, pool, batch_size=2)
    brute = ((queries[:, None] - pool[None]) ** 2).flatten(2).mean(-1)  # [5, 70]
    assert idx.tolist() == brute.argmin(1).tolist()
    torch.testing.assert_close(dist, brute.min(1).values.sqrt(), rtol=1e-4, atol=1e-6)
    assert idx[:2].tolist() == [5, 42]


def test_fd_report_separates_matching_from_shifted_features():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    same = rng.normal(size=(400, 8))
    shifted = rng.normal(size=(400, 8)) + 3.0
    good, bad = fd_report(real, same), fd_report(real, shifted)
    assert set(good) == {"fd", "precision", "recall", "kid"}
    assert good["fd"] < 0.5 and bad["fd"] > 60.0  # ‖Δμ‖² = 8·3² = 72 for the shifted set
    assert good["precision"] > 0.8 and bad["precision"] < 0.2 and bad["kid"] > good["kid"]
