"""NeRF views: exact ray casting against the primitives, SRN-layout files and the loader."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ddmi_lite.data import srn
from ddmi_lite.data import views as V
from ddmi_lite.data.furniture import CATEGORIES, generate_shape
from ddmi_lite.data.primitives import Primitive, axis_to, rot_x, rot_y
from ddmi_lite.data.raycast import cast_rays
from ddmi_lite.errors import DDMIError
from ddmi_lite.rays import camera_rays, intrinsics_from_fov, poses_on_sphere

SMALL = {"n_objects": 5, "views": 3, "size": 16, "n_points": 300, "progress": False}


@pytest.fixture(scope="module")
def views_root(tmp_path_factory):
    return V.prepare_views(tmp_path_factory.mktemp("views_a"), **SMALL)


@pytest.fixture(scope="module")
def one_per_category():
    return [generate_shape(c, 2, seed=3) for c in CATEGORIES]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _primitives():
    tilt = axis_to([0.3, 1.0, -0.4])
    return [Primitive("box", (0.1, 0, 0), (0.2, 0.1, 0.3), rot_y(0.4) @ rot_x(0.3)),
            Primitive("cylinder", (0, 0.1, 0), (0.15, 0.25), tilt),
            Primitive("frustum", (0, 0, 0.05), (0.3, 0.1, 0.2), tilt),
            Primitive("frustum", (0, 0, 0), (0.25, 0.0, 0.3)),  # a cone
            Primitive("sphere", (0.1, -0.1, 0), (0.3,)),
            Primitive("torus", (0, 0, 0), (0.3, 0.08), rot_x(1.0)),
            Primitive("capsule", (0, 0, 0), (0.1, 0.25), tilt)]


def _random_rays(n, seed, lo=(-0.45,) * 3, hi=(0.45,) * 3):
    """Rays from a sphere of radius 1.5 towards random points of the box [lo, hi]."""
    rng = np.random.default_rng(seed)
    eye = rng.standard_normal((n, 3))
    eye = 1.5 * eye / np.linalg.norm(eye, axis=1, keepdims=True)
    d = rng.uniform(lo, hi, (n, 3)) - eye
    return eye, d / np.linalg.norm(d, axis=1, keepdims=True)


def _march(contains, origins, dirs, t_max=3.2, step=0.002):
    """First t where ``contains`` turns true (grid march, then 50 bisections); inf if never."""
    ts = np.arange(0.0, t_max, step)
    inside = contains((origins[:, None] + ts[None, :, None] * dirs[:, None]).reshape(-1, 3)).reshape(len(origins), len(ts))
    hit = inside.any(1)
    first = inside.argmax(1)
    lo, hi = ts[np.maximum(first - 1, 0)], ts[first]
    for _ in range(50):
        mid = (lo + hi) / 2
        now = contains(origins + mid[:, None] * dirs)
        hi, lo = np.where(now, mid, hi), np.where(now, lo, mid)
    return np.where(hit, hi, np.inf)


# ----------------------------------------------------------------------------- ray casting

@pytest.mark.parametrize("index", range(7))
def test_primitive_hits_match_marching_the_exact_occupancy(index):
    prim = _primitives()[index]
    origins, dirs = _random_rays(500, index, *prim.bounds())
    t, part, normals = cast_rays([prim], origins, dirs)
    ref = _march(prim.contains, origins, dirs)
    both = np.isfinite(ref) & np.isfinite(t)
    assert np.array_equal(np.isfinite(ref), both)  # whatever the march enters, the caster hits
    assert both.sum() > 100 and np.isfinite(t).sum() - both.sum() <= 5  # extra hits only grazing ones
    np.testing.assert_allclose(t[both], ref[both], atol=1e-7)
    # normals are unit, face the camera, and point outwards (a small step along them leaves the solid)
    hit = np.isfinite(t)
    p = origins[hit] + t[hit, None] * dirs[hit]
    np.testing.assert_allclose(np.linalg.norm(normals[hit], axis=1), 1.0, atol=1e-9)
    assert bool(((normals[hit] * dirs[hit]).sum(1) <= 1e-9).all())
    assert prim.contains(p + 1e-6 * normals[hit]).mean() < 0.01
    assert prim.contains(p - 1e-6 * normals[hit]).mean() > 0.99
    assert np.all(part[hit] == 0) and np.all(part[~hit] == -1)


def test_shape_hits_match_marching_the_exact_occupancy(one_per_category):
    for k, shape in enumerate(one_per_category):
        origins, dirs = _random_rays(250, seed=10 + k)
        t, _, _ = cast_rays(shape.parts, origins, dirs)
        ref = _march(shape.contains, origins, dirs)
        both = np.isfinite(ref) & np.isfinite(t)
        assert np.array_equal(np.isfinite(ref), both), shape.id
        assert np.isfinite(t).sum() - both.sum() <= 5, shape.id
        np.testing.assert_allclose(t[both], ref[both], atol=1e-7, err_msg=shape.id)


class _AllBoxes:
    """Broad phase for trimesh's narrow-phase ray/triangle test without rtree: AABB overlap by numpy."""

    def __init__(self, triangles):
        self.lo, self.hi = triangles.min(1), triangles.max(1)
        self.bounds = np.concatenate([self.lo.min(0), self.hi.max(0)])

    def intersection(self, box):
        box = np.asarray(box)
        return np.nonzero(np.all(self.lo <= box[3:], 1) & np.all(self.hi >= box[:3], 1))[0]


def test_depths_agree_with_trimesh_ray_queries_on_the_exported_mesh(one_per_category):
    """The mesh is inscribed in the solids: it is hit only where they are, never nearer, and exactly
    where the first part hit is a box (boxes are exact meshes)."""
    ray_triangle = pytest.importorskip("trimesh.ray.ray_triangle")
    for k, shape in enumerate(one_per_category):
        pose = poses_on_sphere(1, 1.8, seed=k, dtype=torch.float64)[0]
        o, d = (x.numpy() for x in camera_rays(pose, intrinsics_from_fov(0.9, 20, 20), 20, 20))
        t, part, _ = cast_rays(shape.parts, o, d)
        triangles = shape.to_trimesh(sections=48).triangles
        _, ray, loc = ray_triangle.ray_triangle_id(triangles, o, d, tree=_AllBoxes(triangles), multiple_hits=False)
        t_mesh = np.full(len(o), np.inf)
        t_mesh[ray] = ((loc - o[ray]) * d[ray]).sum(1)
        mesh_hit = np.isfinite(t_mesh)
        assert np.all(np.isfinite(t[mesh_hit])), shape.id
        assert np.all(t_mesh[mesh_hit] >= t[mesh_hit] - 1e-9), shape.id
        on_box = np.isfinite(t) & np.isin(part, [j for j, p in enumerate(shape.parts) if p.kind == "box"])
        assert np.all(mesh_hit[on_box]), shape.id
        np.testing.assert_allclose(t_mesh[on_box], t[on_box], atol=1e-9, err_msg=shape.id)
        assert (mesh_hit == np.isfinite(t)).mean() > 0.97, shape.id
        np.testing.assert_allclose(t_mesh[mesh_hit], t[mesh_hit], atol=0.02, err_msg=shape.id)


def test_centre_pixel_ray_hits_the_object_centre():
    ball = Primitive("sphere", (0, 0, 0), (0.2,))
    poses = poses_on_sphere(5, 1.8, seed=1, dtype=torch.float64)
    o, d = camera_rays(poses, intrinsics_from_fov(0.9, 9, 9), 9, 9)
    centre = 4 * 9 + 4
    t, part, normals = cast_rays([ball], o[:, centre].numpy(), d[:, centre].numpy())
    np.testing.assert_allclose(t, 1.8 - 0.2, atol=1e-12)
    assert np.all(part == 0)
    np.testing.assert_allclose(normals, -d[:, centre].numpy(), atol=1e-12)  # head-on: normal faces the camera


def test_point_cloud_colours_are_what_the_views_show(one_per_category):
    cfg = V.ViewConfig(n_points=400)
    for shape in one_per_category:
        colors = V.part_colors(shape)
        points, _, rgb = V.colored_point_cloud(shape, cfg, colors=colors)
        eye = np.array([0.3, 1.2, 1.5])
        dirs = points - eye
        dist = np.linalg.norm(dirs, axis=1)
        t, part, n_hit = cast_rays(shape.parts, np.broadcast_to(eye, points.shape), dirs / dist[:, None])
        seen = np.abs(t - dist) < 1e-7                                       # the point is the first hit
        assert seen.sum() > 50, shape.id
        albedo = np.array([V.PALETTE[colors[p.name]] for p in shape.parts])
        shown = np.rint(V.shade(albedo[part[seen]], n_hit[seen], cfg) * 255)
        assert (np.abs(shown - rgb[seen]).max(1) <= 1).mean() > 0.98, shape.id


# ----------------------------------------------------------------------------- SRN files

def test_two_prepares_are_byte_identical(views_root, tmp_path):
    other = V.prepare_views(tmp_path / "views_b", **SMALL)
    first, second = _files(views_root), _files(other)
    assert first == second
    splits = {rel.split("/")[0] for rel in first if rel.count("/") >= 2}
    assert splits <= set(srn.SPLITS) and "train" in splits


def test_prepare_is_idempotent_and_repairs(tmp_path):
    args = dict(SMALL, n_objects=5, views=2, size=8)
    root = V.prepare_views(tmp_path, **args)
    png = min(root.rglob("rgb/000001.png"))
    before, mtime = png.read_bytes(), png.stat().st_mtime_ns
    V.prepare_views(tmp_path, **args)
    assert png.stat().st_mtime_ns == mtime  # nothing rewritten
    png.write_bytes(b"not a png")
    V.prepare_views(tmp_path, **args)
    assert png.read_bytes() == before       # digest mismatch → object rebuilt identically


def test_srn_round_trip(views_root):
    manifest = json.loads((views_root / "manifest.json").read_text())
    rel = min(manifest["objects"])
    oid = rel.split("/")[1]
    category, index = oid.rsplit("_", 1)
    shape = generate_shape(category, int(index), seed=0)
    cfg = V.ViewConfig(size=SMALL["size"], views=SMALL["views"], n_points=SMALL["n_points"])
    files = V.object_files(shape, cfg, seed=0)
    obj = srn.load_srn_object(views_root / rel)
    assert obj["id"] == oid and obj["images"].shape == (3, 3, 16, 16)
    for k in range(3):
        image = np.asarray(Image.open(io.BytesIO(files[f"rgb/{k:06d}.png"])))
        np.testing.assert_array_equal((obj["images"][k].permute(1, 2, 0).numpy() * 255).round(), image)
        pose = np.array(files[f"pose/{k:06d}.txt"].decode().split(), dtype=np.float64).reshape(4, 4)
        np.testing.assert_allclose(obj["poses"][k].numpy(), pose, atol=1e-6)
    f, _, c, _ = intrinsics_from_fov(cfg.fov, 16, 16)
    np.testing.assert_allclose(obj["intrinsics"].numpy(), [f, f, c, c], rtol=1e-6)
    assert obj["points"].shape == (SMALL["n_points"], 3) and float(obj["point_rgb"].max()) <= 1.0
    # the stored poses are the cameras that made the images: re-rendering gives the same pixels
    poses = np.stack([srn.read_pose(views_root / rel / "pose" / f"{k:06d}.txt") for k in range(3)])
    again = V.render_views(shape, poses, cfg, colors=V.part_colors(shape))
    np.testing.assert_array_equal(again, (obj["images"].permute(0, 2, 3, 1).numpy() * 255).round())
    half = srn.load_srn_object(views_root / rel, size=8)
    np.testing.assert_allclose(half["intrinsics"].numpy(), obj["intrinsics"].numpy() / 2, rtol=1e-6)
    torch.testing.assert_close(half["images"], torch.nn.functional.avg_pool2d(obj["images"], 2), atol=1 / 255 + 1e-6, rtol=0)


def test_dataset_items(views_root):
    data = srn.SRNDataset(views_root, "train", views_per_item=2, n_points=100)
    item = data[0]
    assert item["images"].shape == (2, 3, 16, 16) and item["poses"].shape == (2, 4, 4)
    assert item["points"].shape == (100, 3) and item["point_rgb"].shape == (100, 3)
    cached = srn.SRNDataset(views_root, "train", views_per_item=2, n_points=100, preload=True)
    torch.testing.assert_close(cached[0]["images"], item["images"])
    with pytest.raises(DDMIError, match="split"):
        srn.SRNDataset(views_root, "validation")


def _srn_object(folder, size=12, views=2):
    """An object as SRN cars ships it: RGBA views, 4-line poses, intrinsics for 2× larger images."""
    (folder / "rgb").mkdir(parents=True)
    (folder / "pose").mkdir()
    for k in range(views):
        rgba = np.zeros((size, size, 4), dtype=np.uint8)
        rgba[3:9, 3:9] = (200, 10, 10, 255)
        Image.fromarray(rgba, "RGBA").save(folder / "rgb" / f"{k:06d}.png")
        pose = poses_on_sphere(1, 1.3, seed=k, dtype=torch.float64)[0].numpy()
        (folder / "pose" / f"{k:06d}.txt").write_text("\n".join(" ".join(map(str, r)) for r in pose) + "\n")
    (folder / "intrinsics.txt").write_text(f"30.0 {size:.1f} {size:.1f} 0.\n0. 0. 0.\n1.\n{2 * size} {2 * size}\n")


def test_reads_srn_cars_layout_and_names_bad_files(tmp_path):
    root = tmp_path / "srn"
    folder = root / "cars_train" / "1a2b3c"
    _srn_object(folder)
    obj = srn.load_srn_object(folder, size=6)
    assert obj["images"].shape == (2, 3, 6, 6) and obj["points"] is None
    assert float(obj["images"][0, :, 0, 0].min()) == 1.0                    # transparent → white
    np.testing.assert_allclose(obj["intrinsics"].numpy(), [7.5, 7.5, 3.0, 3.0])  # 30 · (12/24) · (6/12)
    assert len(srn.SRNDataset(root, "train", size=6)) == 1
    (folder / "pose" / "000001.txt").write_text("1 2 3\n")
    with pytest.raises(DDMIError, match="000001.txt"):
        srn.load_srn_object(folder)
    (folder / "pose" / "000001.txt").unlink()
    with pytest.raises(DDMIError, match="000001.txt"):
        srn.load_srn_object(folder)
    (folder / "rgb" / "000001.png").unlink()
    (folder / "rgb" / "000000.png").write_bytes(b"garbage")
    with pytest.raises(DDMIError, match="000000.png"):
        srn.load_srn_object(folder)
    (folder / "intrinsics.txt").write_text("oops\n")
    _srn_object(root / "cars_train" / "other")
    (root / "cars_train" / "other" / "intrinsics.txt").write_text("oops\n")
    with pytest.raises(DDMIError, match="intrinsics.txt"):
        srn.load_srn_object(root / "cars_train" / "other")
