"""Every notebook follows the shared layout and executes end to end under papermill (PROFILE=smoke)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jupytext
import pytest

from ddmi_lite import notebook, reproduce

NOTEBOOKS = notebook.list_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
PARAMETERS = ("PROFILE", "DEVICE", "SEED", "OUT_DIR")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no NN_name.py notebooks in {notebook.NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_layout(path: Path):
    """Title, imports, ONE parameters cell holding PROFILE/DEVICE/SEED/OUT_DIR, body, recap."""
    nb = jupytext.read(path)
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.lstrip().startswith("# "), "first cell: a title"
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters', expected exactly one"
    index = tagged[0]
    code_before = [c for c in cells[:index] if c.cell_type == "code"]
    assert len(code_before) == 1 and "import" in code_before[0].source, "one imports cell before the parameters"
    assigned = re.findall(r"^([A-Z_]+)\s*=", cells[index].source, flags=re.M)
    assert set(PARAMETERS) <= set(assigned), f"parameters cell assigns {assigned}"
    assert "write_metrics(" in "\n".join(c.source for c in cells[index + 1 :] if c.cell_type == "code")
    last = cells[-1]
    assert last.cell_type == "markdown" and re.match(r"#+\s*Recap", last.source.lstrip()), "last cell: a Recap"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_with_smoke_profile(path: Path, tmp_path: Path):
    out_dir = tmp_path / path.stem
    result = reproduce.run_notebook(path, profile="smoke", out_dir=out_dir, device="cpu", progress=False)
    assert (out_dir / f"{path.stem}.ipynb").is_file()
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert isinstance(metrics, dict) and metrics
    assert metrics["profile"] == "smoke" and metrics["device"] == "cpu"
    assert "wall_s" in metrics and 0 <= metrics["wall_s"] <= result["wall_s"]
    # the smoke presets have no time budget: every run the notebook trained reached its steps
    assert metrics["stopped_by_budget"] is False
    for key, value in metrics.items():
        assert SNAKE_CASE.match(key), f"metric name {key!r} is not snake_case"
        if key in ("profile", "device", "stopped_by_budget"):
            continue
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{key}={value!r} is not a number"
        assert math.isfinite(value), f"{key}={value!r} is not finite"
