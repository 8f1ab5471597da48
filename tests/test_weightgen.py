"""The weight-generation baseline: a shift-modulated SIREN against a naive loop, latent → shifts, training through the
shared loop; and the fixed Fourier features notebook 01 compares with."""

from __future__ import annotations

import math

import pytest
import torch

from ddmi_lite.ablations import ablation_config
from ddmi_lite.domains.image import reconstruct, train_image_vae
from ddmi_lite.domains.shape import ShapeTensors, train_shape_vae
from ddmi_lite.errors import DDMIError
from ddmi_lite.metrics import psnr
from ddmi_lite.presets import override
from ddmi_lite.weightgen import FourierFeatures, WeightGenConfig, build_image_weightgen, build_shape_weightgen


def synthetic_shapes(n: int = 6, q: int = 200, s: int = 150, seed: int = 0) -> ShapeTensors:
    """Balls of random radius: occupancy ⇔ |p| < r, surface points on the sphere."""
    g = torch.Generator().manual_seed(seed)
    r = 0.2 + 0.25 * torch.rand(n, 1, generator=g)
    points = (torch.rand(n, q, 3, generator=g) - 0.5) * 1.1
    occ = points.norm(dim=-1) < r
    dirs = torch.randn(n, s, 3, generator=g)
    surface = dirs / dirs.norm(dim=-1, keepdim=True) * r[..., None]
    ids = [f"ball{i}" for i in range(n)]
    return ShapeTensors(points.half(), occ, surface.half(), q, ids, ["ball"] * n, [[] for _ in ids], [{} for _ in ids])


def _snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def _changed(before, model) -> bool:
    return any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_fourier_features_values():
    ff = FourierFeatures(2, n_freqs=3)
    c = torch.tensor([[[0.25, -0.5]]])
    out = ff(c)
    assert out.shape == (1, 1, ff.out_dim) == (1, 1, 2 * 7)
    assert torch.equal(out[..., :2], c)  # the raw coordinate first
    # then sin(2^k π c_d) for d, k in order (d outer), then the cosines
    expected_sin = [math.sin(2 ** k * math.pi * v) for v in (0.25, -0.5) for k in range(3)]
    expected_cos = [math.cos(2 ** k * math.pi * v) for v in (0.25, -0.5) for k in range(3)]
    got = out[0, 0, 2:].reshape(2, 2, 3)  # [d, sin|cos, k]
    assert torch.allclose(got[:, 0].flatten(), torch.tensor(expected_sin), atol=1e-6)
    assert torch.allclose(got[:, 1].flatten(), torch.tensor(expected_cos), atol=1e-6)


def test_image_baseline_trains_through_the_image_loop(tmp_path):
    cfg = ablation_config("smoke").image
    model = build_image_weightgen(cfg, WeightGenConfig(hidden=16, n_layers=2))
    z = model.encode(torch.zeros(1, 3, 32, 32)).mode()
    shifts = model.decode(z)
    assert len(shifts) == 1 and shifts[0].shape == (1, 2, 16)
    before = _snapshot(model)
    pyramid = {32: torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))}
    result = train_image_vae(model, cfg, pyramid, ckpt_path=tmp_path / "wg", progress=False)
    assert result.steps_done == cfg.train.steps and all(math.isfinite(h["loss"]) for h in result.history)
    assert _changed(before, model)
    # the latent reaches the readout once the shift map has moved off its zero initialisation
    assert model.decoder.linear.weight.abs().sum() > 0


def test_shape_baseline_trains_through_the_shape_loop():
    cfg = ablation_config("smoke").shape
    model = build_shape_weightgen(cfg, WeightGenConfig(hidden=16, n_layers=2))
    before = _snapshot(model)
    result = train_shape_vae(model, cfg, synthetic_shapes(), progress=False)
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert _changed(before, model)


def test_baseline_learns_one_image():
    """A short overfit: the modulated SIREN fits a smooth image far better than at the start."""
    torch.manual_seed(0)
    cfg = ablation_config("smoke").image
    cfg = override(cfg, hflip=False, train=dict(steps=80, lr=1e-3, batch_size=2, warmup_steps=5))
    model = build_image_weightgen(cfg, WeightGenConfig(hidden=32, n_layers=3))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    img = torch.stack([xx, yy, 0.5 * (xx + yy)])[None].repeat(2, 1, 1, 1)
    start = psnr(reconstruct(model, img), img).mean()
    train_image_vae(model, cfg, {32: img}, progress=False)
    end = psnr(reconstruct(model.eval(), img), img).mean()
    assert end > start + 6.0 and end > 20.0


def test_baseline_has_no_scales_to_mask():
    cfg = ablation_config("smoke").image
    model = build_image_weightgen(cfg)
    shifts = model.decode(model.encode(torch.zeros(1, 3, 32, 32)).mode())
    coords = torch.zeros(1, 4, 2)
    assert torch.equal(model.query(shifts, coords, scale_mask=(1.0,)), model.query(shifts, coords))
    with pytest.raises(DDMIError, match="scale_mask"):
        model.query(shifts, coords, scale_mask=(0.0,))
    with pytest.raises(DDMIError, match="latent"):
        model.decode(torch.zeros(1, 3, 4, 4))


def test_siren_forward_matches_a_naive_loop():
    """Every output value recomputed point by point: sin(ω₀(W h + b) + s_l) per layer, then the linear head."""
    torch.manual_seed(0)
    cfg = ablation_config("smoke").image
    wg = WeightGenConfig(hidden=8, n_layers=3, w0=30.0)
    model = build_image_weightgen(cfg, wg).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():  # leave the zero-initialised start, so the shifts matter
            p.add_(0.01 * torch.randn_like(p))
        z = torch.randn(2, *model.decoder.latent_shape)
        coords = torch.rand(2, 5, 2) * 2 - 1
        got = model.query(model.decode(z), coords)
        shifts = (model.decoder.linear.weight @ z.flatten(1).T).T + model.decoder.linear.bias  # [B, L·H]
        for b in range(2):
            for n in range(5):
                h = coords[b, n]
                for l, layer in enumerate(model.readout.layers):
                    pre = [sum(float(layer.weight[i, j]) * float(h[j]) for j in range(len(h))) + float(layer.bias[i])
                           for i in range(wg.hidden)]
                    h = torch.tensor([math.sin(wg.w0 * pre[i] + float(shifts[b, l * wg.hidden + i]))
                                      for i in range(wg.hidden)])
                want = model.readout.head.weight @ h + model.readout.head.bias
                torch.testing.assert_close(got[b, n], want, atol=1e-4, rtol=1e-4)


def test_siren_initialisation_bounds():
    model = build_image_weightgen(ablation_config("smoke").image, WeightGenConfig(hidden=64, n_layers=3, w0=30.0))
    first, second = model.readout.layers[0].weight, model.readout.layers[1].weight
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.4  # U(-1/d, 1/d), d = 2
    bound = math.sqrt(6 / 64) / 30
    assert second.abs().max() <= bound and second.abs().max() > 0.9 * bound
    with pytest.raises(DDMIError, match="w0"):
        WeightGenConfig(w0=0.0).check()
