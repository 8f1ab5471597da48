"""Determinism: with a fixed seed on CPU, two smoke runs of a notebook give identical metrics.

Every key of ``metrics.json`` must match exactly (floats bit for bit) except the wall-clock
timings, which are the keys in :data:`TIMING_KEYS`: ``wall_s`` and every other key ending in
``_s`` (seconds), e.g. ``train_s``. Each run writes into its own output root, so the second run
trains its own checkpoint instead of reusing the first one's.
"""

from __future__ import annotations

import pytest

from ddmi_lite import reproduce
from ddmi_lite.notebook import NOTEBOOKS_DIR

NOTEBOOKS = ("01_basis_fields", "03_d2c_vae")


def is_timing_key(key: str) -> bool:
    """Wall-clock seconds: ``wall_s`` and any ``*_s`` key; these may differ between runs."""
    return key == "wall_s" or key.endswith("_s")


TIMING_KEYS = "wall_s and *_s"


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_two_smoke_runs_give_identical_metrics(tmp_path, name):
    source = NOTEBOOKS_DIR / f"{name}.py"
    runs = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt / "smoke" / name
        result = reproduce.run_notebook(source, profile="smoke", out_dir=out, device="cpu", seed=0,
                                        progress=False)
        runs.append(result["metrics"])
    first, second = ({k: v for k, v in m.items() if not is_timing_key(k)} for m in runs)
    assert set(runs[0]) == set(runs[1])
    assert len(first) >= 3, f"{name} reports too few non-timing metrics to compare: {runs[0]}"
    differing = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not differing, f"{name}: metrics differ between two seeded CPU runs: {differing}"
