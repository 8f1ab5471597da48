"""The shape domain: data in memory, batches, the D2C-VAE on tri-planes, and overfitting a few shapes."""

from __future__ import annotations

import pytest
import torch

from ddmi_lite.data import prepare_shapes
from ddmi_lite.geometry import BOX
from ddmi_lite.domains.shape import (ShapeVAEConfig, build_shape_vae, dense_occupancy, encode_posterior_images,
                                     image_to_triplane, load_shape_split, make_batch, occupancy_logits,
                                     reconstruction_iou, shape_eval_config, shape_ldm_config, shape_vae_config,
                                     spread_index, train_shape_vae)
from ddmi_lite.domains.text_to_shape import text_to_shape_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.triplane import TriplaneConfig
from ddmi_lite.presets import override


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return prepare_shapes(tmp_path_factory.mktemp("shapes"), n_objects=15, n_points=4000, n_surface=1000,
                          categories=("chair", "table", "sofa"), progress=False)


def tiny_config(**kw) -> ShapeVAEConfig:
    net = TriplaneConfig(point_hidden=32, point_blocks=3, plane_channels=16, plane_resolution=32, ch=16,
                         ch_mult=(1, 2, 2), z_channels=8, pe_channels=16, cross_resolutions=(8,),
                         attention_resolutions=())
    return override(ShapeVAEConfig(net=net, hidden=64, n_surface=512, n_query=512), **kw)


def test_split_in_memory_and_batch(root):
    data = load_shape_split(root, "train")
    assert len(data) == len(data.ids) == data.points.shape[0] > 0
    assert data.points.shape[1:] == (4000, 3) and data.surface.shape[1:] == (1000, 3)
    assert data.n_uniform == 2000 and data.captions[0] and "category" in data.attributes[0]
    pts, occ = data.uniform()
    assert pts.abs().max() <= BOX + 1e-3 and occ.dtype == torch.bool
    batch = make_batch(data, torch.tensor([0, 1]), torch.Generator().manual_seed(0), n_query=64, n_surface=32)
    assert batch["x"].shape == (2, 32, 3) and batch["coords"].shape == (2, 64, 3) and batch["target"].shape == (2, 64, 1)
    assert batch["coords"].abs().max() <= 1.0 + 1e-3  # network coordinates: p / 0.55
    assert set(batch["target"].unique().tolist()) <= {0.0, 1.0}


def test_vae_shapes_and_loss_is_a_sum_over_points(root):
    torch.manual_seed(0)
    data = load_shape_split(root, "train")
    cfg = tiny_config()
    vae = build_shape_vae(cfg)
    batch = make_batch(data, torch.tensor([0, 1]), torch.Generator().manual_seed(0), n_query=100, n_surface=200)
    out = vae(batch["x"], batch["coords"], sample=False)
    assert out.z.shape == (2, 3, 8, 8, 8)
    assert [tuple(f.shape) for f in out.fields] == [(2, 3, 16, 8, 8), (2, 3, 16, 16, 16), (2, 3, 16, 32, 32)]
    _, logs = vae.loss(batch["x"], batch["coords"], batch["target"], beta=0.0,
                       generator=torch.Generator().manual_seed(3))
    sampled = vae(batch["x"], batch["coords"], generator=torch.Generator().manual_seed(3))  # same z
    bce = torch.nn.functional.binary_cross_entropy_with_logits(sampled.out.detach(), batch["target"], reduction="none")
    assert logs["rec"] == pytest.approx(float(bce.sum() / 2), rel=1e-4)  # Σ over points, mean over batch
    grid = dense_occupancy(vae, out.z, 8)
    assert grid.shape == (2, 8, 8, 8)
    one = dense_occupancy(vae, out.z[1:], 8, batch_size=1, chunk=100)  # one latent, chunks of 100 points
    assert torch.allclose(one[0], grid[1], atol=1e-4)
    post = encode_posterior_images(vae, data, n_surface=64)
    assert post.mean.shape == (len(data), 24, 8, 8) and bool((post.std > 0).all())
    logits = occupancy_logits(vae, image_to_triplane(post.mean[:2]), data.points[:2, :50].float())
    assert logits.shape == (2, 50) and torch.isfinite(logits).all()


def test_overfitting_a_few_shapes_reaches_high_iou(root):
    """A few shapes, trained on alone, are reconstructed with IoU ≥ 0.9 on their uniform points."""
    torch.manual_seed(0)
    data = load_shape_split(root, "train")
    keep = [i for i, c in enumerate(data.categories) if c in ("sofa", "table")][:3]
    sub = data.subset(keep)
    assert sub.ids == [data.ids[i] for i in keep] and torch.equal(sub.points, data.points[keep])
    cfg = tiny_config(beta_max=1e-4, train=dict(steps=250, batch_size=3, lr=3e-3, warmup_steps=10, max_time_s=None))
    vae = build_shape_vae(cfg)
    train_shape_vae(vae, cfg, sub, progress=False)
    vae.eval()
    scores = reconstruction_iou(vae, sub, n_surface=cfg.n_surface, threshold=0.5)
    assert scores.shape == (len(keep),)
    assert float(scores.mean()) >= 0.9, scores


def test_spread_index_covers_categories():
    cats = ["chair"] * 4 + ["lamp"] * 2 + ["sofa"] * 3
    assert spread_index(cats, 5).tolist() == [0, 4, 6, 1, 5]
    assert sorted(spread_index(cats, 20).tolist()) == list(range(9))


def test_train_shape_vae_resumes_only_a_checkpoint_of_its_own_data(tmp_path, root, capsys):
    """train_shape_vae goes through train.load_or_train with the VAE settings and n_train as its run config."""
    data = load_shape_split(root, "train")
    cfg = ShapeVAEConfig(net=TriplaneConfig(point_hidden=8, point_blocks=1, plane_channels=4, plane_resolution=8, ch=4,
                                            ch_mult=(1, 2), z_channels=2, pe_channels=4, n_scales=2,
                                            cross_resolutions=(), attention_resolutions=()),
                         hidden=8, n_surface=32, n_query=32)
    cfg = override(cfg, train=dict(steps=3, batch_size=2, max_time_s=None))
    ckpt = tmp_path / "vae"
    first = train_shape_vae(build_shape_vae(cfg), cfg, data, ckpt_path=ckpt, progress=False)
    assert first.resumed_from is None and first.steps_done == 3
    again = train_shape_vae(build_shape_vae(cfg), cfg, data, ckpt_path=ckpt, progress=False)
    assert again.resumed_from == again.steps_done == 3  # the finished checkpoint is reused
    longer = override(cfg, train=dict(steps=5))
    extended = train_shape_vae(build_shape_vae(longer), longer, data, ckpt_path=ckpt, progress=False)
    assert extended.resumed_from == 3 and extended.steps_done == 5
    capsys.readouterr()
    fewer = data.subset(list(range(len(data) - 1)))  # another training set: never resumed
    other = train_shape_vae(build_shape_vae(longer), longer, fewer, ckpt_path=ckpt, progress=False)
    assert other.resumed_from is None and other.steps_done == 5
    assert "n_train" in capsys.readouterr().out
    wider = override(longer, hidden=16)  # another model: never resumed either
    assert train_shape_vae(build_shape_vae(wider), wider, fewer, ckpt_path=ckpt, progress=False).resumed_from is None


def test_presets_are_consistent():
    for profile in ("smoke", "cpu", "gpu"):
        vae = shape_vae_config(profile)
        ldm = shape_ldm_config(profile)
        t2s = text_to_shape_config(profile)
        ev = shape_eval_config(profile)
        assert vae.net.check().latent_resolution % 2 ** (len(ldm.channel_mult) - 1) == 0
        assert t2s.classifier.resolution == t2s.eval_resolution
        assert 0 < ev.iou_threshold < 1 and 0 < ev.mesh_threshold < 1
    assert shape_vae_config("smoke").data_root != shape_vae_config("cpu").data_root
    with pytest.raises(DDMIError):
        shape_vae_config("cpu", not_a_field=1)
