"""The main job's bookkeeping: notebook selection, metrics files, skipping, the report, the CLI."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ddmi_lite import notebook as nb
from ddmi_lite import reproduce
from ddmi_lite.__main__ import main
from ddmi_lite.errors import DDMIError
from ddmi_lite.report import format_number, write_report
from ddmi_lite.train import TrainResult

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
NAMES = ("01_alpha_fields", "02_beta_vae", "10_gamma")


def fake_notebook(folder: Path, name: str) -> Path:
    path = folder / f"{name}.py"
    title = name.split("_", 1)[1].replace("_", " ")
    path.write_text(HEADER + f'\n# %% [markdown]\n# # {title} title\n\n# %% tags=["parameters"]\nPROFILE = "cpu"\n')
    return path


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A notebooks folder with three fake notebooks and an empty output root."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in NAMES:
        fake_notebook(notebooks, name)
    (notebooks / "helpers_not_a_notebook.py").write_text("x = 1\n")
    (notebooks / "03_paired.ipynb").write_text("{}")
    return notebooks, tmp_path / "runs"


def fake_run(out_root: Path, profile: str, name: str, *, psnr: float = 23.456789, figure: bool = True,
             out_dir: Path | None = None) -> Path:
    """What a notebook leaves behind: metrics.json, the executed notebook and a figure (and the run's key)."""
    out_dir = out_dir or out_root / profile / name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / reproduce.KEY_FILE).write_text(json.dumps(reproduce.run_key(profile)))
    nb.write_metrics(out_dir, {"psnr_heldout": psnr, "steps": 120, "wall_s": 3.5}, profile=profile, device="cpu",
                     trained=[])
    (out_dir / f"{name}.ipynb").write_text("{}")
    if figure:
        (out_dir / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return out_dir


# --------------------------------------------------------------------------- selection


def test_list_notebooks_keeps_numbered_sources_in_order(project):
    notebooks, _ = project
    assert [p.stem for p in nb.list_notebooks(notebooks)] == list(NAMES)


def test_repo_notebooks_are_numbered_py_files():
    found = nb.list_notebooks()
    assert found, f"no NN_name.py notebook in {nb.NOTEBOOKS_DIR}"
    assert all(p.suffix == ".py" and p.parent == nb.NOTEBOOKS_DIR for p in found)
    assert [p.name for p in found] == sorted(p.name for p in found)


@pytest.mark.parametrize(
    "only, expected",
    [
        (None, list(NAMES)),
        (["02"], ["02_beta_vae"]),
        (["02_beta_vae"], ["02_beta_vae"]),
        (["10", "01"], ["01_alpha_fields", "10_gamma"]),  # run order, not argument order
        (["01", "01_alpha_fields"], ["01_alpha_fields"]),  # no duplicates
        (["notebooks/10_gamma.py"], ["10_gamma"]),
        (["02_beta"], ["02_beta_vae"]),  # a unique beginning of a name
        ("10", ["10_gamma"]),
    ],
)
def test_select_notebooks_resolves_names_and_numbers(project, only, expected):
    notebooks, _ = project
    assert [p.stem for p in nb.select_notebooks(only, notebooks)] == expected


@pytest.mark.parametrize("token", ["04", "zz", "beta_vae"])
def test_select_notebooks_unknown_name_lists_the_choices(project, token):
    notebooks, _ = project
    with pytest.raises(DDMIError) as err:
        nb.select_notebooks([token], notebooks)
    message = str(err.value)
    assert repr(token) in message
    assert all(name in message for name in NAMES)


def test_select_notebooks_ambiguous_prefix_is_refused(tmp_path):
    for name in ("05_a", "05_b"):
        fake_notebook(tmp_path, name)
    with pytest.raises(DDMIError, match="several"):
        nb.select_notebooks(["05"], tmp_path)


def test_missing_notebooks_folder_is_named(tmp_path):
    with pytest.raises(DDMIError, match="nowhere"):
        nb.list_notebooks(tmp_path / "nowhere")


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    "call",
    [
        lambda root: reproduce.run_all("fast", out_root=root),
        lambda root: write_report("fast", root),
        lambda root: nb.notebook_out_dir("01_x", "fast", ""),
        lambda root: reproduce.run_notebook("x.py", profile="fast", out_dir=root),
        lambda root: nb.write_metrics(root, {"wall_s": 1.0}, profile="fast", device="cpu", trained=[]),
    ],
)
def test_unknown_profile_is_refused_naming_the_profiles(tmp_path, call):
    with pytest.raises(DDMIError) as err:
        call(tmp_path)
    assert "'fast'" in str(err.value) and "smoke" in str(err.value) and "gpu" in str(err.value)
    assert not (tmp_path / "fast").exists()


def test_notebook_out_dir_default_is_runs_profile_name_under_the_repo(tmp_path):
    given = nb.notebook_out_dir("01_x", "smoke", tmp_path / "a" / "b")
    assert given == (tmp_path / "a" / "b").resolve() and given.is_dir()
    default = nb.REPO_ROOT / "runs" / "smoke" / "99_layout_probe"
    created = [p for p in (default, default.parent, default.parent.parent) if not p.exists()]
    try:
        assert nb.notebook_out_dir("99_layout_probe", "smoke", "") == default.resolve()
        assert default.is_dir()
    finally:
        for path in created:  # leaf first
            path.rmdir()


# --------------------------------------------------------------------------- metrics


def test_write_metrics_round_trip_adds_profile_and_device(tmp_path):
    values = {"psnr_heldout": np.float32(23.5), "fd_samples": torch.tensor(12.25), "steps": np.int64(7), "wall_s": 1.5}
    path = nb.write_metrics(tmp_path, values, profile="smoke", device=torch.device("cpu"), trained=[])
    assert path == tmp_path / "metrics.json"
    raw = json.loads(path.read_text())
    assert raw == {"psnr_heldout": 23.5, "fd_samples": 12.25, "steps": 7, "wall_s": 1.5, "stopped_by_budget": False,
                   "profile": "smoke", "device": "cpu"}
    assert isinstance(raw["steps"], int)
    assert nb.load_metrics(path) == raw
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"psnr": float("nan")}, "'psnr'"),
        ({"psnr": float("inf")}, "'psnr'"),
        ({"psnr": [1.0, 2.0]}, "'psnr'"),
        ({"psnr": torch.ones(3)}, "'psnr'"),
        ({"psnr": {"a": 1.0}}, "'psnr'"),
        ({"ok": True}, "'ok'"),
        ({"note": "text"}, "'note'"),
        ({"PSNR": 1.0}, "snake_case"),
        ({"psnr-heldout": 1.0}, "snake_case"),
        ({"psnr__x": 1.0}, "snake_case"),
    ],
)
def test_write_metrics_refuses_what_is_not_flat_finite_snake_case(tmp_path, bad, fragment):
    with pytest.raises(DDMIError, match=re.escape(fragment)):
        nb.write_metrics(tmp_path, {**bad, "wall_s": 1.0}, profile="smoke", device="cpu", trained=[])
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("missing", ["profile", "device", "wall_s"])
def test_write_metrics_requires_profile_device_and_wall_time(tmp_path, missing):
    kwargs = {"profile": "smoke", "device": "cpu"}
    metrics = {"wall_s": 1.0}
    if missing == "wall_s":
        metrics = {}
    else:
        kwargs.pop(missing)
    with pytest.raises(DDMIError, match=missing):
        nb.write_metrics(tmp_path, metrics, trained=[], **kwargs)


def _result(steps_done: int, stopped_by_budget: bool) -> TrainResult:
    return TrainResult(history=[], steps_done=steps_done, wall_s=1.0, resumed_from=None,
                       stopped_by_budget=stopped_by_budget)


def test_write_metrics_records_whether_a_time_budget_stopped_a_run(tmp_path, recwarn):
    metrics = {"psnr_heldout": 20.0, "wall_s": 1.0}
    path = nb.write_metrics(tmp_path / "none", metrics, trained=[], profile="smoke", device="cpu")
    assert json.loads(path.read_text())["stopped_by_budget"] is False  # a JSON boolean, not 0
    path = nb.write_metrics(tmp_path / "done", metrics, trained=[_result(20, False), _result(30, False)],
                            profile="smoke", device="cpu")
    assert json.loads(path.read_text())["stopped_by_budget"] is False
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.warns(RuntimeWarning, match=r"stopped by their time budget.*7 steps done"):
        path = nb.write_metrics(tmp_path / "cut", metrics, trained=[_result(20, False), _result(7, True)],
                                profile="smoke", device="cpu")
    raw = json.loads(path.read_text())
    assert raw["stopped_by_budget"] is True and raw["psnr_heldout"] == 20.0
    assert nb.load_metrics(path) == raw
    with pytest.raises(TypeError, match="trained"):  # a required keyword: no notebook forgets it
        nb.write_metrics(tmp_path, metrics, profile="smoke", device="cpu")


@pytest.mark.parametrize("value", [1, 0, 0.0, "true", None, [True]])
def test_check_metrics_refuses_a_stopped_by_budget_that_is_not_a_bool(tmp_path, value):
    with pytest.raises(DDMIError, match="'stopped_by_budget' must be true or false"):
        nb.check_metrics({"stopped_by_budget": value, "wall_s": 1.0})
    assert nb.check_metrics({"stopped_by_budget": True, "wall_s": 1.0}) == {"stopped_by_budget": True, "wall_s": 1.0}
    path = tmp_path / "metrics.json"  # a metrics.json written by hand is checked the same way
    path.write_text(json.dumps({"stopped_by_budget": value, "wall_s": 1.0}))
    with pytest.raises(DDMIError, match="stopped_by_budget"):
        nb.load_metrics(path)


@pytest.mark.parametrize(
    "text, fragment",
    [("[1, 2]", "flat JSON object"), ('{"a": {"b": 1}}', "'a'"), ("{nope", "not valid JSON"), ('{"a": NaN}', "'a'")],
)
def test_load_metrics_refuses_malformed_files_naming_them(tmp_path, text, fragment):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(DDMIError) as err:
        nb.load_metrics(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_load_metrics_missing_file_is_named(tmp_path):
    with pytest.raises(DDMIError, match="does not exist"):
        nb.load_metrics(tmp_path / "metrics.json")


@pytest.mark.parametrize(
    "value, expected",
    [(5, "5"), (0.0, "0"), (23.456789, "23.46"), (0.81234, "0.8123"), (1234.5, "1234"), (1.5e-5, "1.500e-05"),
     (2.5e6, "2.500e+06"), (-0.5, "-0.5"), ("cpu", "cpu")],
)
def test_format_number(value, expected):
    assert format_number(value) == expected
    if not isinstance(value, str):  # the shown digits round to the value
        assert math.isclose(float(expected), value, rel_tol=1e-3)


# --------------------------------------------------------------------------- skipping


def test_run_all_skips_notebooks_with_fresh_outputs(project, monkeypatch, capsys):
    notebooks, runs = project
    calls: list[str] = []

    def fake_run_notebook(path, *, profile, out_dir, device, seed, progress):
        calls.append(Path(path).stem)
        fake_run(runs, profile, Path(path).stem, out_dir=out_dir)
        return {"name": Path(path).stem, "status": "ran", "wall_s": 0.5}

    monkeypatch.setattr(reproduce, "run_notebook", fake_run_notebook)
    fake_run(runs, "smoke", NAMES[0])
    stale = fake_run(runs, "smoke", NAMES[1])
    old = (notebooks / f"{NAMES[1]}.py").stat().st_mtime
    for output in stale.iterdir():  # outputs older than the source: re-run
        os.utime(output, (old - 10, old - 10))

    results = reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, progress=False)
    assert calls == [NAMES[1], NAMES[2]]
    assert [r["status"] for r in results] == ["skipped", "ran", "ran"]
    assert f"{NAMES[0]}: skipped (done)" in capsys.readouterr().err
    timings = json.loads((runs / "smoke" / "timings.json").read_text())
    assert set(timings) == {NAMES[1], NAMES[2]} and timings[NAMES[1]]["wall_s"] == 0.5

    run = json.loads((runs / "smoke" / "run.json").read_text())
    assert run["status"] == "complete" and run["ran"] == [NAMES[1], NAMES[2]] and run["skipped"] == [NAMES[0]]
    assert run["wall_s"] >= 0 and run["started"] <= run["finished"]
    report = write_report("smoke", runs, notebooks_dir=notebooks).read_text()
    assert f"2 ran, 1 reused from earlier runs ({NAMES[0]})" in report

    calls.clear()
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, only=["01"], force=True, progress=False)
    assert calls == [NAMES[0]]
    run = json.loads((runs / "smoke" / "run.json").read_text())
    assert run["ran"] == [NAMES[0]] and run["skipped"] == []
    assert "one uninterrupted run: all 1 notebooks ran, none reused" in write_report(
        "smoke", runs, notebooks_dir=notebooks, only=["01"]).read_text()


def test_runs_are_keyed_by_seed_and_parameters_and_force_keeps_a_good_result(project, monkeypatch):
    """Each seed (and parameter set) has its own folder and checkpoints; a changed key re-runs;
    a forced re-run that fails leaves the earlier result in place."""
    notebooks, runs = project
    (notebooks / f"{NAMES[1]}.py").write_text((notebooks / f"{NAMES[1]}.py").read_text() + 'DATA_DIR = ""\n')
    seen: list[tuple] = []

    def fake_run_notebook(path, *, profile, out_dir, device, seed, progress, params=None):
        seen.append((Path(path).stem, seed, params))
        if "fail" in str((params or {}).get("DATA_DIR", "")):
            (Path(out_dir) / "half_written.png").parent.mkdir(parents=True, exist_ok=True)
            raise DDMIError(f"notebook {Path(path).stem} failed in cell [2]: ValueError: bad data")
        fake_run(runs, profile, Path(path).stem, psnr=20.0 + seed, out_dir=out_dir)
        return {"name": Path(path).stem, "status": "ran", "wall_s": 0.5}

    monkeypatch.setattr(reproduce, "run_notebook", fake_run_notebook)
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, progress=False)
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, seed=3, progress=False)
    assert [s for _, s, _ in seen] == [0, 0, 0, 3, 3, 3]
    assert nb.load_metrics(runs / "smoke" / NAMES[0] / "metrics.json")["psnr_heldout"] == 20.0
    assert nb.load_metrics(runs / "smoke-seed3" / NAMES[0] / "metrics.json")["psnr_heldout"] == 23.0
    assert json.loads((runs / "smoke-seed3" / "run.json").read_text())["seed"] == 3
    seen.clear()  # the same key again: everything reused; another device: everything re-run
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, seed=3, progress=False)
    assert seen == []
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, seed=3, device="cpu", progress=False)
    assert len(seen) == 3

    seen.clear()  # a parameter goes only to the notebooks that declare it, into a folder of its own
    reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, params={"DATA_DIR": "/data/a"}, progress=False)
    assert seen == [(NAMES[0], 0, None), (NAMES[1], 0, {"DATA_DIR": "/data/a"}), (NAMES[2], 0, None)]
    keyed = nb.run_name("smoke", params={"DATA_DIR": "/data/a"})
    assert keyed.startswith("smoke-seed0-") and (runs / keyed / NAMES[1] / "metrics.json").is_file()

    good = (runs / "smoke" / NAMES[1] / "metrics.json").read_bytes()
    with pytest.raises(DDMIError, match="bad data"):  # a forced run that fails keeps the good result
        reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, only=["02"], force=True,
                          params={"DATA_DIR": "fail"}, progress=False)
    assert (runs / "smoke" / NAMES[1] / "metrics.json").read_bytes() == good
    failing = runs / nb.run_name("smoke", params={"DATA_DIR": "fail"})
    assert not (failing / NAMES[1]).exists() and (failing / f".{NAMES[1]}.partial").is_dir()


def test_parameters_are_parsed_and_checked(project):
    notebooks, _ = project
    assert reproduce.parse_params(["DATA_DIR=/data/x=y", "N=8", "FLAG=true", "NAME=\"7\""]) == {
        "DATA_DIR": "/data/x=y", "N": 8, "FLAG": True, "NAME": "7"}
    for bad, fragment in [(["data_dir=/x"], "upper-case"), (["N=1", "N=2"], "twice"), (["NOEQUALS"], "NAME=VALUE")]:
        with pytest.raises(DDMIError, match=fragment):
            reproduce.parse_params(bad)
    paths = sorted(notebooks.glob("[0-9]*.py"))
    with pytest.raises(DDMIError, match="DATA_DIR: no selected notebook has this parameter; they offer none"):
        reproduce.check_params({"DATA_DIR": "/x"}, paths)
    with pytest.raises(DDMIError, match="--seed"):
        reproduce.check_params({"SEED": 3}, paths)
    with pytest.raises(DDMIError, match="seed must be an int >= 0"):
        nb.run_name("smoke", seed=-1)


def test_run_all_records_a_failure_and_stops(project, monkeypatch):
    notebooks, runs = project

    def failing(path, **kwargs):
        raise DDMIError(f"notebook {Path(path).stem} failed in cell [3]: ZeroDivisionError: division by zero")

    monkeypatch.setattr(reproduce, "run_notebook", failing)
    with pytest.raises(DDMIError, match=NAMES[0]):
        reproduce.run_all("smoke", out_root=runs, notebooks_dir=notebooks, progress=False)
    timings = json.loads((runs / "smoke" / "timings.json").read_text())
    assert list(timings) == [NAMES[0]] and timings[NAMES[0]]["status"] == "failed"
    run = json.loads((runs / "smoke" / "run.json").read_text())
    assert run["status"] == f"failed at {NAMES[0]}" and run["ran"] == []


# --------------------------------------------------------------------------- execution


def test_run_notebook_failure_names_the_notebook_and_the_cell_error(tmp_path):
    source = tmp_path / "07_broken.py"
    source.write_text(HEADER + '\n# %% [markdown]\n# # broken\n\n# %% tags=["parameters"]\nPROFILE = "cpu"\n\n'
                      '# %%\nPROFILE_SEEN = PROFILE\n\n# %%\nraise ZeroDivisionError(f"stop under {PROFILE_SEEN}")\n')
    with pytest.raises(DDMIError) as err:
        reproduce.run_notebook(source, profile="smoke", out_dir=tmp_path / "out", device="cpu", progress=False)
    message = str(err.value)
    assert "07_broken" in message and "ZeroDivisionError" in message
    assert "stop under smoke" in message  # the injected parameter reached the kernel
    assert (tmp_path / "out" / "07_broken.ipynb").is_file()  # kept, with the traceback


def test_run_notebook_without_metrics_is_an_error(tmp_path):
    source = tmp_path / "08_silent.py"
    source.write_text(HEADER + '\n# %% tags=["parameters"]\nPROFILE = "cpu"\n\n# %%\nx = 1\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"wall_s": 1.0}')  # a stale file from an earlier run does not count
    with pytest.raises(DDMIError, match="08_silent.*no metrics.json"):
        reproduce.run_notebook(source, profile="smoke", out_dir=out, device="cpu", progress=False)


# --------------------------------------------------------------------------- report


def test_report_lists_every_notebook_with_metrics_figures_and_links(project):
    notebooks, runs = project
    for name in NAMES:
        fake_run(runs, "cpu", name, figure=name != NAMES[2])
    report = write_report("cpu", runs, notebooks_dir=notebooks)
    assert report == (runs / "cpu" / "report.md").resolve()
    text = report.read_text()
    headings = re.findall(r"^## (\d\d_\w+)", text, flags=re.M)
    assert headings == list(NAMES)
    assert "## 02_beta_vae — beta vae title" in text
    assert "| psnr_heldout | 23.46 |" in text and "| steps | 120 |" in text
    assert f"[{NAMES[0]}.ipynb]({NAMES[0]}/{NAMES[0]}.ipynb)" in text
    assert f"![samples]({NAMES[1]}/samples.png)" in text
    assert f"{NAMES[2]}/samples.png" not in text
    assert "- wall time: 3.5 s in the notebook" in text
    for key in ("python", "torch", "numpy", "device", "cpu", "cores", "date"):
        assert re.search(rf"^\| {key} \| .+ \|$", text, flags=re.M), key
    for link in re.findall(r"\]\(([^)]+)\)", text):  # every relative link resolves
        assert (report.parent / link).is_file(), link


def test_report_fails_naming_the_notebook_without_metrics(project):
    notebooks, runs = project
    fake_run(runs, "cpu", NAMES[0])
    fake_run(runs, "cpu", NAMES[2])
    with pytest.raises(DDMIError) as err:
        write_report("cpu", runs, notebooks_dir=notebooks)
    assert NAMES[1] in str(err.value) and "metrics.json" in str(err.value)
    assert not (runs / "cpu" / "report.md").exists()
    # a selection only needs its own notebooks
    assert write_report("cpu", runs, only=["01", "10"], notebooks_dir=notebooks).is_file()


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["reproduce", "--profile", "huge"], "'huge'"),
        (["reproduce", "--profile", "smoke", "--only", "no_such_notebook"], "no_such_notebook"),
        (["reproduce", "--profile", "smoke", "--only", "01", "--seed", "-2"], "seed must be an int >= 0"),
        (["reproduce", "--profile", "smoke", "--only", "01", "--param", "lower=1"], "upper-case"),
        (["reproduce", "--profile", "smoke", "--only", "01", "--param", "NO_SUCH=1"], "NO_SUCH"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ddmi-lite: error:") and fragment in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_profile_without_cuda_is_refused_before_any_work(capsys, tmp_path):
    assert main(["reproduce", "--profile", "gpu", "--only", "01", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "profile='gpu'" in lines[0] and "CUDA" in lines[0]
    assert not any(tmp_path.iterdir())
    assert main(["bench", "--profile", "gpu", "--out", str(tmp_path / "bench.json")]) == 2
    assert "profile='gpu'" in capsys.readouterr().err and not any(tmp_path.iterdir())
    with pytest.raises(DDMIError, match="profile='gpu'"):
        nb.start_notebook("01_basis_fields", "gpu", "cpu", out_dir=tmp_path / "nb")
    assert not (tmp_path / "nb").exists()


@pytest.mark.parametrize("kind", ["file", "file_parent", "read_only"])
def test_cli_refuses_an_output_root_it_cannot_write_before_any_work(kind, capsys, tmp_path):
    blocker = tmp_path / "blocker"
    if kind == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        blocker.mkdir()
        blocker.chmod(0o500)
        out = blocker / "runs"
    else:
        blocker.write_text("keep me")
        out = blocker if kind == "file" else blocker / "runs"
    assert main(["reproduce", "--profile", "smoke", "--only", "01", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddmi-lite: error: --out") and "Traceback" not in err[0]
    if kind != "read_only":
        assert blocker.read_text() == "keep me"


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_start_notebook_resolves_seeds_and_creates_the_output_folder(tmp_path, capsys):
    device, gen, out, ckpt_dir = nb.start_notebook("01_x", "smoke", "cpu", 7, tmp_path / "nb")
    assert device == torch.device("cpu") and gen.initial_seed() == 7
    assert out == (tmp_path / "nb").resolve() and out.is_dir() and ckpt_dir == out.parent / "checkpoints"
    assert torch.equal(torch.rand(3), (torch.manual_seed(7), torch.rand(3))[1])  # the global RNG is seeded too
    assert f"profile=smoke device=cpu seed=7 out={out}" in capsys.readouterr().out
    with pytest.raises(DDMIError, match="profile"):
        nb.start_notebook("01_x", "fast", "cpu", 0, tmp_path / "nb")


def test_cli_data_on_a_full_disk_or_a_file_is_one_error_line(monkeypatch, capsys, tmp_path):
    """`data` checks its folder first, and a disk that fills up mid-way is one `error:` line, not a traceback."""
    import errno

    from ddmi_lite import __main__ as cli

    blocker = tmp_path / "data_is_a_file"
    blocker.write_text("keep me")
    monkeypatch.setenv("DDMI_DATA_DIR", str(blocker))
    assert main(["data", "--only", "emoji"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data folder" in err[0] and "is a file" in err[0] and blocker.read_text() == "keep me"

    monkeypatch.setenv("DDMI_DATA_DIR", str(tmp_path / "data"))

    def full_disk(**kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "emoji" / "images.npz"))

    monkeypatch.setattr(cli, "prepare_emoji", full_disk)
    assert main(["data", "--only", "emoji", "--no-progress"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "images.npz" in lines[0]
    assert "Traceback" not in captured.err
