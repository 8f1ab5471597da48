"""Progress bars of sampling and evaluation: with ``progress=True`` a tqdm bar naming what it counts is
written to stderr, with ``progress=False`` nothing is, and both return exactly the same values."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ddmi_lite.domains.image import build_image_vae, image_vae_config
from ddmi_lite.domains.shape import (ShapeTensors, build_shape_vae, dense_occupancy, meshes_from_logits,
                                     occupancy_logits, reconstruction_iou, shape_vae_config)
from ddmi_lite.domains.text_to_shape import build_text_ldm, text_to_shape_config
from ddmi_lite.features import ClipFeatureNet, FeatureNet, clip_features, image_features
from ddmi_lite.latent_diffusion import decode_to_images
from ddmi_lite.ldm import LDMConfig, build_ldm, sample_latents
from ddmi_lite.presets import override
from ddmi_lite.text import Vocabulary
from ddmi_lite.vae import encode_means

pytestmark = pytest.mark.usefixtures("one_thread")


def with_and_without_bar(capsys, fn, **kw):
    """``fn(progress=False, **kw)`` and ``fn(progress=True, **kw)`` with what each wrote to stderr."""
    capsys.readouterr()
    quiet = fn(progress=False, **kw)
    quiet_err = capsys.readouterr().err
    loud = fn(progress=True, **kw)
    loud_err = capsys.readouterr().err
    return quiet, quiet_err, loud, loud_err


def assert_bar(err: str, desc: str, total: int):
    """A tqdm bar ``<desc>: …| i/<total> [`` on stderr (the bars use leave=False: the last state is cleared,
    the earlier ones stay in the captured stream)."""
    assert re.search(re.escape(desc) + r": .*\| *\d+/" + str(total) + r" \[", err), \
        f"no bar {desc!r} counting to {total} on stderr: {err!r}"


@pytest.fixture(scope="module")
def ldm():
    torch.manual_seed(0)
    cfg = override(LDMConfig(), model_channels=16, channel_mult=(1, 2), num_res_blocks=1, num_heads=2,
                   attention_resolutions=(4,))
    return build_ldm(cfg, (4, 8, 8)).eval()


def test_sample_latents_bar_and_identical_samples(ldm, capsys):
    def draw(progress):
        calls = []
        z = sample_latents(ldm, 5, sampler="ddim", steps=4, batch_size=2, generator=torch.Generator().manual_seed(3),
                           callback=lambda info: calls.append((info["batch"], info["step"], info["x0"].clone())),
                           progress=progress)
        return z, calls

    (z0, calls0), quiet_err, (z1, calls1), loud_err = with_and_without_bar(capsys, draw)
    assert quiet_err == ""
    assert_bar(loud_err, "sampling latents (ddim, 4 steps)", 5)
    assert z0.shape == (5, 4, 8, 8) and torch.equal(z0, z1)
    # the caller's callback sees the same steps and values with the bar on
    assert [c[:2] for c in calls0] == [c[:2] for c in calls1] and len(calls0) == 3 * 4
    assert all(torch.equal(a[2], b[2]) for a, b in zip(calls0, calls1))


def test_decode_to_images_and_features_bars(capsys):
    torch.manual_seed(0)
    vae = build_image_vae(image_vae_config("smoke")).eval()
    z = torch.randn(5, image_vae_config("smoke").net.z_channels, 8, 8)
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: decode_to_images(
        vae, z, 16, batch_size=2, progress=progress))
    assert quiet_err == "" and quiet.shape == (5, 3, 16, 16) and torch.equal(quiet, loud)
    assert_bar(loud_err, "decoding latents to 16² images", 5)

    images, net = quiet, FeatureNet(width=8).eval()
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: image_features(
        net, images, batch_size=2, progress=progress))
    assert quiet_err == "" and quiet.shape == (5, 128) and np.array_equal(quiet, loud)
    assert_bar(loud_err, "image features", 5)
    assert np.array_equal(image_features(net, images, 2), quiet) and capsys.readouterr().err == ""  # default: no bar


def test_clip_features_bar(capsys):
    torch.manual_seed(0)
    net, clips = ClipFeatureNet(width=8).eval(), torch.rand(3, 4, 3, 16, 16)
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: clip_features(
        net, clips, batch_size=2, progress=progress))
    assert quiet_err == "" and np.array_equal(quiet, loud)
    assert_bar(loud_err, "clip features", 3)


@pytest.fixture(scope="module")
def shape_vae():
    torch.manual_seed(0)
    return build_shape_vae(shape_vae_config("smoke")).eval()


def shape_latents(vae, n: int) -> torch.Tensor:
    """Posterior means [n, 3, z, h, w] of random point clouds."""
    z, _ = encode_means(vae, torch.rand(n, 64, 3, generator=torch.Generator().manual_seed(n)) * 2 - 1)
    assert z.shape[:3] == (n, 3, shape_vae_config("smoke").net.z_channels)
    return z


def test_dense_occupancy_and_meshing_bars(shape_vae, capsys):
    z = shape_latents(shape_vae, 3)
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: dense_occupancy(
        shape_vae, z, 8, batch_size=2, progress=progress))
    assert quiet_err == "" and quiet.shape == (3, 8, 8, 8) and torch.equal(quiet, loud)
    assert_bar(loud_err, "occupancy grids 8³", 3)

    logits = torch.linspace(-3, 3, 8)[:, None, None].expand(8, 8, 8)  # a slab: inside where x is large
    logits = torch.stack([logits, -logits, torch.full((8, 8, 8), -5.0)])  # the last one is empty
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: meshes_from_logits(
        logits, progress=progress))
    assert quiet_err == ""
    assert_bar(loud_err, "marching cubes", 3)
    assert [m.is_empty for m in quiet] == [False, False, True] == [m.is_empty for m in loud]
    for a, b in zip(quiet, loud):
        assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)


def test_reconstruction_iou_bar(shape_vae, capsys):
    g = torch.Generator().manual_seed(0)
    n, q, s = 3, 200, 128
    points = (torch.rand(n, q, 3, generator=g) - 0.5).half()
    data = ShapeTensors(points, points.float().norm(dim=-1) < 0.3, (torch.rand(n, s, 3, generator=g) - 0.5).half(),
                        q, [f"o{i}" for i in range(n)], ["c"] * n, [[] for _ in range(n)], [{} for _ in range(n)])
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: reconstruction_iou(
        shape_vae, data, n_surface=64, batch_size=2, progress=progress))
    assert quiet_err == "" and quiet.shape == (3,) and torch.equal(quiet, loud)
    assert_bar(loud_err, "occupancy at 200 points", 3)

    z = shape_latents(shape_vae, 2)
    quiet, _, loud, loud_err = with_and_without_bar(capsys, lambda progress: occupancy_logits(
        shape_vae, z, points[0].float(), progress=progress))
    assert torch.equal(quiet, loud) and quiet.shape == (2, q)
    assert_bar(loud_err, "occupancy at 200 points", 2)


def test_text_conditioned_sampling_bar(capsys):
    torch.manual_seed(0)
    vocab = Vocabulary.from_captions(["a tall chair", "a round table"])
    model = build_text_ldm(text_to_shape_config("smoke"), (12, 4, 4), vocab).eval()
    quiet, quiet_err, loud, loud_err = with_and_without_bar(capsys, lambda progress: model.sample(
        ["a tall chair", "a round table", "a chair"], guidance=2.0, steps=3, batch_size=2,
        generator=torch.Generator().manual_seed(1), progress=progress))
    assert quiet_err == "" and quiet.shape == (3, 12, 4, 4) and torch.equal(quiet, loud)
    assert_bar(loud_err, "sampling latents (captioned, w=2, ddim, 3 steps)", 3)
    _, _, _, uncond_err = with_and_without_bar(capsys, lambda progress: model.sample(
        None, n=2, steps=2, generator=torch.Generator().manual_seed(1), progress=progress))
    assert_bar(uncond_err, "sampling latents (unconditional, ddim, 2 steps)", 2)
