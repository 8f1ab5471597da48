"""Geometry of the shape domain: dense grids, marching cubes, mesh files and pictures (reference §1.7, §4.2).

* :func:`dense_grid` — ONet's ``make_3d_grid`` over the unit cube with padding 0.1: every axis is
  ``linspace(−0.55, 0.55, R)``, flattened in ``ij`` order (x slowest), so ``values.reshape(R,R,R)``
  is indexed ``[i_x, i_y, i_z]``.
* :func:`evaluate_occupancy` — any ``fn(points [N,3]) → [N]`` (or ``[k, N]`` for k fields) over
  that grid, one chunk of points at a time (memory is bounded by ``chunk``, not by R³): the one
  dense-grid path of the library (shape occupancy, NeRF density, the benchmark's grid).
* :func:`extract_mesh` — marching cubes at occupancy probability 0.2 (logit ln(0.2/0.8) ≈ −1.386),
  the reference's threshold (§1.7). The volume is padded with one layer below the level, as ONet
  does, so a shape touching the box still gives a closed mesh.
* :func:`mesh_contains` — inside test by the generalised winding number
  w(p) = Σ_triangles Ω(p) / 4π, with the solid angle of triangle (a, b, c) seen from p
  Ω = 2·atan2(a·(b×c), |a||b||c| + (a·b)|c| + (b·c)|a| + (c·a)|b|)  (Van Oosterom & Strackee).
  w = 1 inside a closed mesh and 0 outside; for overlapping closed parts w counts the parts that
  contain p, so w > ½ is "inside the union" — where ray parity (``trimesh.contains``, which
  also needs ``rtree``) would call a point inside two parts "outside".
* :func:`export_mesh`, :func:`sample_surface` (the evaluation samples 2,048 points per mesh, §4.2).
* :func:`render_mesh_views`, :func:`render_meshes_grid` — pictures without OpenGL: a small numpy
  z-buffer rasteriser (orthographic, Lambert shading ``ambient + diffuse·|n·l|``), laid out with
  matplotlib. matplotlib's own ``Poly3DCollection`` sorts polygons by mean depth (painter's
  algorithm), which draws a chair's back legs through its seat; a z-buffer does not.
  :func:`k3d_scene` gives interactive views in notebooks.

Coordinates are ONet's: y is up, objects face +z.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import torch
import trimesh
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.measure import marching_cubes

from ddmi_lite.device import resolve_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write

BOX = 0.55                       # half side of the padded cube [-0.55, 0.55]³ the fields cover (ONet: [-0.5, 0.5]³ + 0.1)

THRESHOLD = 0.2                  # occupancy probability of the surface (reference §1.7)
MESH_FORMATS = (".ply", ".glb", ".obj", ".stl", ".off")


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise DDMIError(f"resolution={resolution!r} must be an int ≥ 2")
    return int(resolution)


def _axis(resolution: int, padding: float) -> torch.Tensor:
    if not 0.0 <= padding < 10.0:
        raise DDMIError(f"padding={padding!r} must be in [0, 10)")
    half = 0.5 + padding / 2
    return torch.linspace(-half, half, resolution)


def dense_grid(resolution: int, *, padding: float = 0.1) -> torch.Tensor:
    """Grid points over [−(0.5 + padding/2), 0.5 + padding/2]³ → [R³, 3] float32, x slowest."""
    axis = _axis(_check_resolution(resolution), padding)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)  # [R,R,R,3]
    return grid.reshape(-1, 3)  # [R³,3]


def evaluate_occupancy(fn, resolution: int, *, padding: float = 0.1, chunk: int = 65536,
                       device: str | torch.device = "cpu", out_device: str | torch.device = "cpu",
                       batch: bool = False) -> torch.Tensor:
    """Evaluate ``fn(points [n,3] tensor on device) → [n]`` (logits, probabilities or booleans;
    a tensor or a numpy array) over :func:`dense_grid` in chunks of at most ``chunk`` points →
    float32 [R,R,R] on ``out_device``. The points of a chunk are built on ``device``, so the
    working memory is O(chunk), not O(R³). ``padding=1`` gives the corner-aligned grid of [−1, 1]³.

    With ``batch=True``, ``fn`` reads k fields at the same points, ``[k, n]``, → [k,R,R,R]."""
    r = _check_resolution(resolution)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise DDMIError(f"chunk={chunk!r} must be a positive int")
    device, out_device = resolve_device(device), resolve_device(out_device)
    axis = _axis(r, padding).to(device)
    total = r ** 3
    out = None  # [k, R³], allocated once the first chunk tells k
    with torch.no_grad():
        for start in range(0, total, chunk):
            idx = torch.arange(start, min(start + chunk, total), device=device)
            i, j, k = idx // (r * r), (idx // r) % r, idx % r  # flat index → (x, y, z) indices
            points = torch.stack([axis[i], axis[j], axis[k]], dim=-1)  # [n,3]
            values = fn(points)
            values = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values)
            values = values.detach().to(out_device, torch.float32)
            if batch and (values.ndim != 2 or values.shape[1] != len(idx)):
                raise DDMIError(f"fn returned values of shape {tuple(values.shape)} for {len(idx)} points; "
                                f"batch=True expects [k, {len(idx)}]")
            if not batch and values.numel() != len(idx):
                raise DDMIError(f"fn returned {values.numel()} values for {len(idx)} points; expected one per point")
            values = values.reshape(-1, len(idx))  # [k, n] ([n] and [n,1] give k = 1)
            if out is None:
                out = torch.empty(values.shape[0], total, dtype=torch.float32, device=out_device)
            elif values.shape[0] != out.shape[0]:
                raise DDMIError(f"fn returned {values.shape[0]} fields for one chunk, {out.shape[0]} for the first")
            out[:, start:start + len(idx)] = values
    return out.reshape(-1, r, r, r) if batch else out.reshape(r, r, r)  # [k,R,R,R] or [R,R,R]


def empty_mesh():
    """A mesh with no vertices (what :func:`extract_mesh` returns when nothing is inside)."""
    return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)


def extract_mesh(volume, *, threshold: float = THRESHOLD, logits: bool = False, level: float | None = None,
                 box: float = BOX):
    """Marching cubes of a [R,R,R] volume on the grid of :func:`dense_grid` (half side ``box``).

    The surface is where the volume equals ``level``; by default ``level = threshold`` for
    probabilities, or ``ln(t / (1 − t))`` when ``logits=True``. Inside = values above the level.
    Returns a ``trimesh.Trimesh`` with outward faces; ``mesh.is_empty`` when nothing is inside.
    """
    vol = np.asarray(volume.detach().cpu() if torch.is_tensor(volume) else volume, dtype=np.float32)
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise DDMIError(f"volume has shape {vol.shape}; expected [R, R, R] with R ≥ 2")
    if not np.isfinite(vol).all():
        raise DDMIError("volume contains NaN or inf values")
    if level is None:
        if not 0.0 < threshold < 1.0:
            raise DDMIError(f"threshold={threshold!r} must be a probability in (0, 1)")
        level = math.log(threshold / (1 - threshold)) if logits else threshold
    if not (vol > level).any():
        return empty_mesh()
    spacing = tuple(2 * box / (n - 1) for n in vol.shape)
    padded = np.pad(vol, 1, constant_values=level - 1e6)  # as ONet: closes the mesh on the box's faces
    verts, faces, _, _ = marching_cubes(padded, level=level, spacing=spacing, allow_degenerate=False)
    verts = verts - np.asarray(spacing) - box  # padded index i' ↦ −box + (i' − 1)·h
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    if mesh.volume < 0:  # make the faces point outwards
        mesh.invert()
    return mesh


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("nfi,nfi->nf", x, y)  # row-wise dot products [n,F,3] → [n,F]


def winding_number(mesh, points, *, budget: int = 1 << 21) -> np.ndarray:
    """Generalised winding number of [N,3] points w.r.t. a triangle mesh → float64 [N]."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise DDMIError(f"points has shape {p.shape}; expected [N, 3]")
    tri = np.asarray(mesh.triangles, dtype=np.float64)  # [F,3,3]
    out = np.zeros(len(p))
    if len(tri) == 0:
        return out
    step = max(1, budget // len(tri))
    for s in range(0, len(p), step):
        a, b, c = (tri[None, :, v, :] - p[s:s + step, None, :] for v in range(3))  # [n,F,3] each
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = _dot(a, np.cross(b, c))
        denom = la * lb * lc + _dot(a, b) * lc + _dot(b, c) * la + _dot(c, a) * lb
        out[s:s + step] = np.arctan2(det, denom).sum(axis=1) / (2 * math.pi)  # Σ Ω / 4π, Ω = 2·atan2
    return out


def mesh_contains(mesh, points) -> np.ndarray:
    """Inside test for closed (possibly overlapping) meshes: winding number > ½ → bool [N]."""
    return winding_number(mesh, points) > 0.5


def export_meshes(meshes, folder: str | os.PathLike, stem: str, *, formats=(".ply", ".glb"), limit: int = 4) -> list[Path]:
    """Write the first ``limit`` non-empty ``meshes`` as ``folder/<stem>_<i><format>`` for every format
    (PLY for MeshLab / Blender, GLB for web viewers); empty meshes are skipped. Returns the paths."""
    paths = []
    for i, mesh in enumerate([m for m in meshes if not m.is_empty][:limit]):
        paths += [export_mesh(mesh, Path(folder) / f"{stem}_{i}{fmt}") for fmt in formats]
    return paths


def export_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` atomically; the format comes from the suffix (one of ``MESH_FORMATS``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise DDMIError(f"mesh path {path} has suffix {suffix!r}; expected one of {MESH_FORMATS}")
    if mesh.is_empty:
        raise DDMIError(f"cannot write an empty mesh to {path} (nothing was inside the level set)")
    data = mesh.export(file_type=suffix[1:])
    atomic_write(path, data.encode() if isinstance(data, str) else data, durable=False)
    return path


def sample_surface(mesh, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` points uniform on the mesh surface (area-weighted) → float32 [n, 3]."""
    if mesh.is_empty or len(mesh.faces) == 0:
        raise DDMIError("cannot sample points from an empty mesh")
    points, _ = trimesh.sample.sample_surface(mesh, int(n), seed=seed)
    return np.asarray(points, dtype=np.float32)


# ----------------------------------------------------------------------------- pictures

def _camera(elevation: float, azimuth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthographic camera (eye, right, up) in y-up coordinates; azimuth 0 looks at the front (+z)."""
    e, a = math.radians(elevation), math.radians(azimuth)
    eye = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])  # towards the camera
    right = np.cross([0.0, 1.0, 0.0], eye)
    right /= np.linalg.norm(right) + 1e-12
    return eye, right, np.cross(eye, right)


def _barycentric_grid(k: int) -> np.ndarray:
    """Barycentric coordinates (i/k, j/k, 1 − i/k − j/k), i + j ≤ k → [(k+1)(k+2)/2, 3]."""
    i, j = np.triu_indices(k + 1)
    i, j = j - i, i  # all pairs with i + j ≤ k
    return np.stack([i / k, j / k, 1 - (i + j) / k], axis=1) if k > 0 else np.array([[1 / 3, 1 / 3, 1 / 3]])


def _rasterize(mesh, *, elevation: float, azimuth: float, size: int, radius: float, color,
               supersample: int = 2, max_samples: int = 1 << 21) -> np.ndarray:
    """Z-buffered picture of a mesh → uint8 [size, size, 3].

    Every triangle is covered by a barycentric grid of samples spaced ≤ 0.75 px; each pixel keeps
    its nearest sample (a z-buffer, so occlusion is exact, unlike painter's sorting); shading is
    Lambert with interpolated vertex normals, ``0.25 + 0.75·|n·l|`` (two-sided), on white.
    """
    px = size * supersample
    image = np.ones((px * px, 3))
    if mesh is not None and not mesh.is_empty and len(mesh.faces):
        eye, right, up = _camera(elevation, azimuth)
        light = eye + 0.7 * up + 0.35 * right
        light /= np.linalg.norm(light)
        v = np.asarray(mesh.vertices, dtype=np.float64)
        screen = np.stack([(v @ right / radius + 1) * px / 2, (1 - v @ up / radius) * px / 2], 1)  # [V,2] pixels
        depth, lum = v @ eye, np.abs(np.asarray(mesh.vertex_normals) @ light)  # [V] larger = nearer
        faces = np.asarray(mesh.faces)
        tri = screen[faces]  # [F,3,2]
        longest = np.linalg.norm(tri - tri[:, [1, 2, 0]], axis=-1).max(1)
        ks = np.clip(np.ceil(longest / 0.75), 1, 4096).astype(int)
        best_d, best_l = np.full(px * px, -np.inf), np.zeros(px * px)
        for k in np.unique(ks):
            bary = _barycentric_grid(int(k))  # [B,3]
            sel = np.flatnonzero(ks == k)
            for chunk in np.array_split(sel, max(1, len(sel) * len(bary) // max_samples + 1)):
                f = faces[chunk]  # [n,3]
                xy = np.einsum("bv,nvc->nbc", bary, screen[f]).reshape(-1, 2)  # [n·B,2]
                d = (bary @ depth[f].T).T.reshape(-1)
                lum_s = (bary @ lum[f].T).T.reshape(-1)
                ix, iy = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
                ok = (ix >= 0) & (ix < px) & (iy >= 0) & (iy < px)
                pix, d, lum_s = iy[ok] * px + ix[ok], d[ok], lum_s[ok]
                order = np.lexsort((-d, pix))  # per pixel, nearest first
                pix, first = np.unique(pix[order], return_index=True)
                d, lum_s = d[order][first], lum_s[order][first]
                nearer = d > best_d[pix]
                best_d[pix[nearer]], best_l[pix[nearer]] = d[nearer], lum_s[nearer]
        hit = np.isfinite(best_d)
        image[hit] = (0.25 + 0.75 * np.clip(best_l[hit], 0, 1))[:, None] * np.asarray(color)[None, :]
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))  # box-filter antialiasing
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def render_mesh_views(mesh, *, views: int = 4, size: int = 256, elevation: float = 20.0,
                      azimuth: float = 30.0, radius: float = 0.75, color=(0.55, 0.7, 0.9)) -> np.ndarray:
    """Pictures from ``views`` azimuths evenly around the object → uint8 [views, size, size, 3].

    Orthographic; ``azimuth`` 0 looks at the front (+z), 30 from the front-right; ``radius`` is
    the half width of the picture in object units (objects fit [-0.5, 0.5]³). An empty mesh
    gives white pictures.
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise DDMIError(f"views={views!r} must be a positive int")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise DDMIError(f"size={size!r} must be an int ≥ 8")
    return np.stack([_rasterize(mesh, elevation=elevation, azimuth=azimuth + 360.0 * v / views, size=size,
                                radius=radius, color=color) for v in range(views)])  # [V,H,W,3]


def render_meshes_grid(meshes, path: str | os.PathLike, *, titles=None, ncols: int = 4, size: int = 256,
                       elevation: float = 20.0, azimuth: float = 30.0, radius: float = 0.75,
                       color=(0.55, 0.7, 0.9), title_width: int = 36) -> Path:
    """One view of each mesh in a grid, with wrapped titles, saved as a PNG (atomically)."""

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DDMIError(f"grid path {path} must end with .png")
    meshes = list(meshes)
    if not meshes:
        raise DDMIError("meshes is empty; expected at least one mesh")
    if titles is not None and len(titles) != len(meshes):
        raise DDMIError(f"got {len(titles)} titles for {len(meshes)} meshes")
    ncols = max(1, min(int(ncols), len(meshes)))
    nrows = math.ceil(len(meshes) / ncols)
    cell, title_h = size / 100, (0.4 if titles is not None else 0.0)  # inches
    fig = Figure(figsize=(ncols * cell, nrows * (cell + title_h)), dpi=100)
    canvas = FigureCanvasAgg(fig)
    for i, mesh in enumerate(meshes):
        row, col = divmod(i, ncols)
        bottom = 1 - (row + 1) * (cell + title_h) / (nrows * (cell + title_h))
        ax = fig.add_axes((col / ncols, bottom, 1 / ncols, cell / (nrows * (cell + title_h))))
        ax.imshow(_rasterize(mesh, elevation=elevation, azimuth=azimuth, size=size, radius=radius, color=color))
        ax.set_axis_off()
        if mesh is None or mesh.is_empty:
            ax.text(size / 2, size / 2, "(empty)", ha="center", va="center", color="0.5")
        if titles is not None:
            ax.set_title(textwrap.fill(str(titles[i]), title_width), fontsize=7, pad=2)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    atomic_write(path, buffer.getvalue(), durable=False)
    return path


def k3d_scene(items, *, colors=None, spacing: float = 1.2, point_size: float = 0.015):
    """An interactive k3d plot of meshes (anything with ``vertices``/``faces``) and point clouds
    ([N,3] arrays or tensors), laid out side by side along x; y is up."""
    try:
        import k3d  # optional ("notebooks" extra): only the interactive view needs it
    except ImportError as err:  # pragma: no cover - declared in the notebooks extra
        raise DDMIError("interactive 3D views need the PyPI package 'k3d' (pip install k3d)") from err
    if hasattr(items, "vertices") or torch.is_tensor(items) or isinstance(items, np.ndarray):
        items = [items]
    palette = colors or [0x4C72B0, 0xDD8452, 0x55A868, 0xC44E52, 0x8172B3, 0x937860]
    plot = k3d.plot(grid_visible=False, camera_up_axis="y")
    for i, item in enumerate(items):
        offset = np.array([i * spacing, 0.0, 0.0], dtype=np.float32)
        color = palette[i % len(palette)]
        if hasattr(item, "vertices") and hasattr(item, "faces"):
            plot += k3d.mesh(np.asarray(item.vertices, dtype=np.float32) + offset,
                             np.asarray(item.faces, dtype=np.uint32), color=color, flat_shading=False)
        else:
            pts = item.detach().cpu().numpy() if torch.is_tensor(item) else np.asarray(item)
            if pts.ndim != 2 or pts.shape[1] != 3:
                raise DDMIError(f"item {i} has shape {pts.shape}; expected a mesh or [N, 3] points")
            plot += k3d.points(pts.astype(np.float32) + offset, point_size=point_size, color=color, shader="3d")
    return plot
