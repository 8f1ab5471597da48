"""Posed views of coloured procedural objects as the default NeRF data, in the SRN-cars layout (paper Sec. 4.1).

The paper's NeRF model is trained on SRN cars (reference §4.1): per object, images from posed
cameras and a coloured point cloud (the encoder input). The default data here are the
procedural furniture of :mod:`ddmi_lite.data.shapes` (same grammar, same ids), with one colour
per part group (all legs alike) drawn from :data:`PALETTE`, rendered by exact ray casting:

* every primitive is intersected analytically in its local frame (vectorised numpy): box — slab
  method; cylinder and capsule — the quadratic of the side, the caps (planes) / end spheres;
  cone frustum — the quadric x² + z² = (m + k·y)², k = (r₁ − r₀)/2h, m = r₀ + k·h, cut to
  |y| ≤ h, plus the two discs; sphere — the quadratic; torus — the quartic
  (|p|² + R² − r²)² = 4R²(x² + z²), whose roots are the eigenvalues of its companion matrix
  (batched), polished by Newton steps. The camera is outside every solid, so the first surface
  crossing along a ray is where it enters the union: t = min over parts and candidate roots.
* Lambert shading with world-fixed lights (colour = albedo·(ambient + Σ kᵢ·max(0, n·lᵢ)), no
  shadows): the radiance of a surface point does not depend on the viewer, which a NeRF with
  view-independent colour can represent exactly. White background.
* anti-aliasing: ``supersample``² rays per pixel (sub-pixel centres), averaged.

Cameras are on a sphere of ``radius`` around the object (which fits [−0.5, 0.5]³, y up), looking
at the origin (OpenCV poses, :mod:`ddmi_lite.domains.rays`). Files, as SRN writes them:

    <root>/<split>/<object_id>/rgb/000000.png      RGB uint8, size × size, white background
    <root>/<split>/<object_id>/pose/000000.txt     4×4 camera-to-world, one line of 16 numbers
    <root>/<split>/<object_id>/intrinsics.txt      "f cx cy 0." / "0. 0. 0." / "1." / "H W"
    <root>/<split>/<object_id>/pointcloud.npz      points f32 [M,3], normals f32 [M,3],
                                                   rgb uint8 [M,3] (the colour the views show)
    <root>/attributes.json                         object id → part group → colour name
    <root>/manifest.json                           settings, splits and a sha256 per object

Splits train / val / test: per category, the seeded 80/10/10 of :func:`shapes.split_ids`.
:func:`load_srn_object` and :class:`SRNDataset` read this and SRN cars alike (``cars_train`` …).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import os
import shutil
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ddmi_lite.data.emoji import _npz_bytes, _write_atomic, default_data_dir
from ddmi_lite.data.shapes import (
    CATEGORIES,
    Primitive,
    Shape,
    _category_counts,
    _check_categories,
    generate_shape,
    shape_id,
    split_ids,
)
from ddmi_lite.domains.rays import camera_rays, intrinsics_from_fov, poses_on_sphere
from ddmi_lite.errors import DDMIError

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1
PALETTE = {  # albedo, linear in [0,1]; no near-white entry (the background is white)
    "red": (0.80, 0.20, 0.18), "orange": (0.93, 0.52, 0.15), "yellow": (0.93, 0.78, 0.22),
    "green": (0.28, 0.62, 0.28), "teal": (0.12, 0.58, 0.58), "blue": (0.20, 0.40, 0.80),
    "purple": (0.52, 0.32, 0.72), "pink": (0.90, 0.48, 0.64), "brown": (0.52, 0.33, 0.18),
    "tan": (0.78, 0.64, 0.45), "grey": (0.52, 0.53, 0.56), "charcoal": (0.22, 0.22, 0.25),
}
_EPS = 1e-9


@dataclass(frozen=True)
class ViewConfig:
    """Cameras, lights and files of the rendered collection."""

    size: int = 32                          # image side in pixels
    views: int = 24                         # views per object
    radius: float = 1.8                     # camera distance from the origin
    fov: float = 0.9                        # field of view, radians (≈ SRN cars' 52°)
    elevation: tuple = (-10.0, 60.0)        # camera elevation band, degrees
    near: float = 0.9                       # ray interval that contains the object from every
    far: float = 2.7                        # camera: radius ∓ √3/2 (a model uses these)
    ambient: float = 0.35
    lights: tuple = ((0.35, 0.85, 0.40, 0.60), (-0.60, 0.20, -0.50, 0.20))  # (direction, strength)
    supersample: int = 2                    # rays per pixel side
    n_points: int = 2048                    # coloured surface points per object


# ----------------------------------------------------------------------------- ray casting

def _bounding_radius(part: Primitive) -> float:
    s = part.size
    return {"box": lambda: math.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2),
            "cylinder": lambda: math.hypot(s[0], s[1]), "frustum": lambda: math.hypot(max(s[0], s[1]), s[2]),
            "sphere": lambda: s[0], "torus": lambda: s[0] + s[1], "capsule": lambda: s[0] + s[1]}[part.kind]()


def _quadratic(a, b, c):
    """Both real roots of a·t² + b·t + c (linear where a ≈ 0); NaN where there are none."""
    disc = b * b - 4 * a * c
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    linear = np.abs(a) < 1e-12
    a_safe = np.where(linear, 1.0, a)
    t_lin = -c / np.where(np.abs(b) < 1e-300, 1e-300, b)
    return np.where(linear, t_lin, (-b - root) / (2 * a_safe)), np.where(linear, np.nan, (-b + root) / (2 * a_safe))


def _plane_y(o, d, y0, radius):
    """Hit of the disc y = y0, ρ ≤ radius (local frame): t (NaN when missed)."""
    dy = np.where(np.abs(d[:, 1]) < 1e-300, 1e-300, d[:, 1])
    t = (y0 - o[:, 1]) / dy
    x, z = o[:, 0] + t * d[:, 0], o[:, 2] + t * d[:, 2]
    return np.where(x * x + z * z <= radius * radius, t, np.nan)


def _torus_roots(o, d, big, small):
    """Smallest positive real root of the torus quartic per ray (NaN when none)."""
    b, g0 = (o * d).sum(1), (o * o).sum(1) + big * big - small * small
    a_xz, b_xz, c_xz = d[:, 0] ** 2 + d[:, 2] ** 2, 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]), o[:, 0] ** 2 + o[:, 2] ** 2
    # t⁴ + c3 t³ + c2 t² + c1 t + c0 = (t² + 2bt + g0)² − 4R²(A t² + B t + C)
    c3, c2 = 4 * b, 4 * b * b + 2 * g0 - 4 * big * big * a_xz
    c1, c0 = 4 * b * g0 - 4 * big * big * b_xz, g0 * g0 - 4 * big * big * c_xz
    n = len(o)
    companion = np.zeros((n, 4, 4))
    companion[:, 1, 0], companion[:, 2, 1], companion[:, 3, 2] = 1.0, 1.0, 1.0
    companion[:, :, 3] = -np.stack([c0, c1, c2, c3], 1)
    roots = np.linalg.eigvals(companion)                                   # [n,4] complex
    t = np.where(np.abs(roots.imag) < 1e-4 * (big + small), roots.real, np.nan)
    for _ in range(3):  # Newton polish of the (near-)real roots
        f = (((t + c3[:, None]) * t + c2[:, None]) * t + c1[:, None]) * t + c0[:, None]
        df = ((4 * t + 3 * c3[:, None]) * t + 2 * c2[:, None]) * t + c1[:, None]
        t = t - np.where(np.abs(df) > 1e-12, f / np.where(np.abs(df) > 1e-12, df, 1.0), 0.0)
    p = o[:, None, :] + t[..., None] * d[:, None, :]                      # [n,4,3]
    on_surface = np.abs(np.hypot(np.hypot(p[..., 0], p[..., 2]) - big, p[..., 1]) - small) < 1e-6
    t = np.where(on_surface & (t > _EPS), t, np.inf)
    t = t.min(1)
    return np.where(np.isfinite(t), t, np.nan)


def _part_hits(part: Primitive, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest positive t where each ray (local frame, unit d) crosses the part's surface; inf if none."""
    s, kind = part.size, part.kind
    cands = []

    def y_of(t):
        return o[:, 1] + t * d[:, 1]

    if kind == "box":
        h = np.asarray(s)
        d_safe = np.where(np.abs(d) < 1e-300, 1e-300, d)
        t1, t2 = (-h - o) / d_safe, (h - o) / d_safe                        # [n,3]
        t_in, t_out = np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)
        cands.append(np.where(t_in <= t_out, t_in, np.nan))
    elif kind in ("cylinder", "frustum", "capsule"):
        if kind == "frustum":
            r0, r1, h = s
            k = (r1 - r0) / (2 * h)
            m = r0 + k * h                                                  # r(y) = m + k·y
        else:
            r0 = r1 = s[0]
            h, k, m = s[1], 0.0, s[0]
        w = m + k * o[:, 1]
        a = d[:, 0] ** 2 + d[:, 2] ** 2 - k * k * d[:, 1] ** 2
        b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] - k * d[:, 1] * w)
        c = o[:, 0] ** 2 + o[:, 2] ** 2 - w * w
        for t in _quadratic(a, b, c):                                       # lateral surface, |y| ≤ h
            cands.append(np.where(np.abs(y_of(t)) <= h, t, np.nan))
        if kind == "capsule":  # end hemispheres: |p − (0, ±h, 0)| = r beyond the cylinder's ends
            for sign in (-1.0, 1.0):
                oc = o - np.array([0.0, sign * h, 0.0])
                bb = (oc * d).sum(1)
                for t in _quadratic(np.ones(len(o)), 2 * bb, (oc * oc).sum(1) - s[0] ** 2):
                    cands.append(np.where(sign * y_of(t) >= h, t, np.nan))
        else:
            cands += [_plane_y(o, d, -h, r0), _plane_y(o, d, h, r1)]
    elif kind == "sphere":
        cands += list(_quadratic(np.ones(len(o)), 2 * (o * d).sum(1), (o * o).sum(1) - s[0] ** 2))
    else:
        cands.append(_torus_roots(o, d, s[0], s[1]))
    t = np.stack(cands, 1)                                                  # [n,C]
    t = np.where(np.isnan(t) | (t <= _EPS), np.inf, t)
    return t.min(1)


def _local_normals(part: Primitive, q: np.ndarray) -> np.ndarray:
    """Outward unit normals at local surface points q [n,3] (the nearest face / curved side)."""
    s, kind = part.size, part.kind
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    rho = np.maximum(np.hypot(x, z), 1e-12)
    if kind == "box":
        gap = np.abs(np.abs(q) - np.asarray(s))                             # distance to each face pair
        axis = gap.argmin(1)
        n = np.zeros_like(q)
        n[np.arange(len(q)), axis] = np.sign(q[np.arange(len(q)), axis])
        return n
    if kind == "sphere":
        return q / np.linalg.norm(q, axis=1, keepdims=True)
    if kind == "torus":
        v = np.stack([(rho - s[0]) * x / rho, y, (rho - s[0]) * z / rho], 1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    if kind == "capsule":
        axis_pt = np.stack([0 * y, np.clip(y, -s[1], s[1]), 0 * y], 1)
        v = q - axis_pt
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    r0, r1, h = (s[0], s[0], s[1]) if kind == "cylinder" else s
    k = (r1 - r0) / (2 * h)
    side = np.stack([x / rho, np.full_like(x, -k), z / rho], 1) / math.sqrt(1 + k * k)
    r_at = r0 + k * (y + h)
    on_cap = np.abs(np.abs(y) - h) < np.maximum(np.abs(rho - r_at) * math.sqrt(1 + k * k), 1e-12)
    cap = np.stack([0 * y, np.sign(y), 0 * y], 1)
    return np.where(on_cap[:, None], cap, side)


def cast_rays(parts: list[Primitive], origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of rays with the union of ``parts`` (camera outside all of them).

    origins, dirs [N,3] (dirs unit) → t [N] (inf on a miss), part index [N] (−1 on a miss),
    outward unit normals [N,3] in world coordinates (0 on a miss).
    """
    o_all, d_all = np.asarray(origins, dtype=np.float64), np.asarray(dirs, dtype=np.float64)
    n = len(o_all)
    best_t, best_part = np.full(n, np.inf), np.full(n, -1)
    od, oo = np.einsum("ij,ij->i", o_all, d_all), np.einsum("ij,ij->i", o_all, o_all)
    for j, part in enumerate(parts):
        # bounding-sphere test first: |(c − o) × d| ≤ radius and the sphere is not behind
        along = d_all @ part.center - od                                   # (c − o)·d
        miss2 = oo - 2 * (o_all @ part.center) + part.center @ part.center - along * along
        rad = _bounding_radius(part)
        idx = np.nonzero((miss2 <= rad * rad * (1 + 1e-9)) & (along + rad > 0))[0]
        if idx.size == 0:
            continue
        o = (o_all[idx] - part.center) @ part.rotation                    # local frame, row form Rᵀ(p − c)
        d = d_all[idx] @ part.rotation
        t = _part_hits(part, o, d)
        closer = t < best_t[idx]
        best_t[idx[closer]], best_part[idx[closer]] = t[closer], j
    normals = np.zeros((n, 3))
    for j, part in enumerate(parts):
        idx = np.nonzero(best_part == j)[0]
        if idx.size:
            q = (o_all[idx] + best_t[idx, None] * d_all[idx] - part.center) @ part.rotation
            normals[idx] = _local_normals(part, q) @ part.rotation.T
    return best_t, best_part, normals


# ----------------------------------------------------------------------------- colours and shading

def part_colors(shape: Shape, *, seed: int = 0) -> dict[str, str]:
    """Part group (part name) → palette colour name; groups differ while the palette lasts."""
    groups = list(dict.fromkeys(p.name for p in shape.parts))
    rng = np.random.default_rng([int(seed), CATEGORIES.index(shape.category), shape.index, 2])
    names = list(PALETTE)
    order = rng.permutation(len(names))
    return {g: names[order[i % len(names)]] for i, g in enumerate(groups)}


def shade(albedo: np.ndarray, normals: np.ndarray, cfg: ViewConfig) -> np.ndarray:
    """Lambert with world-fixed lights: albedo·(ambient + Σ kᵢ·max(0, n·lᵢ)), clipped to [0,1]."""
    light = np.full(len(normals), cfg.ambient)
    for *direction, strength in cfg.lights:
        l = np.asarray(direction, dtype=np.float64)
        light = light + strength * np.clip(normals @ (l / np.linalg.norm(l)), 0.0, None)
    return np.clip(albedo * light[:, None], 0.0, 1.0)


def _albedo_table(shape: Shape, colors: dict[str, str]) -> np.ndarray:
    return np.array([PALETTE[colors[p.name]] for p in shape.parts], dtype=np.float64)  # [P,3]


def render_views(shape: Shape, poses: np.ndarray, cfg: ViewConfig, *, colors: dict[str, str]) -> np.ndarray:
    """RGB uint8 [V,size,size,3] of ``shape`` seen from camera-to-world ``poses`` [V,4,4]."""
    ss, size = cfg.supersample, cfg.size
    fx, fy, cx, cy = intrinsics_from_fov(cfg.fov, size * ss, size * ss)
    origins, dirs = camera_rays(torch.as_tensor(np.asarray(poses), dtype=torch.float64), (fx, fy, cx, cy),
                                size * ss, size * ss)                      # [V,(s·ss)²,3]
    o, d = origins.reshape(-1, 3).numpy(), dirs.reshape(-1, 3).numpy()
    t, part, normals = cast_rays(shape.parts, o, d)
    albedo = _albedo_table(shape, colors)
    rgb = np.ones((len(t), 3))
    hit = part >= 0
    rgb[hit] = shade(albedo[part[hit]], normals[hit], cfg)
    rgb = rgb.reshape(len(poses), size, ss, size, ss, 3).mean(axis=(2, 4))   # area average of ss² rays
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def colored_point_cloud(shape: Shape, cfg: ViewConfig, *, colors: dict[str, str], seed: int = 0):
    """Surface points [M,3], outward normals [M,3] and their shaded colour uint8 [M,3].

    A point takes the colour of the first part that contains it after a small step inwards
    (the part it lies on), shaded as the views shade it.
    """
    rng = np.random.default_rng([int(seed), CATEGORIES.index(shape.category), shape.index, 4])
    points, normals = shape.sample_surface(cfg.n_points, seed=rng, return_normals=True)
    inner = points - 1e-6 * normals
    owner = np.full(len(points), -1)
    for j, part in enumerate(shape.parts):
        owner = np.where((owner < 0) & part.contains(inner), j, owner)
    owner = np.where(owner < 0, 0, owner)
    rgb = shade(_albedo_table(shape, colors)[owner], normals, cfg)
    return points, normals, np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- SRN files

def format_pose(pose: np.ndarray) -> str:
    """One line of 16 numbers (row-major), shortest round-trip decimal form."""
    return " ".join(repr(float(v)) for v in np.asarray(pose, dtype=np.float64).reshape(16)) + "\n"


def format_intrinsics(f: float, cx: float, cy: float, height: int, width: int) -> str:
    """SRN ``intrinsics.txt``: "f cx cy 0." / grid barycentre "0. 0. 0." / scale "1." / "H W"."""
    return f"{float(f)!r} {float(cx)!r} {float(cy)!r} 0.\n0. 0. 0.\n1.\n{int(height)} {int(width)}\n"


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def object_files(shape: Shape, cfg: ViewConfig, *, seed: int = 0) -> dict[str, bytes]:
    """Every file of one object folder (relative path → bytes); deterministic in (seed, shape)."""
    colors = part_colors(shape, seed=seed)
    pose_seed = int(np.random.default_rng([int(seed), CATEGORIES.index(shape.category), shape.index, 3]).integers(2**31))
    poses = poses_on_sphere(cfg.views, cfg.radius, cfg.elevation, seed=pose_seed, dtype=torch.float64).numpy()
    images = render_views(shape, poses, cfg, colors=colors)
    f, _, cx, cy = intrinsics_from_fov(cfg.fov, cfg.size, cfg.size)
    files = {"intrinsics.txt": format_intrinsics(f, cx, cy, cfg.size, cfg.size).encode()}
    for k in range(cfg.views):
        files[f"rgb/{k:06d}.png"] = _png_bytes(images[k])
        files[f"pose/{k:06d}.txt"] = format_pose(poses[k]).encode()
    points, normals, rgb = colored_point_cloud(shape, cfg, colors=colors, seed=seed)
    files["pointcloud.npz"] = _npz_bytes({"points": points.astype(np.float32), "normals": normals.astype(np.float32),
                                          "rgb": rgb})
    return files


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def _folder_digest(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return _digest(files)


def _views_root(root) -> Path:
    return Path(root) if root is not None else default_data_dir() / "views"


def prepare_views(root: str | os.PathLike | None = None, n_objects: int = 1000, *, views: int = 24, size: int = 32,
                  seed: int = 0, force: bool = False, progress: bool = True, categories=CATEGORIES,
                  n_points: int = 2048) -> Path:
    """Render the coloured furniture in the SRN-cars layout; return ``root``.

    Idempotent: an object folder whose digest (sha256 over its files) matches ``manifest.json``
    written with the same settings is kept; missing or changed ones are rebuilt. Two prepares
    with the same arguments give byte-identical files.
    """
    root = _views_root(root)
    cats = _check_categories(categories)
    counts = _category_counts(n_objects, cats)
    for name, value in (("views", views), ("size", size), ("n_points", n_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DDMIError(f"{name}={value!r} must be a positive int")
    cfg = ViewConfig(size=size, views=views, n_points=n_points)
    settings = json.loads(json.dumps({"format": FORMAT_VERSION, "seed": int(seed), "n_objects": int(n_objects),
                                      "categories": list(cats), "view": asdict(cfg), "palette": PALETTE}))
    old = _read_manifest(root)
    same = old is not None and old.get("settings") == settings and not force
    old_objects = old.get("objects", {}) if same else {}
    split_of = {}
    for category in cats:
        for split, members in split_ids([shape_id(category, i) for i in range(counts[category])], seed=seed).items():
            split_of.update({m: split for m in members})
    rels = {oid: f"{split_of[oid]}/{oid}" for c in cats for oid in (shape_id(c, i) for i in range(counts[c]))}
    if old is not None:  # folders of an earlier collection that this one does not have
        for rel in old.get("objects", {}):
            if rel not in rels.values() and len(Path(rel).parts) == 2 and Path(rel).parts[0] in SPLITS:
                shutil.rmtree(root / rel, ignore_errors=True)
    objects, colors_of = {}, {}
    iterator = list(rels.items())
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="rendering views", unit="obj")
    for oid, rel in iterator:
        category, index = oid.rsplit("_", 1)
        shape = generate_shape(category, int(index), seed=seed)
        colors_of[oid] = part_colors(shape, seed=seed)
        if rel in old_objects and _folder_digest(root / rel) == old_objects[rel]:
            objects[rel] = old_objects[rel]
            continue
        files = object_files(shape, cfg, seed=seed)
        shutil.rmtree(root / rel, ignore_errors=True)
        for name, data in files.items():
            _write_atomic(root / rel / name, data)
        objects[rel] = _digest(files)
    _write_atomic(root / "attributes.json", (json.dumps(colors_of, indent=1, sort_keys=True) + "\n").encode())
    counts_by_split = {s: sum(1 for r in objects if r.startswith(f"{s}/")) for s in SPLITS}
    manifest = {"settings": settings, "splits": counts_by_split, "objects": dict(sorted(objects.items())),
                "attributes_sha256": hashlib.sha256((root / "attributes.json").read_bytes()).hexdigest()}
    _write_atomic(root / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return root


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- loading

def read_pose(path: str | os.PathLike) -> np.ndarray:
    """A 4×4 pose file (16 numbers on one line, as SRN writes, or 4 lines of 4) → float64 [4,4]."""
    path = Path(path)
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except FileNotFoundError as err:
        raise DDMIError(f"pose file {path} does not exist") from err
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DDMIError(f"pose file {path} is not a list of numbers ({err})") from err
    if values.size != 16 or not np.isfinite(values).all():
        raise DDMIError(f"pose file {path} holds {values.size} numbers; expected the 16 of a finite 4×4 matrix")
    return values.reshape(4, 4)


def read_intrinsics(path: str | os.PathLike) -> tuple[float, float, float, int, int]:
    """SRN ``intrinsics.txt`` → (f, cx, cy, H, W) in pixels of the stored images."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        f, cx, cy = (float(v) for v in lines[0][:3])
        height, width = (int(float(v)) for v in lines[3][:2])
    except FileNotFoundError as err:
        raise DDMIError(f"intrinsics file {path} does not exist") from err
    except (OSError, ValueError, IndexError, UnicodeDecodeError, OverflowError) as err:  # inf H/W: Overflow
        raise DDMIError(f"intrinsics file {path} is not in the SRN format "
                        f"('f cx cy 0.' / '0. 0. 0.' / '1.' / 'H W'): {err}") from err
    if not (0 < f < math.inf and height > 0 and width > 0 and math.isfinite(cx) and math.isfinite(cy)):
        raise DDMIError(f"intrinsics file {path}: f={f}, cx={cx}, cy={cy}, H={height}, W={width}; "
                        "f, H, W must be positive and all finite")
    return f, cx, cy, height, width


def _read_view(path: Path) -> np.ndarray:
    """An RGB(A) view → uint8 [H,W,3] (alpha composited on white)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            image = image.convert("RGB")
    except FileNotFoundError as err:
        raise DDMIError(f"view image {path} does not exist") from err
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DDMIError(f"view image {path} cannot be read as an image ({err})") from err
    return np.asarray(image)


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
    """Area-average (PIL box filter) an image to size × size; unchanged when size is None or equal."""
    from PIL import Image

    if size is None or image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX))


def _view_stems(folder: Path) -> list[str]:
    rgb_dir, pose_dir = folder / "rgb", folder / "pose"
    if not rgb_dir.is_dir() or not pose_dir.is_dir():
        raise DDMIError(f"object folder {folder} lacks rgb/ or pose/; expected the SRN layout")
    stems = sorted(p.stem for p in rgb_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not stems:
        raise DDMIError(f"object folder {folder / 'rgb'} holds no images")
    for stem in stems:
        if not (pose_dir / f"{stem}.txt").is_file():
            raise DDMIError(f"pose file {pose_dir / (stem + '.txt')} is missing for view {stem}")
    return stems


def _scaled_intrinsics(folder: Path, size: int | None, image_hw: tuple[int, int]) -> np.ndarray:
    """(fx, fy, cx, cy) for images resized from the stored H×W to size×size (SRN's rescaling)."""
    f, cx, cy, height, width = read_intrinsics(folder / "intrinsics.txt")
    if (height, width) != image_hw:  # intrinsics given for another image size: rescale as SRN does
        sx, sy = image_hw[1] / width, image_hw[0] / height
        f, cx, cy, height, width = f * sy, cx * sx, cy * sy, image_hw[0], image_hw[1]
    sx, sy = (1.0, 1.0) if size is None else (size / width, size / height)
    return np.array([f * sx, f * sy, cx * sx, cy * sy], dtype=np.float64)


def load_srn_object(path: str | os.PathLike, *, size: int | None = None, views=None) -> dict:
    """One object folder (ours or SRN's) → dict with float32 tensors.

    ``images`` [V,3,S,S] in [0,1]; ``poses`` [V,4,4] camera-to-world (OpenCV); ``intrinsics`` [4]
    (fx, fy, cx, cy) for S×S images; ``points`` [M,3] and ``point_rgb`` [M,3] in [0,1] from
    ``pointcloud.npz`` (None when absent, as in SRN cars); ``id``; ``stems`` (view file names).
    ``size`` resizes the views (area averaging) and rescales the intrinsics; ``views`` picks
    view indices (default all, sorted by file name).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DDMIError(f"object folder {folder} does not exist")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DDMIError(f"size={size!r} must be None or a positive int")
    stems = _view_stems(folder)
    try:  # operator.index: ints (numpy ints too), never floats or strings
        chosen = range(len(stems)) if views is None else [operator.index(v) for v in views]
    except TypeError as err:
        raise DDMIError(f"views={views!r} must be None or a sequence of int view indices for {folder}") from err
    if not chosen or any(not 0 <= v < len(stems) for v in chosen):
        raise DDMIError(f"views={views!r}: indices must be in [0, {len(stems)}) for {folder}")
    images, poses, native = [], [], None
    for v in chosen:
        file = next(p for p in (folder / "rgb").iterdir() if p.stem == stems[v])
        image = _read_view(file)
        if native is None:
            native = image.shape[:2]
        elif image.shape[:2] != native:
            raise DDMIError(f"view image {file} is {image.shape[1]}×{image.shape[0]}, the object's first view "
                            f"{native[1]}×{native[0]}; all views of an object must have one size")
        images.append(_resize(image, size))
        poses.append(read_pose(folder / "pose" / f"{stems[v]}.txt"))
    intrinsics = _scaled_intrinsics(folder, size, native)
    points = point_rgb = None
    cloud = folder / "pointcloud.npz"
    if cloud.is_file():
        points, point_rgb = _read_cloud(cloud)
    stack = rearrange(torch.from_numpy(np.stack(images)), "v h w c -> v c h w").float().div_(255.0)
    return {"images": stack, "poses": torch.from_numpy(np.stack(poses)).float(),
            "intrinsics": torch.from_numpy(intrinsics).float(), "points": points, "point_rgb": point_rgb,
            "id": folder.name, "stems": [stems[v] for v in chosen]}


def _read_cloud(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "points" not in archive.files or "rgb" not in archive.files:
                raise DDMIError(f"point cloud {path} lacks 'points' or 'rgb' (found {sorted(archive.files)})")
            points, rgb = archive["points"], archive["rgb"]
    except DDMIError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DDMIError(f"point cloud {path} is not a readable .npz ({type(err).__name__}: {err})") from err
    if points.ndim != 2 or points.shape[1] != 3 or rgb.shape != points.shape:
        raise DDMIError(f"point cloud {path}: points {points.shape} and rgb {rgb.shape}; expected [M,3] each")
    scale = 255.0 if rgb.dtype == np.uint8 else 1.0
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(rgb.astype(np.float32) / scale)


def _split_folder(root: Path, split: str) -> Path:
    for name in (split, f"cars_{split}"):
        if (root / name).is_dir():
            return root / name
    raise DDMIError(f"split folder {root / split} (or {root / ('cars_' + split)}) does not exist; "
                    "run prepare_views() or point root at SRN cars")


class SRNDataset(torch.utils.data.Dataset):
    """Objects of one split (ours or SRN cars): each item is some views of one object.

    Item: ``images`` [V,3,S,S], ``poses`` [V,4,4], ``intrinsics`` [4] for S×S (V =
    ``views_per_item`` random views, from a generator seeded by (seed, epoch, index): call
    :meth:`set_epoch`), ``id``, and — when the object has ``pointcloud.npz`` — ``points``
    [n_points,3] and ``point_rgb`` [n_points,3] (a random subset). ``preload`` decodes every
    object once and keeps it in memory (float32).
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", *, size: int | None = None,
                 views_per_item: int = 1, n_points: int | None = 2048, preload: bool = False, seed: int = 0,
                 limit: int | None = None):
        if split not in SPLITS:
            raise DDMIError(f"split={split!r} must be one of {SPLITS}")
        if isinstance(views_per_item, bool) or not isinstance(views_per_item, int) or views_per_item < 1:
            raise DDMIError(f"views_per_item={views_per_item!r} must be a positive int")
        if n_points is not None and (isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1):
            raise DDMIError(f"n_points={n_points!r} must be None (no point cloud) or a positive int")
        for name, value in (("size", size), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DDMIError(f"{name}={value!r} must be None or a positive int")
        self.root = _views_root(root)
        folder = _split_folder(self.root, split)
        self.objects = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))[:limit]
        if not self.objects:
            raise DDMIError(f"split folder {folder} holds no object folders")
        self.size, self.views_per_item, self.n_points = size, views_per_item, n_points
        self.seed, self.epoch = int(seed), 0
        self.stems = [_view_stems(o) for o in self.objects]
        self._cache = [load_srn_object(o, size=size) for o in self.objects] if preload else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        n_views = len(self.stems[index])
        pick = rng.choice(n_views, self.views_per_item, replace=n_views < self.views_per_item)
        if self._cache is not None:
            obj = self._cache[index]
            item = {"images": obj["images"][pick], "poses": obj["poses"][pick]}
        else:
            obj = load_srn_object(self.objects[index], size=self.size, views=pick)
            item = {"images": obj["images"], "poses": obj["poses"]}
        item.update(intrinsics=obj["intrinsics"], id=obj["id"])
        if obj["points"] is not None and self.n_points:
            m = len(obj["points"])
            sel = torch.from_numpy(rng.choice(m, self.n_points, replace=m < self.n_points))
            item.update(points=obj["points"][sel], point_rgb=obj["point_rgb"][sel])
        return item
