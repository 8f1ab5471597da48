"""Files on disk: atomic writes, JSON files, reproducible ``.npz`` bytes, sha256 checksums, GIFs.

Every file the library writes goes through :func:`atomic_write`: the bytes go to a temporary
file beside the target (``.<name>.<random>.tmp``), which is then moved into place with
``os.replace`` (atomic on POSIX and Windows), so a reader sees the old file or the new one,
never a half-written one. ``durable=True`` (checkpoints, reports, run records) also fsyncs the
file and its folder so the write survives a power cut; data caches of thousands of small files
pass ``durable=False``, where rewriting the cache is the recovery.

* :func:`write_json` / :func:`read_json` / :func:`read_json_or_none` — JSON objects, written
  atomically with a trailing newline; read back with a :class:`DDMIError` naming a bad file (or
  ``None``, for caches that rebuild themselves).
* :func:`npz_bytes` — an ``.npz`` (zip of ``.npy``) with fixed timestamps and attributes: the
  same arrays give the same bytes on every run, so data caches can be checked by sha256.
* :func:`sha256_file` / :func:`sha256_bytes` — hex digests; :func:`tensor_digest` — 16 hex
  digits naming the contents of tensors (which data set a checkpoint was trained on).
* :func:`save_gif` — frames ``[F, 3, H, W]`` in [0, 1] → a looping animated GIF.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from ddmi_lite.errors import DDMIError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp of npz_bytes: identical bytes on every write


# ----------------------------------------------------------------------------- atomic writes

def atomic_write(target: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a temp file beside ``target`` (folders created), then ``os.replace`` it.

    Readers see the old file or the new one, never a half-written one. ``durable`` also fsyncs
    the file and its folder so the write survives a power cut (checkpoints, reports); data
    caches of thousands of small files pass ``False``, where rewriting them is the recovery.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:  # make the rename itself durable (POSIX); directories cannot be opened on Windows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def remove_stale_temps(*targets: Path) -> None:
    """Delete the temp files a killed :func:`atomic_write` left beside ``targets``."""
    for target in targets:
        target = Path(target)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- JSON

def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2, sort_keys: bool = False,
               allow_nan: bool = True, durable: bool = True) -> Path:
    """``data`` as JSON text (``indent``, ``sort_keys``) plus a newline, written atomically; returns ``path``.

    ``allow_nan=False`` refuses NaN / inf (strict JSON); ``durable=False`` for data caches (see
    :func:`atomic_write`).
    """
    path = Path(path)
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    atomic_write(path, text.encode("utf-8"), durable=durable)
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object stored in ``path``; :class:`DDMIError` naming the file when it is missing,
    unreadable, not valid JSON or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DDMIError(f"JSON file {str(path)!r} does not exist") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DDMIError(f"{str(path)!r} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise DDMIError(f"{str(path)!r} must hold a JSON object")
    return data


def read_json_or_none(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable, malformed or not an
    object (a cache manifest: the cache is then rebuilt)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------- npz and checksums

MARKER = ".ddmi_lite"  # written first into every folder a prepare step makes


def is_foreign_folder(root: str | os.PathLike) -> bool:
    """True for an existing, non-empty folder that ddmi_lite did not make: a user's data set.

    Ours hold the :data:`MARKER` file, or (caches made before the marker existed) a
    ``manifest.json`` with the ``settings`` or the OpenMoji ``credit`` that the prepare steps record.
    """
    root = Path(root)
    if not root.is_dir() or (root / MARKER).is_file() or not any(root.iterdir()):
        return False
    manifest = read_json_or_none(root / "manifest.json")
    return not (isinstance(manifest, dict) and {"settings", "credit"} & set(manifest))


def claim_folder(root: str | os.PathLike, *, what: str = "data") -> Path:
    """The folder ``root`` for a prepare step to write into: made (and marked) here, or one made before.

    The library never writes into a folder it did not make: a user's folder
    (:func:`is_foreign_folder`) is refused, naming it. The marker is written before any other
    file, so a prepare that was interrupted can be run again.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DDMIError(f"{what} folder {str(root)!r} is a file, not a folder")
    if is_foreign_folder(root):
        raise DDMIError(f"refusing to write {what} into {str(root)!r}: it holds files that ddmi_lite did not "
                        f"write (no {MARKER} marker and no ddmi_lite manifest.json); give an empty or new "
                        f"folder, or read your data set from it without preparing")
    if not (root / MARKER).is_file():  # an idempotent prepare writes nothing
        atomic_write(root / MARKER, b"made by ddmi_lite; prepare steps write only into folders marked so\n",
                     durable=False)
    return root


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (zip of .npy) with fixed timestamps and attributes: same arrays → same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=6)
    return buffer.getvalue()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def tensor_digest(*tensors) -> str:
    """The first 16 hex digits of the sha256 over the dtype, shape and bytes of each tensor in turn."""
    digest = hashlib.sha256()
    for t in tensors:
        array = np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- GIF

def save_gif(frames: torch.Tensor, path: str | os.PathLike, *, duration_ms: int = 80, scale: int = 1) -> Path:
    """Frames ``[F, 3, H, W]`` in [0, 1] → a looping animated GIF at ``path`` (written atomically).

    Each frame is shown ``duration_ms`` and enlarged ``scale`` times (nearest neighbour); a
    frame is drawn over the previous one (disposal 1). Returns ``path``.
    """
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise DDMIError(f"GIF path {path} must end with .gif")
    if frames.ndim != 4 or frames.shape[1] != 3 or len(frames) < 1:
        raise DDMIError(f"frames must be [F, 3, H, W] with F >= 1, got {tuple(frames.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise DDMIError(f"scale={scale!r} must be a positive int")
    pixels = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    arr = rearrange(pixels, "f c h w -> f h w c").numpy()                  # [F, H, W, 3] uint8
    images = [Image.fromarray(a) for a in arr]
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(duration_ms),
                   loop=0, disposal=1)
    atomic_write(path, buffer.getvalue())
    return path


__all__ = [
    "ZIP_DATE",
    "atomic_write",
    "npz_bytes",
    "read_json",
    "read_json_or_none",
    "remove_stale_temps",
    "save_gif",
    "sha256_bytes",
    "sha256_file",
    "write_json",
]


def check_writable_folder(path: str | os.PathLike, *, what: str) -> Path:
    """``path`` is a folder that exists and is writable, or can be created (its nearest existing
    parent is a writable folder); checked before any work. ``what`` names it in the error."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DDMIError(f"{what} {str(path)!r} is a file, not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise DDMIError(f"{what} {str(path)!r}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DDMIError(f"{what} {str(path)!r}: {str(probe)!r} is not writable")
    return path
