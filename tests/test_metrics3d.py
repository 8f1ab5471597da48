"""Shape metrics: IoU, Chamfer distance and MMD / COV / 1-NNA against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddmi_lite.errors import DDMIError
from ddmi_lite.metrics3d import (
    chamfer_distance,
    iou,
    mmd_cov_nna,
    normalize_to_unit_sphere,
    pairwise_chamfer,
)


def _naive_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = [[float(np.sum((p - q) ** 2)) for q in b] for p in a]
    return float(np.mean([min(row) for row in d]) + np.mean([min(col) for col in zip(*d)]))


def test_chamfer_matches_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 7, 3, generator=gen), torch.randn(3, 5, 3, generator=gen)
    got = chamfer_distance(a, b, chunk=2)
    want = [_naive_chamfer(a[k].double().numpy(), b[k].double().numpy()) for k in range(3)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_chamfer_is_symmetric_zero_on_identical_clouds_and_squared():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 50, 3, generator=gen), torch.randn(2, 40, 3, generator=gen)
    torch.testing.assert_close(chamfer_distance(a, b), chamfer_distance(b, a))
    assert chamfer_distance(a, a).abs().max() < 1e-5
    one, shifted = torch.zeros(1, 3), torch.tensor([[0.0, 3.0, 4.0]])
    assert chamfer_distance(one, shifted).item() == pytest.approx(2 * 25.0)  # squared distances, both ways
    with pytest.raises(DDMIError):
        chamfer_distance(a, b[:1])


def test_pairwise_chamfer_matches_single_calls():
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 16, 3, generator=gen), torch.randn(3, 12, 3, generator=gen)
    for method, batch in (("dense", None), ("dense", 1), ("dense", 2), ("kdtree", None), ("auto", None)):
        d = pairwise_chamfer(x, y, batch=batch, method=method)
        assert d.shape == (4, 3) and d.dtype == torch.float64
        for i in range(4):
            for j in range(3):
                assert d[i, j].item() == pytest.approx(chamfer_distance(x[i], y[j]).item(), rel=1e-5)


def _on_x_axis(v: torch.Tensor) -> torch.Tensor:
    """[n] → n clouds of one point (v, 0, 0): [n, 1, 3]."""
    return torch.stack([v, torch.zeros_like(v), torch.zeros_like(v)], -1)[:, None, :]


def test_mmd_cov_nna_on_single_point_clouds_by_hand():
    """Clouds of one point: CD = 2·(r − g)²; every value below follows from the definitions."""
    ref = torch.tensor([0.0, 1.0, 2.0])
    gen = torch.tensor([0.1, 2.2, 5.0])
    out = mmd_cov_nna(_on_x_axis(gen), _on_x_axis(ref))
    # ref 0 → gen 0.1 (0.02), ref 1 → gen 0.1 (1.62), ref 2 → gen 2.2 (0.08)
    assert out["mmd"] == pytest.approx((0.02 + 1.62 + 0.08) / 3, rel=1e-5)
    assert out["cov"] == pytest.approx(2 / 3)  # gens pick refs {0, 2, 2}
    # nearest other: ref0→gen0.1, ref1→gen0.1, ref2→gen2.2, gen0.1→ref0, gen2.2→ref2, gen5→gen2.2 (the only hit)
    assert out["nna"] == pytest.approx(1 / 6)


def test_mmd_cov_nna_limits():
    gen = torch.Generator().manual_seed(3)

    def blobs(n):  # random anisotropic Gaussian clouds
        return torch.randn(n, 32, 3, generator=gen) * (0.5 + torch.rand(n, 1, 3, generator=gen))

    ref = blobs(30)
    same = mmd_cov_nna(ref.clone(), ref)
    assert same["mmd"] < 1e-5 and same["cov"] == 1.0
    assert same["nna"] == 0.0  # a copy of the reference: each cloud's nearest other is its copy
    fresh = mmd_cov_nna(blobs(30), ref)
    assert 0.3 <= fresh["nna"] <= 0.7  # same distribution: the sets cannot be told apart
    far = mmd_cov_nna(blobs(30) + 10.0, ref)
    assert far["nna"] == 1.0 and far["mmd"] > 100
    collapsed = mmd_cov_nna(ref[:1].expand(10, -1, -1), ref)
    assert collapsed["cov"] == pytest.approx(1 / 30)


def test_iou_per_item():
    pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    true = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    np.testing.assert_allclose(iou(pred, true).numpy(), [1 / 3, 1.0, 1.0])
    assert iou(np.array([True, False, True]), np.array([True, True, True])).item() == pytest.approx(2 / 3)
    assert iou(pred, true).shape == (3,) and iou(pred[0], true[0]).ndim == 0
    with pytest.raises(DDMIError, match="bool"):
        iou(pred.float(), true)
    with pytest.raises(DDMIError, match="shape"):
        iou(pred, true[:2])


def test_normalize_to_unit_sphere_is_translation_and_scale_invariant():
    gen = torch.Generator().manual_seed(4)
    p = torch.rand(2, 100, 3, generator=gen)
    n = normalize_to_unit_sphere(p)
    torch.testing.assert_close(n.norm(dim=-1).amax(dim=1), torch.ones(2))
    torch.testing.assert_close((n.amax(1) + n.amin(1)) / 2, torch.zeros(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalize_to_unit_sphere(3.0 * p + 5.0), n, atol=1e-5, rtol=1e-5)
    assert normalize_to_unit_sphere(p[0]).shape == (100, 3)


def test_kdtree_and_dense_chamfer_agree_on_surface_sized_clouds():
    """The k-d tree path (CPU default) gives the dense distances' CD and the same MMD/COV/1-NNA."""
    gen = torch.Generator().manual_seed(5)
    ref = torch.randn(6, 512, 3, generator=gen) * torch.tensor([1.0, 0.5, 0.2])
    fake = torch.randn(5, 400, 3, generator=gen) * torch.tensor([0.8, 0.6, 0.3]) + 0.05
    dense = pairwise_chamfer(ref, fake, method="dense")
    tree = pairwise_chamfer(ref, fake, method="kdtree")
    torch.testing.assert_close(tree, dense, rtol=1e-4, atol=1e-7)
    assert mmd_cov_nna(fake, ref, method="kdtree") == pytest.approx(mmd_cov_nna(fake, ref, method="dense"), rel=1e-4)
    with pytest.raises(DDMIError, match="method="):
        pairwise_chamfer(ref, fake, method="brute")
