"""Checkpoints: bit-exact round trips, refusal of foreign/damaged files, atomic writes."""

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch

from ddmi_lite import checkpoint as ck
from ddmi_lite.errors import DDMIError


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(),
        "i64": torch.randint(-(2**40), 2**40, (4,), generator=g),
        "u8": torch.randint(0, 256, (2, 2), generator=g, dtype=torch.uint8),
        "bool": torch.rand(6, generator=g) > 0.5,
        "scalar": torch.tensor(3.5),
        "view": torch.arange(12.0).reshape(3, 4).t(),  # non-contiguous view
    }


def _raw(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)  # the bytes, NaN payloads included


def _assert_bit_equal(a: dict, b: dict):
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert torch.equal(_raw(a[name]), _raw(b[name])), name


def test_round_trip_is_bit_exact(tmp_path):
    tensors = _tensors()
    tensors["nan"] = torch.tensor([float("nan"), float("inf"), -0.0])
    meta = {"name": "vae", "size": [8, 8], "nested": {"a": 1.5}}
    stem = ck.save_checkpoint(tmp_path / "runs" / "vae", tensors, meta)
    assert (tmp_path / "runs" / "vae.safetensors").is_file()
    assert (tmp_path / "runs" / "vae.json").is_file()
    loaded, meta2 = ck.load_checkpoint(stem)
    assert meta2 == meta
    _assert_bit_equal(tensors, loaded)
    # the sidecar documents the file; either file name works as the path
    record = json.loads((tmp_path / "runs" / "vae.json").read_text())
    assert record["format"] == ck.FORMAT
    blob = (tmp_path / "runs" / "vae.safetensors").read_bytes()
    assert record["weights"]["sha256"] == hashlib.sha256(blob).hexdigest()
    assert record["tensors"]["bf16"] == {"shape": [7], "dtype": "bfloat16"}
    loaded2, _ = ck.load_checkpoint(tmp_path / "runs" / "vae.safetensors")
    _assert_bit_equal(tensors, loaded2)


def test_header_length_that_looks_like_a_pickle_marker_still_loads(tmp_path):
    # a safetensors file starts with its header length (u64 LE); 0x80 0x00 must not be
    # mistaken for the pickle protocol marker 0x80 <proto>
    for k in range(1, 200):
        tensors = {"x" * k: torch.ones(2)}
        if safetensors.torch.save(tensors, metadata={"format": ck.FORMAT})[:1] == b"\x80":
            break
    else:
        pytest.skip("no name length gives a 0x80 header length with this safetensors version")
    ck.save_checkpoint(tmp_path / "h", tensors, {})
    _assert_bit_equal(tensors, ck.load_checkpoint(tmp_path / "h")[0])


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DDMIError, match="nothing.json"):
        ck.load_checkpoint(tmp_path / "nothing")
    ck.save_checkpoint(tmp_path / "a", {"x": torch.ones(2)}, {})
    os.remove(tmp_path / "a.safetensors")
    with pytest.raises(DDMIError, match="a.safetensors"):
        ck.load_checkpoint(tmp_path / "a")


def test_pickle_file_is_refused(tmp_path):
    ck.save_checkpoint(tmp_path / "m", {"x": torch.ones(3)}, {})
    torch.save({"x": torch.ones(3)}, tmp_path / "m.safetensors")  # overwrite with a pickle zip
    with pytest.raises(DDMIError, match=r"m\.safetensors.*torch\.save"):
        ck.load_checkpoint(tmp_path / "m")
    # naming a torch.save file directly is refused too, before anything is read as pickle
    torch.save({"x": torch.ones(3)}, tmp_path / "weights.pt")
    with pytest.raises(DDMIError, match=r"weights\.pt.*never unpickles"):
        ck.load_checkpoint(tmp_path / "weights.pt")


def test_garbage_and_truncated_files_are_refused(tmp_path):
    stem = tmp_path / "g"
    ck.save_checkpoint(stem, _tensors(), {})
    weights = tmp_path / "g.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])  # truncated
    with pytest.raises(DDMIError, match=r"g\.safetensors.*truncated"):
        ck.load_checkpoint(stem)
    weights.write_bytes(os.urandom(len(blob)))  # same size, garbage
    with pytest.raises(DDMIError, match=r"g\.safetensors.*sha256"):
        ck.load_checkpoint(stem)
    # garbage whose sidecar was forged to match: the safetensors parser refuses it
    garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + os.urandom(64)
    weights.write_bytes(garbage)
    record = json.loads((tmp_path / "g.json").read_text())
    record["weights"].update(sha256=hashlib.sha256(garbage).hexdigest(), size_bytes=len(garbage))
    (tmp_path / "g.json").write_text(json.dumps(record))
    with pytest.raises(DDMIError, match=r"g\.safetensors.*not a valid safetensors"):
        ck.load_checkpoint(stem)


def test_wrong_format_tag_is_refused(tmp_path):
    ck.save_checkpoint(tmp_path / "f", {"x": torch.ones(1)}, {})
    record = json.loads((tmp_path / "f.json").read_text())
    record["format"] = "something-else"
    (tmp_path / "f.json").write_text(json.dumps(record))
    with pytest.raises(DDMIError, match=r"f\.json.*something-else"):
        ck.load_checkpoint(tmp_path / "f")


def test_non_json_meta_is_refused(tmp_path):
    with pytest.raises(DDMIError, match="JSON"):
        ck.save_checkpoint(tmp_path / "m", {"x": torch.ones(1)}, {"obj": object()})
    assert not list(tmp_path.iterdir())


def test_model_state_refuses_unexpected_missing_and_misshapen():
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    tensors = ck.model_state(src)
    assert "model.1.running_mean" in tensors
    ck.load_model_state(dst, tensors)
    for name, t in dst.state_dict().items():
        assert torch.equal(t, src.state_dict()[name])

    extra = dict(tensors, **{"model.2.weight": torch.ones(1)})
    with pytest.raises(DDMIError, match=r"unexpected.*2\.weight"):
        ck.load_model_state(dst, extra)
    missing = {k: v for k, v in tensors.items() if k != "model.0.bias"}
    with pytest.raises(DDMIError, match=r"missing.*0\.bias"):
        ck.load_model_state(dst, missing)
    report = ck.load_model_state(dst, missing, strict=False)
    assert report["missing"] == ["0.bias"]
    wrong = dict(tensors, **{"model.0.weight": torch.ones(5, 3)})
    with pytest.raises(DDMIError, match=r"shape mismatch.*0\.weight"):
        ck.load_model_state(dst, wrong, strict=False)


def test_interrupted_weights_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    stem = tmp_path / "run" / "vae"
    old = {"w": torch.arange(6.0)}
    ck.save_checkpoint(stem, old, {"v": 1})
    real_replace = os.replace

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ck.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        ck.save_checkpoint(stem, {"w": torch.zeros(1000)}, {"v": 2})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["vae.json",
                                                                     "vae.safetensors"]
    tensors, meta = ck.load_checkpoint(stem)
    assert meta == {"v": 1} and torch.equal(tensors["w"], old["w"])


def test_interrupted_write_mid_file_leaves_no_partial_file(tmp_path, monkeypatch):
    stem = tmp_path / "vae"
    ck.save_checkpoint(stem, {"w": torch.ones(4)}, {"v": 1})
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise KeyboardInterrupt("killed mid-write (simulated)")

    monkeypatch.setattr(ck.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(stem, {"w": torch.zeros(4)}, {"v": 2})
    monkeypatch.setattr(ck.os, "fdopen", real_fdopen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.json", "vae.safetensors"]
    tensors, meta = ck.load_checkpoint(stem)
    assert meta == {"v": 1} and torch.equal(tensors["w"], torch.ones(4))


def test_crash_between_the_two_files_restores_the_previous_pair(tmp_path, monkeypatch):
    stem = tmp_path / "vae"
    ck.save_checkpoint(stem, {"w": torch.ones(4)}, {"v": 1})
    real_replace = os.replace
    calls = []

    def crash_on_json(src, dst):
        calls.append(Path(dst).name)
        if Path(dst).name == "vae.json":
            raise OSError("power cut (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", crash_on_json)
    with pytest.raises(OSError):
        ck.save_checkpoint(stem, {"w": torch.zeros(4)}, {"v": 2})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert "vae.safetensors" in calls and calls[-1] == "vae.safetensors"  # weights put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.json", "vae.safetensors"]
    tensors, meta = ck.load_checkpoint(stem)
    assert meta == {"v": 1} and torch.equal(tensors["w"], torch.ones(4))


def test_training_state_round_trip_and_config_check(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
        sched.step()
    config = {"lr": 1e-2, "model": {"width": 3, "layers": [4, 3]}}
    ck.save_training_state(tmp_path / "s", model=model, optimizer=opt, scheduler=sched, step=3,
                           config=config, extra={"history": [{"step": 1, "loss": 0.25}]})
    tensors, _ = ck.load_checkpoint(tmp_path / "s")
    assert "optim.state.0.exp_avg" in tensors and "optim.state.1.exp_avg_sq" in tensors

    model2 = torch.nn.Linear(4, 3)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0, betas=(0.8, 0.95))
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    out = ck.load_training_state(tmp_path / "s", model=model2, optimizer=opt2, scheduler=sched2,
                                 config=config)
    assert out["step"] == 3 and out["extra"] == {"history": [{"step": 1, "loss": 0.25}]}
    assert sched2.state_dict() == sched.state_dict()
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for idx in a["state"]:
        for key in a["state"][idx]:
            assert torch.equal(a["state"][idx][key], b["state"][idx][key]), (idx, key)
    # one more identical step on both stays bit-identical
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    assert torch.equal(model.weight, model2.weight) and torch.equal(model.bias, model2.bias)

    other = {"lr": 2e-2, "model": {"width": 5, "layers": [4, 3]}}
    with pytest.raises(DDMIError, match=r"differing keys.*lr.*model\.width"):
        ck.load_training_state(tmp_path / "s", model=model2, config=other)
    with pytest.raises(DDMIError, match=r"model\.width"):
        ck.load_training_state(tmp_path / "s", model=model2, config=other, ignore_keys=["lr"])
    ck.load_training_state(tmp_path / "s", model=model2, config=other, check_config=False)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(step="3"), lambda m: m.update(step=-1), lambda m: m.pop("config"),
    lambda m: m.update(config=[1, 2]), lambda m: m.update(optimizer={"param_groups": 7}),
    lambda m: m.update(optimizer=[]), lambda m: m.update(scheduler={"__items__": [[1]]}),
    lambda m: m.update(extra={"__items__": 5}), lambda m: m.update(extra={"__tensor__": "no.such.tensor"}),
], ids=["step_str", "step_negative", "no_config", "config_list", "optimizer_groups", "optimizer_list",
        "scheduler_items", "extra_items", "extra_tensor"])
def test_hand_edited_training_state_sidecar_is_one_clear_error(tmp_path, edit):
    """A sidecar edited by hand (valid JSON, weights untouched) gives a DDMIError naming it, never a traceback."""
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    ck.save_training_state(tmp_path / "s", model=model, optimizer=opt, scheduler=sched, step=3,
                           config={"lr": 1e-2}, extra={"history": []})
    _, sidecar = ck.checkpoint_files(tmp_path / "s")
    record = json.loads(sidecar.read_text())
    edit(record["meta"])
    sidecar.write_text(json.dumps(record))
    with pytest.raises(DDMIError, match=re.escape(str(sidecar))):
        ck.load_training_state(tmp_path / "s", model=torch.nn.Linear(4, 3),
                               optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
                               scheduler=torch.optim.lr_scheduler.StepLR(opt, step_size=2))
