"""Points2NeRF's npz layout of SRN cars, the paper's NeRF training data (reference §4.1), and the one
entry point for objects of either NeRF layout (:func:`list_view_objects`, :func:`load_view_object`).

One ``.npz`` per object (its file name, without ``.npz``, is the object id):

    images      (n, H, W, 3) uint8 in 0–255, or float in [0, 1]   (n, H, W, 4): RGBA, composited on white
    cam_poses   (n, 4, 4) camera-to-world, one per image
    data        (N, 6) coloured point cloud: xyz, then rgb in [0, 1] (or in 0–255, read when its max > 1)
    focal, near, far, box   optional scalars (focal in pixels of the stored images)

**Assumptions** (the layout carries neither intrinsics nor a camera convention, so both must be given;
the defaults are those of the reference's code):

* ``convention="opengl"`` (default): the poses use nerf-pytorch's camera axes, as Points2NeRF does
  — x right, y up, the camera looking down −z. They are turned into this library's OpenCV poses
  (:mod:`ddmi_lite.rays`: y down, z forward) by right-multiplying with diag(1, −1, −1, 1), the
  conversion pixelNeRF applies the other way. ``convention="opencv"`` keeps them as they are.
* focal length: the file's ``focal`` key when present, else the ``focal=`` keyword, else the
  reference's field of view 0.6911112 rad: f = (W/2) / tan(fov/2) (277.8 px at 200²). Square
  pixels, principal point at the image centre; rays pass through pixel centres (nerf-pytorch casts
  them through pixel corners: a half-pixel shift, as with SRN's own code).
* ray bounds: the file's ``near`` / ``far`` / ``box``, then ``bounds.json`` beside the files (and in
  the dataset root), the rest derived from the cameras and the cloud (:func:`ddmi_lite.data.srn.view_bounds`).

Folders: ``<root>/<split>/*.npz`` (``train``/``val``/``test`` or SRN's ``cars_<split>``), or all the
``.npz`` files directly in ``<root>``, split as the reference's code does: sorted by name, the first
80 % train and the rest test (no val).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from ddmi_lite.data.srn import SPLITS, check_bounds, load_srn_object, read_bounds, view_bounds
from ddmi_lite.errors import DDMIError

REFERENCE_FOV = 0.6911112070083618  # radians, the reference's NeRF camera (nerf-synthetic's camera_angle_x)
CONVENTIONS = ("opengl", "opencv")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
REQUIRED = {"images": "(n, H, W, 3)", "cam_poses": "(n, 4, 4)", "data": "(N, 6)"}
TRAIN_FRACTION = 0.8


def _colours(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    """uint8 0–255, or floats in [0, 1] (0–255 floats when the max exceeds 1) → float64 in [0, 1]."""
    if values.dtype == np.uint8:
        return values / 255.0
    if values.dtype.kind not in "iuf":
        raise DDMIError(f"Points2NeRF file {path}: '{key}' has dtype {values.dtype}; expected uint8 or float")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise DDMIError(f"Points2NeRF file {path}: '{key}' holds NaN or infinite values")
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low < 0.0 or high > 255.0:
        raise DDMIError(f"Points2NeRF file {path}: '{key}' colours span [{low:g}, {high:g}]; expected [0, 1] or 0–255")
    return values / 255.0 if high > 1.0 else values


def _read_arrays(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in REQUIRED if k not in archive.files]
            if missing:
                raise DDMIError(f"Points2NeRF file {path} lacks key {missing[0]!r} (found {sorted(archive.files)}); "
                                f"expected {', '.join(f'{k} {v}' for k, v in REQUIRED.items())}")
            return {k: archive[k] for k in archive.files if k in (*REQUIRED, "focal", "near", "far", "box")}
    except DDMIError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DDMIError(f"Points2NeRF file {path} is not a readable .npz ({type(err).__name__}: {err})") from err


def _check_poses(poses: np.ndarray, path: Path) -> np.ndarray:
    poses = poses.astype(np.float64)
    rotation = poses[:, :3, :3]
    bad = ~(np.isfinite(poses).all((1, 2)) & np.allclose(poses[:, 3], [0.0, 0.0, 0.0, 1.0], atol=1e-4)
            & (np.abs(rotation.transpose(0, 2, 1) @ rotation - np.eye(3)).max((1, 2)) < 1e-3))
    if bad.any():
        raise DDMIError(f"Points2NeRF file {path}: 'cam_poses'[{int(bad.argmax())}] is not a camera-to-world pose "
                        "(finite, a rotation RᵀR = I, last row 0 0 0 1)")
    return poses


def load_points2nerf_object(path: str | os.PathLike, *, focal: float | None = None, convention: str = "opengl",
                            size: int | None = None, bounds_folders=()) -> dict:
    """One Points2NeRF ``.npz`` → the dict of :func:`ddmi_lite.data.srn.load_srn_object`.

    ``images`` float32 [V,3,S,S] in [0,1]; ``poses`` float32 [V,4,4] camera-to-world (OpenCV, converted
    from ``convention``); ``intrinsics`` [4] (fx, fy, cx, cy) for S×S; ``points`` [N,3] and
    ``point_rgb`` [N,3] in [0,1]; ``bounds`` float64 [3] (near, far, box); ``id``; ``stems``
    (view indices as text). ``size`` resizes the views (area averaging) and scales the intrinsics.
    ``bounds_folders``: folders whose ``bounds.json`` apply (root first). See the module's assumptions.
    """
    path = Path(path)
    if convention not in CONVENTIONS:
        raise DDMIError(f"convention={convention!r} must be one of {CONVENTIONS}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DDMIError(f"size={size!r} must be None or a positive int")
    if not path.is_file():
        raise DDMIError(f"Points2NeRF file {path} does not exist")
    arrays = _read_arrays(path)
    images, poses, cloud = arrays["images"], arrays["cam_poses"], arrays["data"]
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or min(images.shape, default=0) < 1:
        raise DDMIError(f"Points2NeRF file {path}: 'images' has shape {images.shape}; expected (n, H, W, 3)")
    n, height, width = images.shape[:3]
    if poses.shape != (n, 4, 4):
        raise DDMIError(f"Points2NeRF file {path}: 'cam_poses' has shape {poses.shape}; expected ({n}, 4, 4), "
                        f"one per image")
    if cloud.ndim != 2 or cloud.shape[1] != 6 or len(cloud) < 1:
        raise DDMIError(f"Points2NeRF file {path}: 'data' has shape {cloud.shape}; expected (N, 6): xyz ‖ rgb")
    if cloud.dtype.kind != "f" or not np.isfinite(cloud).all():
        raise DDMIError(f"Points2NeRF file {path}: 'data' must hold finite floats (dtype {cloud.dtype})")
    rgb = _colours(images, path, "images")  # [n, H, W, 3 or 4] in [0, 1]
    if rgb.shape[-1] == 4:  # out = a·rgb + (1 − a)·1
        rgb = rgb[..., 3:] * rgb[..., :3] + (1.0 - rgb[..., 3:])
    pixels = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    if size is not None and (height, width) != (size, size):
        pixels = np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.BOX)) for p in pixels])
    poses = _check_poses(poses, path)
    if convention == "opengl":
        poses = poses @ OPENGL_TO_OPENCV  # flip the camera's y and z axes
    given = {k: arrays[k].tolist() for k in ("focal", "near", "far", "box") if k in arrays}  # numbers, as stored
    f = given.pop("focal", focal)
    f = (width / 2.0) / math.tan(REFERENCE_FOV / 2.0) if f is None else f
    if np.asarray(f).shape != () or np.asarray(f).dtype.kind not in "iuf" or not 0 < float(f) < math.inf:
        raise DDMIError(f"Points2NeRF file {path}: focal={f!r} must be a finite positive number of pixels")
    f = float(f)
    sx, sy = (1.0, 1.0) if size is None else (size / width, size / height)
    intrinsics = torch.tensor([f * sx, f * sy, width / 2.0 * sx, height / 2.0 * sy], dtype=torch.float32)
    bounds = {**read_bounds(list(bounds_folders)), **check_bounds(given, f"Points2NeRF file {path}")}
    points = torch.from_numpy(cloud[:, :3].astype(np.float32))
    return {"images": rearrange(torch.from_numpy(pixels), "v h w c -> v c h w").float().div_(255.0),
            "poses": torch.from_numpy(poses).float(), "intrinsics": intrinsics, "points": points,
            "point_rgb": torch.from_numpy(_colours(cloud[:, 3:], path, "data").astype(np.float32)),
            "bounds": view_bounds(poses, points, bounds), "id": path.stem, "stems": [str(v) for v in range(n)]}


def list_view_objects(root: str | os.PathLike, split: str = "train") -> list[Path]:
    """The objects of a split, sorted: SRN object folders, or Points2NeRF ``.npz`` files (module docstring)."""
    if split not in SPLITS:
        raise DDMIError(f"split={split!r} must be one of {SPLITS}")
    root = Path(root)
    folder = next((root / n for n in (split, f"cars_{split}") if (root / n).is_dir()), None)
    if folder is None:
        flat = sorted(p for p in root.glob("*.npz") if not p.name.startswith(".")) if root.is_dir() else []
        if not flat:
            raise DDMIError(f"split folder {root / split} (or {root / ('cars_' + split)}) does not exist and "
                            f"{root} holds no Points2NeRF .npz files; run prepare_views() or point root at "
                            "SRN cars or Points2NeRF files")
        if split == "val":
            raise DDMIError(f"{root} holds Points2NeRF files without split folders: they split 80/20 into train "
                            "and test only (make a val/ folder for a validation split)")
        cut = math.ceil(TRAIN_FRACTION * len(flat))
        objects = flat[:cut] if split == "train" else flat[cut:]
        if not objects:
            raise DDMIError(f"{root}: its {len(flat)} Points2NeRF files leave no {split} objects after the 80/20 split")
        return objects
    objects = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or (p.is_file() and p.suffix == ".npz")))
    if not objects:
        raise DDMIError(f"split folder {folder} holds no object folders or .npz files")
    return objects


def load_view_object(path: str | os.PathLike, **options) -> dict:
    """One object of either layout: a ``.npz`` file (:func:`load_points2nerf_object`, whose
    ``bounds.json`` may sit beside it or one folder up) or an SRN folder (:func:`load_srn_object`)."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        in_split = path.parent.name in SPLITS or path.parent.name in {f"cars_{s}" for s in SPLITS}
        folders = (path.parent.parent, path.parent) if in_split else (path.parent,)  # never above the dataset
        return load_points2nerf_object(path, bounds_folders=folders, **options)
    return load_srn_object(path, **options)
