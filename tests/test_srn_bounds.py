"""Per-object ray bounds (near, far, box): read from the data, derived from the cameras and the cloud
otherwise, the procedural views' values unchanged, and the NeRF domain rendering with them."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from ddmi_lite.data import srn
from ddmi_lite.data.views import prepare_views
from ddmi_lite.domains import nerf as N
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.io import MARKER


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    return prepare_views(tmp_path_factory.mktemp("bounds_views"), n_objects=10, views=3, size=16, n_points=200,
                         progress=False)


def _users_copy(ours, root):
    """Our folder as a user would have it: no marker, no manifest, no bounds.json."""
    shutil.copytree(ours, root, ignore=shutil.ignore_patterns(MARKER, "manifest.json", srn.BOUNDS_FILE))
    return root


def test_the_procedural_views_keep_near_far_and_box_exactly(ours, tmp_path):
    assert json.loads((ours / srn.BOUNDS_FILE).read_text()) == {"near": 0.9, "far": 2.7, "box": 0.55}
    data = N.load_view_split(ours, "train")
    assert data.near == 0.9 and data.far == 2.7  # the floats the renderer got before, bit for bit
    assert torch.equal(data.object_bounds, torch.tensor([[0.9, 2.7, BOX]], dtype=torch.float64).expand(len(data), 3))
    assert torch.equal(data.object_scale, torch.ones(len(data), dtype=torch.float64))
    first = srn.load_srn_object(min((ours / "train").iterdir()))
    assert torch.equal(data.poses[0], first["poses"]) and torch.equal(data.cloud[0, :, :3], first["points"])
    # a cache prepared before bounds.json existed: its manifest's settings give the same values
    old = shutil.copytree(ours, tmp_path / "old")
    (old / srn.BOUNDS_FILE).unlink()
    assert torch.equal(N.load_view_split(old, "train").object_bounds, data.object_bounds)


def test_per_object_near_and_far_render_as_the_same_floats_did(ours):
    """The training batch carries each object's near/far; for ours they give the very same pixels."""
    data = N.load_view_split(ours, "train")
    batch = N.make_batch(data, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0), n_rays=16, n_points=8)
    assert batch["near"].shape == (3,) and torch.equal(batch["near"], torch.full((3,), 0.9))

    class Field:  # a soft ball of varying colour stands in for a decoded field
        def query(self, fields, coords, *, dirs):
            raw = 4.0 - 8.0 * coords.norm(dim=-1, keepdim=True)
            return torch.cat([raw, torch.sigmoid(coords * 3.0)], -1)

    a = N.render_rays(Field(), None, batch["origins"], batch["dirs"], n_samples=12, near=batch["near"],
                      far=batch["far"], generator=torch.Generator().manual_seed(1))
    b = N.render_rays(Field(), None, batch["origins"], batch["dirs"], n_samples=12, near=0.9, far=2.7,
                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.weights, b.weights)


def test_per_scene_bounds_clip_each_scenes_rays():
    gen = torch.Generator().manual_seed(0)
    origins = torch.tensor([0.0, 0.0, 2.0]).expand(2, 5, 3)
    dirs = torch.nn.functional.normalize(torch.randn(2, 5, 3, generator=gen) * 0.1 + torch.tensor([0, 0, -1.0]), dim=-1)
    near, far = torch.tensor([1.6, 0.5]), torch.tensor([2.0, 3.0])
    t_in, t_out, _ = N.box_interval(origins, dirs, near=near[:, None], far=far[:, None])
    for s in range(2):
        row = N.box_interval(origins[s], dirs[s], near=float(near[s]), far=float(far[s]))
        assert torch.equal(t_in[s], row[0]) and torch.equal(t_out[s], row[1])
    assert (t_in[0] >= 1.6).all() and (t_out[0] <= 2.0).all()


def test_bounds_are_derived_from_cameras_and_cloud_when_the_data_gives_none(ours, tmp_path):
    root = _users_copy(ours, tmp_path / "mine")
    data = N.load_view_split(root, "train")
    for i, folder in enumerate(sorted((root / "train").iterdir())):
        obj = srn.load_srn_object(folder)
        box = 1.1 * float(obj["points"].double().abs().max())
        dist = obj["poses"][:, :3, 3].double().norm(dim=-1)
        expected = [max(float(dist.min()) - math.sqrt(3) * box, 0.01), float(dist.max()) + math.sqrt(3) * box, box]
        torch.testing.assert_close(data.object_bounds[i], torch.tensor(expected, dtype=torch.float64))
        s = BOX / box
        # in model units the box is [−0.55, 0.55]³ and the cloud reaches 0.5 of it
        assert abs(float(data.cloud[i, :, :3].abs().max()) - BOX / 1.1) < 1e-5
        torch.testing.assert_close(data.poses[i, :, :3, 3], obj["poses"][:, :3, 3] * s)
        # the scaling leaves every image unchanged: each cloud point projects to the same pixel
        k, proj = data.object_intrinsics[i], []
        for pose, pts in ((obj["poses"][0], obj["points"]), (data.poses[i, 0], data.cloud[i, :, :3])):
            cam = (pts - pose[:3, 3]) @ pose[:3, :3]  # world → camera (OpenCV), [M, 3]
            proj.append(torch.stack([k[0] * cam[:, 0] / cam[:, 2] + k[2], k[1] * cam[:, 1] / cam[:, 2] + k[3]], -1))
        torch.testing.assert_close(proj[0], proj[1], atol=1e-3, rtol=0)
        # every cloud point lies between the object's near and far from every camera
        d = (data.cloud[i, None, :, :3] - data.poses[i, :, None, :3, 3]).norm(dim=-1)  # [V, M]
        assert float(d.min()) >= float(data.object_near[i]) and float(d.max()) <= float(data.object_far[i])


def test_bounds_files_override_in_order_and_bad_ones_name_the_file(ours, tmp_path):
    root = _users_copy(ours, tmp_path / "mine")
    (root / srn.BOUNDS_FILE).write_text(json.dumps({"near": 0.5, "far": 3.0}))
    folders = sorted((root / "train").iterdir())
    (folders[1] / srn.BOUNDS_FILE).write_text(json.dumps({"box": 0.6, "far": 2.5}))
    data = N.load_view_split(root, "train")
    cloud_box = 1.1 * float(srn.load_srn_object(folders[0])["points"].double().abs().max())
    torch.testing.assert_close(data.object_bounds[0], torch.tensor([0.5, 3.0, cloud_box], dtype=torch.float64))
    assert data.object_bounds[1].tolist() == [0.5, 2.5, 0.6]
    torch.testing.assert_close(data.object_near[1], torch.tensor(0.5 * BOX / 0.6, dtype=torch.float64))
    for bad, fragment in (({"near": 2.0, "far": 1.0}, "less than"), ({"near": -1.0}, "finite positive"),
                          ({"box": "big"}, "finite positive"), ({"radius": 1.0}, "unknown bounds"),
                          ([0.5, 3.0], "must hold an object")):
        (folders[1] / srn.BOUNDS_FILE).write_text(json.dumps(bad))
        with pytest.raises(DDMIError, match=fragment) as err:
            srn.load_srn_object(folders[1])
        assert str(folders[1] / srn.BOUNDS_FILE) in str(err.value)


def test_without_a_cloud_the_object_is_taken_to_fit_the_unit_cube():
    poses = torch.eye(4).expand(3, 4, 4).clone()
    poses[:, :3, 3] = torch.tensor([[0.0, 0.0, 1.3], [0.0, 1.3, 0.0], [2.0, 0.0, 0.0]])
    near, far, box = srn.view_bounds(poses).tolist()
    assert box == BOX and near == pytest.approx(max(1.3 - math.sqrt(3) * BOX, 0.01))
    assert far == pytest.approx(2.0 + math.sqrt(3) * BOX)
    inside = torch.eye(4)[None]  # a camera inside the box: near stays positive
    assert srn.view_bounds(inside)[0] == srn.MIN_NEAR
    assert srn.view_bounds(poses, given={"near": 0.8, "far": 1.8}).tolist()[:2] == [0.8, 1.8]
