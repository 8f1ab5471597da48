"""The Occupancy-Networks (ONet) file format of the shape data, and the query points written in it.

Per object, as ONet writes ShapeNet (reference §1.9):

    <root>/<category>/<object_id>/points.npz      points f16 [N,3] in [-0.55,0.55]³, occupancies
                                                  (np.packbits), loc [3], scale [1], n_uniform [1]
    <root>/<category>/<object_id>/pointcloud.npz  points f16 [M,3] on the surface, normals, loc, scale
    <root>/<category>/{train,val,test}.lst        object ids, one per line (:func:`split_ids`)

Objects fit [-0.5, 0.5]³; the padded cube [-BOX, BOX]³ (:data:`ddmi_lite.geometry.BOX` = 0.55, padding 0.1) holds
every query point and is the cube the shape and NeRF fields cover.

Query points (§1.9): ONet's sampler draws a fraction ``points_uniform_ratio`` uniformly in the
padded box and the rest on the surface plus N(0, σ²) noise, σ = 0.01; ONet's released ShapeNet
uses ratio 1 (all uniform). Thin parts (legs, slats, poles) fill little volume, so the default
here is a 50/50 mix. The uniform points come first and ``n_uniform`` says how many (ONet readers
ignore the extra key), so uniform-only IoU can still be measured. Labels are computed on the
float16-rounded points that are stored. The readers (:func:`load_points_npz`,
:func:`load_pointcloud_npz`) accept ONet's own files too, and name a malformed file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddmi_lite.data.furniture import CATEGORIES, Shape
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


# ----------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class SampleConfig:
    """What is written per object (ONet writes 100,000 of each)."""

    n_points: int = 20_000         # points.npz: query points with occupancies
    n_surface: int = 4_000         # pointcloud.npz: surface points with normals
    uniform_ratio: float = 0.5     # fraction of query points uniform in the box (ONet ShapeNet: 1.0)
    surface_sigma: float = 0.01    # std of the noise added to the near-surface query points (ONet: 0.01)


def object_arrays(shape: Shape, cfg: SampleConfig, *, seed: int = 0) -> tuple[dict, dict]:
    """The arrays of ``points.npz`` and ``pointcloud.npz`` for one shape (deterministic in seed)."""
    rng = np.random.default_rng([int(seed), CATEGORIES.index(shape.category), shape.index, 1])
    n_uniform = round(cfg.n_points * cfg.uniform_ratio)
    uniform = rng.uniform(-BOX, BOX, (n_uniform, 3))
    near = shape.sample_surface(cfg.n_points - n_uniform, seed=rng)
    near = np.clip(near + cfg.surface_sigma * rng.standard_normal(near.shape), -BOX, BOX)
    points = np.concatenate([uniform, near]).astype(np.float16)  # [N,3], uniform first as in ONet
    occupancies = shape.contains(points.astype(np.float64))  # labels of the stored (rounded) points
    surface, normals = shape.sample_surface(cfg.n_surface, seed=rng, return_normals=True)
    loc, scale = shape.loc.astype(np.float32), np.array([shape.scale], dtype=np.float32)
    points_npz = {"points": points, "occupancies": np.packbits(occupancies), "loc": loc, "scale": scale,
                  "n_uniform": np.array([n_uniform], dtype=np.int64)}  # scalars are stored as [1] arrays
    cloud_npz = {"points": surface.astype(np.float16), "normals": normals.astype(np.float16), "loc": loc, "scale": scale}
    return points_npz, cloud_npz


# ----------------------------------------------------------------------------- reading

def _npz_error(path: Path, what: str) -> DDMIError:
    return DDMIError(f"{path}: {what}; re-create it (prepare_shapes(force=True) for the default data)")


def _read_npz(path: str | os.PathLike, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in required if k not in archive.files]
            if missing:
                raise _npz_error(path, f"missing arrays {missing} (found {sorted(archive.files)})")
            return {k: archive[k] for k in archive.files}
    except DDMIError:
        raise
    except FileNotFoundError as err:
        raise DDMIError(f"{path} does not exist") from err
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise _npz_error(path, f"not a readable .npz archive ({type(err).__name__}: {err})") from err


def _check_xyz(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise _npz_error(path, f"'{name}' has shape {array.shape} dtype {array.dtype}; expected float [N, 3]")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise _npz_error(path, f"'{name}' contains NaN or inf")
    return array


def _check_in_cube(path: Path, points: np.ndarray, *, slack: float = 1.1) -> np.ndarray:
    """ONet files hold normalised coordinates in the padded cube [−BOX, BOX]³; raw-scale ones are refused."""
    span = float(np.abs(points).max(initial=0.0))
    if span > BOX * slack:
        raise _npz_error(path, f"'points' reach ±{span:.3g}; Occupancy-Networks files are normalised to "
                               f"[-{BOX}, {BOX}]³ (apply the file's loc / scale first)")
    return points


def _loc_scale(path: Path, arrays: dict) -> tuple[np.ndarray, float]:
    try:
        loc = np.asarray(arrays.get("loc", np.zeros(3)), dtype=np.float32).reshape(-1)
        scale = np.asarray(arrays.get("scale", 1.0), dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise _npz_error(path, f"'loc' / 'scale' are not numbers ({err})") from err
    if loc.shape != (3,) or scale.size != 1:
        raise _npz_error(path, f"'loc' has shape {loc.shape} and 'scale' {scale.shape}; expected [3] and a scalar")
    if not (np.isfinite(loc).all() and np.isfinite(scale).all() and float(scale.reshape(())) > 0):
        raise _npz_error(path, f"'loc' = {loc.tolist()} and 'scale' = {scale.reshape(-1).tolist()} must be "
                               f"finite, with scale > 0")
    return loc, float(scale.reshape(()))


def load_points_npz(path: str | os.PathLike) -> dict:
    """ONet ``points.npz`` → dict(points f32 [N,3], occupancies bool [N], loc [3], scale, n_uniform).

    ``occupancies`` may be bit-packed (``np.packbits``, ceil(N/8) bytes, as ONet writes them) or
    one value per point. ``n_uniform`` (how many leading points are uniform) defaults to N, as in
    ONet's own files. A truncated or malformed file raises :class:`DDMIError` naming it.
    """
    path = Path(path)
    arrays = _read_npz(path, ("points", "occupancies"))
    points = _check_in_cube(path, _check_xyz(path, "points", arrays["points"]))
    n, occ = len(points), arrays["occupancies"].reshape(-1)
    if occ.dtype.kind not in "biuf" or (occ.dtype.kind == "f" and not np.isfinite(occ).all()):
        raise _npz_error(path, f"'occupancies' has dtype {occ.dtype} or NaN; expected 0/1 values or packed bits")
    if occ.dtype == np.uint8 and occ.size == (n + 7) // 8 and n > 1:
        occupancies = np.unpackbits(occ, count=n).astype(bool)
    elif occ.size == n:
        if not np.isin(occ, (0, 1)).all():  # 0.1 must not read as "occupied"
            odd = occ[~np.isin(occ, (0, 1))][:3].tolist()
            raise _npz_error(path, f"'occupancies' holds values other than 0 and 1 (e.g. {odd}); expected inside/outside")
        occupancies = occ != 0
    else:
        raise _npz_error(path, f"'occupancies' has {occ.size} entries ({occ.dtype}) for {n} points; expected "
                               f"{n} values or {(n + 7) // 8} bytes of np.packbits")
    n_uniform = n
    if "n_uniform" in arrays:
        stored = np.asarray(arrays["n_uniform"]).reshape(-1)
        if stored.size != 1 or not np.issubdtype(stored.dtype, np.integer):
            raise _npz_error(path, f"'n_uniform' is {stored.dtype} of {stored.size} values; expected one int")
        n_uniform = int(stored[0])
    if not 0 <= n_uniform <= n:
        raise _npz_error(path, f"'n_uniform' = {n_uniform} is not in [0, {n}]")
    loc, scale = _loc_scale(path, arrays)
    return {"points": points, "occupancies": occupancies, "loc": loc, "scale": scale, "n_uniform": n_uniform}


def load_pointcloud_npz(path: str | os.PathLike) -> dict:
    """ONet ``pointcloud.npz`` → dict(points f32 [M,3], normals f32 [M,3] or None, loc [3], scale)."""
    path = Path(path)
    arrays = _read_npz(path, ("points",))
    points = _check_in_cube(path, _check_xyz(path, "points", arrays["points"]))
    normals = None
    if "normals" in arrays:
        normals = _check_xyz(path, "normals", arrays["normals"])
        if len(normals) != len(points):
            raise _npz_error(path, f"'normals' has {len(normals)} rows for {len(points)} points")
    loc, scale = _loc_scale(path, arrays)
    return {"points": points, "normals": normals, "loc": loc, "scale": scale}


# ----------------------------------------------------------------------------- split lists

def split_ids(ids: list[str], *, seed: int = 0) -> dict[str, list[str]]:
    """Seeded ~80/10/10 split of one category's ids (val and test get ≥ 1 each from 3 ids up)."""
    n = len(ids)
    n_val = max(1, round(SPLIT_FRACTIONS[1] * n)) if n >= 3 else 0
    n_test = max(1, round(SPLIT_FRACTIONS[2] * n)) if n >= 3 else 0
    order = np.random.default_rng([int(seed), 7, n]).permutation(n)
    picked = [ids[i] for i in order]
    return {"train": sorted(picked[n_val + n_test:]), "val": sorted(picked[:n_val]),
            "test": sorted(picked[n_val:n_val + n_test])}
