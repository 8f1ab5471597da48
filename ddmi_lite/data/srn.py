"""The SRN-cars file layout of the NeRF data: posed views, intrinsics and a coloured point cloud per object.

Files, as SRN writes them (Sitzmann et al. 2019; OpenCV camera-to-world poses, :mod:`ddmi_lite.rays`):

    <root>/<split>/<object_id>/rgb/000000.png      RGB(A) images, size × size
    <root>/<split>/<object_id>/pose/000000.txt     4×4 camera-to-world, one line of 16 numbers
    <root>/<split>/<object_id>/intrinsics.txt      "f cx cy 0." / "0. 0. 0." / "1." / "H W"
    <root>/<split>/<object_id>/pointcloud.npz      points f32 [M,3], normals f32 [M,3],
                                                   rgb uint8 [M,3] (ours only: SRN cars has none)

A split folder is ``<root>/<split>`` or SRN's ``<root>/cars_<split>`` (:func:`split_folder`).

Ray bounds (:func:`view_bounds`): each object gets ``(near, far, box)``, the distances along a ray
that contain it from every camera and the half side of the cube ``[−box, box]³`` around it. They are
read from an optional ``bounds.json`` (``{"near": .., "far": .., "box": ..}``, any subset) in the
dataset root, the split folder or the object folder (the more specific wins); ours (prepare_views
writes one) give near 0.9, far 2.7, box 0.55. Whatever the data do not give is derived: box =
1.1 × the cloud's largest |coordinate| (ONet's padding of [−0.5, 0.5]³ to 0.55; 0.55 itself without
a cloud: the object is assumed centred and inside [−0.5, 0.5]³, as ShapeNet-normalised cars are),
r = √3·box (the cube's corner), near = max(min camera distance − r, 0.01), far = max distance + r.
:func:`format_pose` / :func:`format_intrinsics` write the text files; :func:`load_srn_object`
and :class:`SRNDataset` read our procedural views (:mod:`ddmi_lite.data.views`) and SRN cars alike.
"""

from __future__ import annotations

import json
import math
import operator
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image, UnidentifiedImageError

from ddmi_lite.data.emoji import default_data_dir
from ddmi_lite.data.folders import eight_bit
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.io import read_json_or_none

SPLITS = ("train", "val", "test")
BOUNDS_FILE = "bounds.json"
BOUNDS_KEYS = ("near", "far", "box")
MIN_NEAR = 0.01  # a derived near never reaches the camera centre


def views_root(root: str | os.PathLike | None) -> Path:
    """``root``, or ``<data dir>/views`` (the procedural views) when it is None."""
    return Path(root) if root is not None else default_data_dir() / "views"


# ----------------------------------------------------------------------------- writing

def format_pose(pose: np.ndarray) -> str:
    """One line of 16 numbers (row-major), shortest round-trip decimal form."""
    return " ".join(repr(float(v)) for v in np.asarray(pose, dtype=np.float64).reshape(16)) + "\n"


def format_intrinsics(f: float, cx: float, cy: float, height: int, width: int) -> str:
    """SRN ``intrinsics.txt``: "f cx cy 0." / grid barycentre "0. 0. 0." / scale "1." / "H W"."""
    return f"{float(f)!r} {float(cx)!r} {float(cy)!r} 0.\n0. 0. 0.\n1.\n{int(height)} {int(width)}\n"


# ----------------------------------------------------------------------------- ray bounds

def check_bounds(bounds: dict, where: str) -> dict:
    """``bounds`` restricted to near / far / box, each a finite positive number and near < far; else
    :class:`DDMIError` naming ``where`` (the file that gave them)."""
    unknown = set(bounds) - set(BOUNDS_KEYS)
    if unknown:
        raise DDMIError(f"{where}: unknown bounds {sorted(unknown)}; allowed keys are {list(BOUNDS_KEYS)}")
    for key, value in bounds.items():
        number = np.asarray(value)
        if number.shape != () or number.dtype.kind not in "iuf" or not 0 < float(number) < math.inf:
            raise DDMIError(f"{where}: {key}={value!r} must be a finite positive number")
    if "near" in bounds and "far" in bounds and not float(bounds["near"]) < float(bounds["far"]):
        raise DDMIError(f"{where}: near={bounds['near']} must be less than far={bounds['far']}")
    return {k: float(v) for k, v in bounds.items()}


def read_bounds(folders) -> dict:
    """The bounds given by ``bounds.json`` in ``folders`` (dataset root first, the object's own folder
    last; later ones override). A root that prepare_views made before it wrote ``bounds.json`` gives
    its manifest's near / far and box 0.55."""
    bounds: dict = {}
    for k, folder in enumerate(folders):
        path = Path(folder) / BOUNDS_FILE
        if path.is_file():
            try:
                given = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise DDMIError(f"bounds file {path} is not readable JSON ({err})") from err
            if not isinstance(given, dict):
                raise DDMIError(f"bounds file {path} must hold an object like {{\"near\": 0.8, \"far\": 1.8}}")
            bounds.update(check_bounds(given, f"bounds file {path}"))
        elif k == 0:
            view = ((read_json_or_none(Path(folder) / "manifest.json") or {}).get("settings") or {}).get("view")
            if isinstance(view, dict) and {"near", "far"} <= set(view):
                bounds.update(near=float(view["near"]), far=float(view["far"]), box=BOX)
    if "near" in bounds and "far" in bounds and not bounds["near"] < bounds["far"]:
        raise DDMIError(f"bounds in {[str(f) for f in folders]}: near={bounds['near']} is not less than "
                        f"far={bounds['far']}")
    return bounds


def view_bounds(poses, points=None, given: dict | None = None) -> torch.Tensor:
    """``(near, far, box)`` float64 [3] of one object: the ``given`` ones, the rest derived from its
    camera-to-world ``poses`` [V,4,4] and cloud ``points`` [M,3] (None: box 0.55) as the module says."""
    given = dict(given or {})
    poses = torch.as_tensor(poses, dtype=torch.float64)
    box = given.get("box")
    if box is None:
        extent = float(torch.as_tensor(points, dtype=torch.float64).abs().max()) if points is not None else 0.0
        box = 1.1 * extent if extent > 0 else BOX
    r = math.sqrt(3.0) * box
    dist = poses[:, :3, 3].norm(dim=-1)  # [V] camera distances from the origin
    near = given.get("near", max(float(dist.min()) - r, MIN_NEAR))
    far = given.get("far", float(dist.max()) + r)
    if not near < far:
        raise DDMIError(f"ray bounds near={near:g} and far={far:g} (box {box:g}): near must be less than far")
    return torch.tensor([near, far, box], dtype=torch.float64)


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
    pose = values.reshape(4, 4)
    # a camera-to-world pose: a rotation (orthonormal 3×3, rank 3) and a translation, last row 0 0 0 1
    rotation = pose[:3, :3]
    if (not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0], atol=1e-4)
            or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3)):
        rank = int(np.linalg.matrix_rank(rotation, tol=1e-6))
        raise DDMIError(f"pose file {path} is not a camera-to-world pose: its 3×3 part has rank {rank} and is "
                        f"{'not ' if rank == 3 else ''}invertible but must be a rotation (RᵀR = I), and its last "
                        f"row must be 0 0 0 1 (got {' '.join(f'{v:g}' for v in pose[3])})")
    return pose


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
    try:
        with Image.open(path) as image:
            image.load()
            image = eight_bit(image)
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
    ``pointcloud.npz`` (None when absent, as in SRN cars); ``bounds`` float64 [3] (near, far, box:
    :func:`view_bounds` over all the object's cameras); ``id``; ``stems`` (view file names).
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
    given = read_bounds([folder.parent.parent, folder.parent, folder])  # dataset root, split, object
    every = poses if views is None or {"near", "far"} <= set(given) else \
        [read_pose(folder / "pose" / f"{stem}.txt") for stem in stems]  # bounds hold for every camera
    stack = rearrange(torch.from_numpy(np.stack(images)), "v h w c -> v c h w").float().div_(255.0)
    return {"images": stack, "poses": torch.from_numpy(np.stack(poses)).float(),
            "intrinsics": torch.from_numpy(intrinsics).float(), "points": points, "point_rgb": point_rgb,
            "bounds": view_bounds(np.stack(every), points, given), "id": folder.name,
            "stems": [stems[v] for v in chosen]}


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
    if not np.issubdtype(points.dtype, np.number) or not np.issubdtype(rgb.dtype, np.number):
        raise DDMIError(f"point cloud {path}: points ({points.dtype}) and rgb ({rgb.dtype}) must be numbers")
    if not (np.isfinite(points).all() and np.isfinite(rgb).all()):
        bad = int((~np.isfinite(points)).any(1).sum() + (~np.isfinite(rgb)).any(1).sum())
        raise DDMIError(f"point cloud {path}: {bad} points have NaN or infinite coordinates or colours")
    scale = 255.0 if rgb.dtype == np.uint8 else 1.0
    if scale == 1.0 and (rgb.min() < 0.0 or rgb.max() > 1.0):
        raise DDMIError(f"point cloud {path}: float colours span [{rgb.min():g}, {rgb.max():g}]; expected [0, 1] "
                        f"(store 0–255 colours as uint8)")
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(rgb.astype(np.float32) / scale)


def split_folder(root: Path, split: str) -> Path:
    """``root/split``, or SRN's ``root/cars_split``; :class:`DDMIError` when neither exists."""
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
        self.root = views_root(root)
        folder = split_folder(self.root, split)
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
