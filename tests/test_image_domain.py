"""Image domain: batches of §1.9, chunked rendering at any resolution, and an overfitting bar."""

import pytest
import torch
import torch.nn.functional as F

from ddmi_lite.data import load_emoji
from ddmi_lite.domains.image import (build_image_vae, build_pyramid, crop_coords, image_vae_config, make_batch,
                                     reconstruct, render, to_model_range, to_unit_range, train_image_vae)
from ddmi_lite.fields import image_coords
from ddmi_lite.metrics import psnr


def test_crop_coords_are_the_matching_slice_of_the_full_grid():
    full = image_coords(64).reshape(64, 64, 2)
    c = crop_coords(64, torch.tensor([5]), torch.tensor([17]), 32).reshape(32, 32, 2)
    assert torch.equal(c, full[5:37, 17:49])


def test_batch_targets_are_the_pixels_at_their_coordinates():
    """Reading the ground-truth image *as a field* at the batch coordinates returns the target."""
    from ddmi_lite.fields import query_fields
    torch.manual_seed(0)
    imgs32, imgs64 = torch.rand(6, 3, 32, 32), torch.rand(6, 3, 64, 64)
    pyr = build_pyramid(imgs32, torch.rand(6, 3, 48, 48), imgs64)
    g = torch.Generator().manual_seed(0)
    b = make_batch(pyr, torch.arange(6), g, probs=(0.34, 0.33, 0.33))
    assert b.x.shape == (6, 3, 32, 32) and b.target.shape == (6, 1024, 3) and b.coords.shape == (6, 1024, 2)
    assert all(min(abs(s - v) for v in (1.0, 32 / 48, 0.5)) < 1e-6 for s in b.scale.tolist())
    for i in range(6):
        full = round(32 / b.scale[i].item())
        img = pyr[full][i]
        for candidate in (img, img.flip(-1)):
            field = to_model_range(candidate)[None, None]  # [1,1,3,full,full]
            read = query_fields([field], b.coords[i:i + 1], "plane")[0][0]
            if torch.allclose(read, b.target[i], atol=1e-5):
                break
        else:
            pytest.fail(f"target {i} (scale {b.scale[i]:.3f}) is not the image read at its coordinates")



@pytest.fixture(scope="module")
def overfit():
    """A small D2C-VAE overfitted to 8 emoji with the multi-scale targets."""
    imgs32, imgs48, imgs64 = (load_emoji(r, "train")[:8] for r in (32, 48, 64))
    cfg = image_vae_config("smoke", hflip=False, beta_max=1e-5, multiscale_probs=(0.2, 0.2, 0.6),  # the 2× path is
                           net=dict(ch=32, z_channels=16, pe_channels=32), hidden=64,  # what the render test reads
                           train=dict(steps=400, batch_size=8, lr=3e-3, warmup_steps=20))
    torch.manual_seed(0)
    vae = build_image_vae(cfg)
    train_image_vae(vae, cfg, build_pyramid(imgs32, imgs48, imgs64), progress=False)
    return vae.eval(), imgs32, imgs64


def test_overfitting_8_emoji_reaches_30db(overfit):
    vae, imgs32, _ = overfit
    value = psnr(reconstruct(vae, imgs32), imgs32).mean().item()
    assert value >= 30.0, f"overfitting 8 emoji reached only {value:.2f} dB"


def test_2x_render_shape_and_consistency_with_1x(overfit):
    vae, imgs32, imgs64 = overfit
    with torch.no_grad():
        fields = vae.decode(vae.encode(to_model_range(imgs32)).mode())
        r1 = to_unit_range(render(vae, fields, 32))
        r2 = to_unit_range(render(vae, fields, 64, chunk=1000))  # chunking must not matter
    assert r2.shape == (8, 3, 64, 64)
    pooled = F.avg_pool2d(r2, 2)
    p1, p2 = psnr(r1, imgs32).mean().item(), psnr(pooled, imgs32).mean().item()
    assert p2 >= p1 - 1.0, f"2× render pooled to 1×: {p2:.2f} dB vs 1× render {p1:.2f} dB"


def test_render_is_chunk_invariant():
    torch.manual_seed(0)
    vae = build_image_vae(image_vae_config("smoke")).eval()
    with torch.no_grad():
        fields = vae.decode(torch.randn(2, 4, 8, 8))
        a = render(vae, fields, 48, chunk=100_000)
        b = render(vae, fields, 48, chunk=77)
    assert torch.allclose(a, b, atol=1e-6)


def test_psnr_reference_values():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.1)
    assert torch.allclose(psnr(a, b), torch.full((2,), 20.0))


def test_a_run_stopped_by_its_budget_is_marked_and_resumed_by_the_next_call(tmp_path):
    """The time budget is a safety stop: steps decide the run, the next call finishes it."""
    from ddmi_lite.domains.image import load_or_train_image_vae
    cfg = image_vae_config("smoke", train=dict(steps=30))
    _, first = load_or_train_image_vae(image_vae_config("smoke", train=dict(steps=30, max_time_s=1e-9)),
                                       ckpt_path=tmp_path / "vae", progress=False)
    assert first.stopped_by_budget and 0 < first.steps_done < 30
    _, again = load_or_train_image_vae(cfg, ckpt_path=tmp_path / "vae", progress=False)
    assert again.resumed_from == first.steps_done and again.steps_done == 30 and not again.stopped_by_budget
    _, reused = load_or_train_image_vae(cfg, ckpt_path=tmp_path / "vae", progress=False)
    assert reused.resumed_from == reused.steps_done == 30
