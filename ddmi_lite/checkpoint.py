"""Checkpoints: safetensors weights + a JSON sidecar, written atomically, never pickled.

Both DDMI stages (the D2C-VAE of Sec. 3.1-3.2 and the latent diffusion model of Sec. 3.3) are
saved and resumed through this module. A checkpoint named by the stem ``runs/x/vae`` is two
files:

* ``vae.safetensors`` — every tensor (weights, optimiser moments, EMA shadow), contiguous CPU
  copies, in the safetensors format (a JSON header + raw bytes: loading it runs no code);
* ``vae.json`` — ``{"format": "ddmi_lite-checkpoint-v1", "weights": {file, sha256, size_bytes},
  "tensors": {name: {shape, dtype}}, "meta": {...}}``.

Atomicity. Each file is written by :func:`ddmi_lite.io.atomic_write` (a temporary file in the
same directory, flushed, fsync-ed and moved into place with ``os.replace``), so a reader never
sees a half-written file. The weights go first and the JSON last: a crash between the two leaves
the new weights next to the *old* JSON, whose sha256 no longer matches, and loading then
fails with a clear message instead of silently pairing mismatched files. A crash before the
first replace leaves the previous checkpoint intact.

Interrupted saves. Before replacing an existing checkpoint, :func:`save_checkpoint` hard-links
the current pair to ``<stem>.prev.safetensors`` / ``<stem>.prev.json`` and removes that backup
once both new files are in place. A process killed between the two replaces therefore leaves
the complete previous pair beside the mismatched one, and :func:`load_checkpoint` falls back to
it (with a warning): a reader gets the last complete checkpoint or a :class:`DDMIError`, never
a mix of two saves or a truncated file. Temp files left by a killed writer are ignored by the
loader and removed by the next save. One writer per checkpoint stem is assumed.

Training state. :func:`save_training_state` flattens the optimiser state to tensors named
``optim.state.<param_idx>.<key>`` (plus JSON for ``param_groups``), the model to
``model.<name>`` and an EMA to ``ema.shadow.<name>``, so a resumed run continues bit-exactly.
To evaluate with the EMA weights: ``load_model_state(model, tensors, prefix="ema.shadow.")``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import safetensors.torch

from ddmi_lite.device import resolve_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, remove_stale_temps, sha256_bytes, write_json

FORMAT = "ddmi_lite-checkpoint-v1"
_MARKERS = ("__tensor__", "__tuple__", "__items__")


# ----------------------------------------------------------------------------- file paths
def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """``runs/x/vae`` (or ``vae.safetensors`` / ``vae.json``) -> (weights file, JSON file)."""
    text = os.fspath(path)
    for suffix in (".safetensors", ".json"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return Path(text + ".safetensors"), Path(text + ".json")


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """True when both files of the checkpoint ``path`` exist (their contents are not checked)."""
    weights, sidecar = checkpoint_files(path)
    return weights.is_file() and sidecar.is_file()


def backup_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """The pair kept while a save replaces ``path``: ``<stem>.prev.safetensors`` / ``.prev.json``."""
    weights, _ = checkpoint_files(path)
    return checkpoint_files(str(weights)[: -len(".safetensors")] + ".prev")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, else itself."""
    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model


# ----------------------------------------------------------------------------- save
def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``<path>.safetensors`` then ``<path>.json`` atomically; return the stem ``path``.

    ``meta`` must be JSON-serialisable (tuples come back as lists).
    """
    weights, sidecar = checkpoint_files(path)
    if not isinstance(tensors, dict):
        raise DDMIError(f"tensors must be a dict[str, Tensor], got {type(tensors).__name__}")
    cpu: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise DDMIError(f"tensors[{name!r}]: expected a str name and a torch.Tensor, "
                            f"got {type(name).__name__} -> {type(value).__name__}")
        cpu[name] = value.detach().to("cpu", copy=True).contiguous()
    try:
        meta_text = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise DDMIError(f"meta for checkpoint {sidecar} must be JSON-serialisable: {err}") from err
    try:
        blob = safetensors.torch.save(cpu, metadata={"format": FORMAT})
    except Exception as err:  # unsupported dtype, ...
        raise DDMIError(f"cannot write {weights} as safetensors: {err}") from err
    record = {
        "format": FORMAT,
        "weights": {"file": weights.name, "sha256": sha256_bytes(blob),
                    "size_bytes": len(blob)},
        "tensors": {name: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
                    for name, t in cpu.items()},
        "meta": json.loads(meta_text),
    }
    weights.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(weights, sidecar)
    prev_weights, prev_sidecar = backup_files(weights)
    keep_old = weights.is_file() and sidecar.is_file()
    if keep_old and prev_sidecar.is_file():
        # the previous save was interrupted: keep its backup unless the current pair is complete
        try:
            _verified(weights, sidecar)
        except DDMIError:
            keep_old = False
    replaced = False
    try:
        if keep_old:  # the complete current pair survives a kill between the two replaces below
            _link_or_copy(weights, prev_weights)
            _link_or_copy(sidecar, prev_sidecar)
        atomic_write(weights, blob)  # weights first ...
        replaced = True
        write_json(sidecar, record, indent=1)  # ... JSON last
    except BaseException:  # an error in this process (disk full, Ctrl-C): put the old pair back
        if keep_old:
            try:
                if replaced:
                    os.replace(prev_weights, weights)
                for file in (prev_sidecar, prev_weights):
                    file.unlink(missing_ok=True)
            except OSError:
                pass  # the backup stays; load_checkpoint falls back to it
        raise
    for file in (prev_sidecar, prev_weights):  # both new files are in place: drop the backup
        file.unlink(missing_ok=True)
    return weights.with_name(weights.name[: -len(".safetensors")])


def _link_or_copy(source: Path, target: Path) -> None:
    """Atomically make ``target`` a hard link to (or, where links fail, a copy of) ``source``."""
    tmp = target.with_name(f".{target.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write(target, source.read_bytes())


# ----------------------------------------------------------------------------- load
def _sniff_foreign(data: bytes) -> str | None:
    """Name the format of a file that is certainly not safetensors (pickle / torch.save zip)."""
    # safetensors: u64 little-endian header length n, then an n-byte JSON header "{...}"
    if len(data) >= 9 and data[8:9] == b"{" and 8 + int.from_bytes(data[:8], "little") <= len(data):
        return None
    if data[:4] == b"PK\x03\x04":
        return "a zip archive as written by torch.save (pickle inside)"
    if len(data) >= 2 and data[0] == 0x80 and data[1] <= 5:
        return "a Python pickle (as written by torch.save / pickle.dump)"
    return None


def _refuse_foreign_file(given: Path) -> None:
    """The caller named an existing file that is not one of ours: say what it is."""
    kind = _sniff_foreign(given.read_bytes()) or "not a ddmi_lite checkpoint"
    raise DDMIError(f"checkpoint {given}: this file is {kind}; ddmi_lite loads only its own "
                    f"checkpoints (<stem>.safetensors + <stem>.json) and never unpickles files")


def _verified(weights: Path, sidecar: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and check one pair: ``(tensors on CPU, record)``, or :class:`DDMIError` naming the file."""
    for file in (sidecar, weights):
        if not file.is_file():
            raise DDMIError(f"checkpoint file {file} does not exist; expected the pair "
                            f"{weights.name} + {sidecar.name} written by save_checkpoint")
    try:
        record = json.loads(sidecar.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DDMIError(f"checkpoint {sidecar} is not valid JSON ({err}); expected the "
                        f"sidecar written by save_checkpoint") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise DDMIError(f"checkpoint {sidecar}: format {found!r} is not {FORMAT!r}")
    blob = weights.read_bytes()
    foreign = _sniff_foreign(blob)
    if foreign is not None:
        raise DDMIError(f"checkpoint {weights} is {foreign}, not safetensors; refusing to "
                        f"load it (ddmi_lite never unpickles files)")
    expected = record.get("weights")
    if not (isinstance(expected, dict) and {"size_bytes", "sha256"} <= set(expected)):
        raise DDMIError(f"checkpoint {sidecar} lacks the 'weights' size_bytes/sha256 record")
    if len(blob) != expected["size_bytes"]:
        raise DDMIError(f"checkpoint {weights} is {len(blob)} bytes but {sidecar.name} expects "
                        f"{expected['size_bytes']}: the file is truncated or was overwritten")
    if sha256_bytes(blob) != expected["sha256"]:
        raise DDMIError(f"checkpoint {weights}: sha256 does not match {sidecar.name}; the weights "
                        f"were modified or a save was interrupted between the two files")
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as err:
        raise DDMIError(f"checkpoint {weights} is not a valid safetensors file: {err}") from err
    listed = record.get("tensors", {})
    found = {n: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
             for n, t in tensors.items()}
    if found != listed:
        bad = sorted(set(found) ^ set(listed) | {n for n in found if listed.get(n) != found[n]})
        raise DDMIError(f"checkpoint {weights}: tensors differ from the list in {sidecar.name}: "
                        f"{bad[:10]}")
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise DDMIError(f"checkpoint {sidecar}: 'meta' must be a JSON object, got "
                        f"{type(meta).__name__}")
    return tensors, record


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    ) -> tuple[dict[str, torch.Tensor], dict]:
    """Verify and load a checkpoint: returns ``(tensors, meta)``; never unpickles anything.

    Checks, in order: both files exist, the JSON has our format tag, the weights file is not a
    pickle, its size and sha256 match the JSON, it parses as safetensors, and the tensor list
    matches the JSON. When the pair fails a check and the backup of an interrupted save
    (``<stem>.prev.*``, see :func:`backup_files`) passes them, that last complete checkpoint is
    loaded with a warning; otherwise :class:`DDMIError` names the file.
    """
    given = Path(os.fspath(path))
    weights, sidecar = checkpoint_files(path)
    if given.is_file() and given not in (weights, sidecar):
        _refuse_foreign_file(given)
    dev = resolve_device(device)
    try:
        tensors, record = _verified(weights, sidecar)
    except DDMIError as err:
        prev_weights, prev_sidecar = backup_files(weights)
        if not (prev_weights.is_file() and prev_sidecar.is_file()):
            raise
        try:
            tensors, record = _verified(prev_weights, prev_sidecar)
        except DDMIError:
            raise err from None
        warnings.warn(f"{err}; loaded the last complete "
                      f"checkpoint {prev_weights.name} + {prev_sidecar.name} instead",
                      RuntimeWarning, stacklevel=2)
    if dev.type != "cpu":
        tensors = {n: t.to(dev) for n, t in tensors.items()}
    return tensors, record.get("meta", {})


# ----------------------------------------------------------------------------- model weights
def model_state(model: torch.nn.Module, *, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """``{prefix + name: tensor}`` for every parameter and persistent buffer of ``model``."""
    return {prefix + name: t for name, t in unwrap_model(model).state_dict().items()}


def load_model_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], *,
                     prefix: str = "model.", strict: bool = True) -> dict[str, list[str]]:
    """Copy the tensors under ``prefix`` into ``model``; refuse missing/unexpected/misshapen ones.

    With ``strict=False`` missing and unexpected names are tolerated (and returned), shape
    mismatches never are. Returns ``{"missing": [...], "unexpected": [...]}``.
    """
    module = unwrap_model(model)
    own = module.state_dict()
    given = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    misshapen = sorted(f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(given) if given[k].shape != own[k].shape)
    problems = []
    if strict and missing:
        problems.append(f"missing from the checkpoint: {missing}")
    if strict and unexpected:
        problems.append(f"unexpected in the checkpoint: {unexpected}")
    if misshapen:
        problems.append(f"shape mismatch: {misshapen}")
    if problems:
        raise DDMIError(f"cannot load tensors with prefix {prefix!r} into "
                        f"{type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict({k: v for k, v in given.items() if k in own}, strict=False)
    return {"missing": missing, "unexpected": unexpected}


# ----------------------------------------------------------------------------- state packing
def _pack(obj: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Nested state -> JSON, tensors moved to ``tensors`` under dotted names (reversible)."""
    if isinstance(obj, torch.Tensor):
        if name in tensors:
            raise DDMIError(f"two state entries flatten to the same tensor name {name!r}")
        tensors[name] = obj
        return {"__tensor__": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_pack(v, f"{name}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(m in obj for m in _MARKERS):
            return {k: _pack(v, f"{name}.{k}", tensors) for k, v in obj.items()}
        if not all(k is None or isinstance(k, (bool, int, float, str)) for k in obj):
            raise DDMIError(f"state {name!r} has dict keys that cannot be stored: {list(obj)[:5]}")
        return {"__items__": [[k, _pack(v, f"{name}.{k}", tensors)] for k, v in obj.items()]}
    raise DDMIError(f"state entry {name!r} of type {type(obj).__name__} cannot be stored; "
                    f"allowed: tensors, numbers, strings, None, lists, tuples, dicts")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_pack`."""
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            if obj["__tensor__"] not in tensors:
                raise DDMIError(f"checkpoint lacks tensor {obj['__tensor__']!r} named in its JSON")
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


def _flat_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b": value}`` after a JSON round trip (tuples become lists)."""
    config = json.loads(json.dumps(config))
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(stored: dict, given: dict, *, ignore: Iterable[str] = ()) -> list[str]:
    """``["key: stored X, given Y", ...]`` for dotted keys that differ (``ignore`` excluded)."""
    a, b = _flat_config(stored), _flat_config(given)
    skip = tuple(ignore)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in skip or key.startswith(tuple(s + "." for s in skip)):
            continue
        old, new = a.get(key, "<absent>"), b.get(key, "<absent>")
        if old != new:
            out.append(f"{key}: stored {old!r}, given {new!r}")
    return out


# ----------------------------------------------------------------------------- training state
def save_training_state(path: str | os.PathLike, *, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                        ema: Any = None, step: int, config: dict,
                        extra: dict | None = None) -> Path:
    """Save model, optimiser, scheduler, EMA, step, config and ``extra`` as one checkpoint."""
    tensors = model_state(model)
    try:
        config = json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise DDMIError(f"config for checkpoint {path} must be JSON-serialisable: {err}") from err
    meta: dict[str, Any] = {"kind": "training_state", "step": int(step), "config": config,
                            "torch_version": torch.__version__}
    # optimiser: optim.state.<param_idx>.<key> tensors + JSON param_groups
    for key, obj, prefix in (("optimizer", optimizer, "optim"), ("scheduler", scheduler, "sched"),
                             ("ema", ema, "ema"), ("extra", extra, "extra")):
        if obj is None:
            meta[key] = None
            continue
        state = obj if key == "extra" else obj.state_dict()
        meta[key] = _pack(state, prefix, tensors)
    return save_checkpoint(path, tensors, meta)


def _restore_tuples(loaded: list[dict], live: list[dict]) -> None:
    """JSON has no tuples: give back the live optimiser's tuple-valued hyper-parameters."""
    for group, ref in zip(loaded, live):
        for key, value in group.items():
            if isinstance(ref.get(key), tuple) and isinstance(value, list):
                group[key] = tuple(value)


def load_training_state(path: str | os.PathLike, *, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                        ema: Any = None, device: str | torch.device = "cpu",
                        config: dict | None = None, check_config: bool = True,
                        ignore_keys: Iterable[str] = ()) -> dict:
    """Restore what :func:`save_training_state` wrote into the given objects.

    When ``config`` is given and ``check_config`` is true, a stored config that differs on any
    dotted key not in ``ignore_keys`` is refused with the list of differences. Returns
    ``{"step", "config", "extra"}``.
    """
    tensors, meta = load_checkpoint(path, device=device)
    _, sidecar = checkpoint_files(path)
    if meta.get("kind") != "training_state":
        raise DDMIError(f"checkpoint {sidecar} is not a training state (kind={meta.get('kind')!r})")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or not isinstance(meta.get("config"), dict):
        raise DDMIError(f"checkpoint {sidecar}: 'step' must be an int >= 0 and 'config' a JSON object "
                        f"(got step={step!r}, config of type {type(meta.get('config')).__name__}); "
                        f"the file was edited by hand or written by other code")
    if config is not None and check_config:
        diffs = config_differences(meta["config"], config, ignore=ignore_keys)
        if diffs:
            raise DDMIError(f"checkpoint {sidecar} was written with a different config; "
                            f"differing keys: " + "; ".join(diffs)
                            + " (start a fresh run, or pass check_config=False)")
    load_model_state(model, tensors)
    for key, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("ema", ema)):
        if obj is None:
            continue
        if meta.get(key) is None:
            raise DDMIError(f"checkpoint {sidecar} holds no {key} state but one was given")
        try:
            state = _unpack(meta[key], tensors)
            if key == "optimizer":
                _restore_tuples(state["param_groups"], obj.state_dict()["param_groups"])
            obj.load_state_dict(state)
        except (ValueError, KeyError, RuntimeError, TypeError, AttributeError, IndexError) as err:
            raise DDMIError(f"checkpoint {sidecar}: cannot restore the {key}: {type(err).__name__}: {err}") from err
    try:
        extra = _unpack(meta["extra"], tensors) if meta.get("extra") is not None else None
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise DDMIError(f"checkpoint {sidecar}: its 'extra' record is damaged ({type(err).__name__}: {err})") from err
    return {"step": step, "config": meta["config"], "extra": extra}
