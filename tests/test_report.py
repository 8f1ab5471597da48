"""The reproduction report: overview of every notebook, ablation and sampler tables, self-contained HTML."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from test_ablations import _table

from ddmi_lite.ablation_table import write_table
from ddmi_lite.errors import DDMIError
from ddmi_lite.notebook import QUESTIONS, load_answers, write_answers, write_metrics
from ddmi_lite.report import markdown_to_html, write_report, write_report_html

HEADER = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""
NAMES = ("04_latent_diffusion", "05_images", "10_ablations")
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture
def project(tmp_path: Path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    runs = tmp_path / "runs"
    for name in NAMES:
        (notebooks / f"{name}.py").write_text(HEADER + f'\n# %% [markdown]\n# # {name} title\n\n# %% tags=["parameters"]\n'
                                              'PROFILE = "cpu"\n')
    return notebooks, runs


def fake_run(runs: Path, name: str, metrics: dict) -> Path:
    out = runs / "cpu" / name
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out, {**metrics, "wall_s": 12.5}, profile="cpu", device="cpu", trained=[])
    (out / f"{name}.ipynb").write_text("{}")
    (out / "figure.png").write_bytes(PNG)
    return out


def full_project(runs: Path) -> None:
    fake_run(runs, NAMES[0], {"loss_final": 0.12})
    fake_run(runs, NAMES[1], {"fd_samples": 3.39, "fd_ddim_10": 5.76, "fd_ddim_50": 4.02, "fd_dpmpp_2m_5": 3.45,
                              "sec_per_image_ddim_10": 0.0103})
    out = fake_run(runs, NAMES[2], {"psnr_heldout_cfc": 24.0})
    write_table(_table(), out)


def test_report_has_every_notebook_and_both_tables(project):
    notebooks, runs = project
    full_project(runs)
    text = write_report("cpu", runs, notebooks_dir=notebooks).read_text()
    assert re.findall(r"^## (\d\d_\w+)", text, flags=re.MULTILINE) == list(NAMES)
    overview = text.split("## Overview", 1)[1].split("\n## ", 1)[0]
    for name in NAMES:
        assert re.search(rf"^\| {name} \| 12\.5 \| \d+ \| \[{name}\.ipynb\]\({name}/{name}\.ipynb\) \|$", overview,
                         flags=re.MULTILINE), name
    assert "## Ablation table" in text and "| image | HDBF + CFC | 104 |" in text
    assert "(a) image:" in text  # the verdicts follow the table
    sampler = text.split("## Sampler table", 1)[1].split("\n## ", 1)[0]
    assert "From 05_images" in sampler
    assert [tuple(r) for r in re.findall(r"^\| (\w+) \| (\d+) \| ([\d.]+) \|", sampler, flags=re.MULTILINE)] == [
        ("ddim", "10", "5.76"), ("ddim", "50", "4.02"), ("dpmpp_2m", "5", "3.45")]
    assert "| ddim | 10 | 5.76 | 10.3 |" in sampler and "| ddim | 50 | 4.02 | — |" in sampler


def test_report_html_is_self_contained(project):
    notebooks, runs = project
    full_project(runs)
    write_report("cpu", runs, notebooks_dir=notebooks)
    page = (runs / "cpu" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external resource"
    assert "<link" not in page and "<script" not in page
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == len(NAMES)  # one figure per notebook, all embedded
    assert all(s == "data:image/png;base64," + base64.b64encode(PNG).decode() for s in sources)
    for name in NAMES:
        assert f"<h2>{name} — {name} title</h2>" in page
        assert f'<a href="{name}/{name}.ipynb">' in page
    assert "<th>domain</th>" in page and "<td>HDBF + CFC</td>" in page


def test_report_fails_naming_the_notebook_without_metrics(project):
    notebooks, runs = project
    full_project(runs)
    (runs / "cpu" / NAMES[1] / "metrics.json").unlink()
    with pytest.raises(DDMIError) as err:
        write_report("cpu", runs, notebooks_dir=notebooks)
    assert NAMES[1] in str(err.value) and "metrics.json" in str(err.value)
    assert not (runs / "cpu" / "report.md").exists() and not (runs / "cpu" / "report.html").exists()
    with pytest.raises(DDMIError, match="report.md"):
        write_report_html("cpu", runs)


def test_markdown_to_html_escapes_and_embeds(tmp_path):
    (tmp_path / "a.png").write_bytes(PNG)
    out = markdown_to_html("# T <x>\n\n- item `code` *em*\n\n![fig](a.png)\n![gone](b.png)\n", tmp_path)
    assert "<h1>T &lt;x&gt;</h1>" in out and "<code>code</code>" in out and "<em>em</em>" in out
    assert 'src="data:image/png;base64,' in out and "missing figure b.png" in out


def test_report_module_imports_on_its_own():
    """report and reproduce import each other; either may be imported first."""
    import subprocess
    import sys

    for first in ("ddmi_lite.report", "ddmi_lite.reproduce"):
        done = subprocess.run([sys.executable, "-c", f"import {first}; from ddmi_lite.report import write_report_html"],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def test_report_gathers_the_ten_questions_in_order(project):
    notebooks, runs = project
    full_project(runs)
    write_answers(runs / "cpu" / NAMES[2], {"Q4": "CFC 24.0 dB against 23.1 dB concatenated", "Q3": "three scales"})
    write_answers(runs / "cpu" / NAMES[1], {"Q10": "DPM-Solver++ 10 steps: FD 3.45"})
    text = write_report("cpu", runs, notebooks_dir=notebooks).read_text()
    section = text.split("## Ten questions", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^### (Q\d+) ·", section, flags=re.MULTILINE) == list(QUESTIONS)
    q4 = section.split("### Q4", 1)[1].split("### Q5", 1)[0]
    assert "- CFC 24.0 dB against 23.1 dB concatenated ([10_ablations](10_ablations/10_ablations.ipynb))" in q4
    assert "DPM-Solver++ 10 steps: FD 3.45" in section.split("### Q10", 1)[1]
    assert section.count("not answered by the notebooks in this report") == 7
    assert "<h3>Q4 · coarse-to-fine conditioning</h3>" in (runs / "cpu" / "report.html").read_text()


def test_answers_are_checked(tmp_path):
    with pytest.raises(DDMIError, match="Q11"):
        write_answers(tmp_path, {"Q11": "no such question"})
    with pytest.raises(DDMIError, match="Q2"):
        write_answers(tmp_path, {"Q2": "  "})
    assert not (tmp_path / "answers.json").exists()
    (tmp_path / "answers.json").write_text('{"Q1": 3}')
    with pytest.raises(DDMIError, match="answers.json"):
        load_answers(tmp_path / "answers.json")


def test_questions_doc_lists_every_question_with_its_notebook_section():
    """docs/questions.md has each question, linked to the notebook section `Q<n>: …` that answers it."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "questions.md").read_text()
    sources = {p.stem: p.read_text() for p in (root / "notebooks").glob("[0-9][0-9]_*.py")}
    for key, (_title, question) in QUESTIONS.items():
        assert question in doc, key
        link = re.search(rf"\[(\d\d_\w+) · {key}: [^\]]+\]\(\.\./notebooks/\1\.py\)", doc)
        assert link, f"{key} has no link to its notebook section"
        assert re.search(rf"^# #+ {key}: ", sources[link.group(1)], flags=re.MULTILINE), f"{key} not in {link.group(1)}"
