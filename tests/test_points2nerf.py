"""Points2NeRF npz files (the paper's SRN-cars training data) read into the NeRF domain's ViewTensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddmi_lite.data import points2nerf as P
from ddmi_lite.domains import nerf as N
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.rays import camera_rays, look_at


def _object(seed: int, *, views: int = 4, side: int = 16, points: int = 100) -> dict:
    """Cameras at distance 1.3 around the origin (OpenGL axes), a coloured cloud inside [−0.4, 0.4]³."""
    rng = np.random.default_rng(seed)
    poses = []
    for v in range(views):
        a = 2 * math.pi * v / views
        cv = look_at((1.3 * math.sin(a), 0.4, 1.3 * math.cos(a)), dtype=torch.float64).numpy()  # OpenCV
        poses.append(cv @ np.diag([1.0, -1.0, -1.0, 1.0]))  # the same camera written with OpenGL axes
    cloud = np.concatenate([rng.uniform(-0.4, 0.4, (points, 3)), rng.uniform(0, 1, (points, 3))], 1)
    return {"images": rng.integers(0, 256, (views, side, side, 3), dtype=np.uint8),
            "cam_poses": np.stack(poses).astype(np.float32), "data": cloud.astype(np.float32)}


def _write(path, arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_two_objects_load_with_shapes_dtypes_ranges_and_cameras(tmp_path):
    objs = {f"car_{i}": _object(i) for i in range(2)}
    for name, arrays in objs.items():
        _write(tmp_path / "train" / f"{name}.npz", arrays)
    data = N.load_view_split(tmp_path, "train")
    assert data.ids == ["car_0", "car_1"] and len(data) == 2
    assert data.images.shape == (2, 4, 16, 16, 3) and data.images.dtype == torch.uint8
    assert data.poses.shape == (2, 4, 4, 4) and data.poses.dtype == torch.float32
    assert data.cloud.shape == (2, 100, 6) and data.cloud.dtype == torch.float32
    assert data.object_intrinsics.shape == (2, 4) and data.object_bounds.shape == (2, 3)
    assert torch.equal(data.images[1], torch.from_numpy(objs["car_1"]["images"]))  # the pixels, untouched
    assert 0.0 <= float(data.cloud[..., 3:].min()) and float(data.cloud[..., 3:].max()) <= 1.0
    torch.testing.assert_close(data.cloud[0, :, 3:], torch.from_numpy(objs["car_0"]["data"][:, 3:]))
    f = 8.0 / math.tan(P.REFERENCE_FOV / 2)  # the default camera: the reference's FoV at 16 px
    torch.testing.assert_close(data.object_intrinsics[0], torch.tensor([f, f, 8.0, 8.0]))
    # OpenGL poses become OpenCV ones: every camera looks at the origin, which projects to the image centre
    for i in range(2):
        box = 1.1 * float(np.abs(objs[f"car_{i}"]["data"][:, :3]).max())
        torch.testing.assert_close(data.object_bounds[i, 2].item(), box, rtol=1e-6, atol=0)
        scale = BOX / box
        torch.testing.assert_close(data.poses[i, :, :3, 3].norm(dim=-1), torch.full((4,), math.hypot(1.3, 0.4) * scale),
                                   rtol=1e-5, atol=0)
        origins, dirs = camera_rays(data.poses[i], data.object_intrinsics[i], 16, 16)  # [V, 256, 3]
        centre = -origins[:, 0] / origins[:, 0].norm(dim=-1, keepdim=True)  # toward the origin
        corner_pixels = dirs.reshape(4, 16, 16, 3)[:, 7:9, 7:9].mean((1, 2))  # the four pixels round the centre
        torch.testing.assert_close(torch.nn.functional.normalize(corner_pixels, dim=-1), centre, atol=1e-4, rtol=0)
    batch = N.make_batch(data, torch.tensor([1, 0]), torch.Generator().manual_seed(0), n_rays=8, n_points=16)
    assert batch["x"].shape == (2, 16, 6) and batch["x"][..., :3].abs().max() <= 1.0 / 1.1 + 1e-6


def test_focal_bounds_float_images_and_the_flat_layout(tmp_path):
    for i in range(5):  # no split folders: sorted by name, the first 80 % train
        arrays = _object(10 + i)
        arrays["images"] = arrays["images"].astype(np.float32) / 255.0  # floats in [0, 1]
        arrays.update(focal=np.float32(20.0), near=0.6, far=2.1, box=0.5)
        _write(tmp_path / f"obj_{i}.npz", arrays)
    train, test = N.load_view_split(tmp_path, "train"), N.load_view_split(tmp_path, "test")
    assert train.ids == ["obj_0", "obj_1", "obj_2", "obj_3"] and test.ids == ["obj_4"]
    assert torch.equal(train.object_intrinsics[0], torch.tensor([20.0, 20.0, 8.0, 8.0]))
    torch.testing.assert_close(train.object_bounds[0], torch.tensor([0.6, 2.1, 0.5], dtype=torch.float64))
    assert train.near == pytest.approx(0.6 * BOX / 0.5) and train.far == pytest.approx(2.1 * BOX / 0.5)
    obj = P.load_points2nerf_object(tmp_path / "obj_4.npz", size=8, convention="opencv")
    assert obj["images"].shape == (4, 3, 8, 8) and obj["images"].dtype == torch.float32
    torch.testing.assert_close(obj["intrinsics"], torch.tensor([10.0, 10.0, 4.0, 4.0]))
    raw = np.load(tmp_path / "obj_4.npz")["cam_poses"]
    torch.testing.assert_close(obj["poses"], torch.from_numpy(raw))  # opencv: as stored
    with pytest.raises(DDMIError, match="val"):
        N.load_view_split(tmp_path, "val")


@pytest.mark.parametrize("change, fragment", [
    (lambda a: a.pop("cam_poses"), "lacks key 'cam_poses'"),
    (lambda a: a.pop("data"), "lacks key 'data'"),
    (lambda a: a.update(images=a["images"][..., 0]), r"'images' has shape \(4, 16, 16\)"),
    (lambda a: a.update(cam_poses=a["cam_poses"][:3]), r"'cam_poses' has shape \(3, 4, 4\); expected \(4, 4, 4\)"),
    (lambda a: a.update(data=a["data"][:, :3]), r"'data' has shape \(100, 3\); expected \(N, 6\)"),
    (lambda a: a.update(images=a["images"] * 2.0), r"'images' colours span"),
    (lambda a: a["cam_poses"].__setitem__((2, 0, 0), 3.0), r"'cam_poses'\[2\] is not a camera-to-world pose"),
    (lambda a: a.update(near=2.0, far=1.0), "near=2.0 must be less than far=1.0"),
    (lambda a: a.update(focal=-1.0), "focal=-1.0 must be a finite positive"),
])
def test_a_bad_file_names_itself_and_the_wrong_key_or_shape(tmp_path, change, fragment):
    _write(tmp_path / "train" / "good.npz", _object(0))
    arrays = _object(1)
    change(arrays)
    bad = _write(tmp_path / "train" / "bad.npz", arrays)
    with pytest.raises(DDMIError, match=fragment) as err:
        N.load_view_split(tmp_path, "train")
    assert str(bad) in str(err.value)


def test_unreadable_files_and_options_are_refused(tmp_path):
    junk = tmp_path / "train" / "junk.npz"
    junk.parent.mkdir()
    junk.write_bytes(b"not a zip")
    with pytest.raises(DDMIError, match=f"{junk}.*not a readable .npz"):
        P.load_points2nerf_object(junk)
    good = _write(tmp_path / "good.npz", _object(0))
    with pytest.raises(DDMIError, match="convention"):
        P.load_points2nerf_object(good, convention="blender")
    with pytest.raises(DDMIError, match="does not exist"):
        P.load_points2nerf_object(tmp_path / "missing.npz")
