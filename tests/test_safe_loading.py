"""Safe loading: checkpoints are safetensors + JSON only; pickles and mismatches are refused.

ddmi_lite never unpickles a file: a pickle or a ``torch.save`` zip where a checkpoint is expected,
a weights file whose tensors differ from its JSON, a checkpoint with unexpected / missing /
misshapen tensors for the model, and a stored config that differs from the given one all raise
:class:`DDMIError` naming the file. The last test greps the package source for unsafe loaders.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

import ddmi_lite
from ddmi_lite import checkpoint as ck
from ddmi_lite.errors import DDMIError

PACKAGE = Path(ddmi_lite.__file__).resolve().parent


class Boom:
    """Unpickling this would run code: a loader that unpickles would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_given_as_checkpoint_is_refused_without_unpickling(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.pt"
    payload = {"w": torch.ones(3), "evil": Boom(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DDMIError, match=r"model\.pt.*(pickle|zip)"):
        ck.load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_in_place_of_the_weights_file_is_refused(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    stem = tmp_path / "vae"
    ck.save_checkpoint(stem, {"w": torch.ones(3)}, {"v": 1})
    weights, sidecar = ck.checkpoint_files(stem)
    buffer = io.BytesIO()
    payload = {"w": torch.ones(3), "evil": Boom(marker)}
    torch.save(payload, buffer) if writer == "torch.save" else pickle.dump(payload, buffer)
    blob = buffer.getvalue()
    weights.write_bytes(blob)
    record = json.loads(sidecar.read_text())  # even with a JSON that vouches for it
    record["weights"].update(sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob))
    sidecar.write_text(json.dumps(record))
    with pytest.raises(DDMIError, match=r"vae\.safetensors.*(pickle|zip).*never unpickles"):
        ck.load_checkpoint(stem)
    assert not marker.exists()


def _rewrite_weights(stem: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the weights file and fix its sha256/size in the JSON, keeping the tensor list."""
    weights, sidecar = ck.checkpoint_files(stem)
    blob = safetensors.torch.save(tensors)
    weights.write_bytes(blob)
    record = json.loads(sidecar.read_text())
    record["weights"].update(sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob))
    sidecar.write_text(json.dumps(record))


@pytest.mark.parametrize("change", ["extra", "missing", "shape", "dtype"])
def test_weights_that_differ_from_the_json_list_are_refused(tmp_path, change):
    stem = tmp_path / "vae"
    good = {"a": torch.ones(2, 3), "b": torch.zeros(4)}
    ck.save_checkpoint(stem, good, {})
    bad = dict(good)
    if change == "extra":
        bad["c"] = torch.ones(1)
    elif change == "missing":
        del bad["b"]
    elif change == "shape":
        bad["a"] = torch.ones(3, 2)
    else:
        bad["a"] = torch.ones(2, 3, dtype=torch.float64)
    _rewrite_weights(stem, bad)
    with pytest.raises(DDMIError, match=r"vae\.safetensors: tensors differ from the list"):
        ck.load_checkpoint(stem)


def test_a_safetensors_header_lying_about_its_length_is_refused(tmp_path):
    stem = tmp_path / "vae"
    ck.save_checkpoint(stem, {"a": torch.ones(2)}, {})
    weights, _ = ck.checkpoint_files(stem)
    blob = bytearray(weights.read_bytes())
    blob[:8] = (10**12).to_bytes(8, "little")  # header "length" far past the end of the file
    _, sidecar = ck.checkpoint_files(stem)
    record = json.loads(sidecar.read_text())
    record["weights"].update(sha256=hashlib.sha256(bytes(blob)).hexdigest(), size_bytes=len(blob))
    sidecar.write_text(json.dumps(record))
    weights.write_bytes(bytes(blob))
    with pytest.raises(DDMIError, match=r"vae\.safetensors"):
        ck.load_checkpoint(stem)


@pytest.mark.parametrize("sidecar_text", ["", "{", "[]", '{"format": "other"}', "\x00\xff"])
def test_a_broken_or_foreign_json_sidecar_is_refused(tmp_path, sidecar_text):
    stem = tmp_path / "vae"
    ck.save_checkpoint(stem, {"a": torch.ones(2)}, {})
    ck.checkpoint_files(stem)[1].write_bytes(sidecar_text.encode("latin-1"))
    with pytest.raises(DDMIError, match=r"vae\.json"):
        ck.load_checkpoint(stem)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(DDMIError, match=r"nope\.(json|safetensors) does not exist"):
        ck.load_checkpoint(tmp_path / "nope")


@pytest.mark.parametrize("change", ["unexpected", "missing", "misshapen"])
def test_model_tensors_that_do_not_fit_the_model_are_refused(tmp_path, change):
    model = _model()
    tensors = ck.model_state(model)
    if change == "unexpected":
        tensors["model.9.weight"] = torch.ones(1)
    elif change == "missing":
        del tensors["model.2.bias"]
    else:
        tensors["model.0.weight"] = torch.ones(5, 3)
    ck.save_checkpoint(tmp_path / "m", tensors, {})
    loaded, _ = ck.load_checkpoint(tmp_path / "m")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DDMIError, match=change if change != "misshapen" else "shape mismatch"):
        ck.load_model_state(model, loaded)
    for name, value in model.state_dict().items():  # a refused load changes nothing
        assert torch.equal(value, before[name])


def test_a_config_that_does_not_match_is_refused_with_the_differing_keys(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config = {"model": {"width": 4, "depth": 2}, "lr": 1e-3}
    ck.save_training_state(tmp_path / "s", model=model, optimizer=opt, step=3, config=config)
    other = {"model": {"width": 8, "depth": 2}, "lr": 1e-3}
    with pytest.raises(DDMIError, match=r"s\.json.*different config.*model\.width: stored 4, given 8"):
        ck.load_training_state(tmp_path / "s", model=_model(), config=other)
    wider = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with pytest.raises(DDMIError, match="shape mismatch"):  # weights that do not fit the model
        ck.load_training_state(tmp_path / "s", model=wider, check_config=False)
    with pytest.raises(DDMIError, match="not a training state"):
        ck.save_checkpoint(tmp_path / "plain", ck.model_state(model), {"kind": "weights"})
        ck.load_training_state(tmp_path / "plain", model=_model())


def _calls(tree: ast.AST, dotted: str):
    """Every call to ``dotted`` (e.g. ``torch.load``) in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if ast.unparse(node.func) == dotted:  # safetensors.torch.load is not torch.load
                yield node


def test_the_package_never_unpickles():
    """No torch.load without weights_only=True, no pickle loads, no np.load(allow_pickle=True)."""
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    for file in files:
        source = file.read_text(encoding="utf-8")
        tree = ast.parse(source)
        where = lambda node: f"{file.relative_to(PACKAGE.parent)}:{node.lineno}"  # noqa: E731
        for node in _calls(tree, "torch.load"):
            kw = {k.arg: k.value for k in node.keywords}
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                problems.append(f"{where(node)}: torch.load without weights_only=True")
        for dotted in ("pickle.load", "pickle.loads", "dill.load", "joblib.load", "cloudpickle.load"):
            problems += [f"{where(n)}: {dotted}" for n in _calls(tree, dotted)]
        for node in [*_calls(tree, "np.load"), *_calls(tree, "numpy.load")]:
            for k in node.keywords:
                if k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False):
                    problems.append(f"{where(node)}: np.load with allow_pickle={ast.unparse(k.value)}")
        if "import pickle" in source or "from pickle" in source:
            problems.append(f"{file.name}: imports pickle")
    assert not problems, problems
