"""The ablation table of DDMI (§4.4, Tables 5–6) as data: its rows, files and the claims read from it.

:mod:`ddmi_lite.ablations` trains and scores the rows; this module holds what a finished table
is — the row names, ``metrics.json`` keys, ``ablation.json`` / ``ablation.csv`` (written
atomically), a Markdown rendering, and the verdict on each of the paper's claims, which the
notebook and the report print.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path


from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, write_json

ROWS = ("weightgen", "single", "concat", "sum", "cfc")
READOUT_MODES = {"single": "single_scale", "concat": "concat_input", "sum": "sum", "cfc": "cfc"}
ROW_LABELS = {"weightgen": "weight generation over fixed PE", "single": "single-scale field",
              "concat": "HDBF, all scales at the input", "sum": "HDBF, scales summed", "cfc": "HDBF + CFC"}
DOMAINS = ("image", "shape")


def flat_metrics(table: list[dict]) -> dict:
    """The metrics.json keys: ``psnr_heldout_<row>[_std]``, ``fd_samples_<row>``, ``iou_heldout_<row>[_std]``,
    ``mmd_<row>``, ``cov_<row>``, ``params_<domain>_<row>``, ``train_s_<domain>_<row>``."""
    out: dict[str, float] = {}
    for e in table:
        row, dom = e["row"], e["domain"]
        if dom == "image":
            out[f"psnr_heldout_{row}"] = e["recon_mean"]
            out[f"psnr_heldout_{row}_std"] = e["recon_std"]
            out[f"fd_samples_{row}"] = e["fd"]
        else:
            out[f"iou_heldout_{row}"] = e["recon_mean"]
            out[f"iou_heldout_{row}_std"] = e["recon_std"]
            out[f"mmd_{row}"] = e["mmd"]
            out[f"cov_{row}"] = e["cov"]
        out[f"params_{dom}_{row}"] = e["params"]
        out[f"train_s_{dom}_{row}"] = e["train_s"]
        out[f"train_steps_{dom}_{row}"] = e["steps"]
    return out


CSV_FIELDS = ("domain", "row", "label", "params", "steps", "train_s", "recon_metric", "recon_mean", "recon_std",
              "fd", "mmd", "cov", "ldm_train_s")


def write_table(table: list[dict], out_dir, *, config=None) -> tuple[Path, Path]:
    """``ablation.json`` (the rows and the config) and ``ablation.csv`` in ``out_dir``, written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"rows": table, "config": json.loads(json.dumps(asdict(config), default=str)) if config else {}}
    write_json(out_dir / "ablation.json", payload)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for e in table:
        writer.writerow({k: e.get(k, "") for k in CSV_FIELDS})
    atomic_write(out_dir / "ablation.csv", buf.getvalue().encode("utf-8"))
    return out_dir / "ablation.json", out_dir / "ablation.csv"


def table_markdown(table: list[dict]) -> str:
    """The table as markdown: one line per (domain, row)."""
    lines = ["| domain | row | params | train s | reconstruction (held-out) | generation |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for e in table:
        rec = f"{e['recon_metric'].upper()} {e['recon_mean']:.3f} ± {e['recon_std']:.3f}"
        gen = f"FD {e['fd']:.3f}" if e["domain"] == "image" else f"MMD {e['mmd']:.4f} / COV {e['cov']:.2f}"
        lines.append(f"| {e['domain']} | {e['label']} | {e['params']:,} | {e['train_s']:.1f} | {rec} | {gen} |")
    return "\n".join(lines)


def load_table(out_dir) -> list[dict]:
    """The rows of ``out_dir/ablation.json``."""
    path = Path(out_dir) / "ablation.json"
    if not path.is_file():
        raise DDMIError(f"{str(path)!r} does not exist; run notebooks/10_ablations.py first")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


CLAIMS = (("a", "generating adaptive positional embeddings beats generating weights over a fixed PE", "cfc", "weightgen"),
          ("b", "multi-scale basis fields beat a single scale", "cfc", "single"),
          ("c", "coarse-to-fine conditioning beats all scales at the input", "cfc", "concat"))


GENERATION_TIE = 0.05  # one LDM per row has no error bar: distances within 5% of each other count as a tie


def _generation_verdict(ours: float, other: float) -> str:
    """Lower is better (FD, MMD); a relative gap under :data:`GENERATION_TIE` is called a tie."""
    if abs(ours - other) <= GENERATION_TIE * max(abs(ours), abs(other)):
        return f"is a tie (within {GENERATION_TIE:.0%}, no error bars)"
    return "holds" if ours < other else "does not hold"


def claim_verdicts(table: list[dict]) -> list[str]:
    """One sentence per claim and domain, read off the table: does the paper's row beat its ablation?

    Reconstruction counts as a win only when the gap exceeds the seeds' spread (the larger std);
    generation (one LDM per row, no error bars) counts as a win only beyond a 5% relative gap, and
    for shapes only when COV does not drop.
    """
    by = {(e["domain"], e["row"]): e for e in table}
    out = []
    for tag, text, ours, other in CLAIMS:
        for dom in DOMAINS:
            a, b = by.get((dom, ours)), by.get((dom, other))
            if a is None or b is None:
                continue
            gap = a["recon_mean"] - b["recon_mean"]
            spread = max(a["recon_std"], b["recon_std"])
            rec = "holds" if gap > spread else ("within the seed spread" if abs(gap) <= spread else "does not hold")
            name = a["recon_metric"].upper()
            if dom == "image":
                verdict, gen = _generation_verdict(a["fd"], b["fd"]), f"FD {a['fd']:.3f} vs {b['fd']:.3f}"
            else:
                verdict = _generation_verdict(a["mmd"], b["mmd"])
                if verdict == "holds" and a["cov"] < b["cov"]:
                    verdict = "is mixed (lower MMD, lower COV)"
                gen = f"MMD {a['mmd']:.4f} vs {b['mmd']:.4f}, COV {a['cov']:.2f} vs {b['cov']:.2f}"
            out.append(f"({tag}) {dom}: {text} — reconstruction {rec} ({name} {a['recon_mean']:.3f} vs "
                       f"{b['recon_mean']:.3f}, gap {gap:+.3f}, seed spread {spread:.3f}); generation "
                       f"{verdict} ({gen}).")
    return out
