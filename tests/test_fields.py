"""HDBF querying (ddmi_lite.fields) against a naive bilinear loop and against layout invariants."""

import math

import numpy as np
import pytest
import torch

from ddmi_lite import DDMIError
from ddmi_lite.fields import (
    LAYOUTS,
    align_corners_for,
    coord_dim,
    embedding_channels,
    fields_to_rgb,
    grid_coords,
    image_coords,
    num_planes,
    pixel_centers,
    project,
    query_fields,
    query_plane_fields,
)

ALL_LAYOUTS = list(LAYOUTS)
# Coordinate index of each plane's (width, height) axes, written out by hand from the names.
PLANE_AXES = {
    "plane": [(0, 1)],  # xy
    "triplane": [(0, 1), (1, 2), (0, 2)],  # xy, yz, xz
    "xyt": [(0, 1), (0, 2), (1, 2)],  # xy, xt, yt
}


# --------------------------------------------------------------------------- naive reference


def naive_bilinear(plane: np.ndarray, u: float, v: float, align_corners: bool) -> np.ndarray:
    """Sample a [C, H, W] plane at (u = width coord, v = height coord), border padding."""
    _, h, w = plane.shape

    def texel_pos(coord: float, size: int) -> float:
        pos = (coord + 1) / 2 * (size - 1) if align_corners else ((coord + 1) * size - 1) / 2
        return min(max(pos, 0.0), size - 1.0)  # border: clip the position to the texel range

    x, y = texel_pos(u, w), texel_pos(v, h)
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return ((1 - fx) * (1 - fy) * plane[:, y0, x0] + fx * (1 - fy) * plane[:, y0, x1]
            + (1 - fx) * fy * plane[:, y1, x0] + fx * fy * plane[:, y1, x1])


def naive_query(field: torch.Tensor, coords: torch.Tensor, layout: str) -> np.ndarray:
    """[B, P, C, H, W] x [B, N, D] -> [B, P, N, C] with a plain loop over every point."""
    f, c = field.double().numpy(), coords.double().numpy()
    b, p, ch = f.shape[:3]
    out = np.zeros((b, p, c.shape[1], ch))
    ac = layout != "plane"
    for bi in range(b):
        for pi, (a_idx, b_idx) in enumerate(PLANE_AXES[layout]):
            for ni in range(c.shape[1]):
                out[bi, pi, ni] = naive_bilinear(f[bi, pi], c[bi, ni, a_idx], c[bi, ni, b_idx], ac)
    return out


def random_coords(b, n, d, gen, spread=1.2):
    return (torch.rand(b, n, d, generator=gen, dtype=torch.float64) * 2 - 1).mul(spread).float()


# --------------------------------------------------------------------------- layouts


def test_layout_tables():
    assert [coord_dim(name) for name in ALL_LAYOUTS] == [2, 3, 3]
    assert [num_planes(name) for name in ALL_LAYOUTS] == [1, 3, 3]
    assert align_corners_for("plane") is False
    assert align_corners_for("triplane") is True and align_corners_for("xyt") is True
    assert embedding_channels(8, "triplane", aggregate="concat") == 24
    assert embedding_channels(8, "triplane", aggregate="sum") == 8
    assert embedding_channels(8, "plane", aggregate="concat") == 8
    assert embedding_channels(8, "xyt", aggregate="concat_prod") == 32


@pytest.mark.parametrize("layout", ["plane", "triplane"])
def test_time_plane_product_needs_the_xyt_layout(layout):
    with pytest.raises(DDMIError, match=f"concat_prod.*layout='xyt'.*{layout}"):
        embedding_channels(8, layout, aggregate="concat_prod")
    field = torch.zeros(1, num_planes(layout), 2, 4, 4)
    with pytest.raises(DDMIError, match="concat_prod"):
        query_fields([field], torch.zeros(1, 3, coord_dim(layout)), layout, aggregate="concat_prod")


def naive_aggregate(per_plane: np.ndarray, aggregate: str) -> np.ndarray:
    """The module docstring's ⊕ on naive samples ``[B, P, N, C]``, written out plane by plane."""
    if aggregate == "sum":
        return per_plane.sum(axis=1)
    blocks = list(per_plane.transpose(1, 0, 2, 3))  # planes in order
    if aggregate == "concat_prod":
        blocks.append(per_plane[:, 1] * per_plane[:, 2])  # xt ⊙ yt
    return np.concatenate(blocks, axis=-1)


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_project_picks_plane_axes(layout):
    coords = torch.randn(2, 5, coord_dim(layout))
    proj = project(coords, layout)
    assert proj.shape == (2, num_planes(layout), 5, 2)
    for p, (a, b) in enumerate(PLANE_AXES[layout]):
        assert torch.equal(proj[:, p, :, 0], coords[..., a])
        assert torch.equal(proj[:, p, :, 1], coords[..., b])


# --------------------------------------------------------------------------- against the naive loop


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_query_matches_naive_bilinear_loop(layout):
    gen = torch.Generator().manual_seed(0)
    field = torch.randn(2, num_planes(layout), 4, 5, 7, generator=gen)  # H != W
    coords = random_coords(2, 23, coord_dim(layout), gen)  # includes points outside [-1, 1]
    got = query_plane_fields(field, coords, layout)
    assert got.shape == (2, num_planes(layout), 23, 4)
    want = naive_query(field, coords, layout)
    assert np.abs(got.double().numpy() - want).max() < 1e-5


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_query_fields_multiscale_matches_naive(layout):
    gen = torch.Generator().manual_seed(1)
    p = num_planes(layout)
    fields = [torch.randn(2, p, 3, 3, 4, generator=gen), torch.randn(2, p, 5, 6, 9, generator=gen)]
    coords = random_coords(2, 17, coord_dim(layout), gen)
    for aggregate in ("sum", "concat") + (("concat_prod",) if layout == "xyt" else ()):
        out = query_fields(fields, coords, layout, aggregate=aggregate)
        assert len(out) == 2
        for field, emb in zip(fields, out):
            want = naive_aggregate(naive_query(field, coords, layout), aggregate)  # from [B, P, N, C]
            assert emb.shape == want.shape == (2, 17, embedding_channels(field.shape[2], layout, aggregate=aggregate))
            assert np.abs(emb.double().numpy() - want).max() < 1e-5


def test_shared_coords_broadcast_over_batch():
    gen = torch.Generator().manual_seed(2)
    field = torch.randn(3, 3, 2, 6, 6, generator=gen)
    coords = random_coords(1, 11, 3, gen)
    shared = query_plane_fields(field, coords, "triplane")
    repeated = query_plane_fields(field, coords.expand(3, -1, -1), "triplane")
    assert torch.equal(shared, repeated)


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("height,width", [(16, 8), (8, 32), (5, 7)])
def test_image_coords_hit_texel_centres(height, width):
    gen = torch.Generator().manual_seed(3)
    field = torch.randn(2, 1, 3, height, width, generator=gen)
    coords = image_coords(height, width)
    assert coords.shape == (height * width, 2)
    (emb,) = query_fields([field], coords[None], "plane")
    want = field[:, 0].flatten(2).transpose(1, 2)  # [B, H*W, C], row-major
    if height & (height - 1) == 0 and width & (width - 1) == 0:
        assert torch.equal(emb, want)  # power-of-two sizes: every step is exact in float32
    else:
        torch.testing.assert_close(emb, want, rtol=0, atol=1e-6)


def test_image_coords_order_and_pixel_centers():
    coords = image_coords(2, 3)
    xs, ys = pixel_centers(3), pixel_centers(2)
    assert torch.allclose(xs, torch.tensor([-2 / 3, 0.0, 2 / 3]))
    assert torch.allclose(ys, torch.tensor([-0.5, 0.5]))
    want = torch.tensor([[x, y] for y in ys.tolist() for x in xs.tolist()])  # y outer, x inner
    assert torch.equal(coords, want)
    assert torch.equal(image_coords(4), image_coords(4, 4))
    ref = torch.linspace(-(9 - 1) / 9, (9 - 1) / 9, 9, dtype=torch.float64)
    assert torch.allclose(pixel_centers(9, dtype=torch.float64), ref, atol=1e-15)


def test_grid_coords_order():
    g = grid_coords(2, 3, 4)
    assert g.shape == (24, 3)
    axes = [torch.linspace(-1, 1, n) for n in (2, 3, 4)]
    want = torch.tensor([[a, b, c] for a in axes[0].tolist() for b in axes[1].tolist() for c in axes[2].tolist()])
    assert torch.equal(g, want)  # first axis slowest
    assert torch.equal(grid_coords(1)[:, 0], torch.zeros(1))


@pytest.mark.parametrize("layout", ["triplane", "xyt"])
def test_corner_coordinates_hit_corner_texels(layout):
    gen = torch.Generator().manual_seed(4)
    field = torch.randn(1, 3, 2, 5, 7, generator=gen)
    corners = grid_coords(2, 2, 2)[None]  # all (±1, ±1, ±1)
    got = query_plane_fields(field, corners, layout)  # [1, P, 8, C]
    for p, (a, b) in enumerate(PLANE_AXES[layout]):
        for k in range(8):
            col = 0 if corners[0, k, a] < 0 else -1  # width index
            row = 0 if corners[0, k, b] < 0 else -1  # height index
            assert torch.equal(got[0, p, k], field[0, p, :, row, col])


def ramp_field(layout, h, w, *, batch=1):
    """Per plane: channel 0 = value of the width coordinate, channel 1 = height coordinate."""
    line = pixel_centers if layout == "plane" else (lambda n: torch.linspace(-1, 1, n))
    wx = line(w).expand(h, w)
    hy = line(h)[:, None].expand(h, w)
    plane = torch.stack([wx, hy])  # [2, H, W]
    return plane.expand(batch, num_planes(layout), 2, h, w).clone()


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_which_coordinate_drives_which_axis(layout):
    gen = torch.Generator().manual_seed(5)
    h, w = 6, 9
    field = ramp_field(layout, h, w)
    coords = random_coords(1, 31, coord_dim(layout), gen, spread=0.7)  # inside every layout's texel range
    (emb,) = query_fields([field], coords, layout, aggregate="concat")  # [1, N, P*2]
    want = coords[..., [i for pair in PLANE_AXES[layout] for i in pair]]  # linear ramp is reproduced
    torch.testing.assert_close(emb, want, rtol=0, atol=1e-6)


def test_triplane_constant_planes_keep_canonical_order():
    field = torch.ones(2, 3, 4, 5, 6) * torch.tensor([1.0, 2.0, 3.0])[None, :, None, None, None]
    coords = torch.rand(2, 9, 3) * 2 - 1
    (cat,) = query_fields([field], coords, "triplane", aggregate="concat")
    (tot,) = query_fields([field], coords, "triplane", aggregate="sum")
    assert cat.shape == (2, 9, 12) and tot.shape == (2, 9, 4)
    want = torch.tensor([1.0] * 4 + [2.0] * 4 + [3.0] * 4).expand(2, 9, 12)
    torch.testing.assert_close(cat, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(tot, torch.full((2, 9, 4), 6.0), rtol=0, atol=1e-5)


def test_xyt_time_planes_respond_only_to_t():
    h, w = 4, 8  # height = t axis, width = spatial axis
    field = torch.zeros(1, 3, 2, h, w)
    field[0, 1:] = torch.randn(1, 2, h, 1).expand(2, 2, h, w)  # xt, yt vary along height only
    base = torch.tensor([[[0.1, -0.3, 0.2]]])
    (e0,) = query_fields([field], base, "xyt", aggregate="concat")
    for axis in (0, 1):  # move x or y: nothing changes
        moved = base.clone()
        moved[..., axis] = 0.8
        (e1,) = query_fields([field], moved, "xyt", aggregate="concat")
        torch.testing.assert_close(e1, e0, rtol=0, atol=1e-6)
    moved = base.clone()
    moved[..., 2] = -0.9  # move t: the time planes change
    (e2,) = query_fields([field], moved, "xyt", aggregate="concat")
    assert (e2[..., 2:] - e0[..., 2:]).abs().max() > 1e-3
    torch.testing.assert_close(e2[..., :2], e0[..., :2], rtol=0, atol=0)  # xy plane is zero


def test_plane_sum_equals_concat():
    field = torch.randn(2, 1, 3, 4, 5)
    coords = torch.rand(2, 7, 2) * 2 - 1
    (a,) = query_fields([field], coords, "plane", aggregate="sum")
    (b,) = query_fields([field], coords, "plane", aggregate="concat")
    assert a.shape == (2, 7, 3) and torch.equal(a, b)


def test_out_of_range_coords_take_border_values():
    gen = torch.Generator().manual_seed(6)
    field = torch.randn(1, 3, 2, 5, 5, generator=gen)
    coords = random_coords(1, 20, 3, gen, spread=3.0)
    outside = query_plane_fields(field, coords, "triplane")
    clamped = query_plane_fields(field, coords.clamp(-1, 1), "triplane")
    assert torch.equal(outside, clamped)


# --------------------------------------------------------------------------- scale mask


def test_scale_mask():
    gen = torch.Generator().manual_seed(7)
    fields = [torch.randn(2, 3, 4, 4, 4, generator=gen), torch.randn(2, 3, 6, 8, 8, generator=gen)]
    coords = random_coords(2, 10, 3, gen)
    plain = query_fields(fields, coords, "triplane", aggregate="concat")
    ones = query_fields(fields, coords, "triplane", aggregate="concat", scale_mask=[True, 1.0])
    for p, o in zip(plain, ones):
        assert torch.equal(p, o)
    off = query_fields(fields, coords, "triplane", aggregate="concat", scale_mask=[1, 0])
    assert torch.equal(off[0], plain[0])
    assert off[1].shape == plain[1].shape and torch.count_nonzero(off[1]) == 0
    half = query_fields(fields, coords, "triplane", scale_mask=torch.tensor([0.5, 1.0]))
    summed = query_fields(fields, coords, "triplane")
    torch.testing.assert_close(half[0], 0.5 * summed[0])


def test_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(8)
    field = torch.randn(1, 3, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    coords = (torch.rand(1, 5, 3, generator=gen, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, c: query_fields([f], c, "triplane")[0], (field, coords))


# --------------------------------------------------------------------------- visualisation


def test_fields_to_rgb_rank_one_and_invariances():
    gen = torch.Generator().manual_seed(9)
    a = torch.rand(6, 7, generator=gen, dtype=torch.float64)
    v = torch.tensor([0.2, -1.5, 0.7, 0.1])  # largest-magnitude loading is negative
    field = (a[None] * v[:, None, None]).float()  # rank one: [4, 6, 7]
    rgb = fields_to_rgb(field)
    assert rgb.shape == (6, 7, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # First component: the loading is flipped so its largest entry is positive -> projection ∝ -a.
    want = ((a.max() - a) / (a.max() - a.min())).float()
    torch.testing.assert_close(rgb[..., 0], want, rtol=0, atol=1e-5)
    # Permuting channels and shifting each channel by a constant leave the picture unchanged.
    field2 = torch.randn(5, 6, 7, generator=gen)
    shuffled = field2[torch.tensor([3, 0, 4, 1, 2])] + torch.arange(5.0)[:, None, None]
    torch.testing.assert_close(fields_to_rgb(shuffled), fields_to_rgb(field2), rtol=0, atol=1e-5)
    assert fields_to_rgb(torch.randn(1, 3, 3)).shape == (3, 3, 3)


# --------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise():
    field = torch.randn(2, 3, 4, 5, 6)
    coords = torch.rand(2, 7, 3) * 2 - 1
    with pytest.raises(DDMIError, match="layout"):
        query_fields([field], coords, "cube")
    with pytest.raises(DDMIError, match="layout"):
        num_planes("xz")
    with pytest.raises(DDMIError, match=r"\[B, N, 2\]"):
        query_fields([field[:, :1]], coords, "plane")  # D = 3 for a 2-D layout
    with pytest.raises(DDMIError, match="planes"):
        query_fields([field[:, :1]], coords, "triplane")  # P = 1 for a tri-plane
    with pytest.raises(DDMIError, match="5-D"):
        query_fields([field[0]], coords, "triplane")
    with pytest.raises(DDMIError, match="batch"):
        query_fields([field], coords[:1].expand(3, -1, -1), "triplane")
    with pytest.raises(DDMIError, match="batch"):
        query_fields([field, torch.randn(3, 3, 4, 5, 6)], coords, "triplane")
    bad = coords.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(DDMIError, match="NaN"):
        query_fields([field], bad, "triplane")
    bad[0, 0, 0] = float("inf")
    with pytest.raises(DDMIError, match="NaN or inf"):
        query_plane_fields(field, bad, "triplane")
    with pytest.raises(DDMIError, match="aggregate"):
        query_fields([field], coords, "triplane", aggregate="mean")
    with pytest.raises(DDMIError, match="scale_mask"):
        query_fields([field], coords, "triplane", scale_mask=[1, 0])
    with pytest.raises(DDMIError, match="scale_mask"):
        query_fields([field], coords, "triplane", scale_mask=[float("nan")])
    with pytest.raises(DDMIError, match="non-empty list"):
        query_fields([], coords, "triplane")
    with pytest.raises(DDMIError, match="non-empty list"):
        query_fields(field, coords, "triplane")
    with pytest.raises(DDMIError, match="coords"):
        query_fields([field], coords[0], "triplane")
    with pytest.raises(DDMIError, match="floating"):
        query_fields([field], coords.long(), "triplane")
    with pytest.raises(DDMIError, match="positive int"):
        pixel_centers(0)
    with pytest.raises(DDMIError, match="positive int"):
        image_coords(4, 2.5)
    with pytest.raises(DDMIError, match="at least one size"):
        grid_coords()
    with pytest.raises(DDMIError, match=r"\[C, H, W\]"):
        fields_to_rgb(field)


# --------------------------------------------------------------------------- devices, fused path


@pytest.mark.parametrize("layout", ALL_LAYOUTS)
def test_fused_query_equals_per_plane_calls_on_every_device(layout, device):
    gen = torch.Generator().manual_seed(5)
    p = num_planes(layout)
    fields = [torch.randn(3, p, 4, 6, 5, generator=gen), torch.randn(3, p, 2, 11, 9, generator=gen)]
    coords = random_coords(3, 29, coord_dim(layout), gen)
    fields_d = [f.to(device).requires_grad_() for f in fields]
    for aggregate in ("sum", "concat") + (("concat_prod",) if layout == "xyt" else ()):
        fused = query_fields(fields_d, coords.to(device), layout, aggregate=aggregate)
        loop = query_fields(fields_d, coords.to(device), layout, aggregate=aggregate, fused=False)
        for a, b, f in zip(fused, loop, fields):
            assert a.device.type == device
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
            want = naive_aggregate(naive_query(f.detach(), coords, layout), aggregate)  # plain loop, CPU
            assert np.abs(a.detach().cpu().double().numpy() - want).max() < 1e-5
    g_fused = torch.autograd.grad(sum(o.pow(2).sum() for o in query_fields(fields_d, coords.to(device), layout)),
                                  fields_d)
    g_loop = torch.autograd.grad(
        sum(o.pow(2).sum() for o in query_fields(fields_d, coords.to(device), layout, fused=False)), fields_d)
    for a, b in zip(g_fused, g_loop):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_per_plane_queries_switches_the_default_and_restores_it():
    from ddmi_lite import fields as fields_module

    gen = torch.Generator().manual_seed(6)
    field = [torch.randn(2, 3, 4, 5, 5, generator=gen)]
    coords = random_coords(2, 11, 3, gen)
    with fields_module.per_plane_queries():
        assert fields_module._FUSED_DEFAULT[0] is False
        inside = query_fields(field, coords, "triplane")
    assert fields_module._FUSED_DEFAULT[0] is True
    torch.testing.assert_close(inside[0], query_fields(field, coords, "triplane")[0], atol=1e-6, rtol=1e-6)
