"""The main job: execute every notebook under a profile with papermill and write the report.

The notebooks (``notebooks/NN_*.py``, py:percent, paired to ``.ipynb`` by jupytext) are the
reproduction of the paper's experiments (ddmi_method.md §3, §4). Each has one ``parameters``
cell (``PROFILE``, ``DEVICE``, ``SEED``, ``OUT_DIR``) and writes its figures and a flat
``metrics.json`` into ``OUT_DIR = runs/<profile>/<name>/``. This module runs them in order,
records wall times in ``runs/<profile>/timings.json`` and gathers everything into
``runs/<profile>/report.md``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ddmi_lite.errors import DDMIError
from ddmi_lite.io import read_json, write_json
from ddmi_lite.notebook import (
    METRICS_FILE,
    REPO_ROOT,
    RUN_FILE,
    TIMINGS_FILE,
    load_metrics,
    now,
    run_name,
    select_notebooks,
)
from ddmi_lite.presets import check_profile

# --------------------------------------------------------------------------- execution


def _log(message: str, enabled: bool = True) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def run_notebook(
    path: str | Path,
    *,
    profile: str,
    out_dir: str | Path,
    device: str = "auto",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    kernel_name: str = "python3",
    timeout: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Execute one py:percent notebook with papermill into ``out_dir``; return its result.

    The executed notebook is ``out_dir/<name>.ipynb``; the kernel's working directory is the
    notebook's folder. ``params``: further parameters (``{"DATA_DIR": "/data/afhq"}``), each one
    the notebook's ``parameters`` cell assigns. ``timeout`` is per cell, in seconds. Raises :class:`DDMIError` naming
    the notebook and the failing cell's error, or when no ``metrics.json`` was written.
    """
    import jupytext  # optional ("notebooks" extra): the library runs without it
    import papermill  # optional ("notebooks" extra), as jupytext

    source = Path(path).resolve()
    name = source.stem
    check_profile(profile)
    if not source.is_file():
        raise DDMIError(f"notebook {str(source)!r} does not exist")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    metrics_path = out_dir / METRICS_FILE
    metrics_path.unlink(missing_ok=True)  # metrics must come from this run
    try:
        nb = jupytext.read(source)
    except Exception as err:  # jupytext raises several types for malformed sources
        raise DDMIError(f"notebook {name}: cannot read {str(source)!r} as py:percent: {err}") from err
    parameters = {"PROFILE": profile, "DEVICE": str(device), "SEED": int(seed), "OUT_DIR": str(out_dir)}
    declared = _declared_parameters(nb)
    for key, value in (params or {}).items():
        if key in RESERVED:
            raise DDMIError(f"parameter {key} is set by its own option (--profile, --device, --seed, --out)")
        if key not in declared:
            raise DDMIError(f"notebook {name} has no parameter {key}; its parameters cell sets "
                            f"{', '.join(declared) or 'nothing'}")
        parameters[key] = value
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ddmi_nb_") as tmp, _kernel_environment():
            input_nb = Path(tmp) / f"{name}.ipynb"
            jupytext.write(nb, input_nb, fmt="ipynb")
            papermill.execute_notebook(
                str(input_nb),
                str(executed),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=progress,
                cwd=str(source.parent),
                execution_timeout=timeout,
            )
    except papermill.PapermillExecutionError as err:
        raise DDMIError(
            f"notebook {name} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue} "
            f"(the executed notebook with the traceback is {executed})"
        ) from err
    except Exception as err:  # kernel start failure, dead kernel, cell timeout
        raise DDMIError(f"notebook {name} did not finish: {type(err).__name__}: {err}") from err
    finally:
        _record_source(jupytext, executed, source)
    wall_s = time.perf_counter() - start
    if not metrics_path.is_file():
        raise DDMIError(f"notebook {name} ran but wrote no {METRICS_FILE} into OUT_DIR={str(out_dir)!r}")
    return {
        "name": name,
        "status": "ran",
        "source": source,
        "out_dir": out_dir,
        "notebook": executed,
        "wall_s": wall_s,
        "metrics": load_metrics(metrics_path),
    }


@contextmanager
def _kernel_environment() -> Iterator[None]:
    """The environment the kernel inherits, for the duration of one notebook.

    This package's parent folder goes first on ``PYTHONPATH``, so the kernel imports the same
    ``ddmi_lite`` as the caller, installed or not; a relative ``DDMI_DATA_DIR`` is made absolute
    against the caller's working folder (the kernel runs in ``notebooks/``, where it would point
    elsewhere and have the data prepared again there).
    """
    changes = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if os.environ.get("DDMI_DATA_DIR"):
        changes["DDMI_DATA_DIR"] = str(Path(os.environ["DDMI_DATA_DIR"]).expanduser().absolute())
    old = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _record_source(jupytext, executed: Path, source: Path) -> None:
    """Point the executed notebook's papermill metadata at the py:percent source, not the temp copy."""
    if not executed.is_file():
        return
    nb = jupytext.read(executed)
    nb.metadata.setdefault("papermill", {})["input_path"] = str(source)
    jupytext.write(nb, executed)


def _declared_parameters(nb) -> list[str]:
    """The names the notebook's ``parameters``-tagged cell assigns."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", cells[0].source, flags=re.M) if cells else []


_PARAM = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", flags=re.S)


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["DATA_DIR=/data/afhq", "N_SHOW=8"]`` → ``{"DATA_DIR": "/data/afhq", "N_SHOW": 8}``.

    A value that reads as JSON (a number, ``true``, a quoted string, a list) is that value; any
    other text is a string. Names are the notebooks' upper-case parameter names.
    """
    params: dict[str, Any] = {}
    for item in items:
        m = _PARAM.match(item)
        if not m:
            raise DDMIError(f"--param {item!r}: expected NAME=VALUE with an upper-case NAME such as DATA_DIR=/data/afhq")
        key, text = m.groups()
        if key in params:
            raise DDMIError(f"--param {key} is given twice")
        try:
            params[key] = json.loads(text)
        except json.JSONDecodeError:
            params[key] = text
    return params


RESERVED = ("PROFILE", "DEVICE", "SEED", "OUT_DIR")  # set by their own options


def notebook_parameters(source: str | Path) -> list[str]:
    """The parameter names a py:percent notebook declares in its ``parameters`` cell."""
    import jupytext  # optional ("notebooks" extra): the library runs without it

    try:
        return _declared_parameters(jupytext.read(Path(source)))
    except Exception as err:  # jupytext raises several types for malformed sources
        raise DDMIError(f"cannot read {str(source)!r} as a py:percent notebook: {err}") from err


def check_params(params: Mapping[str, Any], notebooks: Iterable[Path]) -> None:
    """Each extra parameter is one that some selected notebook declares (none of the reserved four)."""
    declared = {Path(p).stem: notebook_parameters(p) for p in notebooks}
    for key in params:
        if key in RESERVED:
            raise DDMIError(f"--param {key}: set it with its own option (--profile, --device, --seed, --out)")
        if not any(key in names for names in declared.values()):
            offered = sorted({n for names in declared.values() for n in names} - set(RESERVED))
            raise DDMIError(f"--param {key}: no selected notebook has this parameter; they offer "
                            f"{', '.join(offered) or 'none beyond PROFILE, DEVICE, SEED, OUT_DIR'}")


KEY_FILE = "run_key.json"  # what made a notebook's outputs: profile, seed, device, parameters


def run_key(profile: str, *, seed: int = 0, device: str = "auto", params: Mapping[str, Any] | None = None) -> dict:
    """The key that decides whether outputs can be reused: every input that changes them."""
    return {"profile": profile, "seed": int(seed), "device": str(device), "params": dict(sorted((params or {}).items()))}


def is_done(source: str | Path, out_dir: str | Path, key: Mapping[str, Any] | None = None) -> bool:
    """True when ``out_dir`` holds a ``metrics.json`` and executed notebook newer than ``source``,
    made with ``key`` (:func:`run_key`, stored in ``run_key.json``) when one is given."""
    source, out_dir = Path(source), Path(out_dir)
    outputs = [out_dir / METRICS_FILE, out_dir / f"{source.stem}.ipynb"]
    if not all(p.is_file() for p in outputs):
        return False
    if key is not None:
        try:
            stored = read_json(out_dir / KEY_FILE)
        except DDMIError:
            return False
        if stored != json.loads(json.dumps(dict(key))):
            return False
    return min(p.stat().st_mtime for p in outputs) > source.stat().st_mtime


def _replace_folder(new: Path, final: Path) -> None:
    """Put the finished ``new`` folder in place of ``final``; the old results go only once the new exist."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def run_all(
    profile: str,
    *,
    only: Iterable[str] | None = None,
    out_root: str | Path = "runs",
    device: str = "auto",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
    notebooks_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Execute the notebooks in order under ``profile`` into ``out_root/<run>/<name>/``.

    ``<run>`` is :func:`~ddmi_lite.notebook.run_name`: ``<profile>`` for seed 0 and no ``params``,
    else ``<profile>-seed<k>`` (plus a digest of ``params``), so each seed and parameter set has
    its own results and checkpoints. A notebook whose outputs are newer than its source and were
    made with the same :func:`run_key` is skipped unless ``force``. Each notebook runs into a
    staging folder that replaces its earlier results only once it has finished, so a failed or
    interrupted run (``--force`` included) never loses a good result. Wall
    times go to ``out_root/<profile>/timings.json``; the call as a whole (start, end, total wall
    time, which notebooks ran and which were reused) to ``out_root/<profile>/run.json``, so the
    report can say whether its figures come from one uninterrupted run. Stops at the first
    failing notebook.
    """
    check_profile(profile)
    notebooks = select_notebooks(only, notebooks_dir)
    params = dict(params or {})
    key = run_key(profile, seed=seed, device=device, params=params)
    root = Path(out_root).resolve() / run_name(profile, seed=seed, params=params)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DDMIError(f"cannot create the output folder {str(root)!r}: {err.strerror or err}") from err
    if not os.access(root, os.W_OK):
        raise DDMIError(f"the output folder {str(root)!r} is not writable")
    timings_path = root / TIMINGS_FILE
    timings = read_json(timings_path) if timings_path.is_file() else {}
    results: list[dict[str, Any]] = []
    run = {"profile": profile, "device": device, "seed": seed, "params": params, "started": now(), "status": "running",
           "notebooks": [p.stem for p in notebooks], "ran": [], "skipped": []}
    run_start = time.perf_counter()

    def record_run(status: str) -> None:
        run.update(status=status, finished=now(), wall_s=round(time.perf_counter() - run_start, 2))
        write_json(root / RUN_FILE, run, allow_nan=False)

    for index, source in enumerate(notebooks, start=1):
        name, out_dir = source.stem, root / source.stem
        tag = f"[{index}/{len(notebooks)}] {name}"
        if not force and is_done(source, out_dir, key):
            _log(f"{tag}: skipped (done) — outputs in {out_dir}")
            results.append({"name": name, "status": "skipped", "source": source, "out_dir": out_dir})
            run["skipped"].append(name)
            continue
        _log(f"{tag}: running with profile={profile} device={device} seed={seed}"
             + "".join(f" {k}={v!r}" for k, v in params.items()))
        staging = root / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        start = time.perf_counter()
        try:
            own = {k: v for k, v in params.items() if k in notebook_parameters(source)} if params else {}
            result = run_notebook(source, profile=profile, out_dir=staging, device=device, seed=seed,
                                  progress=progress, **({"params": own} if own else {}))
            write_json(staging / KEY_FILE, key)
            _replace_folder(staging, out_dir)
            result.update(out_dir=out_dir, notebook=out_dir / f"{name}.ipynb")
        except DDMIError:
            timings[name] = {"status": "failed", "wall_s": round(time.perf_counter() - start, 2), "finished": now()}
            write_json(timings_path, timings, allow_nan=False)
            record_run(f"failed at {name}")
            raise
        timings[name] = {"status": "ran", "wall_s": round(result["wall_s"], 2), "finished": now()}
        write_json(timings_path, timings, allow_nan=False)
        _log(f"{tag}: done in {result['wall_s']:.1f} s")
        results.append(result)
        run["ran"].append(name)
    record_run("complete")
    _log(f"all {len(notebooks)} notebooks done in {run['wall_s'] / 60:.1f} min "
         f"({len(run['ran'])} ran, {len(run['skipped'])} reused)")
    return results
