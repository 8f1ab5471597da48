"""The uint8 cache of frame folders: hit on a second load, checked by its manifest, rebuilt when damaged."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ddmi_lite.data import video as V
from ddmi_lite.errors import DDMIError


def _frame_folder(root):
    """train/ with three clips of 5 numbered 12×10 frames (clip c, frame t: a bar at column c + t)."""
    rng = np.random.default_rng(0)
    for c in range(3):
        for t in range(5):
            frame = np.full((10, 12, 3), rng.integers(0, 256, 3), dtype=np.uint8)
            frame[:, c + t] = 255 - frame[0, 0]
            path = root / "train" / f"clip_{c}" / f"{t + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path)
    return root


def _snapshot(root):
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def _refuse(*args, **kwargs):
    raise AssertionError("a frame was decoded although the cache holds the clips")


def test_second_load_reads_the_cache_and_equals_the_decoded_frames(tmp_path, monkeypatch):
    folder, cache = _frame_folder(tmp_path / "clips"), tmp_path / "cache"
    before = _snapshot(folder)
    direct = V.load_frame_folder(folder, "train", frames=4, size=8)  # no cache: the reference values
    first = V.load_frame_folder(folder, "train", frames=4, size=8, cache=True, cache_dir=cache)
    torch.testing.assert_close(first, direct, atol=0, rtol=0)
    [entry] = sorted(cache.glob("*.npy"))
    manifest = json.loads(entry.with_suffix(".json").read_text())
    assert manifest["shape"] == [3, 4, 8, 8, 3] and manifest["frames"] == 4 and len(manifest["files"]) == 12
    monkeypatch.setattr(V, "read_clip", _refuse)  # a second load must not decode anything
    second = V.load_frame_folder(folder, "train", frames=4, size=8, cache=True, cache_dir=cache)
    torch.testing.assert_close(second, direct, atol=0, rtol=0)
    raw = V.load_frame_folder(folder, "train", frames=4, size=8, cache=True, cache_dir=cache, dtype="uint8")
    assert raw.dtype == torch.uint8 and torch.equal(raw.float() / 255.0, direct)
    assert _snapshot(folder) == before  # the user's folder is only read
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted([entry.name, entry.stem + ".json"])


def test_a_damaged_entry_is_rebuilt_and_a_changed_folder_gets_a_new_entry(tmp_path, monkeypatch):
    folder, cache = _frame_folder(tmp_path / "clips"), tmp_path / "cache"
    direct = V.load_frame_folder(folder, "train", frames=3, size=6, cache=True, cache_dir=cache)
    [entry] = sorted(cache.glob("*.npy"))
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the pixels: the checksum no longer matches
    entry.write_bytes(bytes(data))
    calls = []
    original = V.read_clip
    monkeypatch.setattr(V, "read_clip", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    rebuilt = V.load_frame_folder(folder, "train", frames=3, size=6, cache=True, cache_dir=cache)
    assert len(calls) == 3  # every clip decoded again
    torch.testing.assert_close(rebuilt, direct, atol=0, rtol=0)
    assert entry.read_bytes() != bytes(data)  # and the entry rewritten intact
    calls.clear()
    V.load_frame_folder(folder, "train", frames=3, size=6, cache=True, cache_dir=cache)
    assert calls == []
    # another frames / size / a touched frame: a different key, never the old entry
    V.load_frame_folder(folder, "train", frames=2, size=6, cache=True, cache_dir=cache)
    frame = folder / "train" / "clip_1" / "2.png"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    V.load_frame_folder(folder, "train", frames=3, size=6, cache=True, cache_dir=cache)
    assert len(calls) == 6 and len(list(cache.glob("*.npy"))) == 3


def test_the_cache_is_never_made_inside_a_users_folder(tmp_path):
    folder = _frame_folder(tmp_path / "clips")
    with pytest.raises(DDMIError, match="refusing to write frame cache"):
        V.load_frame_folder(folder, "train", frames=2, size=4, cache=True, cache_dir=folder)
    with pytest.raises(DDMIError, match="dtype"):
        V.load_frame_folder(folder, "train", frames=2, size=4, dtype="float16")
