"""Procedural shapes: exact occupancy, boundary samples, captions, ONet files and the loader."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from ddmi_lite.data import shapes as S
from ddmi_lite.data.captions import CAPTION_COLUMNS, CAPTIONS_CSV, HEIGHT_WORDS, load_captions
from ddmi_lite.data.furniture import (
    CATEGORIES,
    HEIGHT_BANDS,
    Shape,
    generate_collection,
    generate_shape,
    height_class,
    shape_id,
)
from ddmi_lite.geometry import BOX
from ddmi_lite.data.onet import SPLITS, load_pointcloud_npz, load_points_npz
from ddmi_lite.data.primitives import Primitive, axis_to, rot_x, rot_y
from ddmi_lite.geometry import mesh_contains
from ddmi_lite.errors import DDMIError

SMALL = {"n_objects": 20, "n_points": 2000, "n_surface": 500, "progress": False}


@pytest.fixture(scope="module")
def shape_root(tmp_path_factory):
    return S.prepare_shapes(tmp_path_factory.mktemp("shapes_a"), **SMALL)


@pytest.fixture(scope="module")
def one_per_category():
    return [generate_shape(c, 1, seed=5) for c in CATEGORIES]


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


# ----------------------------------------------------------------------------- primitives and occupancy

def test_primitive_volume_area_and_bounds_match_their_meshes():
    for prim in _primitives():
        mesh = prim.to_trimesh(sections=64)
        assert mesh.is_watertight, prim.kind
        assert mesh.volume == pytest.approx(prim.volume(), rel=0.02), prim.kind  # inscribed mesh: slightly less
        assert mesh.area == pytest.approx(prim.area(), rel=0.02), prim.kind
        lo, hi = prim.bounds()
        np.testing.assert_allclose(mesh.bounds[0], lo, atol=0.01)
        np.testing.assert_allclose(mesh.bounds[1], hi, atol=0.01)


def test_primitive_containment_matches_its_mesh():
    rng = np.random.default_rng(0)
    for prim in _primitives():
        lo, hi = prim.bounds()
        pts = rng.uniform(lo - 0.05, hi + 0.05, (1000, 3))
        agree = (prim.contains(pts) == mesh_contains(prim.to_trimesh(sections=32), pts)).mean()
        assert agree >= 0.99, (prim.kind, agree)


def test_shape_occupancy_agrees_with_the_exported_mesh(one_per_category):
    """The mesh is the parts' closed meshes concatenated; inside = winding number > ½ (see to_trimesh)."""
    rng = np.random.default_rng(1)
    for shape in one_per_category:
        near = shape.sample_surface(400, seed=2) + rng.normal(0, 0.01, (400, 3))
        pts = np.concatenate([rng.uniform(-BOX, BOX, (800, 3)), near])
        agree = (shape.contains(pts) == mesh_contains(shape.to_trimesh(), pts)).mean()
        assert agree >= 0.99, (shape.id, agree)


def test_shape_occupancy_agrees_with_trimesh_ray_tests(one_per_category):
    pytest.importorskip("rtree")  # trimesh's own inside test needs it
    rng = np.random.default_rng(1)
    for shape in one_per_category:
        pts = rng.uniform(-BOX, BOX, (2000, 3))
        ref = np.any([m.contains(pts) for m in shape.part_meshes()], axis=0)  # per part: no overlap problem
        assert (shape.contains(pts) == ref).mean() >= 0.99


def test_surface_points_lie_on_the_boundary_with_outward_normals(one_per_category):
    for shape in one_per_category:
        pts, nrm = shape.sample_surface(3000, seed=4, return_normals=True)
        assert pts.shape == nrm.shape == (3000, 3)
        np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-9)
        delta = 1e-3
        assert (~shape.contains(pts + delta * nrm)).mean() >= 0.98, shape.id
        assert shape.contains(pts - delta * nrm).mean() >= 0.98, shape.id


def test_surface_samples_are_uniform_on_the_union_boundary():
    # two cubes overlapping by half: the union is the box [-0.2, 0.4] × [-0.2, 0.2]²
    a = Primitive("box", (0, 0, 0), (0.2, 0.2, 0.2))
    b = Primitive("box", (0.2, 0, 0), (0.2, 0.2, 0.2))
    shape = Shape("chair", 0, [a, b], {}, [""], np.zeros(3), 1.0)
    pts = shape.sample_surface(20000, seed=0)
    lo, hi = np.array([-0.2, -0.2, -0.2]), np.array([0.4, 0.2, 0.2])
    on_face = np.isclose(pts, lo) | np.isclose(pts, hi)
    assert on_face.any(axis=1).all()  # no point on the faces hidden inside the other cube
    area = 2 * (0.6 * 0.4 * 2 + 0.4 * 0.4)
    assert np.isclose(pts[:, 0], 0.4).mean() == pytest.approx(0.4 * 0.4 / area, abs=0.01)
    assert np.isclose(pts[:, 1], 0.2).mean() == pytest.approx(0.6 * 0.4 / area, abs=0.01)


def test_shapes_are_normalised_like_onet(one_per_category):
    for shape in one_per_category:
        lo, hi = shape.bounds()
        assert np.all(lo >= -0.5 - 1e-9) and np.all(hi <= 0.5 + 1e-9)
        assert (hi - lo).max() == pytest.approx(1.0)
        np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-9)
        pts = shape.sample_surface(4000, seed=0)
        np.testing.assert_allclose(pts.min(0), lo, atol=0.03)
        np.testing.assert_allclose(pts.max(0), hi, atol=0.03)


def test_generation_is_deterministic_and_independent_of_collection_size():
    small, large = generate_collection(10, seed=3), generate_collection(25, seed=3)
    by_id = {s.id: s for s in large}
    for shape in small:
        other = by_id[shape.id]
        assert shape.captions == other.captions and shape.attributes == other.attributes
        for p, q in zip(shape.parts, other.parts):
            assert p.kind == q.kind and np.array_equal(p.center, q.center) and p.size == q.size
    sizes = [[p.size for p in generate_shape("lamp", 0, seed=seed).parts] for seed in (0, 1)]
    assert sizes[0] != sizes[1]  # the seed matters
    with pytest.raises(DDMIError, match="category"):
        generate_shape("boat", 0)


# ----------------------------------------------------------------------------- captions and attributes

def _count(shape, *names):
    return sum(p.name in names for p in shape.parts)


def test_captions_and_geometry_match_the_attributes():
    numbers = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    for shape in generate_collection(150, seed=11):
        a, cat = shape.attributes, shape.category
        lo, hi = shape.bounds()
        ext = hi - lo
        if cat in HEIGHT_BANDS:
            assert a["height_class"] == height_class(cat, ext[1] / max(ext[0], ext[2]))
        assert len(shape.captions) == 2
        for text in shape.captions:
            if cat in HEIGHT_BANDS:
                short, tall = HEIGHT_WORDS[cat]
                assert (f"{tall} " in text) == (a["height_class"] == "tall"), text
                assert (f"{short} " in text) == (a["height_class"] == "short"), text
            if cat == "chair":
                assert ("armrests" in text) == a["has_armrests"] == (_count(shape, "armrest") == 2)
                assert ("armless" in text) == (not a["has_armrests"])
                assert f"a {a['back']} back" in text
                assert (_count(shape, "slat") > 0) == (a["back"] == "slatted")
                legs = {"four_legs": "four legs", "three_legs": "three legs", "pedestal": "pedestal"}[a["base"]]
                assert legs in text
                assert _count(shape, "leg", "column") == a["n_legs"]  # a pedestal is one column
            elif cat == "table":
                assert f"{a['top']} table" in text
                assert ("round" in text) == (a["top"] == "round") == (shape.parts[0].kind == "cylinder")
                assert ("pedestal" in text) == (a["n_legs"] == 1) == (_count(shape, "column") == 1)
                if a["n_legs"] > 1:
                    assert f"{numbers[a['n_legs']]} legs" in text and _count(shape, "leg") == a["n_legs"]
            elif cat == "lamp":
                assert f"{a['lamp_type']} lamp" in text and f"a {a['shade']} shade" in text
                shade = next(p for p in shape.parts if p.name == "shade")
                assert shade.kind == {"conical": "frustum", "cylindrical": "cylinder", "spherical": "sphere"}[a["shade"]]
                assert ("angled arm" in text) == (a["arm"] == "angled") == (_count(shape, "arm") == 1)
                assert ("tripod" in text) == (a["base"] == "tripod") == (_count(shape, "tripod_leg") == 3)
            elif cat == "shelf":
                assert f"{numbers[a['n_shelves']]} shelves" in text and _count(shape, "shelf") == a["n_shelves"]
                assert ("side panels" in text) == a["has_side_panels"] == (_count(shape, "side_panel") == 2)
                assert ("back panel" in text) == a["has_back"] == (_count(shape, "back_panel") == 1)
                assert ("open back" in text) == (not a["has_back"])
            else:
                assert f"{numbers[a['n_seats']]}-seater" in text
                assert ("L-shaped" in text) == (a["shape"] == "L-shaped") == (_count(shape, "chaise") == 1)
                assert ("armrests" in text) == a["has_armrests"] == (_count(shape, "armrest") == 2)
                assert ("short legs" in text) == a["has_legs"] == (_count(shape, "leg") >= 4)
                assert ("skirted" in text) == (not a["has_legs"])


def test_every_attribute_value_occurs():
    shapes = generate_collection(300, seed=0)
    seen = {}
    for s in shapes:
        for key, value in s.attributes.items():
            if key != "aspect":
                seen.setdefault((s.category, key), set()).add(value)
    assert seen[("chair", "base")] == {"four_legs", "three_legs", "pedestal"}
    assert seen[("chair", "height_class")] == {"short", "medium", "tall"}
    assert seen[("table", "top")] == {"round", "rectangular", "square"}
    assert seen[("table", "n_legs")] == {1, 3, 4}
    assert seen[("lamp", "shade")] == {"conical", "cylindrical", "spherical"}
    assert seen[("shelf", "n_shelves")] == {2, 3, 4, 5}
    assert seen[("sofa", "shape")] == {"straight", "L-shaped"}


# ----------------------------------------------------------------------------- files

def test_two_prepares_are_byte_identical(shape_root, tmp_path):
    other = S.prepare_shapes(tmp_path / "b", **SMALL)
    first, second = _files(shape_root), _files(other)
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
    assert sum(k.endswith("points.npz") for k in first) == 20


def test_prepare_is_idempotent_and_repairs_a_corrupt_file(tmp_path):
    root = S.prepare_shapes(tmp_path / "c", **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    S.prepare_shapes(root, **SMALL)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps
    target = root / "sofa" / "sofa_00001" / "points.npz"
    good = target.read_bytes()
    target.write_bytes(good[: len(good) // 2])
    S.prepare_shapes(root, **SMALL)
    assert target.read_bytes() == good


def test_points_npz_holds_exact_bitpacked_labels(shape_root):
    for oid in ("chair_00000", "lamp_00002", "table_00003"):
        cat, index = oid.rsplit("_", 1)
        data = load_points_npz(shape_root / cat / oid / "points.npz")
        shape = generate_shape(cat, int(index), seed=0)
        assert data["points"].shape == (2000, 3) and data["occupancies"].dtype == bool
        np.testing.assert_array_equal(data["occupancies"], shape.contains(data["points"]))
        assert data["n_uniform"] == 1000 and np.abs(data["points"]).max() <= BOX
        np.testing.assert_allclose(data["loc"], shape.loc, rtol=1e-6)
        assert data["scale"] == pytest.approx(shape.scale, rel=1e-6)
        cloud = load_pointcloud_npz(shape_root / cat / oid / "pointcloud.npz")
        assert cloud["points"].shape == cloud["normals"].shape == (500, 3)


def test_bitpacking_round_trips(tmp_path):
    occ = np.random.default_rng(0).random(1001) < 0.3  # not a multiple of 8
    path = tmp_path / "points.npz"
    np.savez(path, points=np.zeros((1001, 3), np.float16), occupancies=np.packbits(occ))
    np.testing.assert_array_equal(load_points_npz(path)["occupancies"], occ)
    np.savez(path, points=np.zeros((1001, 3), np.float16), occupancies=occ)  # unpacked is accepted too
    np.testing.assert_array_equal(load_points_npz(path)["occupancies"], occ)


def test_malformed_npz_raise_an_error_naming_the_file(shape_root, tmp_path):
    good = (shape_root / "chair" / "chair_00000" / "points.npz").read_bytes()
    cases = {"truncated.npz": good[: len(good) // 3], "garbage.npz": b"not a zip file at all"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "nokey.npz", points=np.zeros((10, 3), np.float32))
    np.savez(tmp_path / "badlen.npz", points=np.zeros((100, 3), np.float32), occupancies=np.zeros(5, np.uint8))
    np.savez(tmp_path / "badshape.npz", points=np.zeros((10, 2), np.float32), occupancies=np.zeros(10, bool))
    for name in ("truncated.npz", "garbage.npz", "nokey.npz", "badlen.npz", "badshape.npz", "missing.npz"):
        with pytest.raises(DDMIError, match=str(tmp_path / name)):
            load_points_npz(tmp_path / name)
    np.savez(tmp_path / "cloud.npz", points=np.zeros((10, 3), np.float32), normals=np.zeros((9, 3), np.float32))
    with pytest.raises(DDMIError, match="normals"):
        load_pointcloud_npz(tmp_path / "cloud.npz")


def test_split_lists_captions_and_attributes(shape_root):
    for cat in CATEGORIES:
        lists = {s: (shape_root / cat / f"{s}.lst").read_text().split() for s in SPLITS}
        everything = [i for s in SPLITS for i in lists[s]]
        assert sorted(everything) == [shape_id(cat, i) for i in range(4)]  # disjoint and complete
        assert [len(lists[s]) for s in SPLITS] == [2, 1, 1]
    with open(shape_root / CAPTIONS_CSV, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == CAPTION_COLUMNS
    captions = load_captions(shape_root / CAPTIONS_CSV)
    assert len(captions) == 20 and all(len(v) == 2 for v in captions.values())
    assert captions["table_00002"] == generate_shape("table", 2, seed=0).captions


def test_dataset_items(shape_root):
    ds = S.ShapeNetOccupancy(shape_root, "train", n_query=256, n_surface=128, seed=1)
    assert len(ds) == 10
    item = ds[3]
    assert item["surface"].shape == (128, 3) and item["query"].shape == (256, 3) and item["occ"].shape == (256,)
    assert item["surface"].dtype == item["query"].dtype == item["occ"].dtype == torch.float32
    cat, index = item["id"].rsplit("_", 1)
    shape = generate_shape(cat, int(index), seed=0)
    np.testing.assert_array_equal(item["occ"].numpy() == 1, shape.contains(item["query"].numpy()))
    assert item["caption"] in shape.captions and item["category"] == cat
    assert torch.equal(ds[3]["query"], item["query"])  # same (seed, epoch, index) → same subset
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["query"], item["query"])
    uni = S.ShapeNetOccupancy(shape_root, "val", categories=["lamp"], query="uniform", n_query=300)
    pts = load_points_npz(shape_root / "lamp" / uni.items[0][1] / "points.npz")["points"]
    rows = {tuple(p) for p in pts[:1000]}
    assert all(tuple(q) in rows for q in uni[0]["query"].numpy())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["query"].shape == (4, 256, 3) and len(batch["caption"]) == 4


def test_dataset_reads_plain_onet_folders_and_rejects_bad_arguments(tmp_path):
    obj = tmp_path / "03001627" / "1a2b3c"
    obj.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.55, 0.55, (500, 3)).astype(np.float16)
    occ = np.linalg.norm(pts.astype(np.float64), axis=1) < 0.3
    np.savez(obj / "points.npz", points=pts, occupancies=np.packbits(occ), loc=np.zeros(3), scale=1.0)
    np.savez(obj / "pointcloud.npz", points=rng.uniform(-0.5, 0.5, (300, 3)).astype(np.float16),  # normalised, as ONet's
             normals=rng.normal(size=(300, 3)).astype(np.float16), loc=np.zeros(3), scale=1.0)
    (tmp_path / "03001627" / "test.lst").write_text("1a2b3c\n")
    ds = S.ShapeNetOccupancy(tmp_path, "test", n_query=64, n_surface=32)
    item = ds[0]
    assert "caption" not in item and item["category"] == "03001627"
    np.testing.assert_array_equal(item["occ"].numpy() == 1, np.linalg.norm(item["query"].numpy(), axis=1) < 0.3)
    for kwargs in ({"split": "training"}, {"query": "near"}, {"n_query": 0}, {"categories": ["04379243"]}):
        with pytest.raises(DDMIError):
            S.ShapeNetOccupancy(tmp_path, **{"split": "test", **kwargs})
    with pytest.raises(DDMIError, match="does not exist"):
        S.ShapeNetOccupancy(tmp_path / "nowhere")
    assert math.isfinite(float(item["surface"].abs().max()))
