"""Shape geometry: dense grids, chunked evaluation, marching cubes, mesh files, pictures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from ddmi_lite import geometry as G
from ddmi_lite.errors import DDMIError

R_SPHERE = 0.35


def _smooth_sphere(points: torch.Tensor) -> torch.Tensor:
    """Occupancy probability of a ball, 0.5 exactly on the sphere of radius R_SPHERE."""
    return torch.sigmoid((R_SPHERE - points.norm(dim=-1)) / 0.02)


def test_dense_grid_spans_the_padded_cube_in_ij_order():
    r = 5
    grid = G.dense_grid(r)
    assert grid.shape == (r ** 3, 3)
    axis = torch.linspace(-0.55, 0.55, r)
    cube = grid.reshape(r, r, r, 3)
    assert torch.equal(cube[1, 2, 3], torch.stack([axis[1], axis[2], axis[3]]))
    assert grid.min() == -0.55 and grid.max() == 0.55
    assert G.dense_grid(3, padding=0.0).abs().max() == 0.5


def test_evaluate_occupancy_is_chunk_independent_and_ordered():
    def x_coordinate(p):
        return p[:, 0]

    whole = G.evaluate_occupancy(x_coordinate, 6, chunk=10 ** 6)
    chunked = G.evaluate_occupancy(x_coordinate, 6, chunk=7)
    assert torch.equal(whole, chunked)
    assert torch.equal(whole, G.dense_grid(6)[:, 0].reshape(6, 6, 6))
    numpy_fn = G.evaluate_occupancy(lambda p: (p.numpy()[:, 1] > 0)[:, None], 6, chunk=11)  # numpy [n,1]
    assert torch.equal(numpy_fn, (G.dense_grid(6)[:, 1] > 0).float().reshape(6, 6, 6))
    with pytest.raises(DDMIError, match="values"):
        G.evaluate_occupancy(lambda p: p[:-1, 0], 4)


def test_evaluate_occupancy_of_several_fields_and_the_unit_cube():
    fields = G.evaluate_occupancy(lambda p: p.T, 5, chunk=9, batch=True)  # three "fields": x, y, z
    grid = G.dense_grid(5)
    assert fields.shape == (3, 5, 5, 5)
    assert torch.equal(fields, grid.T.reshape(3, 5, 5, 5))
    unit = G.evaluate_occupancy(lambda p: p[:, 0], 5, padding=1.0)  # corner-aligned [-1, 1]³
    assert torch.equal(unit[:, 0, 0], torch.linspace(-1.0, 1.0, 5))
    with pytest.raises(DDMIError, match="batch=True"):
        G.evaluate_occupancy(lambda p: p[:, 0], 4, batch=True)


def test_marching_cubes_of_a_ball_has_its_area_and_volume():
    vol = G.evaluate_occupancy(_smooth_sphere, 64)
    mesh = G.extract_mesh(vol, threshold=0.5)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * R_SPHERE ** 3, rel=0.02)
    assert mesh.area == pytest.approx(4 * math.pi * R_SPHERE ** 2, rel=0.02)
    np.testing.assert_allclose(mesh.centroid, 0, atol=2e-3)
    # the same surface from logits; probability 0.2 lies further out, at r + 0.02·ln 4
    logit_mesh = G.extract_mesh(torch.logit(vol.clamp(1e-6, 1 - 1e-6)), threshold=0.5, logits=True)
    assert logit_mesh.vertices.shape == mesh.vertices.shape
    np.testing.assert_allclose(logit_mesh.vertices, mesh.vertices, atol=0.1 * 1.1 / 63)  # < 0.1 voxel
    outer = G.extract_mesh(vol, threshold=0.2)
    radius = np.linalg.norm(outer.vertices, axis=1).mean()
    assert radius == pytest.approx(R_SPHERE + 0.02 * math.log(4), abs=2e-3)


def test_marching_cubes_of_binary_occupancy_and_shapes_touching_the_box():
    ball = G.evaluate_occupancy(lambda p: p.norm(dim=-1) < R_SPHERE, 64)
    assert G.extract_mesh(ball, threshold=0.5).volume == pytest.approx(4 / 3 * math.pi * R_SPHERE ** 3, rel=0.03)
    full = torch.ones(8, 8, 8)  # everything inside: the padding closes the mesh at the box
    mesh = G.extract_mesh(full)
    assert mesh.is_watertight and mesh.volume == pytest.approx(1.1 ** 3, rel=1e-4)


def test_empty_volume_gives_an_empty_mesh_that_cannot_be_exported(tmp_path):
    mesh = G.extract_mesh(torch.zeros(8, 8, 8))
    assert mesh.is_empty and len(mesh.vertices) == 0
    with pytest.raises(DDMIError, match="empty"):
        G.export_mesh(mesh, tmp_path / "empty.ply")
    with pytest.raises(DDMIError, match="shape"):
        G.extract_mesh(torch.zeros(8, 8))


@pytest.mark.parametrize("suffix", [".ply", ".glb", ".obj"])
def test_exported_meshes_load_back(tmp_path, suffix):
    mesh = G.extract_mesh(G.evaluate_occupancy(_smooth_sphere, 24), threshold=0.5)
    path = G.export_mesh(mesh, tmp_path / f"ball{suffix}")
    back = trimesh.load(path, force="mesh", process=False)
    assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
    assert back.volume == pytest.approx(mesh.volume, rel=1e-4)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_export_rejects_unknown_suffixes(tmp_path):
    mesh = trimesh.creation.box()
    with pytest.raises(DDMIError, match="suffix"):
        G.export_mesh(mesh, tmp_path / "box.xyz")


def test_winding_number_counts_enclosing_parts():
    a = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    b = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    b.apply_translation((0.3, 0, 0))
    both = trimesh.util.concatenate([a, b])
    pts = np.array([[0.15, 0, 0], [-0.2, 0, 0], [0.45, 0, 0], [0, 0.5, 0], [0.7, 0, 0]])
    np.testing.assert_allclose(G.winding_number(both, pts), [2, 1, 1, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(G.mesh_contains(both, pts), [True, True, True, False, False])


def test_sample_surface_lies_on_the_mesh():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    pts = G.sample_surface(mesh, 500, seed=0)
    assert pts.shape == (500, 3) and pts.dtype == np.float32
    assert np.abs(np.linalg.norm(pts, axis=1) - 0.4).max() < 0.004
    np.testing.assert_array_equal(pts, G.sample_surface(mesh, 500, seed=0))
    with pytest.raises(DDMIError, match="empty"):
        G.sample_surface(G.empty_mesh(), 10)


def test_renderer_hides_what_is_behind():
    plate = trimesh.creation.box(extents=(0.8, 0.8, 0.05))
    plate.apply_translation((0, 0, 0.3))   # in front (+z faces the camera at azimuth 0)
    hidden = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    view = {"views": 1, "size": 64, "elevation": 0.0, "azimuth": 0.0}
    alone = G.render_mesh_views(plate, **view)
    together = G.render_mesh_views(trimesh.util.concatenate([plate, hidden]), **view)
    np.testing.assert_array_equal(alone, together)
    in_front = trimesh.util.concatenate([plate, hidden.copy().apply_translation((0, 0, 0.5))])
    assert not np.array_equal(alone, G.render_mesh_views(in_front, **view))


def test_render_views_and_grid(tmp_path):
    mesh = trimesh.creation.box(extents=(0.6, 0.2, 0.3))
    images = G.render_mesh_views(mesh, views=4, size=48)
    assert images.shape == (4, 48, 48, 3) and images.dtype == np.uint8
    assert (images < 250).any(axis=-1).mean() > 0.05         # the object covers part of each picture
    assert not np.array_equal(images[0], images[1])           # a quarter turn shows the other side
    assert (G.render_mesh_views(G.empty_mesh(), views=1, size=16) == 255).all()
    path = G.render_meshes_grid([mesh, G.empty_mesh(), mesh], tmp_path / "grid.png", titles=["a", "b", "c"],
                                ncols=2, size=64)
    with Image.open(path) as picture:
        assert picture.size[0] == 128
    with pytest.raises(DDMIError, match="png"):
        G.render_meshes_grid([mesh], tmp_path / "grid.jpg")


def test_k3d_scene_holds_every_item():
    pytest.importorskip("k3d")
    plot = G.k3d_scene([trimesh.creation.box(), np.zeros((10, 3)), torch.ones(5, 3)])
    assert len(plot.objects) == 3
    with pytest.raises(DDMIError, match="shape"):
        G.k3d_scene([np.zeros((4, 2))])
