"""Video domain: plane axes, packing for the latent model, network shapes, export, and a one-clip overfit."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from ddmi_lite import fields as F_fields
from ddmi_lite.domains import video as V
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.video import (
    PLANE_ORDER,
    AxisPool,
    VideoDecoder,
    VideoEncoder,
    VideoNetConfig,
)
from ddmi_lite.train import TrainConfig, train

SMALL = VideoNetConfig(frames=8, resolution=16, ch=8, ch_mult=(1, 2, 2), time_down=2, z_channels=4, pe_channels=8,
                       pool_heads=2, cross_resolutions=(4,), attention_resolutions=(4,))


def _plane_fields(size: int, *, plane: int, along: str) -> list[torch.Tensor]:
    """One scale ``[1, 3, 1, S, S]``: zero except ``plane``, which varies along its height or width only."""
    ramp = torch.linspace(-1.0, 1.0, size) ** 2 + torch.linspace(0.0, 1.0, size)  # not symmetric
    f = torch.zeros(1, 3, 1, size, size)
    f[0, plane, 0] = ramp[:, None].expand(size, size) if along == "height" else ramp[None, :].expand(size, size)
    return [f]


def _query_video(fields, t=6, h=5, w=7) -> torch.Tensor:
    """Concatenated plane samples at every pixel centre of a t×h×w clip → ``[t, h, w, 3]`` (one channel per plane)."""
    coords = V.video_coords(F_fields.pixel_centers(t), h, w)[None]  # [1, t·h·w, 3]
    emb = F_fields.query_fields(fields, coords, "xyt", aggregate="concat")[0]  # [1, t·h·w, 3]
    return emb[0].reshape(t, h, w, 3)


def _varies(x: torch.Tensor, dim: int) -> bool:
    return bool((x - x.mean(dim=dim, keepdim=True)).abs().max() > 1e-4)


@pytest.mark.parametrize("plane", [1, 2])
def test_time_planes_have_t_on_the_height_axis(plane):
    """A time-plane field varying only along its height changes only over frames, not over x or y."""
    assert PLANE_ORDER == F_fields.LAYOUTS["xyt"] == ("xy", "xt", "yt")
    out = _query_video(_plane_fields(9, plane=plane, along="height"))[..., plane]  # [t, h, w]
    assert _varies(out, 0) and not _varies(out, 1) and not _varies(out, 2)


@pytest.mark.parametrize("plane, axis", [(1, 2), (2, 1)])  # xt: width = x (dim 2); yt: width = y (dim 1)
def test_time_planes_have_the_spatial_axis_on_the_width(plane, axis):
    out = _query_video(_plane_fields(9, plane=plane, along="width"))[..., plane]
    assert _varies(out, axis) and not _varies(out, 0) and not _varies(out, 3 - axis)


def test_xy_plane_is_constant_over_time():
    out = _query_video(_plane_fields(9, plane=0, along="height"))[..., 0]  # xy height = y
    assert _varies(out, 1) and not _varies(out, 0) and not _varies(out, 2)


def test_axis_pool_collapses_the_named_axis():
    """Whatever the attention weights, pooling a feature constant along the collapsed axis returns it."""
    torch.manual_seed(0)
    t, s = 5, 6
    f_t, g_x, g_y = torch.randn(1, 4, t, 1, 1), torch.randn(1, 4, 1, 1, s), torch.randn(1, 4, 1, s, 1)
    for axis, h, want in [("y", f_t + g_x, (f_t + g_x)[:, :, :, 0]),     # xt: [B, C, t, x]
                          ("x", f_t + g_y, (f_t + g_y)[..., 0]),          # yt: [B, C, t, y]
                          ("t", g_y + g_x, (g_y + g_x)[:, :, 0])]:        # xy: [B, C, y, x]
        pool = AxisPool(4, axis, heads=2)
        torch.nn.init.normal_(pool.score.weight)  # non-uniform weights
        h = h.expand(1, 4, t, s, s)
        torch.testing.assert_close(pool(h), want.expand(pool(h).shape), rtol=1e-5, atol=1e-5)


def test_packing_is_exactly_invertible():
    z = torch.randn(5, 3, 4, 6, 6)
    packed = V.pack_planes(z)
    assert packed.shape == (5, 12, 6, 6)
    assert torch.equal(V.unpack_planes(packed), z)
    assert torch.equal(packed[:, 4:8], z[:, 1])  # channels [z_xy | z_xt | z_yt]
    x = torch.randn(2, 9, 4, 4)
    assert torch.equal(V.pack_planes(V.unpack_planes(x)), x)
    with pytest.raises(DDMIError, match="packed latent"):
        V.unpack_planes(torch.randn(2, 10, 4, 4))


def test_encoder_decoder_shapes_and_errors():
    enc, dec = VideoEncoder(SMALL), VideoDecoder(SMALL)
    moments = enc(torch.rand(2, 8, 3, 16, 16) * 2 - 1)
    assert moments.shape == (2, 3, 8, 4, 4)  # (xy, xt, yt), 2z channels, S = 16/4 = 8/2
    fields = dec(moments[:, :, :4])
    assert [tuple(f.shape) for f in fields] == [(2, 3, 8, 4, 4), (2, 3, 8, 8, 8), (2, 3, 8, 16, 16)]
    with pytest.raises(DDMIError, match="clips must be"):
        enc(torch.rand(2, 7, 3, 16, 16))
    with pytest.raises(DDMIError, match="share one shape"):
        VideoNetConfig(frames=8, resolution=16, time_down=1).check()


def test_frame_times_at_twice_the_rate_interleave_the_frames():
    t1, t2 = V.frame_times(8), V.frame_times(8, rate=2)
    assert len(t2) == 15
    torch.testing.assert_close(t2[::2], t1)
    torch.testing.assert_close(t2[1::2], (t1[1:] + t1[:-1]) / 2)


def test_clip_psnr_averages_frames_then_clips():
    a = torch.zeros(2, 4, 3, 5, 5)
    b = a.clone()
    b[0, 0] = 0.1  # one frame with MSE 0.01 → 20 dB, the others capped at 100 dB
    got = V.clip_psnr(b, a)
    torch.testing.assert_close(got, torch.tensor([(20.0 + 3 * 100.0) / 4, 100.0]))


def test_gif_and_strip_export(tmp_path):
    clips = torch.rand(2, 5, 3, 8, 8)
    strip = V.frame_strip(clips)
    assert strip.shape == (2 * 9 - 1, 5 * 9 - 1, 3)
    path = V.save_gif(clips, tmp_path / "a.gif", scale=1)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.size == (2 * 9 - 1, 8)
    V.save_png(strip, tmp_path / "s.png", scale=2)
    assert Image.open(tmp_path / "s.png").size == (2 * (5 * 9 - 1), 2 * (2 * 9 - 1))


def test_overfits_one_clip():
    """The whole pipeline (encoder → planes → HDBF → CFC readout) learns one moving-emoji clip to ≥ 28 dB."""
    torch.manual_seed(0)
    clip = V.load_video_split("train", limit=1)[:, :8, :, ::2, ::2].contiguous()  # [1, 8, 3, 16, 16]
    cfg = V.VideoVAEConfig(net=SMALL, hidden=64, n_query=8 * 16 * 16, hflip=False, reverse=False, beta_max=1e-4)
    vae = V.build_video_vae(cfg)
    steps = 700

    def batch_fn(step, gen):
        return V.make_batch(clip, torch.zeros(1, dtype=torch.long), gen, n_query=cfg.n_query, hflip=False,
                            reverse=False)

    def loss_fn(model, batch, step):
        return model.loss(batch["x"], batch["coords"], batch["target"], beta=1e-4)

    train(vae, loss_fn, batch_fn, TrainConfig(steps=steps, lr=3e-3, warmup_steps=20), progress=False)
    rec = V.reconstruct(vae.eval(), clip)
    score = V.clip_psnr(rec, clip.float() / 255).item()
    assert math.isfinite(score) and score >= 28.0, score


def test_clip_augmentation_is_shared_by_the_frames_and_features_have_one_row_per_clip():
    """One augmentation draw per clip: a clip of identical frames stays identical frame to frame."""
    from ddmi_lite.features import (
        ClipFeatureNet,
        augment,
        clip_features,
        train_feature_net,
    )

    frame = torch.rand(3, 1, 3, 16, 16)
    clips = frame.expand(3, 4, 3, 16, 16).contiguous()
    out = augment(clips, torch.Generator().manual_seed(0))
    assert out.shape == clips.shape and not torch.allclose(out, clips)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    net = train_feature_net(torch.rand(6, 8, 3, 16, 16), steps=2, batch_size=4, seed=0)
    assert isinstance(net, ClipFeatureNet)
    assert clip_features(net, torch.rand(5, 8, 3, 16, 16)).shape == (5, 128)


@pytest.mark.parametrize("axis, varying", [("x", {"xy": "width", "xt": "width", "yt": None}),
                                           ("y", {"xy": "height", "xt": None, "yt": "width"}),
                                           ("t", {"xy": None, "xt": "height", "yt": "height"})])
def test_encoder_pixel_planes_follow_the_query_layout(axis, varying):
    """A clip varying along one axis only gives pixel planes varying along that axis as fields.py reads it
    (plane ``ab``: width = a, height = b), and constant planes where the axis is collapsed."""
    cfg = SMALL
    t, r = cfg.frames, cfg.resolution
    ramp = {"x": torch.linspace(-1, 1, r).view(1, 1, 1, 1, r), "y": torch.linspace(-1, 1, r).view(1, 1, 1, r, 1),
            "t": torch.linspace(-1, 1, t).view(1, t, 1, 1, 1)}[axis] ** 3
    clip = ramp.expand(1, t, 3, r, r).contiguous()
    planes = VideoEncoder(cfg).pixel_planes(clip).view(3, 3, cfg.latent_frames, cfg.latent_resolution)  # [P, C, h, w]
    for p, name in enumerate(PLANE_ORDER):
        plane = planes[p]
        along = varying[name]
        assert _varies(plane, 1) == (along == "height"), (name, along)
        assert _varies(plane, 2) == (along == "width"), (name, along)


def test_uniform_clip_colour_reaches_the_posterior_mean():
    """Clips of one flat colour differ only in that colour; their posterior means must differ along the
    pixel shortcut's direction (a per-plane normalisation alone would erase the offset)."""
    torch.manual_seed(0)
    enc = VideoEncoder(SMALL).eval()
    with torch.no_grad():
        enc.quant.weight.zero_()
        enc.quant.bias.zero_()
        colours = torch.tensor([[-0.6, 0.2, 0.5], [0.4, -0.3, 0.0]])
        clips = colours.view(2, 1, 3, 1, 1).expand(2, SMALL.frames, 3, SMALL.resolution, SMALL.resolution)
        mu = enc(clips.contiguous())[:, :, :SMALL.z_channels]  # [2, 3, z, S, S]
        w = enc.shortcut.weight.view(3, 2 * SMALL.z_channels, 3)[:, :SMALL.z_channels]  # [P, z, C]
        want = torch.einsum("pzc,c->pz", w, colours[0] - colours[1])  # every plane sees the colour itself
    diff = mu[0] - mu[1]
    torch.testing.assert_close(diff, want[..., None, None].expand_as(diff), rtol=1e-4, atol=1e-5)
