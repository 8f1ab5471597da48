"""Moving emoji as the default video data, and a loader for folders of frames (paper Sec. 4.1).

The paper's video model is trained on SkyTimelapse: 16 consecutive frames from a random start
(reference §1.9, §4.1). The default data here are short clips rendered locally:

* **Sprites.** OpenMoji emoji (:func:`ddmi_lite.data.emoji.load_emoji`, 64² on white) made
  transparent. An emoji pixel drawn over white is c = a·f + (1 − a)·1, so 1 − c = a·(1 − f) and
  a soft alpha is a = clip(max_c(1 − c)/τ, 0, 1); pixels enclosed by the glyph's outline (eye
  whites) are made opaque (holes of the a > ½ mask, eroded by one pixel so the outline keeps
  its soft edge). Colours are kept premultiplied: P = a·f = c − (1 − a).
* **Motion.** 1–3 sprites per clip, each with its own side s (a fraction of the frame), a
  constant velocity, and a constant spin. The centre moves on x(t) = x₀ + v·t reflected at the
  walls [ρ, W − ρ] (ρ = the sprite's content radius: the farthest non-transparent pixel from its
  centre), so a sprite bounces off the borders and is never cut by them, at any rotation.
* **Background.** Static and smooth: a linear colour gradient, sinusoidal stripes, or a few
  Gaussian colour blobs, in muted random colours (never white).
* **Rendering.** Each frame is drawn at ``supersample``× resolution — sprites resampled by
  ``grid_sample`` (bilinear) after an antialiased resize to their on-screen size, composited back
  to front with out = P + (1 − a)·background — and area-averaged down to ``size``.

Train clips use only train emoji and test clips only test emoji (the emoji split is grouped, so
no sprite, nor a skin-tone variant of one, is shared across splits). Clip i of a split depends
only on (seed, split, i).

Cache: ``<data dir>/video/moving_emoji_{size}.npz`` (``train``, ``test``: uint8 [N,T,H,W,3];
``train_sprites``, ``test_sprites``: the emoji names of each clip, "" where unused) and
``manifest.json`` (settings, sha256). Written atomically and byte-for-byte reproducibly.

Frame folders (SkyTimelapse layout): ``<root>/<split>/<clip>/<frame>.png`` — a clip is any folder
(at any depth below the split folder) that directly holds image files; frames are ordered by
natural sort (``2.png`` before ``10.png``).
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, UnidentifiedImageError
from scipy import ndimage
from tqdm.auto import tqdm

from ddmi_lite.data.emoji import default_data_dir, load_emoji, load_emoji_names
from ddmi_lite.data.folders import IMAGE_EXTENSIONS, cached_uint8, read_image, walk_files
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, claim_folder, npz_bytes, read_json_or_none, sha256_file, write_json

SPLITS = ("train", "test")
FORMAT_VERSION = 1
BACKGROUNDS = ("gradient", "stripes", "blobs")


@dataclass(frozen=True)
class MovingEmojiConfig:
    """How clips are drawn; lengths are fractions of the frame side."""

    frames: int = 16
    size: int = 32
    max_sprites: int = 3                 # 1 … max_sprites per clip
    sprite_scale: tuple = (0.32, 0.5)    # sprite side / frame side
    speed: tuple = (0.02, 0.06)          # per frame / frame side
    max_spin: float = 12.0               # degrees per frame
    max_tilt: float = 30.0               # initial angle, degrees
    alpha_tau: float = 0.2               # soft alpha: a = clip(max(1 − c)/τ, 0, 1)
    supersample: int = 2


# ----------------------------------------------------------------------------- sprites and backgrounds

def emoji_sprites(images: torch.Tensor, *, tau: float = 0.2) -> torch.Tensor:
    """Emoji on white [N,3,h,w] in [0,1] → premultiplied RGBA [N,4,h,w] (see module docstring)."""
    c = images.float()
    alpha = ((1.0 - c).amax(1) / tau).clamp(0.0, 1.0).numpy()               # [N,h,w]
    plane = np.zeros((3, 3, 3), dtype=bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)                     # 2-D neighbours only: images apart
    enclosed = ndimage.binary_erosion(ndimage.binary_fill_holes(alpha > 0.5, structure=plane), structure=plane)
    a = torch.from_numpy(np.maximum(alpha, enclosed.astype(np.float32)))[:, None]  # [N,1,h,w]
    premult = torch.minimum((c - (1.0 - a)).clamp_min(0.0), a)            # P = a·f = c − (1 − a)
    return torch.cat([premult, a], 1)


def content_radius(sprites: torch.Tensor) -> torch.Tensor:
    """Farthest pixel with alpha > 0.02 from the sprite centre, as a fraction of the side: [N]."""
    h, w = sprites.shape[-2:]
    y = (torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / h
    x = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / w
    dist = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2) + 0.5 / min(h, w)   # pixel-centre → its far corner
    mask = sprites[:, 3] > 0.02
    return torch.where(mask, dist, torch.zeros(())).flatten(1).amax(1).clamp_min(1.0 / min(h, w))


def _colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.25, 0.7), rng.uniform(0.45, 0.9)))


def make_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth static background [side,side,3] in [0,1]: gradient, stripes or blobs."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    u = (np.arange(side) + 0.5) / side
    x, y = np.meshgrid(u, u, indexing="xy")                                 # [side,side], y down
    angle = rng.uniform(0, 2 * math.pi)
    along = (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle)       # ∈ [−√½, √½]
    c0, c1 = _colour(rng), _colour(rng)
    if kind == "gradient":
        mix = np.clip(along / math.sqrt(2) + 0.5, 0, 1)
    elif kind == "stripes":
        mix = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(1.5, 4.0) * along + rng.uniform(0, 2 * math.pi))
    else:  # blobs: c = (c0 + Σ w_k c_k)/(1 + Σ w_k), w_k = 2·exp(−|p − μ_k|²/2σ_k²)
        num, den = np.broadcast_to(c0, (side, side, 3)).copy(), np.ones((side, side, 1))
        for _ in range(int(rng.integers(2, 6))):
            mu, sigma = rng.uniform(0, 1, 2), rng.uniform(0.12, 0.3)
            wk = 2.0 * np.exp(-((x - mu[0]) ** 2 + (y - mu[1]) ** 2) / (2 * sigma**2))[..., None]
            num, den = num + wk * _colour(rng), den + wk
        return num / den
    return c0 + (c1 - c0) * mix[..., None]


def _bounce(x0: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """x₀ + v·t reflected into [lo, hi] (a triangle wave of period 2(hi − lo))."""
    span = np.maximum(hi - lo, 1e-12)
    u = np.mod(x0 - lo + v * t, 2 * span)
    return lo + np.where(u <= span, u, 2 * span - u)


def render_clip(sprites: torch.Tensor, radii: torch.Tensor, rng: np.random.Generator,
                cfg: MovingEmojiConfig, *, background: np.ndarray | None = None,
                times=None) -> tuple[np.ndarray, dict]:
    """One clip: uint8 [T,H,W,3] and its motion (``sprite`` indices [K], ``centre`` [K,T,2] px
    (x, y), ``angle`` [K,T] radians, ``side`` [K] px, ``radius`` [K] px). ``background``
    [H·ss,W·ss,3] replaces the random one (drawn last from ``rng``, so the motion is unchanged).
    ``times`` (frame units, fractions allowed; default 0 … T−1) draws the same motion at other
    instants: ``rng`` is consumed the same way, so integer times give the default frames."""
    size, ss = cfg.size, cfg.supersample
    t = np.arange(cfg.frames, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    T = len(t)
    k = rng.integers(1, min(cfg.max_sprites, len(sprites)) + 1).item()
    chosen = rng.choice(len(sprites), k, replace=False)
    side = rng.uniform(*cfg.sprite_scale, k) * size                          # [K] px
    radius = radii.numpy()[chosen] * side                                    # content radius, px
    lo, hi = radius, np.maximum(size - radius, radius)                       # centre stays in [ρ, W − ρ]
    start = rng.uniform(lo[:, None], hi[:, None], (k, 2))                    # [K,2]
    heading = rng.uniform(0, 2 * math.pi, k)
    speed = rng.uniform(*cfg.speed, k) * size
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
    tilt = np.radians(rng.uniform(-cfg.max_tilt, cfg.max_tilt, k))
    spin = np.radians(rng.uniform(-cfg.max_spin, cfg.max_spin, k))
    centre = _bounce(start[:, None, :], velocity[:, None, :], lo[:, None, None], hi[:, None, None], t[None, :, None])
    angle = tilt[:, None] + spin[:, None] * t[None, :]                       # [K,T]

    side_ss = size * ss
    if background is None:
        background = make_background(rng, side_ss)
    elif background.shape != (side_ss, side_ss, 3):
        raise DDMIError(f"background has shape {background.shape}; expected ({side_ss}, {side_ss}, 3)")
    frame = torch.from_numpy(np.asarray(background, dtype=np.float64)).permute(2, 0, 1)[None].expand(T, 3, side_ss, side_ss)
    pix = (torch.arange(side_ss, dtype=torch.float64) + 0.5) / ss             # pixel centres, frame px
    py, px = torch.meshgrid(pix, pix, indexing="ij")
    for j in range(k):
        c = torch.from_numpy(centre[j])                                      # [T,2]
        cos, sin = torch.from_numpy(np.cos(angle[j])), torch.from_numpy(np.sin(angle[j]))
        dx, dy = px[None] - c[:, 0, None, None], py[None] - c[:, 1, None, None]  # [T,H,W]
        # sprite coordinates: rotate by −θ, scale so the sprite's edges are at ±1
        gx = (cos[:, None, None] * dx + sin[:, None, None] * dy) / (side[j] / 2)
        gy = (-sin[:, None, None] * dx + cos[:, None, None] * dy) / (side[j] / 2)
        px_side = max(2, round(float(side[j]) * ss))
        sprite = F.interpolate(sprites[chosen[j]][None].double(), size=(px_side, px_side), mode="bilinear",
                               antialias=True, align_corners=False)          # [1,4,s,s]
        layer = F.grid_sample(sprite.expand(T, -1, -1, -1), torch.stack([gx, gy], -1), mode="bilinear",
                              padding_mode="zeros", align_corners=False)     # [T,4,H,W]
        frame = layer[:, :3] + (1.0 - layer[:, 3:]) * frame                  # out = P + (1 − a)·bg
    frame = F.avg_pool2d(frame, ss)                                          # area average → [T,3,size,size]
    clip = np.clip(np.rint(rearrange(frame, "t c h w -> t h w c").numpy() * 255.0), 0, 255).astype(np.uint8)
    return clip, {"sprite": chosen, "centre": centre, "angle": angle, "side": side, "radius": radius}


def make_clips(sprites: torch.Tensor, n: int, cfg: MovingEmojiConfig, *, seed: int = 0, split: str = "train",
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clips uint8 [n,T,H,W,3] and the sprite indices of each [n,max_sprites] (−1 unused)."""
    radii = content_radius(sprites)
    clips = np.empty((n, cfg.frames, cfg.size, cfg.size, 3), dtype=np.uint8)
    used = np.full((n, cfg.max_sprites), -1, dtype=np.int64)
    iterator = range(n)
    if progress:
        iterator = tqdm(iterator, desc=f"moving emoji ({split})", unit="clip")
    for i in iterator:
        rng = np.random.default_rng([int(seed), SPLITS.index(split), i])
        clips[i], info = render_clip(sprites, radii, rng, cfg)
        used[i, : len(info["sprite"])] = info["sprite"]
    return clips, used


def render_moving_emoji(split: str, indices, times, *, size: int = 32, frames: int = 16, seed: int = 0,
                        emoji_root: str | os.PathLike | None = None) -> torch.Tensor:
    """Clips ``indices`` of a split, redrawn at ``times`` (frame units: 0.5 lies halfway between the
    first two frames) with the settings of :func:`prepare_moving_emoji` → uint8 [n, len(times), 3, size, size].
    Integer times reproduce the cached frames, so fractional ones are the true in-between frames."""
    images = load_emoji(64 if size <= 48 else 128, split, root=emoji_root)
    cfg = MovingEmojiConfig(frames=frames, size=size)
    sprites = emoji_sprites(images, tau=cfg.alpha_tau)
    radii = content_radius(sprites)
    clips = [render_clip(sprites, radii, np.random.default_rng([int(seed), SPLITS.index(split), int(i)]), cfg,
                         times=times)[0] for i in indices]
    return rearrange(torch.from_numpy(np.stack(clips)), "n t h w c -> n t c h w").contiguous()


# ----------------------------------------------------------------------------- cache

def _video_root(root) -> Path:
    return Path(root) if root is not None else default_data_dir() / "video"


def _read_manifest(root: Path) -> dict:
    return read_json_or_none(root / "manifest.json") or {"files": {}}


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DDMIError(f"{name}={value!r} must be an int ≥ {minimum}")
    return value


def prepare_moving_emoji(root: str | os.PathLike | None = None, n_train: int = 2000, n_test: int = 200, *,
                         frames: int = 16, size: int = 32, seed: int = 0, force: bool = False, progress: bool = True,
                         emoji_root: str | os.PathLike | None = None) -> Path:
    """Render the moving-emoji clips into ``<root>/moving_emoji_{size}.npz``; return ``root``.

    Sprites come from the emoji cache at ``emoji_root`` (default ``<data dir>/emoji``, prepared
    when missing). Nothing is rewritten when the manifest lists this file with the same settings
    (including the emoji cache's sha256) and its checksum matches.
    """
    root = _video_root(root)
    _check_int("n_train", n_train, 1), _check_int("n_test", n_test, 1)
    _check_int("frames", frames, 2), _check_int("size", size, 8)
    emoji_size = 64 if size <= 48 else 128
    load_emoji(emoji_size, "train", root=emoji_root)  # prepares and checks the emoji cache
    emoji_file = (Path(emoji_root) if emoji_root is not None else default_data_dir() / "emoji") / f"emoji_{emoji_size}.npz"
    cfg = MovingEmojiConfig(frames=frames, size=size)
    settings = json.loads(json.dumps({"format": FORMAT_VERSION, "seed": int(seed), "n_train": n_train,
                                      "n_test": n_test, "config": asdict(cfg), "emoji_size": emoji_size,
                                      "emoji_sha256": sha256_file(emoji_file)}))
    claim_folder(root, what="video clips")
    name = f"moving_emoji_{size}.npz"
    manifest = _read_manifest(root)
    entry = manifest.get("files", {}).get(name)
    path = root / name
    if not force and entry is not None and entry.get("settings") == settings and path.is_file() \
            and sha256_file(path) == entry.get("sha256"):
        return root
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = load_emoji(emoji_size, split, root=emoji_root)
        names = np.array(load_emoji_names(emoji_size, split, root=emoji_root) + [""])
        if len(images) == 0:
            raise DDMIError(f"the emoji cache has no {split} emoji; prepare it without a small limit")
        clips, used = make_clips(emoji_sprites(images, tau=cfg.alpha_tau), n, cfg, seed=seed, split=split,
                                 progress=progress)
        arrays[split], arrays[f"{split}_sprites"] = clips, names[used]       # index −1 → ""
    atomic_write(path, npz_bytes(arrays), durable=False)
    manifest.setdefault("files", {})[name] = {"sha256": sha256_file(path), "settings": settings,
                                              "train": n_train, "test": n_test}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["credit"] = "Emoji images: OpenMoji (https://openmoji.org), CC BY-SA 4.0"
    write_json(root / "manifest.json", manifest, sort_keys=True, durable=False)
    return root


def load_moving_emoji(split: str = "train", *, size: int = 32, root: str | os.PathLike | None = None,
                      prepare: bool = True, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Clips [N,T,3,H,W]: float in [0,1] (``dtype=torch.uint8`` gives the raw bytes, 4× smaller).

    Prepares the cache with the default settings when it is missing; a file whose sha256 differs
    from ``manifest.json`` raises :class:`DDMIError`.
    """
    if split not in SPLITS:
        raise DDMIError(f"split={split!r} must be one of {SPLITS}")
    root = _video_root(root)
    path = root / f"moving_emoji_{size}.npz"
    entry = _read_manifest(root).get("files", {}).get(path.name)
    if entry is None or not path.is_file():
        if not prepare:
            raise DDMIError(f"video cache {path} is missing; run `make data` or prepare_moving_emoji(size={size})")
        prepare_moving_emoji(root, size=size)
        entry = _read_manifest(root)["files"][path.name]
    fix = f"rebuild it with prepare_moving_emoji(size={size}, force=True)"
    if sha256_file(path) != entry.get("sha256"):
        raise DDMIError(f"video cache {path} is corrupt (sha256 differs from manifest.json); {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            clips = archive[split]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DDMIError(f"video cache {path} cannot be read ({err}); {fix}") from err
    x = rearrange(torch.from_numpy(clips), "n t h w c -> n t c h w")
    return x.contiguous() if dtype == torch.uint8 else x.to(dtype).div_(255.0)


# ----------------------------------------------------------------------------- frame folders

def _natural_key(text: str) -> list:
    """Sort key: runs of ASCII digits compare as numbers ("2" < "10"); other characters as text."""
    return [int(tok) if tok.isascii() and tok.isdigit() else tok.lower() for tok in re.split(r"([0-9]+)", text)]


def _frame_runs(clip: Path, frames: list[Path]) -> list[list[Path]]:
    """A clip's frames (natural order) split where their numbers skip: frames 1, 2, 3, 7, 8 are two
    runs, 1–3 and 7–8, never joined as consecutive. Two files of one frame (``1.png``, ``1.jpg``) are refused."""
    stems: dict[str, Path] = {}
    for f in frames:
        if f.stem in stems:
            raise DDMIError(f"clip {clip}: {stems[f.stem].name} and {f.name} are the same frame; keep one")
        stems[f.stem] = f
    numbers = [re.findall(r"[0-9]+", f.stem) for f in frames]
    if not all(numbers):  # frames without numbers: their order is all there is
        return [frames]
    runs, last = [[frames[0]]], int(numbers[0][-1])
    for f, found in zip(frames[1:], numbers[1:]):
        n = int(found[-1])
        if n == last + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
        last = n
    return runs


def list_clips(root: str | os.PathLike, split: str = "train") -> list[tuple[Path, list[Path]]]:
    """(clip folder, its frame files in natural order) for every clip of ``<root>/<split>``
    (or ``<root>/sky_<split>``), in natural order of the clip paths. A folder whose frame numbers
    skip gives one entry per run of consecutive frames."""
    base = Path(root).expanduser()
    if not isinstance(split, str) or not split.strip() or split in (".", "..") or "/" in split or "\\" in split:
        raise DDMIError(f"split={split!r} must name one folder under {base} (e.g. 'train' or 'test')")
    folder = next((base / n for n in (split, f"sky_{split}") if (base / n).is_dir()), None)
    if folder is None:
        raise DDMIError(f"frame folder {base / split} does not exist; expected <root>/<split>/<clip>/<frame>.png")
    clips: dict[Path, list[Path]] = {}
    for p in walk_files(folder):  # linked clip folders are followed
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            clips.setdefault(p.parent, []).append(p)
    if not clips:
        raise DDMIError(f"frame folder {folder} holds no clips (folders of {'/'.join(IMAGE_EXTENSIONS)} frames)")
    ordered = sorted(clips, key=lambda c: _natural_key(c.relative_to(folder).as_posix()))
    return [(c, run) for c in ordered for run in _frame_runs(c, sorted(clips[c], key=lambda f: _natural_key(f.name)))]


def _frame_size(clip: Path, frame: Path) -> tuple[int, int]:
    try:
        with Image.open(frame) as image:
            return image.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DDMIError(f"clip {clip}: frame {frame.name} cannot be read as an image ({err})") from err


def read_clip(clip: Path, files: list[Path], start: int, frames: int, size: int) -> np.ndarray:
    """Frames ``start … start+frames−1`` of one clip → uint8 [T,size,size,3] (centre square, resized)."""
    _check_int("start", start, 0), _check_int("frames", frames, 1), _check_int("size", size, 1)
    if len(files) < start + frames:
        raise DDMIError(f"clip {clip} has {len(files)} frames in a row ({files[0].name} … {files[-1].name}); "
                        f"{frames} are needed from frame {start}")
    window = files[start:start + frames]
    first = _frame_size(clip, window[0])
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for k, frame in enumerate(window):
        shape = _frame_size(clip, frame)
        if shape != first:
            raise DDMIError(f"clip {clip}: frame {frame.name} is {shape[0]}×{shape[1]} but frame "
                            f"{window[0].name} is {first[0]}×{first[1]}; all frames of a clip must have one size")
        try:
            out[k] = read_image(frame, size)
        except DDMIError as err:
            raise DDMIError(f"clip {clip}: frame {frame.name}: {err}") from err
    return out


FRAME_CACHE_FORMAT = "ddmi_lite.frame_cache.v1"


def _decode_clips(clips, frames: int, size: int, *, desc: str, progress: bool) -> np.ndarray:
    """The first ``frames`` frames of every clip → uint8 [N, T, size, size, 3]."""
    out = np.empty((len(clips), frames, size, size, 3), dtype=np.uint8)  # [N,T,H,W,3]
    for k, (clip, files) in enumerate(tqdm(clips, desc=desc, unit="clip", disable=not progress)):
        out[k] = read_clip(clip, files, 0, frames, size)
    return out


def load_frame_folder(root: str | os.PathLike, split: str = "train", frames: int = 16, size: int = 32, *,
                      limit: int | None = None, cache: bool = False, cache_dir: str | os.PathLike | None = None,
                      progress: bool = False, dtype: str = "float32") -> torch.Tensor:
    """The first ``frames`` frames of every clip (first ``limit`` clips) → [N,T,3,size,size]: float32 in
    [0,1], or ``dtype="uint8"`` in 0–255. ``cache=True`` decodes once into a checked uint8 entry under
    ``cache_dir`` (default ``<data dir>/cache/frame_folders``) by the image folders' code path
    (:func:`~ddmi_lite.data.folders.cached_uint8`), keyed by the frames read (paths, sizes, mtimes),
    ``frames`` and ``size``; a damaged entry is decoded again, the frame folder is only read."""
    _check_int("frames", frames, 1), _check_int("size", size, 1)
    if limit is not None:
        _check_int("limit", limit, 1)
    if dtype not in ("float32", "uint8"):
        raise DDMIError(f"dtype={dtype!r} must be 'float32' or 'uint8'")
    clips = list_clips(root, split)[:limit]
    desc = f"decoding {Path(root).name}/{split} at {size}²"
    decode = lambda: _decode_clips(clips, frames, size, desc=desc, progress=progress)  # noqa: E731
    if cache:  # the key lists the frames read: clip k is files[k·T:(k+1)·T]
        used = [f for _, files in clips for f in files[:frames]]
        data = cached_uint8(used, Path(root).expanduser(), decode, size=size, cache_dir=cache_dir,
                            fmt=FRAME_CACHE_FORMAT, subfolder="frame_folders", what="frame cache", frames=frames)[1]
    else:
        data = decode()
    clips_t = rearrange(torch.from_numpy(np.ascontiguousarray(data)), "n t h w c -> n t c h w")
    return clips_t.contiguous() if dtype == "uint8" else clips_t.float().div_(255.0)


class FrameFolderDataset(torch.utils.data.Dataset):
    """Clips of a frame folder; item i is a random window of ``frames`` consecutive frames of clip i
    as float [T,3,size,size] in [0,1]. The start is drawn from a generator seeded by
    (seed, epoch, index): call :meth:`set_epoch`. Clips shorter than ``frames`` raise at construction."""

    def __init__(self, root: str | os.PathLike, split: str = "train", frames: int = 16, size: int = 32, *,
                 seed: int = 0, limit: int | None = None):
        self.frames, self.size = _check_int("frames", frames, 1), _check_int("size", size, 1)
        if limit is not None:
            _check_int("limit", limit, 1)
        self.clips = list_clips(root, split)[:limit]
        short = [(c, len(f)) for c, f in self.clips if len(f) < frames]
        if short:
            raise DDMIError(f"clip {short[0][0]} has {short[0][1]} frames, fewer than frames={frames} "
                            f"({len(short)} such clips)")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        clip, files = self.clips[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        start = int(rng.integers(len(files) - self.frames + 1))
        data = read_clip(clip, files, start, self.frames, self.size)
        return rearrange(torch.from_numpy(data), "t h w c -> t c h w").float().div_(255.0)
