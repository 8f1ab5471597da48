"""The library never writes into a folder it did not make: a user's data set is read, never prepared into."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddmi_lite.data import prepare_emoji, prepare_moving_emoji, prepare_shapes, prepare_views
from ddmi_lite.data import srn
from ddmi_lite.data.folders import load_image_folder, read_image
from ddmi_lite.domains.nerf import nerf_data_root, nerf_vae_config
from ddmi_lite.domains.shape import load_shape_split, shape_data_root, shape_vae_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import MARKER, claim_folder, is_foreign_folder

SHAPES = {"n_objects": 10, "n_points": 1000, "n_surface": 300, "progress": False}
VIEWS = {"n_objects": 5, "views": 2, "size": 16, "n_points": 200, "progress": False}


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def user_shapenet(tmp_path_factory) -> Path:
    """A user's folder in the Occupancy-Networks layout (with Text2Shape captions): the library's files
    without its marker or manifest, plus a note of the user's own."""
    ours = prepare_shapes(tmp_path_factory.mktemp("ours"), **SHAPES)
    user = tmp_path_factory.mktemp("ShapeNet") / "ShapeNet"
    shutil.copytree(ours, user, ignore=shutil.ignore_patterns(MARKER, "manifest.json"))
    assert (user / "captions.tablechair.csv").is_file()
    (user / "NOTES.txt").write_text("the user's own file\n")
    return user


@pytest.mark.parametrize("prepare, kw", [(prepare_shapes, SHAPES), (prepare_views, VIEWS),
                                         (prepare_emoji, {"progress": False, "limit": 3}),
                                         (prepare_moving_emoji, {"progress": False, "n_train": 2, "n_test": 1})])
def test_prepare_refuses_a_users_folder_and_leaves_it_untouched(tmp_path, user_shapenet, prepare, kw):
    user = tmp_path / "user"
    shutil.copytree(user_shapenet, user)
    before = snapshot(user)
    with pytest.raises(DDMIError, match=f"refusing to write .* into '{user}'"):
        prepare(user, **kw)
    assert snapshot(user) == before


def test_a_shape_config_pointing_at_a_users_folder_only_reads_it(user_shapenet):
    before = snapshot(user_shapenet)
    cfg = shape_vae_config("smoke", data_root=str(user_shapenet))
    root = shape_data_root(cfg, progress=False)  # prepare=True by default: must not write here
    data = load_shape_split(root, "train")
    assert root == user_shapenet and len(data) > 0
    assert snapshot(user_shapenet) == before  # the captions file included, byte for byte


def test_a_nerf_config_pointing_at_a_users_folder_only_reads_it(tmp_path):
    ours = prepare_views(tmp_path / "ours", **VIEWS)
    user = tmp_path / "srn_cars"
    shutil.copytree(ours, user, ignore=shutil.ignore_patterns(MARKER, "manifest.json"))
    before = snapshot(user)
    assert nerf_data_root(nerf_vae_config("smoke", data_root=str(user)), progress=False) == user
    assert snapshot(user) == before


def test_the_librarys_own_folders_are_accepted_and_marked(tmp_path):
    root = prepare_shapes(tmp_path / "new" / "shapes", **SHAPES)  # a folder that did not exist
    assert (root / MARKER).is_file() and not is_foreign_folder(root)
    files = snapshot(root)
    assert prepare_shapes(root, **SHAPES) == root and snapshot(root) == files  # idempotent
    (root / MARKER).unlink()  # a cache made before the marker existed: known by its manifest
    assert not is_foreign_folder(root)
    prepare_shapes(root, **SHAPES)
    assert (root / MARKER).is_file()


def test_an_interrupted_prepare_can_run_again(tmp_path):
    root = claim_folder(tmp_path / "shapes", what="shapes")  # the marker is the first file written
    (root / "chair").mkdir()
    (root / "chair" / "half_written.tmp").write_bytes(b"\0" * 10)  # no manifest yet
    assert not is_foreign_folder(root)
    prepare_shapes(root, **SHAPES)
    assert (root / "manifest.json").is_file()


def test_empty_and_missing_folders_are_not_foreign_and_files_are_refused(tmp_path):
    assert not is_foreign_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert not is_foreign_folder(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DDMIError, match="is a file, not a folder"):
        claim_folder(tmp_path / "file")


# ----------------------------------------------------------------------------------------------- bit depth
def _gray16(path: Path, value: int, side: int = 8) -> Path:
    Image.fromarray(np.full((side, side), value, dtype=np.uint16)).save(path)  # a 16-bit grayscale PNG
    return path


@pytest.mark.parametrize("value", [0, 16384, 32768, 65535])
def test_16_bit_images_are_scaled_not_clipped(tmp_path, value):
    path = _gray16(tmp_path / "gray16.png", value)
    assert Image.open(path).mode.startswith("I")  # Pillow keeps the 16 bits
    expected = round(value * 255 / 65535)
    assert (read_image(path, 8) == expected).all()  # image folders and frame folders read through it
    assert (srn._read_view(path) == expected).all()  # views of an SRN folder
    images = load_image_folder(tmp_path, 8)
    assert abs(float(images.mean()) - expected / 255) < 1e-6


# ----------------------------------------------------------------------------------------------- linked folders
def _png(path: Path, value: int, side: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, dtype=np.uint8)).save(path)
    return path


def test_linked_class_folders_are_followed_and_a_link_loop_ends(tmp_path):
    _png(tmp_path / "afhq" / "dog" / "d0.png", 10)
    _png(tmp_path / "elsewhere" / "cat" / "c0.png", 200)  # another disk, say
    (tmp_path / "afhq" / "cat").symlink_to(tmp_path / "elsewhere" / "cat", target_is_directory=True)
    (tmp_path / "afhq" / "dog" / "loop").symlink_to(tmp_path / "afhq", target_is_directory=True)
    images = load_image_folder(tmp_path / "afhq", 8)
    assert len(images) == 2  # the cat is read, and the loop (afhq/dog/loop → afhq) reads nothing twice
    assert sorted(round(float(v) * 255) for v in images.mean(dim=(1, 2, 3))) == [10, 200]


def test_linked_clip_folders_are_followed_and_a_split_must_be_named(tmp_path):
    from ddmi_lite.data.video import list_clips

    for k in range(3):
        _png(tmp_path / "sky" / "train" / "a" / f"{k}.png", 50)
        _png(tmp_path / "store" / "b" / f"{k}.png", 90)
    (tmp_path / "sky" / "train" / "b").symlink_to(tmp_path / "store" / "b", target_is_directory=True)
    clips = list_clips(tmp_path / "sky", "train")
    assert [c.name for c, _ in clips] == ["a", "b"] and all(len(f) == 3 for _, f in clips)
    for split in ("", " ", "..", "train/a"):
        with pytest.raises(DDMIError, match="split="):
            list_clips(tmp_path / "sky", split)


def test_frame_numbering_gaps_split_a_clip_and_duplicates_and_odd_names_are_handled(tmp_path):
    from ddmi_lite.data.video import list_clips, load_frame_folder

    for k in (1, 2, 3, 7, 8):
        _png(tmp_path / "train" / "gap" / f"{k}.png", 20 * k)
    _png(tmp_path / "train" / "take1²" / "1.png", 5)  # a non-ASCII digit in a name sorts, not crashes
    runs = [[f.name for f in files] for clip, files in list_clips(tmp_path, "train") if clip.name == "gap"]
    assert runs == [["1.png", "2.png", "3.png"], ["7.png", "8.png"]]  # never joined as consecutive
    with pytest.raises(DDMIError, match=r"gap has 3 frames in a row \(1\.png … 3\.png\)"):
        load_frame_folder(tmp_path, "train", frames=4, size=8)
    _png(tmp_path / "train" / "gap" / "2.jpg", 0)
    with pytest.raises(DDMIError, match=r"2\.(png|jpg) and 2\.(png|jpg) are the same frame"):
        list_clips(tmp_path, "train")


def test_each_object_is_rendered_with_its_own_intrinsics_and_non_square_views_are_refused(tmp_path):
    from ddmi_lite.domains.nerf import load_view_split, view_rays
    from ddmi_lite.rays import camera_rays

    root = prepare_views(tmp_path / "views", **VIEWS)
    folder = srn.split_folder(root, "train")
    second = sorted(p for p in folder.iterdir() if p.is_dir())[1]
    lines = (second / "intrinsics.txt").read_text().splitlines()
    f, *rest = lines[0].split()
    lines[0] = " ".join([str(float(f) * 1.5), *rest])  # a longer lens for this object only
    (second / "intrinsics.txt").write_text("\n".join(lines) + "\n")
    data = load_view_split(root, "train")
    own = [srn.load_srn_object(p)["intrinsics"] for p in sorted(q for q in folder.iterdir() if q.is_dir())]
    torch.testing.assert_close(data.object_intrinsics, torch.stack(own).float())
    assert data.object_intrinsics[1, 0] == pytest.approx(1.5 * float(data.object_intrinsics[0, 0]))
    obj, view = torch.tensor([0, 1]), torch.tensor([0, 0])
    _, dirs = view_rays(data, obj, view)
    for i in (0, 1):  # the rays of each object come from that object's own camera
        _, expected = camera_rays(data.poses[i, 0], own[i], data.size, data.size)
        torch.testing.assert_close(dirs[i], expected)
    with pytest.raises(DDMIError, match="different intrinsics"):
        data.intrinsics  # noqa: B018 — no shared camera model to hand out

    for obj_dir in sorted(p for p in folder.iterdir() if p.is_dir()):  # every view 2 pixels wider than high
        for png in (obj_dir / "rgb").iterdir():
            with Image.open(png) as im:
                im.convert("RGB").resize((im.width + 2, im.height)).save(png)
    with pytest.raises(DDMIError, match=r"are \d+×\d+ pixels; the NeRF domain needs square views"):
        load_view_split(root, "train")


# ----------------------------------------------------------------------------------------------- shape files
@pytest.mark.parametrize("points_scale, occupancies, fragment", [
    (50.0, None, r"'points' reach ±"),                           # raw-scale points: not normalised
    (1.0, "float", "values other than 0 and 1"),                  # 0.1 must not read as occupied
])
def test_shape_files_out_of_the_onet_conventions_are_refused(tmp_path, points_scale, occupancies, fragment):
    from ddmi_lite.data.onet import load_points_npz

    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.5, 0.5, (64, 3)) * points_scale
    occ = rng.uniform(0, 1, 64) if occupancies == "float" else np.packbits(rng.uniform(0, 1, 64) < 0.5)
    np.savez(tmp_path / "points.npz", points=pts.astype(np.float32), occupancies=occ)
    with pytest.raises(DDMIError, match=fragment):
        load_points_npz(tmp_path / "points.npz")
    np.savez(tmp_path / "points.npz", points=(pts / points_scale).astype(np.float32), occupancies=(occ > 0.5) * 1.0
             if occupancies == "float" else occ)
    assert load_points_npz(tmp_path / "points.npz")["points"].shape == (64, 3)  # the same file, by the rules


def test_a_relative_data_dir_means_the_callers_folder_inside_the_kernel_too(tmp_path, monkeypatch):
    import os

    from ddmi_lite import reproduce

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DDMI_DATA_DIR", "my/data")
    with reproduce._kernel_environment():  # what papermill's kernel inherits (it runs in notebooks/)
        assert os.environ["DDMI_DATA_DIR"] == str(tmp_path / "my" / "data")
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(reproduce.REPO_ROOT)
    assert os.environ["DDMI_DATA_DIR"] == "my/data"
