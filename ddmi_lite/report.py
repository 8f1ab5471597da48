"""The reproduction report: every notebook's metrics, wall time and figures in one markdown file.

``write_report`` gathers ``runs/<profile>/<notebook>/metrics.json`` (written by each notebook),
``runs/<profile>/timings.json`` (written by ``reproduce.run_all``) and the PNG figures into
``runs/<profile>/report.md``, with the environment the run used, an overview of every notebook,
the ablation table (notebook 10's ``ablation.json``) and the sampler table (the ``fd_<sampler>_<steps>``
metrics). ``write_report_html`` renders the same report as one self-contained
``runs/<profile>/report.html``: figures embedded as base64 PNG, no external resources.
"""

from __future__ import annotations

import base64
import html
import numbers
import os
import platform
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy
import torch
from markdown_it import MarkdownIt

from ddmi_lite.ablation_table import claim_verdicts, load_table, table_markdown
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, read_json
from ddmi_lite.notebook import (
    ANSWERS_FILE,
    METRICS_FILE,
    QUESTIONS,
    REPORT_FILE,
    RUN_FILE,
    STRING_KEYS,
    TIMINGS_FILE,
    load_answers,
    load_metrics,
    now,
    select_notebooks,
)
from ddmi_lite.presets import check_profile

# --------------------------------------------------------------------------- report


def environment() -> dict[str, str]:
    """Versions and hardware the report states: python, torch, numpy, device, CPU, cores, date."""
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
        "date": now(),
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
    run: str | None = None,
) -> Path:
    """Gather every notebook's metrics, wall time and figures into ``out_root/<profile>/report.md``.

    ``run``: the run folder when it is not ``<profile>`` (another seed or parameters:
    :func:`~ddmi_lite.notebook.run_name`). Raises :class:`DDMIError` naming the notebook when its ``metrics.json`` is missing.
    """
    check_profile(profile)
    notebooks = select_notebooks(only, notebooks_dir)
    root = Path(out_root).resolve() / (run or profile)
    timings = read_json(root / TIMINGS_FILE) if (root / TIMINGS_FILE).is_file() else {}
    sections: list[str] = []
    overview = ["## Overview", "", "| notebook | wall time (s) | metrics | executed notebook |", "| --- | ---: | ---: | --- |"]
    all_metrics: dict[str, dict] = {}
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
        all_metrics[name] = metrics
        sections.append(_notebook_section(source, out_dir, root, metrics, timings.get(name, {})))
        wall = float(timings.get(name, {}).get("wall_s", metrics.get("wall_s", 0.0)))
        total += wall
        executed = out_dir / f"{name}.ipynb"
        link = f"[{executed.name}]({_relative(executed, root)})" if executed.is_file() else "not found"
        overview.append(f"| {name} | {wall:.1f} | {len(metrics) - len(STRING_KEYS)} | {link} |")
    env = environment()
    lines = [f"# DDMI-lite reproduction report — profile `{profile}`", ""]
    if only is not None:
        lines += [f"Notebooks in this report: {', '.join(p.stem for p in notebooks)} (a selection).", ""]
    lines += ["## Environment", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in env.items()]
    lines += [f"| notebooks' wall time | {total / 60:.1f} min summed over {len(notebooks)} notebooks |"]
    lines += [_run_line(root), ""]
    lines += overview + [""]
    lines += _questions_section(root, [p.stem for p in notebooks])
    lines += _ablation_section(root, all_metrics) + _sampler_section(all_metrics)
    lines += sections
    path = root / REPORT_FILE
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "\n".join(lines).encode("utf-8"))
    write_report_html(profile, out_root, run=run)
    return path


def _questions_section(root: Path, names: list[str]) -> list[str]:
    """"Ten questions": each notebook's ``answers.json``, gathered in question order, with where it came from."""
    found: dict[str, list[tuple[str, str]]] = {key: [] for key in QUESTIONS}
    for name in names:
        if (root / name / ANSWERS_FILE).is_file():
            for key, text in load_answers(root / name / ANSWERS_FILE).items():
                found[key].append((name, text))
    lines = ["## Ten questions", "", "Each answer was written by the notebook named after it, from this run's numbers "
             "(the questions: `docs/questions.md`).", ""]
    for key, (title, question) in QUESTIONS.items():
        lines += [f"### {key} · {title}", "", f"*{question}*", ""]
        lines += [f"- {text} ([{name}]({name}/{name}.ipynb))" for name, text in found[key]] or [
            "- not answered by the notebooks in this report"]
        lines.append("")
    return lines


ABLATION_NOTEBOOK = "10_ablations"
_SAMPLER_KEY = re.compile(r"^fd_(ddpm|ddim|dpmpp_2m|heun)_(\d+)$")


def _ablation_section(root: Path, all_metrics: Mapping[str, Mapping]) -> list[str]:
    """The ablation table from ``10_ablations/ablation.json`` (when that notebook is in the report)."""
    if ABLATION_NOTEBOOK not in all_metrics or not (root / ABLATION_NOTEBOOK / "ablation.json").is_file():
        return []
    table = load_table(root / ABLATION_NOTEBOOK)
    intro = (f"From [{ABLATION_NOTEBOOK}]({ABLATION_NOTEBOOK}/{ABLATION_NOTEBOOK}.ipynb): reconstruction is "
             "mean ± std over seeds on held-out data; generation scores one LDM per row.")
    lines = ["## Ablation table", "", intro, "", table_markdown(table), ""]
    lines += [f"- {v}" for v in claim_verdicts(table)] + [""]
    return lines


def _sampler_section(all_metrics: Mapping[str, Mapping]) -> list[str]:
    """The sampler table: every ``fd_<sampler>_<steps>`` metric (and its ``sec_per_image_…``) of any notebook."""
    lines: list[str] = []
    for name, metrics in all_metrics.items():
        found = [(m.group(1), int(m.group(2)), k) for k in metrics if (m := _SAMPLER_KEY.match(k))]
        if not found:
            continue
        intro = (f"From {name}: FD of samples from one trained LDM for each sampler and number of steps "
                 "(same initial noise).")
        lines += ["## Sampler table", "", intro, "", "| sampler | steps | FD | ms / image |", "| --- | ---: | ---: | ---: |"]
        for sampler, steps, key in sorted(found):
            sec = metrics.get(f"sec_per_image_{sampler}_{steps}")
            ms = format_number(1e3 * sec) if isinstance(sec, numbers.Real) else "—"
            lines.append(f"| {sampler} | {steps} | {format_number(metrics[key])} | {ms} |")
        lines.append("")
    return lines


# --------------------------------------------------------------------------- html


def _embedded_image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<em>(missing figure {html.escape(path.name)})</em>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def markdown_to_html(text: str, root: Path) -> str:
    """Markdown (CommonMark and tables, through markdown-it-py) → HTML body, raw HTML escaped and
    every image embedded from ``root`` as base64, so the page needs no other file."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":  # the figure itself, never a link to it
                alt = "".join(c.content for c in child.children or [])
                child.type, child.tag, child.nesting = "html_inline", "", 0
                child.content = _embedded_image(root / str(child.attrGet("src")), alt)
                child.children = None
    return md.renderer.render(tokens, md.options, {})


_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}"
          "img{max-width:100%}code{background:#f3f3f3}")


def write_report_html(profile: str, out_root: str | Path = "runs", *, run: str | None = None) -> Path:
    """``runs/<profile>/report.html`` from ``report.md``: one self-contained file, figures embedded as base64."""
    check_profile(profile)
    root = Path(out_root).resolve() / (run or profile)
    source = root / REPORT_FILE
    if not source.is_file():
        raise DDMIError(f"{str(source)!r} does not exist; write_report({profile!r}) writes it first")
    body = markdown_to_html(source.read_text(encoding="utf-8"), root)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>DDMI-lite report — {html.escape(profile)}"
            f"</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")
    path = root / "report.html"
    atomic_write(path, page.encode("utf-8"))
    return path


def _run_line(root: Path) -> str:
    """The last ``reproduce`` call (``run.json``): when, how long, and how many notebooks it ran or reused."""
    if not (root / RUN_FILE).is_file():
        return "| last reproduce run | no record (run.json missing) |"
    run = read_json(root / RUN_FILE)
    ran, skipped = run.get("ran", []), run.get("skipped", [])
    kind = (f"one uninterrupted run: all {len(ran)} notebooks ran, none reused" if run.get("status") == "complete" and not skipped
            else f"{len(ran)} ran, {len(skipped)} reused from earlier runs ({', '.join(skipped) or 'none'})")
    wall = float(run.get("wall_s", 0.0))
    return (f"| last reproduce run | {run.get('status', '?')}: {run.get('started', '?')} → {run.get('finished', '?')}, "
            f"{wall / 60:.1f} min; {kind} |")


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
