"""Hostile inputs: random shapes, dtypes, NaN/inf and garbage files at every public entry point.

The contract: each call either returns a correct result or raises :class:`DDMIError` (a
``ValueError`` whose message names the argument or file). Any other exception fails the test.
Property-based (hypothesis), bounded so the file runs in well under a minute on one thread.
Run with ``-s`` to see how many hostile inputs were tried and what happened to them.
"""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddmi_lite.errors import DDMIError

_IDS = itertools.count()  # unique file names across examples
OUTCOMES: Counter = Counter()  # (entry point, "ok" | "DDMIError") -> count
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow], "derandomize": True}


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    total = sum(OUTCOMES.values())
    lines = [f"  {name:<28} {outcome:<10} {count}" for (name, outcome), count in sorted(OUTCOMES.items())]
    print(f"\n[hostile inputs] {total} tried:\n" + "\n".join(lines))


def attempt(name: str, fn, *args, must_name: tuple[str, ...] = (), **kwargs):
    """Call ``fn``; count the outcome; let anything but DDMIError fail the test.

    ``must_name``: when given, a DDMIError's message must contain one of these strings (the
    file / folder at fault, or the bad argument's ``name=``)."""
    try:
        result = fn(*args, **kwargs)
    except DDMIError as err:
        assert str(err), f"{name}: DDMIError without a message"
        assert not must_name or any(s in str(err) for s in must_name), \
            f"{name}: the message names none of {must_name}: {err}"
        OUTCOMES[(name, "DDMIError")] += 1
        return None
    OUTCOMES[(name, "ok")] += 1
    return result


DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                          torch.uint8, torch.bool, torch.complex64])
SPECIAL = st.sampled_from([None, math.nan, math.inf, -math.inf, 1e30])


def tensor_strategy(max_rank: int = 5, max_side: int = 9):
    @st.composite
    def build(draw):
        shape = draw(st.lists(st.integers(0, max_side), min_size=0, max_size=max_rank))
        dtype = draw(DTYPES)
        seed = draw(st.integers(0, 2**16))
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2
        special = draw(SPECIAL)
        if special is not None and x.numel():
            x.view(-1)[draw(st.integers(0, x.numel() - 1))] = special
        return x.to(dtype) if dtype is not torch.complex64 else x.to(torch.complex64)
    return build()


# ----------------------------------------------------------------------------- garbage files
def _png_bytes(seed: int, size: int = 8) -> bytes:
    from PIL import Image
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@st.composite
def garbage_file(draw, valid: bytes):
    """Random bytes, a truncated / bit-flipped copy of a valid file, or the valid file itself."""
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "valid", "empty"]))
    if kind == "random":
        return kind, draw(st.binary(min_size=1, max_size=300))
    if kind == "truncated":
        return kind, valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "flipped":
        data = bytearray(valid)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return kind, bytes(data)
    return kind, b"" if kind == "empty" else valid


@settings(max_examples=60, **SETTINGS)
@given(data=st.data(), size=st.one_of(st.integers(-2, 12), st.sampled_from([0.5, "8", None, True])))
def test_image_files(tmp_path, data, size):
    from ddmi_lite.data import list_image_files, load_image_folder, read_image
    _kind, blob = data.draw(garbage_file(_png_bytes(data.draw(st.integers(0, 9)))))
    folder = tmp_path / f"images_{next(_IDS)}"
    folder.mkdir()
    suffix = data.draw(st.sampled_from([".png", ".jpg", ".txt"]))
    (folder / f"a{suffix}").write_bytes(blob)
    out = attempt("read_image", read_image, folder / f"a{suffix}", size)
    if out is not None:
        assert out.dtype == np.uint8 and out.shape == (size, size, 3)
    out = attempt("load_image_folder", load_image_folder, folder, size)
    if out is not None:
        assert out.shape == (1, 3, size, size) and 0 <= float(out.min()) <= float(out.max()) <= 1
    assert attempt("list_image_files(empty)", list_image_files, tmp_path / "missing") is None


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


NP_DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.uint8, np.bool_,
                             np.complex64, "U3"])


@st.composite
def np_array(draw):
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=3)))
    dtype = draw(NP_DTYPES)
    rng = np.random.default_rng(draw(st.integers(0, 999)))
    x = rng.normal(size=shape)
    if draw(st.booleans()) and x.size:
        x.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, 5.0]))
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype) if dtype != "U3" else x.astype(str).astype("U3")


@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_occupancy_npz(tmp_path, data):
    from ddmi_lite.data import load_pointcloud_npz, load_points_npz
    keys = data.draw(st.lists(st.sampled_from(["points", "occupancies", "normals", "loc", "scale",
                                               "n_uniform"]), unique=True, max_size=6))
    arrays = {k: data.draw(np_array()) for k in keys}
    if data.draw(st.booleans()):  # often a valid file with at most one bad array
        n = data.draw(st.integers(0, 9))
        rng = np.random.default_rng(n)
        valid = {"points": rng.normal(size=(n, 3)).astype(np.float16),
                 "occupancies": np.packbits(np.arange(n) % 2 == 0),
                 "normals": rng.normal(size=(n, 3)).astype(np.float32),
                 "loc": np.zeros(3, np.float32), "scale": np.ones(1, np.float32),
                 "n_uniform": np.array([n // 2])}
        arrays = {**valid, **dict(list(arrays.items())[:data.draw(st.integers(0, 1))])}
    _kind, blob = data.draw(garbage_file(_npz(arrays)))
    path = tmp_path / f"points_{next(_IDS)}.npz"
    path.write_bytes(blob)
    out = attempt("load_points_npz", load_points_npz, path)
    if out is not None:
        n = len(out["points"])
        assert out["points"].shape == (n, 3) and out["occupancies"].shape == (n,)
        assert np.isfinite(out["points"]).all() and out["scale"] > 0
    out = attempt("load_pointcloud_npz", load_pointcloud_npz, path)
    if out is not None:
        assert out["points"].ndim == 2 and np.isfinite(out["points"]).all()


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_shapenet_folder(tmp_path, data):
    from ddmi_lite.data import ShapeNetOccupancy
    root = tmp_path / f"shapes_{next(_IDS)}"
    (root / "chair" / "c0").mkdir(parents=True)
    lst = data.draw(st.sampled_from([b"c0\n", b"", b"\xff\xfe\x00", b"missing\n"]))
    (root / "chair" / "train.lst").write_bytes(lst)
    n = data.draw(st.integers(0, 5))
    points = {"points": np.zeros((n, 3), np.float32), "occupancies": np.ones(n, np.uint8)}
    (root / "chair" / "c0" / "points.npz").write_bytes(data.draw(garbage_file(_npz(points)))[1])
    (root / "chair" / "c0" / "pointcloud.npz").write_bytes(_npz({"points": np.zeros((n, 3), np.float32)}))
    if data.draw(st.booleans()):
        (root / "attributes.json").write_bytes(data.draw(st.sampled_from([b"{}", b"[", b"\xff"])))
    dataset = attempt("ShapeNetOccupancy", ShapeNetOccupancy, root, "train", n_query=4, n_surface=4,
                      captions=False)
    if dataset is not None:
        item = attempt("ShapeNetOccupancy[0]", dataset.__getitem__, 0)
        if item is not None:
            assert item["query"].shape == (4, 3) and item["occ"].shape == (4,)


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_emoji_cache(tmp_path, data):
    from ddmi_lite.data import load_emoji
    root = tmp_path / f"emoji_{next(_IDS)}"
    root.mkdir()
    manifest = data.draw(st.sampled_from([None, b"", b"[]", b'{"files": []}', b'{"files": {"emoji_32.npz": 3}}',
                                          b'{"files": {"emoji_32.npz": {"sha256": "00"}}}']))
    if manifest is not None:
        (root / "manifest.json").write_bytes(manifest)
    if data.draw(st.booleans()):
        (root / "emoji_32.npz").write_bytes(data.draw(st.binary(max_size=64)))
    size = data.draw(st.sampled_from([32, 31, 0, -1, "32", True]))
    split = data.draw(st.sampled_from(["train", "test", "val", ""]))
    assert attempt("load_emoji", load_emoji, size, split, root=root, prepare=False) is None


# ----------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def vae():
    from ddmi_lite.domains.image import build_image_vae, image_vae_config
    torch.manual_seed(0)
    model = build_image_vae(image_vae_config("smoke")).eval()
    with torch.no_grad():
        LATENT[:] = model.encode(torch.rand(1, 3, 32, 32)).mean.shape[1:]
    return model


LATENT: list[int] = []  # the smoke VAE's latent shape [C, H, W], set by the fixture


@settings(max_examples=60, **SETTINGS)
@given(x=tensor_strategy(max_rank=5, max_side=10), data=st.data())
def test_vae_encode_decode_query(vae, x, data):
    with torch.no_grad():
        if data.draw(st.booleans()):  # a well-formed image batch, possibly with a bad value
            side = data.draw(st.sampled_from([8, 16, 32]))
            x = torch.rand(data.draw(st.integers(1, 2)), 3, side, side)
            if data.draw(st.booleans()):
                x[0, 0, 0, 0] = data.draw(st.sampled_from([math.nan, math.inf]))
        posterior = attempt("D2CVAE.encode", vae.encode, x)
        if posterior is not None:
            assert torch.isfinite(posterior.mean).all()
        z = data.draw(tensor_strategy(max_rank=5, max_side=6))
        if data.draw(st.booleans()):
            z = torch.randn(data.draw(st.integers(1, 2)), *LATENT)
        fields = attempt("D2CVAE.decode", vae.decode, z)
        if fields is None:
            z = torch.zeros(1, *LATENT)
            fields = vae.decode(z)
        coords = data.draw(tensor_strategy(max_rank=4, max_side=5))
        if data.draw(st.booleans()):  # [B, N, 2] with values far outside [-1, 1]: clamped
            coords = (torch.rand(fields[0].shape[0], 5, 2) - 0.5) * data.draw(st.sampled_from([2.0, 10.0]))
        out = attempt("D2CVAE.query", vae.query, fields, coords)
        if out is not None:
            assert out.shape[:2] == coords.shape[:2] and torch.isfinite(out).all()
            clamped = vae.query(fields, coords.clamp(-1, 1))
            torch.testing.assert_close(out, clamped, rtol=0, atol=0)  # documented: clamp




@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_samplers(data):
    from ddmi_lite.sampling import SAMPLERS, sample
    from ddmi_lite.schedule import Schedule
    schedule = Schedule(num_timesteps=20)
    name = data.draw(st.sampled_from([*SAMPLERS, "euler", ""]))
    shape = data.draw(st.one_of(st.lists(st.integers(-1, 3), max_size=4).map(tuple),
                                st.sampled_from([None, 5, "abc", (2.5, 2), (True, 2)])))
    steps = data.draw(st.sampled_from([1, 3, 20, 0, -1, 21, 2.0, None, True]))
    kw = {"steps": steps} if steps is not None else {}
    if name == "ddim":
        kw["eta"] = data.draw(st.sampled_from([0.0, 1.0, -0.5, math.nan, math.inf]))
    if data.draw(st.booleans()):
        kw["x_T"] = data.draw(tensor_strategy(max_rank=4, max_side=3))
    bad_schedule = data.draw(st.booleans()) and data.draw(st.booleans())
    if data.draw(st.booleans()):  # half the time a valid call, possibly with a bad x_T
        name, shape, bad_schedule = data.draw(st.sampled_from(list(SAMPLERS))), (2, 3), False
        kw["steps"] = data.draw(st.sampled_from([1, 3, 20]))
        kw.pop("eta", None)
        if "x_T" in kw and data.draw(st.booleans()):
            kw["x_T"] = torch.randn(2, 3)

    def eps_fn(x, t):
        assert t.dtype == torch.long and t.shape == x.shape[:1]
        return 0.1 * x

    out = attempt(f"sample({name or 'empty'})", sample, name, eps_fn, shape,
                  "linear" if bad_schedule else schedule, generator=torch.Generator().manual_seed(0), **kw)
    if out is not None:
        assert tuple(out.shape) == tuple(shape) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- CLI and reproduce
@settings(max_examples=30, **SETTINGS)
@given(profile=st.one_of(st.sampled_from(["smoke", "cpu", "gpu", "GPU", "", "fast"]), st.text(max_size=8)),
       device=st.sampled_from(["auto", "cpu", "tpu", "cuda:x", "", "mps"]),
       only=st.sampled_from(["99", "zz_none", "0", "nope"]))
def test_cli_refuses_bad_arguments_before_running(tmp_path, profile, device, only, capsys):
    from ddmi_lite.__main__ import main
    code = main(["reproduce", "--profile", profile, "--device", device, "--only", only,
                 "--out", str(tmp_path / "runs")])
    OUTCOMES[("cli reproduce", f"exit {code}")] += 1
    assert code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing ran


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_reproduce_entry_points(tmp_path, data):
    from ddmi_lite import notebook, reproduce
    path = tmp_path / f"metrics_{next(_IDS)}.json"
    path.write_bytes(data.draw(st.sampled_from([b"", b"{", b"[1]", b'{"psnr": NaN}', b'{"Bad Key": 1}',
                                                b'{"psnr_x": "a"}', b'{"psnr_x": 1.5, "wall_s": 2}',
                                                b'{"stopped_by_budget": 1, "wall_s": 2}',
                                                b'{"stopped_by_budget": true, "wall_s": 2}', b"\xff\xfe"])))
    out = attempt("load_metrics", notebook.load_metrics, path)
    if out is not None:
        assert all(isinstance(v, (int, float, str)) for v in out.values())
    metrics = data.draw(st.sampled_from([{}, {"wall_s": math.nan}, {"wall_s": 1, "psnr": [1, 2]},
                                         {"wall_s": 1.0, "psnr_heldout": 20.0}, {"Wall": 1}]))
    profile = data.draw(st.sampled_from(["smoke", "fast", ""]))
    attempt("write_metrics", notebook.write_metrics, tmp_path, metrics, profile=profile, device="cpu", trained=[])
    attempt("run_notebook(missing)", reproduce.run_notebook, tmp_path / "99_missing.py", profile=profile,
            out_dir=tmp_path / "o")
    attempt("select_notebooks", notebook.select_notebooks, data.draw(st.sampled_from(["01", "999", "x", ""])))
    params = data.draw(st.lists(st.sampled_from(["DATA_DIR=/x", "data_dir=/x", "N=1", "N=2", "=3", "X", "A=[1,",
                                                  "SEED=4", "OUT_DIR=/tmp", "B=\u00b2"]), max_size=3))
    parsed = attempt("parse_params", reproduce.parse_params, params)
    if parsed is not None:
        assert all(k.isupper() or "_" in k for k in parsed)
        attempt("check_params", reproduce.check_params, parsed, notebook.select_notebooks("01"))
    seed = data.draw(st.sampled_from([0, 3, -1, True, 2.5, "1"]))
    name = attempt("run_name", notebook.run_name, "smoke", seed=seed, params=parsed or None)
    if name is not None:
        assert name == "smoke" if not seed and not parsed else name.startswith(f"smoke-seed{int(seed)}")


@settings(max_examples=20, **SETTINGS)
@given(kind=st.sampled_from(["file", "under_file", "fine"]), argv=st.sampled_from(
    [["--seed", "-1"], ["--param", "lower=1"], ["--param", "NO_SUCH=1"], ["--param", "SEED=1"], []]))
def test_cli_output_root_and_parameters_are_checked_before_any_work(tmp_path, kind, argv, capsys):
    from ddmi_lite.__main__ import main
    blocker = tmp_path / f"blocker_{next(_IDS)}"
    blocker.write_text("keep")
    out = {"file": blocker, "under_file": blocker / "runs", "fine": tmp_path / f"fine_{next(_IDS)}"}[kind]
    if kind == "fine" and not argv:
        return  # a valid call would run the notebook
    code = main(["reproduce", "--profile", "smoke", "--only", "01", "--out", str(out), *argv])
    OUTCOMES[("cli reproduce --out/--param", f"exit {code}")] += 1
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("ddmi-lite: error:")
    assert blocker.read_text() == "keep" and not (tmp_path / "fine").exists()


# ----------------------------------------------------------------------------- checkpoints
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_checkpoint_garbage(tmp_path, data):
    from ddmi_lite import checkpoint as ck
    stem = tmp_path / f"ck_{next(_IDS)}"
    ck.save_checkpoint(stem, {"w": torch.arange(6.0)}, {"v": 1})
    weights, sidecar = ck.checkpoint_files(stem)
    target = data.draw(st.sampled_from([weights, sidecar]))
    _kind, blob = data.draw(garbage_file(target.read_bytes()))
    target.write_bytes(blob)
    out = attempt("load_checkpoint", ck.load_checkpoint, stem)
    if out is not None:  # only an untouched (or byte-identical) file may load, and then exactly
        assert torch.equal(out[0]["w"], torch.arange(6.0)) and out[1] == {"v": 1}


# ----------------------------------------------------------------------------- frame folders (video)
def _frame_png(seed: int, width: int, height: int, mode: str = "RGB") -> bytes:
    from PIL import Image
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 4), dtype=np.uint8), "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


SIDES = st.sampled_from([1, 2, 3, 5, 8, 13])
BAD_INTS = st.sampled_from([1, 2, 3, 4, 7, 0, -1, 2.0, True, "2", None])


@st.composite
def frame_folder(draw, root: Path):
    """<root>/<train|sky_train|nothing>/<clip>/<frame>: clips of odd-sized, mixed, garbage frames."""
    split_dir = draw(st.sampled_from(["train", "sky_train", "train", None]))
    if split_dir is None:
        root.mkdir()
        return root
    base = root / split_dir
    base.mkdir(parents=True)
    width, height = draw(SIDES), draw(SIDES)
    for c in range(draw(st.integers(0, 3))):
        clip = base / draw(st.sampled_from([f"clip{c}", f"clip{c}/sub", f".hidden{c}"]))
        clip.mkdir(parents=True, exist_ok=True)
        hurt = draw(st.integers(0, 2)) == 0  # one clip in three is damaged, the others valid
        for k in range(draw(st.integers(0 if hurt else 1, 4))):
            w, h = (width, height) if not hurt or draw(st.integers(0, 3)) else (draw(SIDES), draw(SIDES))
            mode = draw(st.sampled_from(["RGB", "RGBA", "L", "P", "I;16"]))
            _kind, blob = draw(garbage_file(_frame_png(k, w, h, mode)))
            if not hurt or draw(st.booleans()):
                blob = _frame_png(k, w, h, mode)
            suffix = draw(st.sampled_from([".jpg", ".txt"])) if hurt and draw(st.booleans()) else ".png"
            (clip / f"{k}{suffix}").write_bytes(blob)
        if hurt and draw(st.booleans()):
            (clip / "notes.png").mkdir()  # a folder with an image suffix
    return root


@settings(max_examples=50, **SETTINGS)
@given(data=st.data())
def test_frame_folder_video(tmp_path, data):
    from ddmi_lite.data.video import (
        FrameFolderDataset,
        list_clips,
        load_frame_folder,
        read_clip,
    )
    root = data.draw(frame_folder(tmp_path / f"video_{next(_IDS)}"))
    split = data.draw(st.sampled_from(["train", "train", "test"]))
    frames, size = data.draw(st.sampled_from([1, 2, 3])), data.draw(st.sampled_from([1, 4, 7]))
    if data.draw(st.integers(0, 3)) == 0:  # a bad argument
        bad = data.draw(BAD_INTS)
        frames, size = (bad, size) if data.draw(st.booleans()) else (frames, bad)
    names = (str(root), "frames=", "size=", "limit=", "start=")
    clips = attempt("list_clips", list_clips, root, split, must_name=names)
    if clips is not None:
        assert clips and all(files for _, files in clips)
        assert all(f.is_file() and f.parent == c for c, files in clips for f in files)
        clip, files = clips[data.draw(st.integers(0, len(clips) - 1))]
        start = data.draw(st.sampled_from([0, 0, 1, 3, -1, 1.0]))
        out = attempt("read_clip", read_clip, clip, files, start, frames, size, must_name=names)
        if out is not None:
            assert out.dtype == np.uint8 and out.shape == (frames, size, size, 3)
    limit = data.draw(st.sampled_from([None, None, 1, 0, -1, 1.5]))
    out = attempt("load_frame_folder", load_frame_folder, root, split, frames, size, limit=limit, must_name=names)
    if out is not None:
        assert out.shape[1:] == (frames, 3, size, size) and 1 <= len(out) <= (limit or len(out))
        assert out.dtype == torch.float32 and 0 <= float(out.min()) <= float(out.max()) <= 1
    dataset = attempt("FrameFolderDataset", FrameFolderDataset, root, split, frames, size, limit=limit,
                      must_name=names)
    if dataset is not None:
        assert len(dataset) >= 1
        dataset.set_epoch(data.draw(st.integers(0, 3)))
        item = attempt("FrameFolderDataset[i]", dataset.__getitem__, data.draw(st.integers(0, len(dataset) - 1)),
                       must_name=names)
        if item is not None:
            assert item.shape == (frames, 3, size, size) and 0 <= float(item.min()) <= float(item.max()) <= 1


# ----------------------------------------------------------------------------- SRN view folders
POSE_TEXT = st.sampled_from([
    "valid", "valid4x4", b"", b"1 2 3", " ".join(["1"] * 15).encode(), " ".join(["1"] * 17).encode(),
    b"1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 nan", b"1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 inf", b"1e400 " * 16,
    b"a b c d e f g h i j k l m n o p", b"1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1", b"\xff\xfe\x00\x01", b"0x1 " * 16,
    b"0 " * 16,  # all zero
    b"1 1 1 0 1 1 1 0 1 1 1 0 0 0 0 1",  # rank-1 "rotation"
    b"2 0 0 0 0 2 0 0 0 0 2 0 0 0 0 1",  # scaled, not a rotation
    b"1 0 0 0 0 1 0 0 0 0 1 0 0 0 1 1"])  # a last row that is not 0 0 0 1
INTRINSICS_TEXT = st.sampled_from([
    b"valid", b"", b"16. 8. 8. 0.\n", b"16. 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n", b"-16. 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n",
    b"nan 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n", b"16. nan 8. 0.\n0. 0. 0.\n1.\n16 16\n",
    b"16. 8. inf 0.\n0. 0. 0.\n1.\n16 16\n", b"16. 8. 8. 0.\n0. 0. 0.\n1.\ninf 16\n",
    b"16. 8. 8. 0.\n0. 0. 0.\n1.\nnan nan\n", b"16. 8. 8. 0.\n0. 0. 0.\n1.\n0 16\n", b"16 8 8\n\n\n1e30 1e30\n",
    b"x y z\n0. 0. 0.\n1.\n16 16\n", b"\xff\xfe\x00"])


def _pose_bytes(kind) -> bytes:
    eye = np.eye(4)
    eye[:3, 3] = [0.1, -0.2, 1.5]
    if kind == "valid":
        return " ".join(f"{v:.6f}" for v in eye.ravel()).encode()
    if kind == "valid4x4":
        return "\n".join(" ".join(f"{v:g}" for v in row) for row in eye).encode()
    return kind


@st.composite
def srn_folder(draw, root: Path):
    """<root>/<train|cars_train>/<object>/{rgb,pose,intrinsics.txt,pointcloud.npz} with damage."""
    split_dir = draw(st.sampled_from(["train", "cars_train", "train", None]))
    root.mkdir()
    if split_dir is None:
        return root
    side = draw(st.sampled_from([4, 5, 8, 16]))
    for o in range(draw(st.integers(0, 2))):
        obj = root / split_dir / f"obj{o}"
        obj.mkdir(parents=True)
        hurt = draw(st.integers(0, 2)) == 0  # one object in three is damaged, the others valid
        layout = "full" if not hurt or draw(st.booleans()) else draw(st.sampled_from(["no_pose_dir", "empty"]))
        if layout == "empty":
            continue
        (obj / "rgb").mkdir()
        if layout != "no_pose_dir":
            (obj / "pose").mkdir()
        for v in range(draw(st.sampled_from([1, 2, 3, 0]))):
            w, h = (side, side) if not hurt or draw(st.integers(0, 3)) else (draw(SIDES), draw(SIDES))
            mode = draw(st.sampled_from(["RGB", "RGBA", "L", "P"]))
            blob = _frame_png(v, w, h, mode)
            if hurt and not draw(st.integers(0, 2)):
                blob = draw(garbage_file(blob))[1]
            (obj / "rgb" / f"{v:06d}.png").write_bytes(blob)
            if layout != "no_pose_dir" and (not hurt or draw(st.integers(0, 6))):
                pose = draw(POSE_TEXT) if hurt and not draw(st.integers(0, 2)) else "valid"
                (obj / "pose" / f"{v:06d}.txt").write_bytes(_pose_bytes(pose))
        text = draw(INTRINSICS_TEXT) if hurt and not draw(st.integers(0, 2)) else b"valid"
        if text == b"valid":
            text = f"{side * 1.2:.3f} {side / 2} {side / 2} 0.\n0. 0. 0.\n1.\n{side} {side}\n".encode()
        if not hurt or draw(st.integers(0, 5)):
            (obj / "intrinsics.txt").write_bytes(text)
        if draw(st.booleans()):
            n = draw(st.integers(0, 5))
            points, rgb = np.zeros((n, 3), np.float32), np.full((n, 3), 200, np.uint8)
            if hurt and n and draw(st.booleans()):  # NaN coordinates or 0–255 colours stored as floats
                points, rgb = draw(st.sampled_from([(np.full((n, 3), np.nan, np.float32), rgb),
                                                    (points, rgb.astype(np.float32)),
                                                    (points, np.full((n, 3), np.inf, np.float32))]))
            cloud = _npz({"points": points, "rgb": rgb})
            (obj / "pointcloud.npz").write_bytes(draw(garbage_file(cloud))[1] if hurt else cloud)
    return root


@settings(max_examples=50, **SETTINGS)
@given(data=st.data())
def test_srn_views(tmp_path, data):
    from ddmi_lite.data.srn import (
        SRNDataset,
        load_srn_object,
        read_intrinsics,
        read_pose,
    )
    root = data.draw(srn_folder(tmp_path / f"views_{next(_IDS)}"))
    names = (str(root), "size=", "views=", "views_per_item=", "n_points=", "split=", "limit=")
    pose = tmp_path / f"pose_{next(_IDS)}.txt"
    pose.write_bytes(_pose_bytes(data.draw(POSE_TEXT)))
    out = attempt("read_pose", read_pose, pose, must_name=(str(pose),))
    if out is not None:  # a camera-to-world pose: a rotation and a translation
        assert out.shape == (4, 4) and out.dtype == np.float64 and np.isfinite(out).all()
        assert np.allclose(out[:3, :3].T @ out[:3, :3], np.eye(3), atol=1e-3) and np.allclose(out[3], [0, 0, 0, 1])
    intr = tmp_path / f"intrinsics_{next(_IDS)}.txt"
    intr.write_bytes(data.draw(INTRINSICS_TEXT).replace(b"valid", b"2. 1. 1. 0.\n0. 0. 0.\n1.\n2 2\n"))
    out = attempt("read_intrinsics", read_intrinsics, intr, must_name=(str(intr),))
    if out is not None:
        f, cx, cy, height, width = out
        assert f > 0 and height > 0 and width > 0 and math.isfinite(cx) and math.isfinite(cy)

    size = data.draw(st.sampled_from([None, 4, 3]))
    views = data.draw(st.sampled_from([None, [0], [1, 0]]))
    if data.draw(st.integers(0, 2)) == 0:  # a bad argument
        size = data.draw(st.sampled_from([0, -1, 2.5, True, "4"]))
    elif data.draw(st.integers(0, 2)) == 0:
        views = data.draw(st.sampled_from([[], [5], [-1], ["a"], [0.5], "0", 3, [None]]))
    split_dirs = [root / d for d in ("train", "cars_train") if (root / d).is_dir()]
    objects = sorted(split_dirs[0].iterdir()) if split_dirs else [root / "missing"]
    for obj in objects[:2]:
        out = attempt("load_srn_object", load_srn_object, obj, size=size, views=views, must_name=names)
        if out is not None:
            v = len(out["stems"])
            assert v >= 1 and out["poses"].shape == (v, 4, 4) and torch.isfinite(out["poses"]).all()
            assert out["images"].shape[:2] == (v, 3) and 0 <= float(out["images"].min()) <= 1
            if size is not None:
                assert out["images"].shape[2:] == (size, size)
            assert out["intrinsics"].shape == (4,) and torch.isfinite(out["intrinsics"]).all()
            assert out["points"] is None or out["points"].shape == out["point_rgb"].shape
            if out["points"] is not None:  # finite coordinates, colours in [0, 1]
                rgb = out["point_rgb"]
                assert torch.isfinite(out["points"]).all() and bool(((rgb >= 0) & (rgb <= 1)).all())

    split = "train"
    kw = {"size": data.draw(st.sampled_from([None, 4])), "views_per_item": data.draw(st.sampled_from([1, 2, 5])),
          "n_points": data.draw(st.sampled_from([None, 4])), "preload": data.draw(st.booleans()),
          "limit": data.draw(st.sampled_from([None, 1]))}
    bad = data.draw(st.sampled_from([None, None, "split", "size", "views_per_item", "n_points", "limit"]))
    if bad == "split":
        split = data.draw(st.sampled_from(["val", "bogus", ""]))
    elif bad is not None:
        kw[bad] = data.draw(st.sampled_from([0, -1, 1.0, True, "2"]))
    dataset = attempt("SRNDataset", SRNDataset, root, split, must_name=names, **kw)
    if dataset is not None:
        assert len(dataset) >= 1
        item = attempt("SRNDataset[i]", dataset.__getitem__, data.draw(st.integers(0, len(dataset) - 1)),
                       must_name=names)
        if item is not None:
            assert item["images"].shape[0] == kw["views_per_item"] == item["poses"].shape[0]
            assert torch.isfinite(item["poses"]).all() and torch.isfinite(item["intrinsics"]).all()
            if "points" in item:
                assert item["points"].shape == (kw["n_points"], 3)
