"""What every notebook shares with the reproduction: its folders, its set-up cell and its ``metrics.json``.

A notebook's ``parameters`` cell holds ``PROFILE``, ``DEVICE``, ``SEED`` and ``OUT_DIR``; its first
code cell calls :func:`start_notebook`; its last writes a flat ``metrics.json`` with
:func:`write_metrics` (DESIGN.md §6: numbers under snake-case keys, the strings ``profile`` and
``device``, and the flag ``stopped_by_budget``). :mod:`ddmi_lite.reproduce` runs the notebooks and
:mod:`ddmi_lite.report` reads what they wrote, both through this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ddmi_lite.device import resolve_device, seed_everything
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import write_json
from ddmi_lite.presets import check_profile, check_profile_device

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
METRICS_FILE = "metrics.json"
TIMINGS_FILE = "timings.json"
RUN_FILE = "run.json"  # the last run_all call: start, end, total wall time, notebooks ran / reused
REPORT_FILE = "report.md"
ANSWERS_FILE = "answers.json"  # a notebook's answers to the ten questions (docs/questions.md), with numbers
# keys that hold strings in metrics.json; every other value is a finite number
STRING_KEYS = ("profile", "device")
# keys that hold true / false: whether a time budget (a safety stop) ended a training run early
FLAG_KEYS = ("stopped_by_budget",)

# The ten questions about the method (docs/questions.md): a short title and the question. Each is
# answered in a notebook section headed ``Q<n>: <title>`` whose run writes the answer, with its
# numbers, to ``answers.json`` (:func:`write_answers`); the report gathers them under "Ten questions".
QUESTIONS = {
    "Q1": ("D2C-VAE", "What are the key components of D2C-VAE and how do they connect discrete data and "
           "continuous functions?"),
    "Q2": ("fields, not weights", "Why does the decoder generate basis fields instead of network weights, and how "
           "does that add expressive power?"),
    "Q3": ("several scales", "Why decompose the basis fields into several scales (HDBF), and what does it buy?"),
    "Q4": ("coarse-to-fine conditioning", "What is coarse-to-fine conditioning, and why should it beat "
           "concatenating every scale?"),
    "Q5": ("latent space", "What does a latent diffusion model in the shared latent space gain over diffusion on "
           "the data, and what was changed to adapt it to D2C-VAE latents?"),
    "Q6": ("metrics", "Which metrics evaluate each domain, and what are their strengths and weaknesses?"),
    "Q7": ("data sets", "Which data sets were used, and what diversity does each bring?"),
    "Q8": ("text to shape", "For text-to-shape, which conditioning mechanism is used, and how effective is it?"),
    "Q9": ("what the scales show", "What does visualising the multi-scale basis fields reveal about how the "
           "model works?"),
    "Q10": ("fast samplers", "Which efficient samplers were used, how much faster are they, and at what cost in "
            "quality?"),
}

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


def run_name(profile: str, *, seed: int = 0, params: Mapping[str, Any] | None = None) -> str:
    """The folder under ``runs/`` of one reproduction: ``<profile>`` for seed 0 and no extra
    parameters, else ``<profile>-seed<k>``, plus ``-<digest of the parameters>`` when there are any."""
    check_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DDMIError(f"seed must be an int >= 0, got {seed!r}")
    if not seed and not params:
        return profile
    name = f"{profile}-seed{int(seed)}"
    if params:
        digest = hashlib.sha1(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return name


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
    torch_device = resolve_device(device)
    check_profile_device(profile, torch_device)
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
        if key in FLAG_KEYS:
            if not isinstance(value, bool):
                raise DDMIError(f"{where}: {key!r} must be true or false, got {value!r}")
            clean[key] = value
        elif isinstance(value, str) and (key in STRING_KEYS or not strict):
            clean[key] = value
        else:
            clean[key] = _as_number(key, value, where)
    return clean


def write_metrics(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    *,
    trained: Iterable,
    profile: str | None = None,
    device: Any = None,
) -> Path:
    """Validate ``metrics`` and write ``out_dir/metrics.json`` atomically; return its path.

    ``profile`` and ``device`` are added as strings (or taken from ``metrics``); ``wall_s``,
    the notebook's own wall time in seconds, is required. ``trained``: the
    :class:`~ddmi_lite.train.TrainResult` of every model the notebook trained or reused (empty when
    it trains none). Step counts decide every run; ``stopped_by_budget`` is written true, with a
    warning, when a time budget (a safety stop) ended any of them before its last step.
    """
    merged = dict(metrics)
    stopped = [r for r in trained if r.stopped_by_budget]
    merged["stopped_by_budget"] = bool(stopped)
    if stopped:
        warnings.warn(f"{len(stopped)} training run(s) were stopped by their time budget before their last step "
                      f"({', '.join(f'{r.steps_done} steps done' for r in stopped)}): these results are not the "
                      f"preset's; run the notebook again to finish them", RuntimeWarning, stacklevel=2)
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
    write_json(path, clean, allow_nan=False)
    return path


def write_answers(out_dir: str | Path, answers: Mapping[str, str]) -> Path:
    """Write a notebook's answers to the ten questions to ``out_dir/answers.json`` atomically.

    ``answers`` maps ``"Q1"`` … ``"Q10"`` (:data:`QUESTIONS`) to one or two sentences that carry the
    run's own numbers; the report gathers them under "Ten questions".
    """
    if not isinstance(answers, Mapping) or not answers:
        raise DDMIError("write_answers: expected a non-empty mapping like {'Q4': 'CFC reached 24.1 dB …'}")
    for key, text in answers.items():
        if key not in QUESTIONS:
            raise DDMIError(f"write_answers: unknown question {key!r}; allowed: {', '.join(QUESTIONS)}")
        if not isinstance(text, str) or not text.strip():
            raise DDMIError(f"write_answers: the answer to {key} must be a non-empty string, got {text!r}")
    path = Path(out_dir) / ANSWERS_FILE
    write_json(path, {k: answers[k].strip() for k in QUESTIONS if k in answers})
    return path


def load_answers(path: str | Path) -> dict[str, str]:
    """Read an ``answers.json`` written by :func:`write_answers` (unknown keys and non-strings are refused)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DDMIError(f"answers file {str(path)!r} cannot be read: {err}") from err
    if not isinstance(data, dict) or any(k not in QUESTIONS or not isinstance(v, str) for k, v in data.items()):
        raise DDMIError(f"answers file {str(path)!r} must map Q1…Q10 to strings")
    return data


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


def now() -> str:
    """The local time, ISO 8601 to the second (run and timing records)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")
