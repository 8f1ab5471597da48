"""Metrics against closed forms and naive reference implementations."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from ddmi_lite.errors import DDMIError
from ddmi_lite.features import (FeatureNet, InceptionFeatures, augment, contrastive_loss, image_features,
                                train_feature_net)
from ddmi_lite.metrics import (frechet_distance, frechet_distance_from_stats, kid, pca_projection, precision_recall,
                               psnr)

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _fd_scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_psnr_matches_formula_per_item():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(4, 3, 8, 8, generator=gen)
    b = (a + 0.05 * torch.randn(4, 3, 8, 8, generator=gen)).clamp(0, 1)
    got = psnr(a, b)
    want = torch.tensor([10 * math.log10(1.0 / float(((a[i] - b[i]) ** 2).mean())) for i in range(4)])
    assert got.shape == (4,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(psnr(2 * a, 2 * b, data_range=2.0), got, rtol=1e-5, atol=1e-4)
    assert torch.isfinite(psnr(a, a)).all()
    with pytest.raises(DDMIError):
        psnr(a, b[:2])


def test_frechet_distance_closed_form_on_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(_fd_scipy(mu1, s1, mu2, s2), rel=1e-8)
    assert frechet_distance_from_stats(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # samples: the plug-in estimate approaches the closed form (bias O(d/n))
    a = rng.multivariate_normal(mu1, s1, size=20000)
    b = rng.multivariate_normal(mu2, s2, size=20000)
    assert frechet_distance(a, b) == pytest.approx(_fd_scipy(mu1, s1, mu2, s2), rel=0.05)


def test_frechet_distance_self_zero_and_symmetric():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 16))
    b = rng.normal(size=(400, 16)) * 1.3 + 0.2
    assert abs(frechet_distance(a, a)) < 1e-8
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 0.1
    # rank-deficient covariance (fewer points than dimensions) stays finite and matches scipy
    c, e = rng.normal(size=(10, 32)), rng.normal(size=(12, 32))
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (c, e)]
    assert frechet_distance(c, e) == pytest.approx(_fd_scipy(*stats[0], *stats[1]), rel=1e-5)


def _naive_pr(real, fake, k):
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    def covered(points, centres, r):
        return np.mean([any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r)) for p in points])

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_reference_and_extremes():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(50, 5)) * 0.6 + 0.8
    p, r = precision_recall(real, fake, k=3, batch_size=16)
    p_ref, r_ref = _naive_pr(real, fake, 3)
    assert p == pytest.approx(p_ref) and r == pytest.approx(r_ref)
    assert 0.0 < p < 1.0 and 0.0 < r < 1.0
    assert precision_recall(real, real, k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)
    with pytest.raises(DDMIError, match="k="):
        precision_recall(real, fake, k=50)


def test_precision_recall_equal_sizes_removes_the_size_bias():
    """Same distribution, 100 vs 2,000 points in 64-d: unequal sets give precision well above recall
    (the small set's wide balls swallow the large set); at equal sizes the two sets are exchangeable,
    so precision − recall averages to about 0."""
    plain_gap, equal_gap = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        real, fake = rng.normal(size=(100, 64)), rng.normal(size=(2000, 64))
        p, r = precision_recall(real, fake)
        plain_gap.append(p - r)
        p, r, p_std, r_std = precision_recall(real, fake, equal_sizes=True, seed=seed, return_std=True)
        equal_gap.append(p - r)
        assert p_std > 0 and r_std > 0  # different subsets, different estimates
    assert np.mean(plain_gap) > 0.05
    assert abs(np.mean(equal_gap)) < 0.03 and abs(np.mean(equal_gap)) < np.mean(plain_gap) / 3


def test_precision_recall_equal_sizes_reference_and_identity():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(90, 5)) * 0.8 + 0.3
    # equal sizes: exactly the plain estimate, spread 0
    plain = precision_recall(real, fake[:40], k=3)
    assert precision_recall(real, fake[:40], k=3, equal_sizes=True, return_std=True) == (*plain, 0.0, 0.0)
    # unequal: the mean over the draws of plain estimates on the subsampled larger set (either side)
    draws = np.random.default_rng(7)
    want = np.mean([precision_recall(real, fake[draws.choice(90, 40, replace=False)], k=3) for _ in range(4)], 0)
    got = precision_recall(real, fake, k=3, equal_sizes=True, repeats=4, seed=7)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    draws = np.random.default_rng(7)
    want = np.mean([precision_recall(fake[draws.choice(90, 40, replace=False)], real, k=3) for _ in range(4)], 0)
    np.testing.assert_allclose(precision_recall(fake, real, k=3, equal_sizes=True, repeats=4, seed=7), want,
                               rtol=0, atol=1e-12)
    with pytest.raises(DDMIError, match="repeats"):
        precision_recall(real, fake, equal_sizes=True, repeats=0)


def test_pca_projection_keeps_the_top_directions():
    rng = np.random.default_rng(5)
    scales = np.array([5.0, 3.0, 1.0, 0.1, 0.1, 0.1])
    rot, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    x = (rng.normal(size=(4000, 6)) * scales) @ rot.T + 2.0  # variance 25, 9, 1 along rot[:, 0..2]
    mean, dirs = pca_projection(x, 3)
    assert dirs.shape == (6, 3)
    np.testing.assert_allclose(dirs.T @ dirs, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(np.abs(dirs.T @ rot[:, :3]), np.eye(3), atol=0.05)  # the same subspace, in order
    np.testing.assert_allclose(((x - mean) @ dirs).var(0), scales[:3] ** 2, rtol=0.06)
    with pytest.raises(DDMIError, match="dim=7"):
        pca_projection(x, 7)


def test_kid_matches_naive_and_separates_distributions():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4)) + 0.5

    def k(u, v):
        return (u @ v / 4 + 1) ** 3

    m = 20
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert kid(x, y, subsets=1, subset_size=20) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)

    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    shifted = rng.normal(size=(1000, 16)) + 0.5
    same, std = kid(a, b, subsets=10, subset_size=500, return_std=True)
    diff = kid(a, shifted, subsets=10, subset_size=500)
    assert abs(same) < 0.05 * diff
    assert abs(same) < 4 * std + 1e-12


def test_augment_keeps_range_and_varies():
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(8, 3, 32, 32, generator=gen)
    out = augment(imgs, gen)
    assert out.shape == imgs.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, augment(imgs, gen))


def _toy_images(n, seed, size=16):
    """Coloured discs and squares on white: a small stand-in for emoji."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    imgs = torch.ones(n, 3, size, size)
    for i in range(n):
        cx, cy, r = torch.rand(3, generator=gen) * torch.tensor([1.0, 1.0, 0.4]) + torch.tensor([-0.5, -0.5, 0.3])
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2) if i % 2 else ((xx - cx).abs().maximum((yy - cy).abs()) < r)
        imgs[i, :, mask] = torch.rand(3, 1, generator=gen)
    return imgs


def test_feature_net_trains_caches_and_extracts(tmp_path):
    n, kw = 16, dict(steps=40, seed=0, batch_size=16)
    imgs = _toy_images(n, seed=0)
    with torch.random.fork_rng(devices=[]):  # the initial weights train_feature_net starts from
        torch.manual_seed(0)
        init = FeatureNet()
    cache = tmp_path / "feat.safetensors"
    net = train_feature_net(imgs, cache_path=cache, **kw)
    assert cache.is_file() and not net.training
    feats = image_features(net, imgs)
    np.testing.assert_allclose(image_features(net, imgs, batch_size=6), feats, rtol=1e-5, atol=1e-6)
    assert feats.shape == (n, 128) and feats.dtype == np.float64 and np.isfinite(feats).all()
    # it learned: the contrastive loss on the same augmented views fell well below its start
    with torch.no_grad():
        before = float(contrastive_loss(init, imgs, torch.Generator().manual_seed(11)))
        after = float(contrastive_loss(net, imgs, torch.Generator().manual_seed(11)))
    assert after < 0.8 * before
    # the cache returns the same weights; the same seed retrains identically; other images retrain
    again = train_feature_net(imgs, cache_path=cache, **kw)
    np.testing.assert_array_equal(image_features(again, imgs), feats)
    fresh = train_feature_net(imgs, **kw)
    np.testing.assert_allclose(image_features(fresh, imgs), feats, rtol=1e-4, atol=1e-5)
    retrained = train_feature_net(_toy_images(n, seed=1), cache_path=cache, **kw)
    assert not np.allclose(image_features(retrained, imgs), feats)
    assert FeatureNet()(torch.rand(2, 3, 32, 32)).shape == (2, 128)


def test_inception_features_from_a_local_weights_file(tmp_path):
    """Random weights saved as pytorch-fid does (.pth state dict, with its fc head) and as safetensors:
    2048 pool3 features per image, deterministic, independent of the batch; foreign files refused."""
    import safetensors.torch

    from ddmi_lite.nets.inception import FIDInceptionV3

    with pytest.raises(DDMIError, match="does not exist"):
        InceptionFeatures(tmp_path / "missing.pth")
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():  # non-trivial batch-norm statistics, as trained weights have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    state = {**net.state_dict(), "fc.weight": torch.randn(1008, 2048), "fc.bias": torch.zeros(1008)}
    torch.save(state, tmp_path / "pt_inception.pth")
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "inception.safetensors"))
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    feats = InceptionFeatures(tmp_path / "pt_inception.pth", batch_size=2)(images)
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()
    assert (feats >= 0).all() and feats.std() > 0  # averages of ReLU outputs
    again = InceptionFeatures(tmp_path / "inception.safetensors", batch_size=3)(images)
    torch.testing.assert_close(again, feats, rtol=1e-5, atol=1e-6)  # same weights, other file and batching
    torch.testing.assert_close(InceptionFeatures(tmp_path / "pt_inception.pth")(images[1:2]), feats[1:2],
                               rtol=1e-5, atol=1e-6)
    assert (feats[0] - feats[1]).abs().max() > 0  # the features depend on the image
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(DDMIError, match="1 tensors missing.*Mixed_7c.branch_pool.conv.weight"):
        InceptionFeatures(tmp_path / "partial.pth")
    (tmp_path / "garbage.pth").write_bytes(b"0")
    with pytest.raises(DDMIError, match="cannot be read as a state dict"):
        InceptionFeatures(tmp_path / "garbage.pth")
    torch.save({"model": [1, 2]}, tmp_path / "other.pth")
    with pytest.raises(DDMIError, match="not a state dict of named tensors"):
        InceptionFeatures(tmp_path / "other.pth")
    with pytest.raises(DDMIError, match="expected \\[N, 3, H, W\\]"):
        InceptionFeatures(tmp_path / "inception.safetensors")(torch.rand(2, 32, 32))
