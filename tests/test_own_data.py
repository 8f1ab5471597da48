"""The documented command on a user's own folder, per domain, under the smoke profile.

``python -m ddmi_lite reproduce --profile smoke --only NN --param DATA_DIR=<folder>`` is called as
``reproduce.run_all`` on a small folder built here: the notebook must finish with finite metrics,
and the user's folder must be byte-identical afterwards (it is only read).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ddmi_lite import reproduce
from ddmi_lite.data import prepare_shapes, prepare_views
from ddmi_lite.io import MARKER


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def random_shape_png(path: Path, rng: np.random.Generator, side: int = 40) -> None:
    """A random ellipse or rectangle of a random colour on a random background."""
    image = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    x0, y0 = rng.integers(0, side // 2, 2)
    x1, y1 = rng.integers(side // 2, side, 2)
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(40):
        random_shape_png(root / ("cats" if i % 2 else "dogs") / f"img_{i:03d}.png", rng)
    return root


def shape_folder(root: Path, tmp: Path) -> Path:
    """An Occupancy-Networks-layout folder the library did not make: category folders named by
    ShapeNet synset ids, each with its split lists and per-object points.npz / pointcloud.npz."""
    ours = prepare_shapes(tmp / "made", n_objects=20, n_points=1000, n_surface=300, progress=False)
    root.mkdir(parents=True)
    for k, category in enumerate(sorted(p.name for p in ours.iterdir() if (p / "train.lst").is_file())):
        shutil.copytree(ours / category, root / f"0300{k}627")
    shutil.rmtree(ours)
    assert not (root / MARKER).exists()
    return root


def video_folder(root: Path) -> Path:
    """Clip folders of 18 numbered 16×16 frames (a square moving over a background) in train/ and test/."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 6), ("test", 2)):
        for c in range(n):
            background, colour = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            x, y = rng.integers(0, 8, 2)
            for t in range(18):
                frame = np.broadcast_to(background, (16, 16, 3)).astype(np.uint8).copy()
                frame[y:y + 6, (x + t // 3) % 10:(x + t // 3) % 10 + 6] = colour
                path = root / split / f"clip_{c:02d}" / f"frame_{t:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(frame).save(path)
    return root


def nerf_folder(root: Path, tmp: Path) -> Path:
    """An SRN-layout folder (rgb/, pose/, intrinsics.txt, pointcloud.npz per object) the library did not make."""
    ours = prepare_views(tmp / "made_views", n_objects=16, views=4, size=16, n_points=256, progress=False)
    shutil.copytree(ours, root, ignore=shutil.ignore_patterns(MARKER, "manifest.json"))
    shutil.rmtree(ours)
    return root


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", ["03", "05", "06", "08", "09"])
def test_the_documented_command_trains_on_a_users_folder_and_only_reads_it(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("DDMI_DATA_DIR", str(tmp_path / "data"))  # caches go here; no bundled data is needed
    folder = tmp_path / "mine"
    if notebook in ("03", "05"):
        image_folder(folder)
    elif notebook == "06":
        shape_folder(folder, tmp_path)
    elif notebook == "08":
        video_folder(folder)
    else:
        nerf_folder(folder, tmp_path)
    before = snapshot(folder)
    results = reproduce.run_all("smoke", only=[notebook], out_root=tmp_path / "runs", device="cpu",
                                params={"DATA_DIR": str(folder)}, progress=False)
    assert len(results) == 1
    metrics_files = list((tmp_path / "runs").glob(f"smoke-*/{notebook}_*/metrics.json"))
    assert len(metrics_files) == 1, list((tmp_path / "runs").rglob("metrics.json"))
    metrics = json.loads(metrics_files[0].read_text())
    numbers = {k: v for k, v in metrics.items() if k not in ("profile", "device", "stopped_by_budget")}
    assert numbers and all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers.values()), numbers
    assert snapshot(folder) == before
    if notebook in ("03", "05"):  # the decoded images were cached under the data dir, keyed by the files
        assert list((tmp_path / "data" / "cache" / "image_folders").iterdir())


def test_an_image_folder_holds_out_every_tenth_image_in_sorted_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DDMI_DATA_DIR", str(tmp_path / "data"))
    from ddmi_lite.data import load_image_folder
    from ddmi_lite.domains.image import image_splits

    folder = image_folder(tmp_path / "mine")
    splits = image_splits(folder, (32, 48), progress=False)
    every = load_image_folder(folder, 32)
    assert len(splits["train"][32]) == 36 and len(splits["test"][32]) == 4
    assert splits["test"][32].equal(every[9::10]) and splits["train"][48].shape == (36, 3, 48, 48)


def test_only_a_users_data_adds_its_digest_to_the_run_config():
    from ddmi_lite.io import tensor_digest
    from ddmi_lite.train import data_entry

    assert data_entry(None) == {}  # the bundled data: run configs (and their checkpoints) as before
    a, b = np.zeros((2, 3), np.uint8), np.ones((2, 3), np.uint8)
    assert data_entry(tensor_digest(a)) == {"data": tensor_digest(a)} and len(tensor_digest(a)) == 16
    assert tensor_digest(a) != tensor_digest(b) and tensor_digest(a) != tensor_digest(a.astype(np.float32))
