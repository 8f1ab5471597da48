"""Image data: OpenMoji emoji cache (determinism, split, checksums) and the image-folder loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ddmi_lite.data import emoji as emoji_mod
from ddmi_lite.data import (
    ImageFolderDataset,
    default_data_dir,
    emoji_group,
    list_emoji_sequences,
    load_emoji,
    load_emoji_names,
    load_image_folder,
    prepare_emoji,
    split_names,
)
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import MARKER, sha256_file

LIMIT = 150  # first sequences by sorted name: enough for both splits, fast to render


@pytest.fixture(scope="module")
def emoji_root(tmp_path_factory):
    return prepare_emoji(tmp_path_factory.mktemp("emoji_a"), sizes=(32, 64), progress=False, limit=LIMIT)


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- emoji cache

def test_two_prepares_are_byte_identical(emoji_root, tmp_path):
    other = prepare_emoji(tmp_path / "emoji_b", sizes=(32, 64), progress=False, limit=LIMIT)
    first, second = _files(emoji_root), _files(other)
    assert set(first) == {"emoji_32.npz", "emoji_64.npz", "manifest.json", MARKER}  # MARKER: made by ddmi_lite
    assert first == second


def test_prepare_is_idempotent_and_repairs(tmp_path):
    root = prepare_emoji(tmp_path, sizes=(32,), progress=False, limit=20)
    path = root / "emoji_32.npz"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    prepare_emoji(tmp_path, sizes=(32,), progress=False, limit=20)
    assert path.stat().st_mtime_ns == mtime  # nothing rewritten
    path.write_bytes(before[:-10] + b"0123456789")
    prepare_emoji(tmp_path, sizes=(32,), progress=False, limit=20)
    assert path.read_bytes() == before  # checksum mismatch → rebuilt identically


def test_manifest_checksums_and_counts(emoji_root):
    manifest = json.loads((emoji_root / "manifest.json").read_text())
    assert manifest["settings"]["openmoji_version"] == emoji_mod.openmoji_version()
    for size in (32, 64):
        entry = manifest["files"][f"emoji_{size}.npz"]
        assert entry["sha256"] == sha256_file(emoji_root / f"emoji_{size}.npz")
        with np.load(emoji_root / f"emoji_{size}.npz", allow_pickle=False) as npz:
            assert npz["train"].shape == (entry["train"], size, size, 3)
            assert npz["test"].shape == (entry["test"], size, size, 3)
            assert npz["train"].dtype == np.uint8
    entry = manifest["files"]["emoji_32.npz"]
    assert entry["train"] + entry["test"] == manifest["rendered"] <= manifest["sequences"] == LIMIT


def test_load_shapes_ranges_and_geometry(emoji_root):
    for size in (32, 64):
        train = load_emoji(size, "train", root=emoji_root)
        test = load_emoji(size, "test", root=emoji_root)
        assert train.dtype == torch.float32 and train.shape[1:] == (3, size, size)
        assert test.shape[1:] == (3, size, size) and len(test) > 0
        assert 0.0 <= train.min() and train.max() <= 1.0
    # geometry of the crop: the glyph is centred, its longer side spans 1/(1 + 2·margin) of the image
    x = (load_emoji(64, "train", root=emoji_root) * 255).round()
    expected = 64 / (1 + 2 * emoji_mod.RenderConfig().margin)
    for image in x:
        ink = (image < 250).any(0)  # [H,W] pixels that are not white background
        ys, xs = torch.nonzero(ink.any(1)).flatten(), torch.nonzero(ink.any(0)).flatten()
        side = max(ys[-1] - ys[0] + 1, xs[-1] - xs[0] + 1).item()
        assert abs(side - expected) <= 5
        assert abs((ys[0] + ys[-1]).item() / 2 - 31.5) <= 1.5 and abs((xs[0] + xs[-1]).item() / 2 - 31.5) <= 1.5
    colour_spread = x.amax(1) - x.amin(1)  # [N,H,W]: zero for grey pixels
    assert (colour_spread > 60).any(), "colour layers were not drawn"
    assert len(torch.unique(x.flatten(1), dim=0)) == len(x), "exact duplicates left in the data"


def test_split_is_grouped_and_matches_reference(emoji_root):
    train = load_emoji_names(32, "train", root=emoji_root)
    test = load_emoji_names(32, "test", root=emoji_root)
    assert not {emoji_group(n) for n in train} & {emoji_group(n) for n in test}
    # reference: the split rule applied directly to the rendered names
    ref_train, ref_test = split_names(sorted(train + test))
    assert (train, test) == (ref_train, ref_test)
    assert load_emoji_names(64, "test", root=emoji_root) == test


def test_group_rule_on_all_sequences():
    names = list_emoji_sequences()
    assert len(names) > 1000
    present = set(names)
    for name in names:  # every skin-tone variant shares its base emoji's group
        parts = name.split("-")
        base = "-".join(p for p in parts if int(p, 16) not in range(0x1F3FB, 0x1F400))
        if base != name and base in present:
            assert emoji_group(name) == emoji_group(base), name
    assert emoji_group("1F469-1F3FD-200D-1F4BB") == emoji_group("1F468-200D-1F4BB")
    train, test = split_names(names)
    assert split_names(names) == (train, test)  # deterministic
    assert split_names(names, seed=1) != (train, test)
    assert not {emoji_group(n) for n in train} & {emoji_group(n) for n in test}
    assert 0.05 < len(test) / len(names) < 0.15


def test_bad_arguments_raise():
    with pytest.raises(DDMIError, match="32"):
        load_emoji(40)
    with pytest.raises(DDMIError, match="train"):
        load_emoji(32, "valid")
    with pytest.raises(DDMIError, match="sizes"):
        prepare_emoji(sizes=(31,))


def test_missing_cache_without_prepare_raises(tmp_path):
    with pytest.raises(DDMIError, match="make data"):
        load_emoji(32, root=tmp_path, prepare=False)


def test_corrupt_cache_raises_naming_file(tmp_path):
    root = prepare_emoji(tmp_path, sizes=(32,), progress=False, limit=20)
    path = root / "emoji_32.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DDMIError, match="emoji_32.npz") as info:
        load_emoji(32, root=root)
    assert "force=True" in str(info.value) and "make data" in str(info.value)
    # unreadable file whose checksum was (wrongly) recorded: still a DDMIError naming it
    path.write_bytes(b"not a zip file")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["emoji_32.npz"]["sha256"] = sha256_file(path)
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DDMIError, match="emoji_32.npz"):
        load_emoji(32, root=root)


def test_default_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DDMI_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("DDMI_DATA_DIR")
    assert default_data_dir().name == "data"


# ----------------------------------------------------------------------------- image folders

def _write_folder(root):
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    wide = np.zeros((20, 30, 3), np.uint8)  # H=20, W=30: centre square is columns 5..24
    wide[:, 5:25] = (200, 30, 40)
    wide[:, :5] = wide[:, 25:] = (0, 0, 255)
    Image.fromarray(wide).save(root / "cat" / "a_wide.png")
    Image.fromarray(np.full((24, 24, 3), (10, 200, 90), np.uint8)).save(root / "cat" / "b.jpg", quality=95)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, 8:] = (0, 0, 255, 255)  # right half opaque blue, left half fully transparent black
    Image.fromarray(rgba, "RGBA").save(root / "dog" / "c_rgba.png")
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(root / "dog" / "d.webp", lossless=True)
    (root / "notes.txt").write_text("ignored: not an image extension")


def test_image_folder_loads_and_converts(tmp_path):
    _write_folder(tmp_path)
    x = load_image_folder(tmp_path, 16)
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # centre crop keeps only the red square; the blue side strips are cut away
    red = torch.tensor([200, 30, 40]) / 255
    assert torch.allclose(x[0][:, 4:12, 4:12], red[:, None, None].expand(3, 8, 8), atol=1 / 255)
    assert torch.allclose(x[1].mean((1, 2)), torch.tensor([10, 200, 90]) / 255, atol=0.03)
    # RGBA at native size: transparent → white, opaque blue stays blue
    assert torch.allclose(x[2][:, :, :8], torch.ones(3, 16, 8))
    assert torch.allclose(x[2][:, :, 8:], torch.tensor([0.0, 0.0, 1.0])[:, None, None].expand(3, 16, 8))
    assert torch.allclose(x[3], torch.full((3, 16, 16), 128 / 255))
    assert load_image_folder(tmp_path, 8, limit=2).shape == (2, 3, 8, 8)


def test_image_folder_dataset_matches_eager_loader(tmp_path):
    _write_folder(tmp_path)
    dataset = ImageFolderDataset(tmp_path, 12)
    eager = load_image_folder(tmp_path, 12)
    assert len(dataset) == len(eager)
    assert torch.equal(torch.stack([dataset[i] for i in range(len(dataset))]), eager)


def test_image_folder_cache_is_decoded_once_checked_and_keyed_by_the_files(tmp_path, monkeypatch):
    """A folder decodes once into a uint8 cache with a checksum manifest; the user's folder is only read."""
    from ddmi_lite.data import folders

    user, cache = tmp_path / "afhq", tmp_path / "cache"
    _write_folder(user)
    before = {p: p.read_bytes() for p in user.rglob("*") if p.is_file()}
    eager = load_image_folder(user, 12)
    cached = load_image_folder(user, 12, cache=True, cache_dir=cache)
    assert torch.equal(cached, eager)
    small = load_image_folder(user, 12, cache=True, cache_dir=cache, dtype="uint8")
    assert small.dtype == torch.uint8 and torch.equal(small.float() / 255, eager)
    entries = sorted(cache.glob("*.json"))
    manifest = json.loads(entries[0].read_text())
    assert len(entries) == 1 and manifest["shape"] == [4, 12, 12, 3] and len(manifest["files"]) == 4
    assert sha256_file(cache / entries[0].name.replace(".json", ".npy")) == manifest["sha256"]
    assert (cache / MARKER).is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folders, "read_image", no_decoding)
    assert torch.equal(load_image_folder(user, 12, cache=True, cache_dir=cache), eager)  # from the cache
    monkeypatch.undo()
    npy = cache / entries[0].name.replace(".json", ".npy")
    npy.write_bytes(npy.read_bytes()[:-7] + b"garbage")  # damaged: checksum fails, decoded again
    assert torch.equal(load_image_folder(user, 12, cache=True, cache_dir=cache), eager)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(user / "dog" / "e_new.png")  # the folder changed
    assert load_image_folder(user, 12, cache=True, cache_dir=cache).shape[0] == 5
    assert len(list(cache.glob("*.json"))) == 2
    assert {p: p.read_bytes() for p in user.rglob("*") if p.is_file() and p.name != "e_new.png"} == before
    with pytest.raises(DDMIError, match="refusing to write image cache"):
        load_image_folder(user, 12, cache=True, cache_dir=user / "cat")  # never into a user's folder
    with pytest.raises(DDMIError, match="dtype="):
        load_image_folder(user, 12, dtype="float16")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DDMIError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DDMIError, match="holds no"):
        load_image_folder(tmp_path / "empty", 16)
    with pytest.raises(DDMIError, match="holds no"):
        ImageFolderDataset(tmp_path / "empty", 16)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "good.png")
    (bad / "broken.png").write_bytes(b"\x89PNG garbage bytes, not an image")
    with pytest.raises(DDMIError, match="broken.png"):
        load_image_folder(bad, 16)
    with pytest.raises(DDMIError, match="broken.png"):
        ImageFolderDataset(bad, 16)[0]  # sorted: broken.png comes first
    with pytest.raises(DDMIError, match="size"):
        load_image_folder(bad, 0)


def test_sizes_are_area_averages_of_each_other(emoji_root):
    """Every size is an exact area average of one master render: 64² pooled by 2 is the 32² image."""
    small = load_emoji(32, "train", root=emoji_root, prepare=False)
    large = load_emoji(64, "train", root=emoji_root, prepare=False)
    pooled = torch.nn.functional.avg_pool2d(large, 2)
    assert (pooled - small).abs().max().item() <= 1.0 / 255 + 1e-6  # uint8 rounding only
