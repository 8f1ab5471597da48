"""PointNet with local pooling: plane cells, scatter-mean and local max against naive loops."""

from __future__ import annotations

import pytest
import torch

from ddmi_lite import fields as F_fields
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.pointnet import LocalPoolPointNet, local_max_pool, plane_cell_index, scatter_mean_planes

AXES = {"x": 0, "y": 1, "z": 2}


def _naive_cell(point, plane: str, r: int) -> tuple[int, int]:
    """(row, col) of the texel nearest to the projection, align_corners=True: col from the width axis."""
    a, b = (AXES[ch] for ch in plane)
    col = round((float(point[a]) + 1) / 2 * (r - 1))
    row = round((float(point[b]) + 1) / 2 * (r - 1))
    return row, col


def test_cell_index_follows_plane_order_and_axes():
    r = 5
    pts = torch.tensor([[[-1.0, 1.0, 0.0], [0.5, -0.5, 1.0], [1.0, 0.0, -1.0]]])  # on texel centres
    index = plane_cell_index(pts, r)
    assert index.shape == (1, 3, 3)
    for p, plane in enumerate(F_fields.LAYOUTS["triplane"]):
        assert plane == ("xy", "yz", "xz")[p]
        for n in range(3):
            row, col = _naive_cell(pts[0, n], plane, r)
            assert int(index[0, p, n]) == row * r + col


def test_cell_index_agrees_with_bilinear_query_of_one_hot_planes():
    """A point at a texel centre reads back exactly the texel it was assigned to (align_corners=True)."""
    r = 7
    ij = torch.randint(0, r, (1, 20, 3))
    pts = ij.float() / (r - 1) * 2 - 1  # texel centres
    index = plane_cell_index(pts, r)  # [1, 3, 20]
    field = torch.arange(3 * r * r, dtype=torch.float32).reshape(1, 3, 1, r, r)  # texel id per plane
    read = F_fields.query_plane_fields(field, pts, "triplane")[0, :, :, 0]  # [3, 20]
    expected = index[0].float() + torch.arange(3)[:, None] * r * r
    assert torch.allclose(read, expected)


def test_scatter_mean_matches_naive_loop():
    torch.manual_seed(0)
    b, n, c, r = 2, 50, 4, 6
    pts = torch.rand(b, n, 3) * 2 - 1
    feats = torch.randn(b, n, c)
    got = scatter_mean_planes(feats, plane_cell_index(pts, r), r)
    assert got.shape == (b, 3, c, r, r)
    want = torch.zeros(b, 3, c, r, r)
    for bi in range(b):
        for p, plane in enumerate(("xy", "yz", "xz")):
            sums, counts = {}, {}
            for i in range(n):
                cell = _naive_cell(pts[bi, i], plane, r)
                sums[cell] = sums.get(cell, torch.zeros(c)) + feats[bi, i]
                counts[cell] = counts.get(cell, 0) + 1
            for (row, col), total in sums.items():
                want[bi, p, :, row, col] = total / counts[(row, col)]
    assert torch.allclose(got, want, atol=1e-6)


def test_local_max_pool_matches_naive_loop():
    torch.manual_seed(1)
    b, n, c, r = 2, 40, 3, 4
    pts = torch.rand(b, n, 3) * 2 - 1
    feats = torch.randn(b, n, c)
    got = local_max_pool(feats, plane_cell_index(pts, r), r)
    want = torch.zeros(b, n, c)
    for bi in range(b):
        for plane in ("xy", "yz", "xz"):
            cells = [_naive_cell(pts[bi, i], plane, r) for i in range(n)]
            for i in range(n):
                same = [j for j in range(n) if cells[j] == cells[i]]
                want[bi, i] += feats[bi, same].max(dim=0).values
    assert torch.allclose(got, want, atol=1e-6)


def test_pointnet_shapes_gradients_and_permutation_invariance():
    torch.manual_seed(2)
    net = LocalPoolPointNet(hidden=16, c_dim=8, n_blocks=3, resolution=8)
    pts = torch.rand(2, 64, 3) * 2 - 1
    planes = net(pts)
    assert planes.shape == (2, 3, 8, 8, 8)
    perm = torch.randperm(64)
    assert torch.allclose(net(pts[:, perm]), planes, atol=1e-5)
    planes.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_pointnet_rejects_bad_input():
    net = LocalPoolPointNet(hidden=8, c_dim=4, n_blocks=1, resolution=4)
    with pytest.raises(DDMIError):
        net(torch.zeros(2, 10, 2))
    with pytest.raises(DDMIError):
        plane_cell_index(torch.zeros(1, 3, 3), 0)
