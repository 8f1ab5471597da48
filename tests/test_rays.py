"""Camera rays and volume rendering: analytic transmittance, pinhole geometry, poses on a sphere."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ddmi_lite.errors import DDMIError
from ddmi_lite.rays import (
    camera_rays,
    intrinsics_from_fov,
    look_at,
    poses_on_sphere,
    ray_points,
    stratified_samples,
    volume_render,
)


def _slab(density: float, a: float, b: float, n: int = 400, far: float = 4.0):
    """Samples at the centres of n equal intervals of [0, far]; density inside [a, b), 0 elsewhere."""
    delta = far / n
    t = ((torch.arange(n, dtype=torch.float64) + 0.5) * delta)[None]         # [1,n]
    inside = (t >= a) & (t < b)
    return t, inside, delta


@pytest.mark.parametrize("activation", ["none", "softplus", "relu"])
def test_constant_density_slab_matches_analytic_transmittance(activation):
    density, colour = 3.0, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    t, inside, delta = _slab(density, 1.0, 1.5)
    length = inside.sum().item() * delta                                     # the slab's sampled thickness
    raw = {"none": density, "relu": density, "softplus": math.log(math.expm1(density))}[activation]
    off = {"none": 0.0, "relu": -5.0, "softplus": -60.0}[activation]       # ~zero density outside
    sigma = torch.where(inside, torch.tensor(raw, dtype=torch.float64), torch.tensor(off, dtype=torch.float64))
    rgb = torch.where(inside[..., None], colour, torch.zeros(3, dtype=torch.float64))
    out = volume_render(sigma, rgb, t, density_activation=activation)
    transmittance = math.exp(-density * length)                             # T = exp(−σ·L)
    assert out.acc.item() == pytest.approx(1 - transmittance, abs=1e-9)
    expected = (1 - transmittance) * colour + transmittance * 1.0            # white behind the slab
    torch.testing.assert_close(out.rgb[0], expected, atol=1e-9, rtol=0)
    # black background: only the slab's own colour
    black = volume_render(sigma, rgb, t, density_activation=activation, white_background=False)
    torch.testing.assert_close(black.rgb[0], (1 - transmittance) * colour, atol=1e-9, rtol=0)
    # expected depth of an exponential attenuation inside the slab: Σ w_i t_i with w_i = T_i α_i
    t_in = t[inside]
    T_i = torch.exp(-density * delta * torch.arange(len(t_in), dtype=torch.float64))
    depth = (T_i * (1 - math.exp(-density * delta)) * t_in).sum()
    assert out.depth.item() == pytest.approx(depth.item(), abs=1e-9)


def test_weights_are_a_probability_split_of_the_ray():
    gen = torch.Generator().manual_seed(0)
    sigma = torch.randn(50, 64, generator=gen) * 3
    t = torch.sort(torch.rand(50, 64, generator=gen) * 4 + 1, -1).values
    out = volume_render(sigma, torch.rand(50, 64, 3, generator=gen), t)
    assert bool((out.weights >= 0).all()) and bool((out.acc <= 1 + 1e-6).all())
    torch.testing.assert_close(out.acc, out.weights.sum(-1))
    # the transmittance after the ray is the product of (1 − α_i): 1 − acc
    alpha = 1 - torch.exp(-F.softplus(sigma) * torch.cat([t.diff(dim=-1), t.diff(dim=-1)[:, -1:]], -1))
    torch.testing.assert_close(1 - out.acc, torch.prod(1 - alpha, -1), atol=1e-5, rtol=1e-5)


def test_opaque_wall_gives_its_depth_and_colour():
    t = stratified_samples(1.0, 3.0, 256, n_rays=4, perturb=False)
    sigma = torch.where(t > 2.0, 1e4, -1e4)
    out = volume_render(sigma, torch.full((4, 256, 3), 0.25), t)
    wall = t[t > 2.0].min().item()
    torch.testing.assert_close(out.depth, torch.full((4,), wall), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.rgb, torch.full((4, 3), 0.25), atol=1e-4, rtol=0)


def test_stratified_samples_fall_one_per_bin():
    gen = torch.Generator().manual_seed(1)
    near, far, n = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.5, 4.0, 2.5]), 16
    t = stratified_samples(near, far, n, perturb=True, generator=gen)
    assert t.shape == (3, n)
    k = torch.floor((t - near[:, None]) / (far - near)[:, None] * n)
    torch.testing.assert_close(k, torch.arange(n, dtype=t.dtype).expand(3, n))
    mid = stratified_samples(near, far, n, perturb=False)
    torch.testing.assert_close(mid, near[:, None] + (far - near)[:, None] * (torch.arange(n) + 0.5) / n)
    with pytest.raises(DDMIError, match="n_rays"):
        stratified_samples(1.0, 2.0, 8)


def test_centre_ray_goes_through_the_look_at_target():
    eye, target = torch.tensor([1.0, 2.0, -3.0]), torch.tensor([0.3, -0.2, 0.5])
    pose = look_at(eye, target, dtype=torch.float64)
    size = 7  # odd: the central pixel's centre is the principal point
    origins, dirs = camera_rays(pose, intrinsics_from_fov(0.8, size, size), size, size)
    centre = (size // 2) * size + size // 2
    torch.testing.assert_close(origins[centre], eye.double())
    torch.testing.assert_close(dirs[centre], F.normalize(target - eye, dim=0).double())
    # image "up" (row 0) is world up: the top-centre ray points higher than the centre ray
    top = size // 2
    assert dirs[top, 1] > dirs[centre, 1]


def test_projection_round_trip_matches_pixel_rays():
    """Project world points with K·[Rᵀ | −Rᵀt] (OpenCV); the ray of the pixel they land in passes by them."""
    pose = look_at([0.4, 0.6, 2.0], [0.0, 0.1, 0.0], dtype=torch.float64)
    h, w = 6, 9
    fx, fy, cx, cy = 7.0, 8.0, 4.2, 3.1
    origins, dirs = camera_rays(pose, (fx, fy, cx, cy), h, w)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    depth = torch.linspace(1.0, 3.0, h * w, dtype=torch.float64)
    points = ray_points(origins, dirs, depth[:, None])[:, 0]               # [H·W,3] on each pixel's ray
    cam = (points - pose[:3, 3]) @ pose[:3, :3]                             # world → camera: Rᵀ(p − t)
    u, v = fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy
    torch.testing.assert_close(u, cols.reshape(-1).double() + 0.5)
    torch.testing.assert_close(v, rows.reshape(-1).double() + 0.5)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(h * w, dtype=torch.float64))


def test_batched_rays_match_single_rays():
    poses = poses_on_sphere(3, 2.0, seed=4)
    k = torch.tensor([[5.0, 5.0, 4.0, 4.0], [6.0, 6.0, 4.0, 4.0], [7.0, 7.5, 3.5, 4.5]])
    o, d = camera_rays(poses, k, 8, 8)
    assert o.shape == d.shape == (3, 64, 3)
    for b in range(3):
        ob, db = camera_rays(poses[b], k[b], 8, 8)
        torch.testing.assert_close(o[b], ob)
        torch.testing.assert_close(d[b], db)


def test_poses_on_sphere_look_at_the_origin():
    radius, (lo, hi) = 2.5, (-10.0, 60.0)
    poses = poses_on_sphere(64, radius, (lo, hi), seed=3, dtype=torch.float64)
    eye, rot = poses[:, :3, 3], poses[:, :3, :3]
    torch.testing.assert_close(eye.norm(dim=1), torch.full((64,), radius, dtype=torch.float64))
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(rot[:, :, 2], -eye / radius)               # forward = towards the origin
    assert bool((rot[:, 1, 0].abs() < 1e-12).all())                        # image x axis is horizontal
    assert bool((rot[:, 1, 1] < 0).all())                                  # image y (down) points down
    elevation = torch.rad2deg(torch.asin(eye[:, 1] / radius))
    assert bool(((elevation >= lo - 1e-9) & (elevation <= hi + 1e-9)).all())
    torch.testing.assert_close(poses, poses_on_sphere(64, radius, (lo, hi), seed=3, dtype=torch.float64))


def test_bad_arguments_raise():
    with pytest.raises(DDMIError, match="parallel"):
        look_at([0, 2, 0], [0, 0, 0])
    with pytest.raises(DDMIError, match="density_activation"):
        volume_render(torch.zeros(2, 3), torch.zeros(2, 3, 3), torch.ones(2, 3), density_activation="exp")
    with pytest.raises(DDMIError, match="pose"):
        camera_rays(torch.eye(3), (1, 1, 1, 1), 4, 4)
    with pytest.raises(DDMIError, match="elevation"):
        poses_on_sphere(4, 2.0, (-95, 10))
