"""Camera rays and volume rendering: the geometry of the NeRF data and domain (reference §1.7, §1.9).

Camera convention: **OpenCV, as in SRN** (Sitzmann et al. 2019, the SRN-cars files). A pose is
a 4×4 *camera-to-world* matrix [R | t]: the columns of R are the camera's axes in world
coordinates — x to the right of the image, y *down* the image, z forward (the viewing
direction) — and t is the camera centre. (pixelNeRF converts the same files to OpenGL by
right-multiplying with diag(1, −1, −1, 1); nothing here does.) World y is up.

Pixels: pixel (row i, column j) covers [j, j+1) × [i, i+1) in continuous image coordinates
and its ray passes through its centre (j + ½, i + ½):

    d_cam = ((j + ½ − cx) / fx, (i + ½ − cy) / fy, 1),   d = R·d_cam / |R·d_cam|,   o = t.

(SRN's own code uses the integer corner (j, i) instead, a half-pixel shift.) Directions are
unit vectors, so a sample's ``t`` is its Euclidean distance from the camera centre and
``near`` / ``far`` are distances.

Volume rendering (NeRF quadrature; reference §1.7 head: α = 1 − exp(−softplus(σ)·δ)):

    δ_i = t_{i+1} − t_i,   α_i = 1 − exp(−ρ(σ_i)·δ_i),   T_i = exp(−Σ_{j<i} ρ(σ_j)·δ_j),
    w_i = T_i·α_i,   C = Σ_i w_i·c_i + (1 − Σ_i w_i)·1 (white background),   D = Σ_i w_i·t_i,

with the density activation ρ = softplus (reference), relu, or the identity ("none": σ is
already a non-negative density). The last interval δ_{S−1} repeats the one before it unless
``last_delta`` is given (nerf-pytorch uses 1e10, which makes the last sample opaque and hides
the background).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ddmi_lite.errors import DDMIError

DENSITY_ACTIVATIONS = ("softplus", "relu", "none")


def _tensor(x, *, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            x = x.to(dtype or torch.get_default_dtype())
        return x.to(device=device, dtype=dtype or x.dtype)
    return torch.as_tensor(x, dtype=dtype or torch.get_default_dtype(), device=device)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DDMIError(f"{name}={value!r} must be a positive int")
    return value


# ----------------------------------------------------------------------------- cameras

def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), *, dtype=torch.float32) -> torch.Tensor:
    """Camera-to-world pose [4,4] (OpenCV) of a camera at ``eye`` looking at ``target``.

    z = (target − eye)/|·| (forward), x = z × up / |·| (right), y = z × x (down in the image,
    so ``up`` appears at the top). Raises when ``eye == target`` or the view is parallel to ``up``.
    """
    eye, target, up = (_tensor(v, dtype=dtype).reshape(3) for v in (eye, target, up))
    forward = target - eye
    if float(forward.norm()) < 1e-12:
        raise DDMIError("look_at: eye and target coincide; the viewing direction is undefined")
    z = forward / forward.norm()
    x = torch.linalg.cross(z, up)
    if float(x.norm()) < 1e-9 * max(float(up.norm()), 1e-300):
        raise DDMIError(f"look_at: the viewing direction {z.tolist()} is parallel to up={up.tolist()}; "
                        "choose another up vector")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    pose = torch.eye(4, dtype=dtype)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def poses_on_sphere(n: int, radius: float = 2.0, elevation=(-10.0, 60.0), *, seed: int = 0,
                    dtype=torch.float32) -> torch.Tensor:
    """``n`` cameras [n,4,4] on a sphere of ``radius`` around the origin, all looking at it.

    Azimuth a ~ U[0, 2π); elevation e (degrees above the xz-plane, within ``elevation``) with
    sin e uniform, so cameras are uniform by area on that band. Eye = r·(cos e·sin a, sin e, cos e·cos a).
    """
    _check_size("n", n)
    lo, hi = (float(v) for v in elevation)
    if not -90.0 < lo <= hi < 90.0:
        raise DDMIError(f"elevation={elevation!r} must be (lo, hi) degrees with −90 < lo ≤ hi < 90")
    if not radius > 0:
        raise DDMIError(f"radius={radius!r} must be > 0")
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    azimuth = 2 * math.pi * u[:, 0]
    s_lo, s_hi = math.sin(math.radians(lo)), math.sin(math.radians(hi))
    elev = torch.asin(s_lo + (s_hi - s_lo) * u[:, 1])
    eyes = radius * torch.stack([elev.cos() * azimuth.sin(), elev.sin(), elev.cos() * azimuth.cos()], 1)  # [n,3]
    return torch.stack([look_at(e, dtype=torch.float64) for e in eyes]).to(dtype)  # [n,4,4]


def intrinsics_from_fov(fov: float, height: int, width: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a square-pixel camera whose horizontal field of view is ``fov`` radians."""
    if not 0 < fov < math.pi:
        raise DDMIError(f"fov={fov!r} must be in (0, π) radians")
    f = (width / 2.0) / math.tan(fov / 2.0)
    return f, f, width / 2.0, height / 2.0


def camera_rays(pose, intrinsics, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres of an image (row-major: index = i·W + j).

    pose: [4,4] or [B,4,4] camera-to-world (OpenCV); intrinsics: (fx, fy, cx, cy) as a sequence,
    a [4] or a [B,4] tensor, in pixels of this ``height × width`` image.
    Returns origins and unit directions, each [H·W,3] (or [B,H·W,3]).
    """
    _check_size("height", height), _check_size("width", width)
    pose = _tensor(pose)
    if pose.shape[-2:] != (4, 4) or pose.ndim not in (2, 3):
        raise DDMIError(f"pose has shape {tuple(pose.shape)}; expected [4,4] or [B,4,4] camera-to-world")
    k = _tensor(intrinsics, dtype=pose.dtype, device=pose.device)
    if k.shape[-1] != 4 or k.ndim > pose.ndim - 1:
        raise DDMIError(f"intrinsics has shape {tuple(k.shape)}; expected (fx, fy, cx, cy) as [4] or [B,4]")
    batched = pose.ndim == 3
    pose = pose if batched else pose[None]                                   # [B,4,4]
    k = k.expand(pose.shape[0], 4) if k.ndim == 1 else k                     # [B,4]
    i, j = torch.meshgrid(torch.arange(height, dtype=pose.dtype, device=pose.device) + 0.5,
                          torch.arange(width, dtype=pose.dtype, device=pose.device) + 0.5, indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)                                      # [H·W]
    fx, fy, cx, cy = (k[:, c, None] for c in range(4))                       # [B,1] each
    x, y = (j - cx) / fx, (i - cy) / fy                                      # [B,H·W] each
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)                      # [B,H·W,3]
    dirs = F.normalize(d_cam @ pose[:, :3, :3].transpose(1, 2), dim=-1)      # [B,H·W,3] = R·d_cam
    origins = pose[:, None, :3, 3].expand_as(dirs)                            # [B,H·W,3]
    return (origins, dirs) if batched else (origins[0], dirs[0])


# ----------------------------------------------------------------------------- sampling along rays

def stratified_samples(near, far, n: int, *, n_rays: int | None = None, perturb: bool = True,
                       generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """Distances t [R,n]: one sample in each of n equal bins of [near, far].

    t_i = near + (far − near)·(i + u_i)/n with u_i ~ U[0,1) when ``perturb``, else u_i = ½ (bin
    centres). ``near``/``far`` are floats or [R] tensors; with two floats give ``n_rays``.
    """
    _check_size("n", n)
    near_t, far_t = _tensor(near, dtype=dtype, device=device), _tensor(far, dtype=dtype, device=device)
    if near_t.ndim == 0 and far_t.ndim == 0:
        if n_rays is None:
            raise DDMIError("stratified_samples: near and far are scalars, so n_rays is needed")
        _check_size("n_rays", n_rays)
        shape = (n_rays,)
    else:
        shape = torch.broadcast_shapes(near_t.shape, far_t.shape)
    if bool((far_t <= near_t).any()):
        raise DDMIError(f"stratified_samples: far must exceed near (near={near}, far={far})")
    near_t, far_t = near_t.expand(shape)[..., None], far_t.expand(shape)[..., None]  # [R,1]
    bins = torch.arange(n, dtype=near_t.dtype, device=near_t.device)               # [n]
    if perturb:
        u = torch.rand(*shape, n, generator=generator, dtype=near_t.dtype,
                       device=generator.device if generator is not None else near_t.device).to(near_t.device)
    else:
        u = torch.full((*shape, n), 0.5, dtype=near_t.dtype, device=near_t.device)
    return near_t + (far_t - near_t) * (bins + u) / n                               # [R,n]


def ray_points(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Sample positions o + t·d: [...,R,3], [...,R,3], [...,R,S] → [...,R,S,3]."""
    return origins[..., None, :] + t[..., None] * dirs[..., None, :]


# ----------------------------------------------------------------------------- volume rendering

class Rendered(NamedTuple):
    rgb: torch.Tensor       # [R,3]
    depth: torch.Tensor     # [R]   expected distance Σ w_i t_i (not normalised by acc)
    acc: torch.Tensor       # [R]   opacity Σ w_i
    weights: torch.Tensor   # [R,S]


def volume_render(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, *, white_background: bool = True,
                  density_activation: str = "softplus", last_delta: float | None = None) -> Rendered:
    """Composite samples along each ray (quadrature in the module docstring).

    sigma [R,S] raw density (``density_activation``: "softplus" as in the reference head, "relu",
    or "none" when sigma is already ≥ 0); rgb [R,S,3] colours in [0,1]; t [R,S] increasing distances.
    """
    if density_activation not in DENSITY_ACTIVATIONS:
        raise DDMIError(f"density_activation={density_activation!r} must be one of {DENSITY_ACTIVATIONS}")
    if sigma.ndim < 1 or t.shape != sigma.shape or rgb.shape != (*sigma.shape, 3):
        raise DDMIError(f"volume_render: sigma {tuple(sigma.shape)}, rgb {tuple(rgb.shape)}, t {tuple(t.shape)}; "
                        "expected [R,S], [R,S,3], [R,S]")
    s = sigma.shape[-1]
    if s < 2 and last_delta is None:
        raise DDMIError("volume_render: one sample per ray needs an explicit last_delta")
    density = {"softplus": F.softplus, "relu": F.relu, "none": lambda x: x}[density_activation](sigma)
    delta = t[..., 1:] - t[..., :-1]                                              # [R,S−1]
    last = delta[..., -1:] if last_delta is None else torch.full_like(t[..., :1], float(last_delta))
    delta = torch.cat([delta, last], -1)                                          # [R,S]
    tau = density * delta                                                         # optical depth per interval
    alpha = 1.0 - torch.exp(-tau)                                                 # α_i = 1 − exp(−ρ(σ_i)δ_i)
    transmittance = torch.exp(-(torch.cumsum(tau, -1) - tau))                     # T_i = exp(−Σ_{j<i} ρδ)
    weights = transmittance * alpha                                               # [R,S]
    acc = weights.sum(-1)                                                         # [R]
    color = (weights[..., None] * rgb).sum(-2)                                    # [R,3]
    if white_background:
        color = color + (1.0 - acc)[..., None]
    return Rendered(color, (weights * t).sum(-1), acc, weights)
