"""Video data: moving-emoji clips (determinism, motion, bounds, split) and the frame-folder loader."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ddmi_lite.data import video as V
from ddmi_lite.data.emoji import load_emoji, load_emoji_names, prepare_emoji
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import MARKER

SMALL = {"n_train": 8, "n_test": 4, "frames": 6, "size": 16, "progress": False}


@pytest.fixture(scope="module")
def emoji_root(tmp_path_factory):
    return prepare_emoji(tmp_path_factory.mktemp("emoji"), sizes=(64,), progress=False, limit=40)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory, emoji_root):
    return V.prepare_moving_emoji(tmp_path_factory.mktemp("video_a"), emoji_root=emoji_root, **SMALL)


@pytest.fixture(scope="module")
def sprites(emoji_root):
    return V.emoji_sprites(load_emoji(64, "train", root=emoji_root))


def _files(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- moving emoji

def test_two_prepares_are_byte_identical(video_root, emoji_root, tmp_path):
    other = V.prepare_moving_emoji(tmp_path / "video_b", emoji_root=emoji_root, **SMALL)
    first, second = _files(video_root), _files(other)
    assert set(first) == {"moving_emoji_16.npz", "manifest.json", MARKER}  # MARKER: made by ddmi_lite
    assert first == second


def test_prepare_is_idempotent(video_root, emoji_root):
    path = video_root / "moving_emoji_16.npz"
    mtime = path.stat().st_mtime_ns
    V.prepare_moving_emoji(video_root, emoji_root=emoji_root, **SMALL)
    assert path.stat().st_mtime_ns == mtime
    manifest = json.loads((video_root / "manifest.json").read_text())
    assert manifest["files"]["moving_emoji_16.npz"]["train"] == SMALL["n_train"]


def test_load_shapes_and_checksum(video_root):
    clips = V.load_moving_emoji("train", size=16, root=video_root, prepare=False)
    assert clips.shape == (SMALL["n_train"], SMALL["frames"], 3, 16, 16) and clips.dtype == torch.float32
    raw = V.load_moving_emoji("train", size=16, root=video_root, prepare=False, dtype=torch.uint8)
    torch.testing.assert_close(clips, raw.float() / 255)
    with pytest.raises(DDMIError, match="split"):
        V.load_moving_emoji("val", size=16, root=video_root)
    with pytest.raises(DDMIError, match="missing"):
        V.load_moving_emoji("train", size=24, root=video_root, prepare=False)


def test_corrupt_cache_is_reported(tmp_path, emoji_root):
    root = V.prepare_moving_emoji(tmp_path, emoji_root=emoji_root, **dict(SMALL, n_train=2, n_test=1))
    path = root / "moving_emoji_16.npz"
    path.write_bytes(path.read_bytes()[:-8] + b"12345678")
    with pytest.raises(DDMIError, match="corrupt"):
        V.load_moving_emoji("train", size=16, root=root)


def test_sprites_move_in_every_clip(video_root):
    clips = V.load_moving_emoji("train", size=16, root=video_root, dtype=torch.uint8).int()
    step = (clips[:, 1:] - clips[:, :-1]).abs().amax(dim=(2, 3, 4))          # [N,T−1]
    assert bool((step > 0).all())


def test_split_sprites_are_disjoint_and_from_their_emoji_split(video_root, emoji_root):
    with np.load(video_root / "moving_emoji_16.npz") as archive:
        train, test = set(archive["train_sprites"].ravel()) - {""}, set(archive["test_sprites"].ravel()) - {""}
        assert archive["train_sprites"].shape == (SMALL["n_train"], 3)
        assert all(1 <= (row != "").sum() <= 3 for row in archive["train_sprites"])
    assert train and test and not train & test
    assert train <= set(load_emoji_names(64, "train", root=emoji_root))
    assert test <= set(load_emoji_names(64, "test", root=emoji_root))


def test_sprites_stay_inside_the_frame(sprites):
    """Every non-transparent sprite pixel, placed by the clip's motion, lies inside the frame, and
    on a white background a lone sprite keeps its ink from frame to frame (it is never cut off)."""
    cfg = V.MovingEmojiConfig(frames=24, size=32, max_sprites=1, speed=(0.08, 0.12))
    radii = V.content_radius(sprites)
    h = sprites.shape[-1]
    u = (torch.arange(h, dtype=torch.float64) + 0.5) / h - 0.5
    for seed in range(6):
        white = np.ones((64, 64, 3))
        clip, info = V.render_clip(sprites, radii, np.random.default_rng(seed), cfg, background=white)
        k = info["sprite"][0]
        ys, xs = torch.nonzero(sprites[k, 3] > 0.02, as_tuple=True)
        offset = torch.stack([u[xs], u[ys]], 1).numpy() * info["side"][0]        # sprite px → frame px
        for t in range(cfg.frames):
            a = info["angle"][0, t]
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            pos = offset @ rot.T + info["centre"][0, t]
            reach = 0.5 * info["side"][0] / h * math.sqrt(2)                     # half a sprite pixel
            assert pos.min() >= -reach - 1e-9 and pos.max() <= 32 + reach + 1e-9
        assert np.all(info["centre"] >= info["radius"][0] - 1e-9)
        assert np.all(info["centre"] <= 32 - info["radius"][0] + 1e-9)
        ink = (255 - clip.astype(np.float64)).sum(axis=(1, 2, 3))
        assert ink.min() > 0.93 * ink.max(), seed


def test_bounce_reflects_into_the_interval():
    t = np.arange(200, dtype=np.float64)
    x = V._bounce(np.array(3.0), np.array(1.7), np.array(2.0), np.array(10.0), t)
    assert x.min() >= 2.0 and x.max() <= 10.0
    assert np.allclose(np.abs(np.diff(x))[np.abs(np.diff(x)) > 1.7 - 1e-9], 1.7)   # free flight: |v|
    assert (np.diff(np.sign(np.diff(x))) != 0).sum() >= 30                          # many reflections


def test_sprite_alpha_recovers_a_known_composite():
    """An RGBA sprite composited on white, then un-composited, gives back its premultiplied colour."""
    alpha = torch.zeros(1, 1, 16, 16)
    alpha[..., 4:12, 4:12] = 1.0
    alpha[..., 3, 4:12] = 0.5                                                 # a soft edge
    colour = torch.tensor([0.1, 0.3, 0.05]).view(1, 3, 1, 1)
    on_white = alpha * colour + (1 - alpha)
    sprite = V.emoji_sprites(on_white, tau=0.95)                              # max(1 − c) = 0.95 for this colour
    torch.testing.assert_close(sprite[:, 3:], alpha, atol=1e-6, rtol=0)
    torch.testing.assert_close(sprite[:, :3], alpha * colour, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- frame folders

def _write_clip(folder, n, size=(20, 12)):
    """Frames 1.png … n.png whose red channel encodes the frame number."""
    folder.mkdir(parents=True)
    for k in range(1, n + 1):
        Image.new("RGB", size, (10 * k, 0, 0)).save(folder / f"{k}.png")


def test_frame_folder_loads_consecutive_frames_in_natural_order(tmp_path):
    _write_clip(tmp_path / "train" / "clip_2", 12)
    _write_clip(tmp_path / "train" / "clip_10" / "part", 12)  # nested: a clip is a folder of frames
    clips = V.load_frame_folder(tmp_path, "train", frames=11, size=8)
    assert clips.shape == (2, 11, 3, 8, 8)
    red = (clips[:, :, 0, 4, 4] * 255).round()
    torch.testing.assert_close(red, (10 * torch.arange(1, 12, dtype=torch.float32)).expand(2, 11))
    names = [c.relative_to(tmp_path / "train").as_posix() for c, _ in V.list_clips(tmp_path, "train")]
    assert names == ["clip_2", "clip_10/part"]
    data = V.FrameFolderDataset(tmp_path, "train", frames=4, size=8, seed=1)
    for epoch in range(3):
        data.set_epoch(epoch)
        window = (data[0][:, 0, 4, 4] * 255).round() / 10
        torch.testing.assert_close(window, window[0] + torch.arange(4, dtype=torch.float32))  # consecutive
        torch.testing.assert_close(data[0], data[0])                        # deterministic per epoch


def test_frame_folder_errors_name_the_clip_and_frame(tmp_path):
    with pytest.raises(DDMIError, match="does not exist"):
        V.load_frame_folder(tmp_path, "train")
    _write_clip(tmp_path / "train" / "short", 5)
    with pytest.raises(DDMIError, match="short.*5 frames"):
        V.load_frame_folder(tmp_path, "train", frames=8, size=8)
    with pytest.raises(DDMIError, match="short.*5 frames"):
        V.FrameFolderDataset(tmp_path, "train", frames=8, size=8)
    _write_clip(tmp_path / "test" / "odd", 6)
    Image.new("RGB", (21, 12)).save(tmp_path / "test" / "odd" / "4.png")
    with pytest.raises(DDMIError, match=r"odd.*frame 4\.png"):
        V.load_frame_folder(tmp_path, "test", frames=6, size=8)
    (tmp_path / "test" / "odd" / "4.png").write_bytes(b"not an image")
    with pytest.raises(DDMIError, match=r"odd.*frame 4\.png"):
        V.load_frame_folder(tmp_path, "test", frames=6, size=8)
