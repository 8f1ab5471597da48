"""Interrupted runs: SIGKILL at random moments, resume, same final weights; torn checkpoint writes.

A training run (tests/kill_resume_worker.py, a small MLP with AdamW + EMA + dropout, a checkpoint
every step) is killed with SIGKILL three times at random moments and restarted; the resumed run
must end with exactly the weights (atol 0) of an uninterrupted run with the same seed. A kill in
the middle of a checkpoint write must never let a torn checkpoint load. ``reproduce`` interrupted
half way must pick up where it stopped.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from ddmi_lite import checkpoint as ck
from ddmi_lite import reproduce
from ddmi_lite.errors import DDMIError

WORKER = Path(__file__).with_name("kill_resume_worker.py")
REPO = WORKER.parent.parent
STEPS = 40
CYCLES = 3
KILLS: list[dict] = []  # what the kill test did, printed with -s


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(ckpt: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), str(ckpt), str(STEPS), *args],
                          capture_output=True, text=True, env=_env(), timeout=120)


def _final(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return ck.load_checkpoint(f"{ckpt}.final")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict]:
    """The uninterrupted run's final weights and loss history."""
    ckpt = tmp_path_factory.mktemp("reference") / "ck"
    proc = _run(ckpt)
    assert proc.returncode == 0, proc.stderr
    return _final(ckpt)


def _assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs after resume"


def _kill_after_progress(ckpt: Path, rng: random.Random) -> int:
    """Start the worker, wait for one more optimiser step, SIGKILL it after a random delay.

    Returns the last step the worker reported before it died.
    """
    proc = subprocess.Popen([sys.executable, str(WORKER), str(ckpt), str(STEPS)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    last = -1
    try:
        line = proc.stdout.readline()  # blocks until the first step of this process is done
        while line.startswith("[train] resumed"):
            line = proc.stdout.readline()
        assert line.startswith("step "), f"worker printed {line!r} before any step"
        last = int(line.split()[1])
        time.sleep(rng.uniform(0.0, 0.25))  # about 0 to 15 more steps, writes included
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for line in proc.stdout.read().splitlines():
            if line.startswith("step "):
                last = int(line.split()[1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return last


def test_sigkill_during_save_and_three_times_at_random_then_resume_matches(tmp_path, reference):
    """Torn save at step 5, then three random SIGKILLs, then the run to its end: same weights."""
    ckpt = tmp_path / "ck"
    # 1. killed between the new weights file and its JSON: the worst moment of a save
    proc = _run(ckpt, "--die-at-json", "5")
    assert proc.returncode == -signal.SIGKILL
    weights, sidecar = ck.checkpoint_files(ckpt)
    prev_w, prev_j = ck.backup_files(ckpt)
    assert prev_w.is_file() and prev_j.is_file(), "the backup pair of step 4 must survive"
    with pytest.raises(DDMIError, match="sha256"):
        ck._verified(weights, sidecar)  # the torn pair itself is refused ...
    with pytest.warns(RuntimeWarning, match="last complete checkpoint"):
        _, meta = ck.load_checkpoint(ckpt)  # ... and the last complete one is loaded instead
    assert meta["step"] == 4
    KILLS.append({"cycle": "torn save", "checkpoint_step": 4, "killed_mid_save": True})
    # 2. three SIGKILLs at random moments, each after the run made progress
    rng = random.Random(1234)
    for cycle in range(CYCLES):
        last = _kill_after_progress(ckpt, rng)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stored = ck.load_checkpoint(ckpt)[1]["step"]
        KILLS.append({"cycle": cycle + 1, "last_step_printed": last, "checkpoint_step": stored,
                      "killed_mid_save": bool(caught)})
        assert 4 < last < STEPS, "the kill must land inside the run, after the resume"
        assert last - 1 <= stored <= last + 1, (stored, last)
    # 3. the run to its end
    done = _run(ckpt)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout
    got, meta = _final(ckpt)
    want, want_meta = reference
    _assert_same_weights(got, want)
    assert meta["history"] == want_meta["history"]  # every step's loss, across the kills
    assert not prev_w.exists() and not prev_j.exists(), "a completed save drops the backup"
    KILLS.append({"final_weights_equal": True, "resumed_from": meta["resumed_from"]})
    print(f"\n[kill/resume] {KILLS}")


def _pair(tmp_path: Path) -> Path:
    stem = tmp_path / "model"
    ck.save_checkpoint(stem, {"w": torch.arange(8.0)}, {"v": 1})
    ck.save_checkpoint(stem, {"w": torch.arange(8.0) * 2}, {"v": 2})
    return stem


def test_truncated_temp_file_is_ignored_and_cleaned(tmp_path):
    stem = _pair(tmp_path)
    weights, _ = ck.checkpoint_files(stem)
    stale = tmp_path / f".{weights.name}.abc123.tmp"
    stale.write_bytes(weights.read_bytes()[:37])  # what a writer killed mid-write leaves
    tensors, meta = ck.load_checkpoint(stem)
    assert meta == {"v": 2} and torch.equal(tensors["w"], torch.arange(8.0) * 2)
    ck.save_checkpoint(stem, {"w": torch.zeros(8)}, {"v": 3})
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("cut", [0, 8, 100, -1])
def test_truncated_weights_never_load(tmp_path, cut):
    stem = _pair(tmp_path)
    weights, _ = ck.checkpoint_files(stem)
    blob = weights.read_bytes()
    weights.write_bytes(blob[:cut] if cut >= 0 else blob[:-1])
    with pytest.raises(DDMIError, match=r"model\.safetensors.*(truncated|bytes)"):
        ck.load_checkpoint(stem)


def test_truncated_weights_with_backup_loads_the_backup(tmp_path):
    stem = _pair(tmp_path)
    weights, sidecar = ck.checkpoint_files(stem)
    prev_w, prev_j = ck.backup_files(stem)
    old_blob, old_json = weights.read_bytes(), sidecar.read_bytes()
    ck.save_checkpoint(stem, {"w": torch.ones(8)}, {"v": 3})
    prev_w.write_bytes(old_blob)  # as left by a kill between the two replaces of the save of v3
    prev_j.write_bytes(old_json)
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.warns(RuntimeWarning):
        tensors, meta = ck.load_checkpoint(stem)
    assert meta == {"v": 2} and torch.equal(tensors["w"], torch.arange(8.0) * 2)
    prev_j.write_text("{not json")  # a torn backup is no fallback: the first error is raised
    with pytest.raises(DDMIError, match="truncated"):
        ck.load_checkpoint(stem)


# --------------------------------------------------------------------------- reproduce

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


def _tiny_notebook(folder: Path, name: str, *, fail_flag: Path | None = None) -> Path:
    """A real notebook: parameters cell, counts its runs in OUT_DIR, writes metrics.json."""
    fail = f"assert not Path({str(fail_flag)!r}).exists(), 'interrupted (simulated)'\n" \
        if fail_flag else ""
    body = (HEADER + f'\n# %% [markdown]\n# # {name}\n\n# %%\nfrom pathlib import Path\n'
            'from ddmi_lite.notebook import write_metrics\n\n'
            '# %% tags=["parameters"]\nPROFILE = "cpu"\nDEVICE = "auto"\nSEED = 0\nOUT_DIR = ""\n\n'
            f'# %%\n{fail}runs = Path(OUT_DIR) / "runs.txt"\n'
            'runs.write_text(runs.read_text() + "x" if runs.exists() else "x")\n'
            'write_metrics(OUT_DIR, {"value": SEED + 1, "wall_s": 0.1}, profile=PROFILE, device="cpu", trained=[])\n'
            '\n# %% [markdown]\n# ## Recap\n')
    path = folder / f"{name}.py"
    path.write_text(body)
    return path


@pytest.mark.slow
def test_reproduce_interrupted_half_way_resumes_without_redoing(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    flag = tmp_path / "stop_here"
    _tiny_notebook(notebooks, "01_first")
    _tiny_notebook(notebooks, "02_second", fail_flag=flag)
    out = tmp_path / "runs"
    flag.write_text("")
    with pytest.raises(DDMIError, match="02_second failed"):
        reproduce.run_all("smoke", out_root=out, notebooks_dir=notebooks, progress=False)
    runs = lambda name: (out / "smoke" / name / "runs.txt").read_text()  # noqa: E731
    assert runs("01_first") == "x"
    flag.unlink()
    results = reproduce.run_all("smoke", out_root=out, notebooks_dir=notebooks, progress=False)
    assert [r["status"] for r in results] == ["skipped", "ran"]
    assert runs("01_first") == "x" and runs("02_second") == "x"  # the failed run wrote nothing
    # --force is what re-runs a finished notebook (is_done / force: tests/test_reproduce.py)
    assert reproduce.is_done(notebooks / "01_first.py", out / "smoke" / "01_first")
