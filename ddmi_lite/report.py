"""The reproduction report: every notebook's metrics, wall time and figures in one markdown file.

``write_report`` gathers ``runs/<profile>/<notebook>/metrics.json`` (written by each notebook),
``runs/<profile>/timings.json`` (written by ``reproduce.run_all``) and the PNG figures into
``runs/<profile>/report.md``, with the environment the run used.
"""

from __future__ import annotations

import numbers
import os
import platform
from pathlib import Path
from typing import Any, Iterable, Mapping

from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.configs import check_profile
from ddmi_lite.errors import DDMIError
from ddmi_lite.reproduce import (METRICS_FILE, REPORT_FILE, STRING_KEYS, TIMINGS_FILE, _now, _read_json,
                                 load_metrics, select_notebooks)


# --------------------------------------------------------------------------- report


def environment() -> dict[str, str]:
    """Versions and hardware the report states: python, torch, numpy, device, CPU, cores, date."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible)"
    else:
        device = "cpu (no CUDA GPU visible)"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "cpu": cpu,
        "cores": f"{usable} usable of {os.cpu_count()}",
        "platform": platform.platform(),
        "date": _now(),
    }


def format_number(value: Any) -> str:
    """Metric value for a table: ints as is, floats to 4 significant digits, tiny/huge in e-notation."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if value == 0.0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4g}"


def _title(source: Path) -> str:
    """The first markdown heading of a py:percent notebook, or '' when it has none."""
    in_markdown = False
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
        elif in_markdown and line.startswith("# #"):
            return line.lstrip("# ").strip()
    return ""


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def write_report(
    profile: str,
    out_root: str | Path = "runs",
    *,
    only: Iterable[str] | None = None,
    notebooks_dir: str | Path | None = None,
) -> Path:
    """Gather every notebook's metrics, wall time and figures into ``out_root/<profile>/report.md``.

    Raises :class:`DDMIError` naming the notebook when its ``metrics.json`` is missing.
    """
    check_profile(profile)
    notebooks = select_notebooks(only, notebooks_dir)
    root = Path(out_root).resolve() / profile
    timings = _read_json(root / TIMINGS_FILE) if (root / TIMINGS_FILE).is_file() else {}
    sections: list[str] = []
    total = 0.0
    for source in notebooks:
        name = source.stem
        out_dir = root / name
        metrics_path = out_dir / METRICS_FILE
        if not metrics_path.is_file():
            raise DDMIError(
                f"notebook {name} has no {METRICS_FILE} in {str(out_dir)!r}; run "
                f"`python -m ddmi_lite reproduce --profile {profile} --only {name}` first"
            )
        metrics = load_metrics(metrics_path)
        sections.append(_notebook_section(source, out_dir, root, metrics, timings.get(name, {})))
        total += float(timings.get(name, {}).get("wall_s", metrics.get("wall_s", 0.0)))
    env = environment()
    lines = [f"# DDMI-lite reproduction report — profile `{profile}`", ""]
    if only is not None:
        lines += [f"Notebooks in this report: {', '.join(p.stem for p in notebooks)} (a selection).", ""]
    lines += ["## Environment", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in env.items()]
    lines += [f"| total wall time | {total / 60:.1f} min over {len(notebooks)} notebooks |", ""]
    lines += sections
    path = root / REPORT_FILE
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines).encode("utf-8"))
    return path


def _notebook_section(
    source: Path, out_dir: Path, root: Path, metrics: Mapping[str, Any], timing: Mapping[str, Any]
) -> str:
    """One report section: title, run facts, the metrics table and the figures."""
    name = source.stem
    title = _title(source)
    lines = [f"## {name}" + (f" — {title}" if title else ""), ""]
    executed = out_dir / f"{name}.ipynb"
    if executed.is_file():
        lines.append(f"- executed notebook: [{executed.name}]({_relative(executed, root)})")
    else:
        lines.append("- executed notebook: not found (metrics were written outside `reproduce`)")
    walls = [f"{metrics['wall_s']:.1f} s in the notebook"] if "wall_s" in metrics else []
    walls += [f"{float(timing['wall_s']):.1f} s with papermill"] if "wall_s" in timing else []
    if walls:
        lines.append(f"- wall time: {', '.join(walls)}")
    lines.append(f"- profile `{metrics.get('profile', '?')}`, device `{metrics.get('device', '?')}`")
    lines += ["", "| metric | value |", "| --- | ---: |"]
    lines += [f"| {k} | {format_number(v)} |" for k, v in metrics.items() if k not in (*STRING_KEYS, "wall_s")]
    lines.append("")
    for figure in sorted(out_dir.rglob("*.png")):
        link = _relative(figure, root)
        lines += [f"![{figure.stem}]({link})", f"*{link}*", ""]
    return "\n".join(lines)
