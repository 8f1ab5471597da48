"""Rendering, evaluation and export of tri-plane radiance fields (DDMI §4.4; ddmi_method.md §4.2 NeRF).

* :func:`render_views`: whole images of latents z from given cameras, chunked; samples at the bin
  centres (deterministic), any resolution (the field is continuous: the intrinsics scale with it).
* :func:`reconstruct_views`: posterior-mean reconstructions of objects from their coloured cloud,
  rendered from their own cameras (the scoring of held-out views by PSNR and SSIM).
* :func:`turntable_poses`: novel views on a circle around the object (write them as an animated
  GIF with :func:`ddmi_lite.io.save_gif`).
* :func:`density_volume` / :func:`density_mesh`: σ on a dense grid over the cube and its
  marching-cubes surface at a density level (for k3d and a static picture).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import rearrange

from ddmi_lite.geometry import BOX
from ddmi_lite.device import module_device
from ddmi_lite import geometry as geo
from ddmi_lite.domains.nerf import ViewTensors, encoder_input, render_rays
from ddmi_lite.vae import encode_means
from ddmi_lite.errors import DDMIError
from ddmi_lite.rays import camera_rays, look_at
from ddmi_lite.vae import D2CVAE


def scale_intrinsics(intrinsics: torch.Tensor, from_size: int, to_size: int) -> torch.Tensor:
    """(fx, fy, cx, cy) of a square image of ``from_size`` pixels → the same camera at ``to_size`` pixels."""
    return torch.as_tensor(intrinsics, dtype=torch.float32) * (to_size / from_size)


@torch.no_grad()
def render_views(vae: D2CVAE, z: torch.Tensor, poses: torch.Tensor, intrinsics, size: int, *, n_samples: int = 32,
                 near: float = 0.9, far: float = 2.7, chunk: int = 4096) -> torch.Tensor:
    """Render latents ``z [n, 3, c, h, w]`` from cameras ``poses [n, V, 4, 4]`` (or shared ``[V, 4, 4]``)
    with ``intrinsics`` (fx, fy, cx, cy) ``[4]``, or ``[n, 4]`` one per object, for ``size × size`` images
    → ``[n, V, 3, size, size]`` in [0, 1] (CPU)."""
    device, out = module_device(vae), []
    intrinsics = torch.as_tensor(intrinsics, dtype=torch.float32)
    if intrinsics.shape not in ((4,), (len(z), 4)):
        raise DDMIError(f"intrinsics must be [4] or [n={len(z)}, 4], got {tuple(intrinsics.shape)}")
    if poses.ndim == 3:
        poses = poses[None].expand(len(z), -1, -1, -1)
    if poses.ndim != 4 or poses.shape[0] != len(z):
        raise DDMIError(f"poses must be [n={len(z)}, V, 4, 4] or [V, 4, 4], got {tuple(poses.shape)}")
    for i in range(len(z)):
        fields = vae.decode(z[i:i + 1].to(device))
        k = intrinsics[i] if intrinsics.ndim == 2 else intrinsics
        origins, dirs = camera_rays(poses[i].float(), k, size, size)  # [V, size², 3]
        o, d = origins.reshape(1, -1, 3).to(device), dirs.reshape(1, -1, 3).to(device)
        rgb = torch.cat([render_rays(vae, fields, o[:, s:s + chunk], d[:, s:s + chunk], n_samples=n_samples,
                                     near=near, far=far, perturb=False).rgb
                         for s in range(0, o.shape[1], chunk)], 1)  # [1, V·size², 3]
        out.append(rearrange(rgb[0].float().cpu(), "(v h w) c -> v c h w", h=size, w=size).clamp(0, 1))
    return torch.stack(out)


def reconstruct_views(vae: D2CVAE, data: ViewTensors, index, views=None, *, n_points: int = 1024, seed: int = 0,
                      n_samples: int = 32, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean reconstructions of objects ``index`` seen from their cameras ``views`` (default all):
    ``(predicted, true)``, each ``[n, v, 3, S, S]`` in [0, 1]. ``size`` renders at another resolution
    (the true views are then returned at the stored one)."""
    index = torch.as_tensor(index, dtype=torch.long)
    views = torch.arange(data.poses.shape[1]) if views is None else torch.as_tensor(views, dtype=torch.long)
    z, _ = encode_means(vae, encoder_input(data, index, n_points=n_points, seed=seed))
    size = size or data.size
    k = scale_intrinsics(data.object_intrinsics[index], data.size, size)  # [n, 4]: each object's own camera
    pred = render_views(vae, z, data.poses[index][:, views], k, size, n_samples=n_samples, near=data.near, far=data.far)
    return pred, data.views01(index, views)


def turntable_poses(frames: int = 24, *, radius: float = 1.8, elevation: float = 25.0) -> torch.Tensor:
    """``frames`` cameras [F, 4, 4] evenly on a circle of the sphere at ``elevation`` degrees, looking at the origin."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise DDMIError(f"frames={frames!r} must be a positive int")
    e = math.radians(elevation)
    eyes = [(radius * math.cos(e) * math.sin(a), radius * math.sin(e), radius * math.cos(e) * math.cos(a))
            for a in np.linspace(0.0, 2 * math.pi, frames, endpoint=False)]
    return torch.stack([look_at(eye) for eye in eyes])


@torch.no_grad()
def density_volume(vae: D2CVAE, z: torch.Tensor, resolution: int = 48) -> torch.Tensor:
    """σ = softplus(raw) of one latent ``[3, c, h, w]`` on :func:`ddmi_lite.geometry.dense_grid` (the cube
    [−0.55, 0.55]³, x slowest) → [R, R, R]. The density does not depend on the view direction."""
    device = module_device(vae)
    fields = vae.decode(z[None].to(device))

    def fn(points: torch.Tensor) -> torch.Tensor:  # object points [n, 3] → σ [n]
        coords = (points / BOX)[None]
        dirs = torch.zeros_like(coords)
        dirs[..., 2] = 1.0  # any direction: σ comes from the trunk alone
        return torch.nn.functional.softplus(vae.query(fields, coords, dirs=dirs)[0, :, 0])

    return geo.evaluate_occupancy(fn, resolution, device=device)


@torch.no_grad()
def density_mesh(vae: D2CVAE, z: torch.Tensor, *, resolution: int = 48, level: float = 10.0):
    """Marching cubes of the density of one latent at σ = ``level`` (per unit length; a layer of
    thickness δ then has opacity 1 − exp(−level·δ)), with each vertex coloured by the radiance seen
    along its normal → ``trimesh.Trimesh`` (empty when the density never reaches ``level``)."""
    mesh = geo.extract_mesh(density_volume(vae, z, resolution), level=level)
    if mesh.is_empty:
        return mesh
    device = module_device(vae)
    fields = vae.decode(z[None].to(device))
    verts = torch.tensor(np.array(mesh.vertices), dtype=torch.float32)
    normals = torch.tensor(np.array(mesh.vertex_normals), dtype=torch.float32)
    rgb = vae.query(fields, (verts / BOX)[None].to(device), dirs=(-normals)[None].to(device))[0, :, 1:]
    mesh.visual.vertex_colors = np.concatenate([(rgb.cpu().numpy() * 255).round().astype(np.uint8),
                                                np.full((len(verts), 1), 255, np.uint8)], 1)
    return mesh


__all__ = [
    "density_mesh",
    "density_volume",
    "reconstruct_views",
    "render_views",
    "scale_intrinsics",
    "turntable_poses",
]
