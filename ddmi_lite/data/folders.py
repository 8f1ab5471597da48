"""Image folders for the paper's real image datasets (Sec. 4.1: AFHQ-v2, CelebA-HQ).

Layout: a folder of ``.png``/``.jpg``/``.jpeg``/``.webp`` files, possibly split into class
subfolders (``afhq/train/cat/…``, ``celeba_hq/…``), searched recursively and read in sorted
path order. Files with other extensions (``.txt`` lists, ``.DS_Store``) are ignored; a file with
an image extension that does not decode raises :class:`DDMIError` naming it.

Each image becomes RGB in [0,1]: EXIF orientation applied, transparency composited on white
(out = a·rgb + (1 − a)·1), the largest centred square cropped, then one Lanczos resize to
``size × size``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from ddmi_lite.data.emoji import default_data_dir
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, claim_folder, read_json_or_none, sha256_bytes, write_json

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root``, following linked folders (a class folder may be a link to another
    disk) but each real folder once, so a link loop ends; hidden files and folders are skipped."""
    seen, files, stack = set(), [], [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=True):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=True):
                files.append(Path(entry.path))
    return files


def list_image_files(path: str | os.PathLike, *, limit: int | None = None) -> list[Path]:
    """Image files under ``path`` (recursive through linked folders, sorted, hidden files skipped); first ``limit``."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DDMIError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DDMIError(f"image folder {root} is not a folder")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DDMIError(f"limit={limit!r} must be None or a positive int")
    files = sorted(p for p in walk_files(root) if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DDMIError(f"image folder {root} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
    return files[:limit]


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DDMIError(f"size={size!r} must be a positive int (output side in pixels)")
    return size


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale → 8-bit ``L`` scaled by the bit depth; other modes unchanged.

    Pillow's ``convert("RGB")`` clips such values at 255 instead of scaling them, which turns a
    16-bit image near-white. (16-bit colour PNGs already open as 8-bit ``RGB`` / ``RGBA``.)
    """
    if image.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0.0) > 255.0 else 255.0
    return Image.fromarray(np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")


def read_image(file: str | os.PathLike, size: int) -> np.ndarray:
    """One image file → RGB uint8 [size,size,3] (composited on white, centre-cropped, resized)."""
    size = _check_size(size)
    file = Path(file)
    try:
        with Image.open(file) as image:
            image.load()
            image = eight_bit(ImageOps.exif_transpose(image))
            has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
            if has_alpha:
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                rgb = Image.alpha_composite(white, rgba).convert("RGB")
            else:
                rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DDMIError(f"image file {file} cannot be read as an image ({err})") from err
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (left, top, left + side, top + side)  # largest centred square
    return np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS, box=box))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return rearrange(torch.from_numpy(images), "... h w c -> ... c h w").float().div_(255.0)


CACHE_FORMAT = "ddmi_lite.image_cache.v1"


def folder_cache_key(files: list[Path], root: Path, size: int, **settings) -> str:
    """What decides a cache entry: the folder, ``size``, any further ``settings`` and every file's
    relative path, size and mtime (in the given order, which is the order of the decoded array)."""
    listing = [[str(f.relative_to(root)), st.st_size, st.st_mtime_ns] for f in files for st in (f.stat(),)]
    text = json.dumps({"root": os.path.realpath(root), "size": size, **settings, "files": listing}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _decode(files: list[Path], size: int, *, desc: str, progress: bool) -> np.ndarray:
    """Every file read with :func:`read_image` → uint8 [N, size, size, 3]."""
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)  # [N,H,W,3]
    for k, file in enumerate(tqdm(files, desc=desc, disable=not progress)):
        images[k] = read_image(file, size)
    return images


def cached_uint8(files: list[Path], root: Path, decode, *, size: int, cache_dir=None, fmt: str = CACHE_FORMAT,
                 subfolder: str = "image_folders", what: str = "image cache", **settings) -> tuple[Path, np.ndarray]:
    """The cache entry of ``files`` (read from the folder ``root``) and its uint8 array.

    The entry ``<cache_dir>/<key>.npy`` (key: :func:`folder_cache_key` of the files, ``size`` and
    ``settings``) is read once and returned when its manifest ``<key>.json`` has format ``fmt`` and
    the bytes' sha256; otherwise (missing or damaged) ``decode()`` makes the array and both files are
    written atomically. ``cache_dir`` defaults to ``<data dir>/cache/<subfolder>``, a folder the
    library makes; ``root`` is only read. The one cache path of image folders and frame folders.
    """
    folder = claim_folder(Path(cache_dir) if cache_dir is not None else default_data_dir() / "cache" / subfolder,
                          what=what)
    key = folder_cache_key(files, root, size, **settings)
    array_path, manifest_path = folder / f"{key}.npy", folder / f"{key}.json"
    manifest = read_json_or_none(manifest_path)
    if manifest is not None and manifest.get("format") == fmt and array_path.is_file():
        data = array_path.read_bytes()
        if sha256_bytes(data) == manifest.get("sha256"):  # a damaged entry is decoded again below
            return array_path, np.load(io.BytesIO(data), allow_pickle=False)
    array = decode()
    if array.dtype != np.uint8:
        raise DDMIError(f"cache of {root}: the decoder returned {array.dtype}; expected uint8")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    atomic_write(array_path, data)
    write_json(manifest_path, {"format": fmt, "root": str(root), "size": size, **settings, "shape": list(array.shape),
                               "files": [str(f.relative_to(root)) for f in files], "sha256": sha256_bytes(data)})
    return array_path, array


def _cached_images(path, size: int, *, limit, cache_dir, progress: bool) -> tuple[Path, np.ndarray]:
    """The cache entry of an image folder and its uint8 images [N, size, size, 3] (:func:`cached_uint8`)."""
    root = Path(path).expanduser()
    files = list_image_files(root, limit=limit)
    return cached_uint8(files, root, lambda: _decode(files, size, desc=f"decoding {root.name} at {size}²",
                                                     progress=progress), size=size, cache_dir=cache_dir)


def cache_image_folder(path: str | os.PathLike, size: int, *, limit: int | None = None,
                       cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Decode a folder once into a uint8 cache ``<cache_dir>/<key>.npy`` ``[N, size, size, 3]`` with a
    manifest ``<key>.json`` (the files, the shape and the array's sha256); return the ``.npy`` path.

    ``cache_dir`` defaults to ``<data dir>/cache/image_folders`` (``DDMI_DATA_DIR`` or the repo's
    ``data/``), a folder the library makes; the user's folder is only read. A later call with the
    same files (paths, sizes, modification times) and ``size`` reuses the entry after checking its
    checksum; any change to the folder makes a new entry. Uses a quarter of the float32 memory.
    """
    return _cached_images(path, _check_size(size), limit=limit, cache_dir=cache_dir, progress=progress)[0]


def load_image_folder(path: str | os.PathLike, size: int, *, limit: int | None = None, cache: bool = False,
                      cache_dir: str | os.PathLike | None = None, progress: bool = False,
                      dtype: str = "float32") -> torch.Tensor:
    """All images of a folder as [N,3,size,size] (sorted path order): float32 in [0,1], or
    ``dtype="uint8"`` in 0–255 (a quarter of the memory). ``cache=True`` decodes through
    :func:`cache_image_folder`, so a second call reads one checked array instead of every file."""
    if dtype not in ("float32", "uint8"):
        raise DDMIError(f"dtype={dtype!r} must be 'float32' or 'uint8'")
    size = _check_size(size)
    if cache:
        images = _cached_images(path, size, limit=limit, cache_dir=cache_dir, progress=progress)[1]
    else:
        images = _decode(list_image_files(path, limit=limit), size, desc=f"decoding {Path(path).name}",
                         progress=progress)
    if dtype == "uint8":
        return rearrange(torch.from_numpy(np.ascontiguousarray(images)), "n h w c -> n c h w")
    return _to_tensor(images)  # [N,3,H,W]


class ImageFolderDataset(torch.utils.data.Dataset):
    """The same images as :func:`load_image_folder`, decoded one at a time on access.

    ``dataset[i]`` is a float32 [3,size,size] tensor in [0,1]; ``dataset.files[i]`` its path.
    """

    def __init__(self, path: str | os.PathLike, size: int, *, limit: int | None = None):
        self.size = _check_size(size)
        self.files = list_image_files(path, limit=limit)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return _to_tensor(read_image(self.files[index], self.size).copy())  # [3,H,W]
