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
import math
import numbers
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.configs import check_profile
from ddmi_lite.errors import DDMIError

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
METRICS_FILE = "metrics.json"
TIMINGS_FILE = "timings.json"
RUN_FILE = "run.json"  # the last run_all call: start, end, total wall time, notebooks ran / reused
REPORT_FILE = "report.md"
# keys that hold strings in metrics.json; every other value is a finite number
STRING_KEYS = ("profile", "device")

_NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


# --------------------------------------------------------------------------- notebooks


def list_notebooks(notebooks_dir: str | Path | None = None) -> list[Path]:
    """The notebook sources ``NN_name.py`` in ``notebooks_dir``, in run order (by name)."""
    folder = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    if not folder.is_dir():
        raise DDMIError(f"notebooks_dir={str(folder)!r} is not a folder of NN_name.py notebooks")
    return sorted(p for p in folder.glob("*.py") if _NOTEBOOK_NAME.match(p.stem))


def select_notebooks(only: Iterable[str] | None = None, notebooks_dir: str | Path | None = None) -> list[Path]:
    """Resolve ``only`` (names like ``03_d2c_vae``, or their number ``03``) to notebook paths.

    ``None`` selects every notebook. The result keeps run order and has no duplicates.
    """
    notebooks = list_notebooks(notebooks_dir)
    if only is None:
        return notebooks
    if isinstance(only, str):
        only = [only]
    by_name = {p.stem: p for p in notebooks}
    chosen: set[str] = set()
    for token in only:
        key = Path(str(token)).stem  # accept "notebooks/03_x.py" too
        matches = [n for n in by_name if n == key] or [n for n in by_name if n.split("_", 1)[0] == key]
        matches = matches or [n for n in by_name if n.startswith(key)]
        if len(matches) != 1:
            what = "matches several notebooks" if matches else "is not a notebook"
            raise DDMIError(f"only={token!r} {what}; choose from {sorted(by_name)} (a name or its number)")
        chosen.add(matches[0])
    return [p for p in notebooks if p.stem in chosen]


def notebook_out_dir(name: str, profile: str, out_dir: str | Path | None = "") -> Path:
    """The folder a notebook writes into, created: ``out_dir`` if given, else ``runs/<profile>/<name>``.

    An empty ``out_dir`` (the notebooks' default ``OUT_DIR = ""``) resolves against the repo
    root, so a notebook opened in JupyterLab writes where ``reproduce`` looks.
    """
    check_profile(profile)
    path = Path(out_dir) if out_dir else REPO_ROOT / "runs" / profile / name
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_notebook(name: str, profile: str, device: str = "auto", seed: int = 0, out_dir: str | Path | None = ""):
    """The set-up every notebook's first code cell does, from its ``parameters`` cell.

    Returns ``(device, generator, out, ckpt_dir)``: the resolved torch device, the generator
    :func:`~ddmi_lite.device.seed_everything` seeded, the notebook's output folder
    (:func:`notebook_out_dir`) and the checkpoint folder next to it, shared by every notebook of
    the profile (``runs/<profile>/checkpoints``). Prints one line saying so.
    """
    from ddmi_lite.device import resolve_device, seed_everything

    torch_device = resolve_device(device)
    generator = seed_everything(seed)
    out = notebook_out_dir(name, profile, out_dir)
    print(f"profile={profile} device={torch_device} seed={seed} out={out}")
    return torch_device, generator, out, out.parent / "checkpoints"


# --------------------------------------------------------------------------- metrics


def _as_number(key: str, value: Any, where: str) -> int | float:
    """A finite python int/float from a number, a numpy scalar or a one-element tensor/array."""
    if hasattr(value, "item") and not isinstance(value, (numbers.Number, str)):
        try:
            value = value.item()  # torch and numpy raise unless there is exactly one element
        except (ValueError, RuntimeError) as err:
            raise DDMIError(f"{where}: metric {key!r} must be a single number, got {type(value).__name__}") from err
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DDMIError(f"{where}: metric {key!r} must be a finite number, got {type(value).__name__} {value!r}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(value):
        raise DDMIError(f"{where}: metric {key!r} must be finite, got {value!r}")
    return value


def check_metrics(metrics: Mapping[str, Any], *, where: str = "metrics", strict: bool = True) -> dict[str, Any]:
    """Validate a flat metrics mapping and return it with plain python values.

    Keys are snake case; values are finite numbers, except strings under ``profile`` and
    ``device`` (``strict``) or under any key (``strict=False``).
    """
    if not isinstance(metrics, Mapping):
        raise DDMIError(f"{where}: expected a flat JSON object of metrics, got {type(metrics).__name__}")
    clean: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not _SNAKE_CASE.match(key):
            raise DDMIError(f"{where}: metric name {key!r} must be snake_case like 'psnr_heldout'")
        if isinstance(value, str) and (key in STRING_KEYS or not strict):
            clean[key] = value
        else:
            clean[key] = _as_number(key, value, where)
    return clean


def write_metrics(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    profile: str | None = None,
    device: Any = None,
) -> Path:
    """Validate ``metrics`` and write ``out_dir/metrics.json`` atomically; return its path.

    ``profile`` and ``device`` are added as strings (or taken from ``metrics``); ``wall_s``,
    the notebook's own wall time in seconds, is required.
    """
    merged = dict(metrics)
    if profile is not None:
        merged["profile"] = profile
    if device is not None:
        merged["device"] = str(device)
    for key in ("profile", "device", "wall_s"):
        if key not in merged:
            raise DDMIError(f"write_metrics: {key!r} is missing; pass profile=, device= and a 'wall_s' entry")
    check_profile(merged["profile"])
    if not isinstance(merged["device"], str):
        raise DDMIError(f"write_metrics: device must be a string, got {merged['device']!r}")
    path = Path(out_dir) / METRICS_FILE
    clean = check_metrics(merged, where=str(path))
    _write_json_atomic(path, clean)
    return path


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read a ``metrics.json``: a flat object of finite numbers and strings under snake-case keys."""
    path = Path(path)
    if not path.is_file():
        raise DDMIError(f"metrics file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DDMIError(f"metrics file {str(path)!r} is not valid JSON: {err}") from err
    return check_metrics(data, where=str(path), strict=False)


def _write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8"))


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
    kernel_name: str = "python3",
    timeout: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Execute one py:percent notebook with papermill into ``out_dir``; return its result.

    The executed notebook is ``out_dir/<name>.ipynb``; the kernel's working directory is the
    notebook's folder. ``timeout`` is per cell, in seconds. Raises :class:`DDMIError` naming
    the notebook and the failing cell's error, or when no ``metrics.json`` was written.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

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
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ddmi_nb_") as tmp, _kernel_imports_this_package():
            input_nb = Path(tmp) / f"{name}.ipynb"
            nbformat.write(nb, input_nb)
            papermill.execute_notebook(
                str(input_nb),
                str(executed),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=progress,
                cwd=str(source.parent),
                execution_timeout=timeout,
            )
    except PapermillExecutionError as err:
        raise DDMIError(
            f"notebook {name} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue} "
            f"(the executed notebook with the traceback is {executed})"
        ) from err
    except Exception as err:  # kernel start failure, dead kernel, cell timeout
        raise DDMIError(f"notebook {name} did not finish: {type(err).__name__}: {err}") from err
    finally:
        _record_source(executed, source)
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
def _kernel_imports_this_package() -> Iterator[None]:
    """Put this package's parent folder first on the kernel's PYTHONPATH (it inherits our env).

    The kernel then imports the same ``ddmi_lite`` as the caller, installed or not.
    """
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _record_source(executed: Path, source: Path) -> None:
    """Point the executed notebook's papermill metadata at the py:percent source, not the temp copy."""
    import nbformat

    if not executed.is_file():
        return
    nb = nbformat.read(executed, as_version=4)
    nb.metadata.setdefault("papermill", {})["input_path"] = str(source)
    nbformat.write(nb, executed)


def is_done(source: str | Path, out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a ``metrics.json`` and executed notebook newer than ``source``."""
    source, out_dir = Path(source), Path(out_dir)
    outputs = [out_dir / METRICS_FILE, out_dir / f"{source.stem}.ipynb"]
    if not all(p.is_file() for p in outputs):
        return False
    return min(p.stat().st_mtime for p in outputs) > source.stat().st_mtime


def run_all(
    profile: str,
    *,
    only: Iterable[str] | None = None,
    out_root: str | Path = "runs",
    device: str = "auto",
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    notebooks_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Execute the notebooks in order under ``profile`` into ``out_root/<profile>/<name>/``.

    A notebook whose outputs are newer than its source is skipped unless ``force``. Wall
    times go to ``out_root/<profile>/timings.json``; the call as a whole (start, end, total wall
    time, which notebooks ran and which were reused) to ``out_root/<profile>/run.json``, so the
    report can say whether its figures come from one uninterrupted run. Stops at the first
    failing notebook.
    """
    check_profile(profile)
    notebooks = select_notebooks(only, notebooks_dir)
    root = Path(out_root).resolve() / profile
    root.mkdir(parents=True, exist_ok=True)
    timings_path = root / TIMINGS_FILE
    timings = _read_json(timings_path) if timings_path.is_file() else {}
    results: list[dict[str, Any]] = []
    run = {"profile": profile, "device": device, "seed": seed, "started": _now(), "status": "running",
           "notebooks": [p.stem for p in notebooks], "ran": [], "skipped": []}
    run_start = time.perf_counter()

    def record_run(status: str) -> None:
        run.update(status=status, finished=_now(), wall_s=round(time.perf_counter() - run_start, 2))
        _write_json_atomic(root / RUN_FILE, run)

    for index, source in enumerate(notebooks, start=1):
        name, out_dir = source.stem, root / source.stem
        tag = f"[{index}/{len(notebooks)}] {name}"
        if not force and is_done(source, out_dir):
            _log(f"{tag}: skipped (done) — outputs in {out_dir}")
            results.append({"name": name, "status": "skipped", "source": source, "out_dir": out_dir})
            run["skipped"].append(name)
            continue
        _log(f"{tag}: running with profile={profile} device={device} seed={seed}")
        start = time.perf_counter()
        try:
            result = run_notebook(source, profile=profile, out_dir=out_dir, device=device, seed=seed, progress=progress)
        except DDMIError:
            timings[name] = {"status": "failed", "wall_s": round(time.perf_counter() - start, 2), "finished": _now()}
            _write_json_atomic(timings_path, timings)
            record_run(f"failed at {name}")
            raise
        timings[name] = {"status": "ran", "wall_s": round(result["wall_s"], 2), "finished": _now()}
        _write_json_atomic(timings_path, timings)
        _log(f"{tag}: done in {result['wall_s']:.1f} s")
        results.append(result)
        run["ran"].append(name)
    record_run("complete")
    _log(f"all {len(notebooks)} notebooks done in {run['wall_s'] / 60:.1f} min "
         f"({len(run['ran'])} ran, {len(run['skipped'])} reused)")
    return results


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DDMIError(f"{str(path)!r} is not valid JSON: {err}; delete it to start over") from err
    if not isinstance(data, dict):
        raise DDMIError(f"{str(path)!r} must hold a JSON object")
    return data


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")




from ddmi_lite.report import environment, format_number, write_report, write_report_html  # noqa: E402,F401  (re-exported)
