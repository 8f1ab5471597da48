"""Posed views of coloured procedural objects as the default NeRF data, in the SRN-cars layout (paper Sec. 4.1).

The paper's NeRF model is trained on SRN cars (reference §4.1): per object, images from posed
cameras and a coloured point cloud (the encoder input). The default data here are the
procedural furniture of :mod:`ddmi_lite.data.furniture` (same grammar, same ids), with one
colour per part group (all legs alike) drawn from :data:`PALETTE`, rendered by exact ray casting
(:mod:`ddmi_lite.data.raycast`):

* Lambert shading with world-fixed lights (colour = albedo·(ambient + Σ kᵢ·max(0, n·lᵢ)), no
  shadows): the radiance of a surface point does not depend on the viewer, which a NeRF with
  view-independent colour can represent exactly. White background.
* anti-aliasing: ``supersample``² rays per pixel (sub-pixel centres), averaged.

Cameras are on a sphere of ``radius`` around the object (which fits [−0.5, 0.5]³, y up), looking
at the origin (OpenCV poses, :mod:`ddmi_lite.rays`). Files, in the SRN layout of
:mod:`ddmi_lite.data.srn`:

    <root>/<split>/<object_id>/rgb/000000.png      RGB uint8, size × size, white background
    <root>/<split>/<object_id>/pose/000000.txt     4×4 camera-to-world, one line of 16 numbers
    <root>/<split>/<object_id>/intrinsics.txt      "f cx cy 0." / "0. 0. 0." / "1." / "H W"
    <root>/<split>/<object_id>/pointcloud.npz      points f32 [M,3], normals f32 [M,3],
                                                   rgb uint8 [M,3] (the colour the views show)
    <root>/attributes.json                         object id → part group → colour name
    <root>/bounds.json                             {"near": 0.9, "far": 2.7, "box": 0.55} (ray bounds)
    <root>/manifest.json                           settings, splits and a sha256 per object

Splits train / val / test: per category, the seeded 80/10/10 of :func:`ddmi_lite.data.onet.split_ids`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ddmi_lite.data.furniture import CATEGORIES, Shape, category_counts, check_categories, generate_shape, shape_id
from ddmi_lite.data.onet import split_ids
from ddmi_lite.data.raycast import cast_rays
from ddmi_lite.data.srn import BOUNDS_FILE, SPLITS, format_intrinsics, format_pose, views_root
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.io import atomic_write, claim_folder, npz_bytes, read_json_or_none, sha256_file, write_json
from ddmi_lite.rays import camera_rays, intrinsics_from_fov, poses_on_sphere

FORMAT_VERSION = 1
PALETTE = {  # albedo, linear in [0,1]; no near-white entry (the background is white)
    "red": (0.80, 0.20, 0.18), "orange": (0.93, 0.52, 0.15), "yellow": (0.93, 0.78, 0.22),
    "green": (0.28, 0.62, 0.28), "teal": (0.12, 0.58, 0.58), "blue": (0.20, 0.40, 0.80),
    "purple": (0.52, 0.32, 0.72), "pink": (0.90, 0.48, 0.64), "brown": (0.52, 0.33, 0.18),
    "tan": (0.78, 0.64, 0.45), "grey": (0.52, 0.53, 0.56), "charcoal": (0.22, 0.22, 0.25),
}


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


# ----------------------------------------------------------------------------- files and prepare

def _png_bytes(image: np.ndarray) -> bytes:
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
    files["pointcloud.npz"] = npz_bytes({"points": points.astype(np.float32), "normals": normals.astype(np.float32),
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


def prepare_views(root: str | os.PathLike | None = None, n_objects: int = 1000, *, views: int = 24, size: int = 32,
                  seed: int = 0, force: bool = False, progress: bool = True, categories=CATEGORIES,
                  n_points: int = 2048) -> Path:
    """Render the coloured furniture in the SRN-cars layout; return ``root``.

    Idempotent: an object folder whose digest (sha256 over its files) matches ``manifest.json``
    written with the same settings is kept; missing or changed ones are rebuilt. Two prepares
    with the same arguments give byte-identical files.
    """
    root = views_root(root)
    cats = check_categories(categories)
    counts = category_counts(n_objects, cats)
    for name, value in (("views", views), ("size", size), ("n_points", n_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DDMIError(f"{name}={value!r} must be a positive int")
    cfg = ViewConfig(size=size, views=views, n_points=n_points)
    settings = json.loads(json.dumps({"format": FORMAT_VERSION, "seed": int(seed), "n_objects": int(n_objects),
                                      "categories": list(cats), "view": asdict(cfg), "palette": PALETTE}))
    claim_folder(root, what="rendered views")
    old = read_json_or_none(root / "manifest.json")
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
            atomic_write(root / rel / name, data, durable=False)
        objects[rel] = _digest(files)
    write_json(root / "attributes.json", colors_of, indent=1, sort_keys=True, durable=False)
    write_json(root / BOUNDS_FILE, {"near": cfg.near, "far": cfg.far, "box": BOX}, sort_keys=True, durable=False)
    counts_by_split = {s: sum(1 for r in objects if r.startswith(f"{s}/")) for s in SPLITS}
    manifest = {"settings": settings, "splits": counts_by_split, "objects": dict(sorted(objects.items())),
                "attributes_sha256": sha256_file(root / "attributes.json")}
    write_json(root / "manifest.json", manifest, indent=1, sort_keys=True, durable=False)
    return root
