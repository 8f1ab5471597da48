"""The ablation table of DDMI (§4.4, Tables 5–6) as data: its rows, files and the claims read from it.

:mod:`ddmi_lite.ablations` trains and scores the rows; this module holds what a finished table
is — the row names, ``metrics.json`` keys, ``ablation.json`` / ``ablation.csv`` (written
atomically), a Markdown rendering, the verdict on each of the paper's claims, which the
notebook and the report print, the caveats that qualify those verdicts (:func:`claim_caveats`),
and a bar chart whose value axes all start at 0 (:func:`table_bars`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from statistics import median

import matplotlib.pyplot as plt

from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, write_json

ROWS = ("weightgen", "single", "concat", "sum", "cfc")
READOUT_MODES = {"single": "single_scale", "concat": "concat_input", "sum": "sum", "cfc": "cfc"}
ROW_LABELS = {"weightgen": "weight generation (modulated SIREN)", "single": "single-scale field",
              "concat": "HDBF, all scales at the input", "sum": "HDBF, scales summed", "cfc": "HDBF + CFC"}
DOMAINS = ("image", "shape")


def flat_metrics(table: list[dict]) -> dict:
    """The metrics.json keys, per row ``r``.

    Images: ``abl_<r>_psnr`` (held-out, mean over seeds), ``abl_<r>_psnr_std``, ``abl_<r>_psnr_2x``
    (2× renders against the true 2× emoji), ``abl_<r>_gain_last20`` (held-out PSNR gained over the last
    20% of the steps, mean over seeds), ``abl_<r>_fd`` (``abl_fd_floor`` once), ``abl_<r>_params``,
    ``abl_<r>_train_s``, ``abl_<r>_steps``; the baseline's pick ``abl_weightgen_lr``.
    Shapes: ``abl_<r>_iou``, ``abl_<r>_iou_std``, ``abl_<r>_mmd``, ``abl_<r>_cov``, ``abl_shape_<r>_params``,
    ``abl_shape_<r>_train_s``, ``abl_shape_<r>_steps``, ``abl_shape_weightgen_lr``. And ``abl_seeds``.
    """
    out: dict[str, float] = {}
    for e in table:
        row, dom = e["row"], e["domain"]
        pre = f"abl_{row}" if dom == "image" else f"abl_shape_{row}"
        if dom == "image":
            out.update({f"abl_{row}_psnr": e["recon_mean"], f"abl_{row}_psnr_std": e["recon_std"],
                        f"abl_{row}_psnr_2x": e["psnr_2x_mean"], f"abl_{row}_psnr_2x_std": e["psnr_2x_std"],
                        f"abl_{row}_gain_last20": e["gain_last20"], f"abl_{row}_fd": e["fd"],
                        "abl_fd_floor": e["fd_floor"]})
        else:
            out.update({f"abl_{row}_iou": e["recon_mean"], f"abl_{row}_iou_std": e["recon_std"],
                        f"abl_{row}_mmd": e["mmd"], f"abl_{row}_cov": e["cov"]})
        out.update({f"{pre}_params": e["params"], f"{pre}_train_s": e["train_s"], f"{pre}_steps": e["steps"]})
        if "lr" in e:
            out[f"{pre}_lr"] = e["lr"]
        out["abl_seeds"] = len(e["recon_seeds"])
    return out


CSV_FIELDS = ("domain", "row", "label", "params", "steps", "train_s", "lr", "recon_metric", "recon_mean", "recon_std",
              "psnr_2x_mean", "psnr_2x_std", "gain_last20", "fd", "fd_floor", "mmd", "cov", "ldm_train_s")


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
    lines = ["| domain | row | params | train s | held-out reconstruction | 2× render | last-20% gain | generation |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for e in table:
        rec = f"{e['recon_metric'].upper()} {e['recon_mean']:.3f} ± {e['recon_std']:.3f}"
        if e["domain"] == "image":
            two, gain = f"{e['psnr_2x_mean']:.2f} ± {e['psnr_2x_std']:.2f} dB", f"{e['gain_last20']:+.2f} dB"
            gen = f"FD {e['fd']:.3f} (floor {e['fd_floor']:.3f})"
        else:
            two, gain, gen = "–", "–", f"MMD {e['mmd']:.4f} / COV {e['cov']:.2f}"
        label = e["label"] + (f" (lr {e['lr']:g})" if "lr" in e else "")
        lines.append(f"| {e['domain']} | {label} | {e['params']:,} | {e['train_s']:.1f} | {rec} | {two} | {gain} "
                     f"| {gen} |")
    return "\n".join(lines)


def load_table(out_dir) -> list[dict]:
    """The rows of ``out_dir/ablation.json``."""
    path = Path(out_dir) / "ablation.json"
    if not path.is_file():
        raise DDMIError(f"{str(path)!r} does not exist; run notebooks/10_ablations.py first")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


CLAIMS = (("a", "generating adaptive positional embeddings beats generating the weights of a coordinate network", "cfc", "weightgen"),
          ("b", "multi-scale basis fields beat a single scale", "cfc", "single"),
          ("c", "coarse-to-fine conditioning beats all scales at the input", "cfc", "concat"))


GENERATION_TIE = 0.05  # one LDM per row has no error bar: distances within 5% of each other count as a tie


def _generation_verdict(ours: float, other: float) -> str:
    """Lower is better (FD, MMD); a relative gap under :data:`GENERATION_TIE` is called a tie."""
    if abs(ours - other) <= GENERATION_TIE * max(abs(ours), abs(other)):
        return f"is a tie (within {GENERATION_TIE:.0%}, no error bars)"
    return "holds" if ours < other else "does not hold"


def _seed_verdict(ours: float, other: float, spread: float) -> str:
    """``holds`` when the gap exceeds the seeds' spread, ``within the seed spread``, or ``does not hold``."""
    gap = ours - other
    return "holds" if gap > spread else ("within the seed spread" if abs(gap) <= spread else "does not hold")


def claim_verdicts(table: list[dict]) -> list[str]:
    """One sentence per claim and domain, read off the table: does the paper's row beat its ablation?

    Reconstruction (and, for images, the 2× render) counts as a win only when the gap exceeds the
    seeds' spread (the larger std); generation (one LDM per row, no error bars) counts as a win only
    beyond a 5% relative gap, and for shapes only when COV does not drop.
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
            rec = _seed_verdict(a["recon_mean"], b["recon_mean"], spread)
            name = a["recon_metric"].upper()
            if dom == "image":
                verdict = _generation_verdict(a["fd"], b["fd"])
                gen = f"FD {a['fd']:.3f} vs {b['fd']:.3f}" + (f", floor {a['fd_floor']:.3f}" if "fd_floor" in a else "")
            else:
                verdict = _generation_verdict(a["mmd"], b["mmd"])
                if verdict == "holds" and a["cov"] < b["cov"]:
                    verdict = "is mixed (lower MMD, lower COV)"
                gen = f"MMD {a['mmd']:.4f} vs {b['mmd']:.4f}, COV {a['cov']:.2f} vs {b['cov']:.2f}"
            two = ""
            if "psnr_2x_mean" in a and "psnr_2x_mean" in b:
                s2 = max(a["psnr_2x_std"], b["psnr_2x_std"])
                two = (f"; 2× render {_seed_verdict(a['psnr_2x_mean'], b['psnr_2x_mean'], s2)} "
                       f"({a['psnr_2x_mean']:.2f} vs {b['psnr_2x_mean']:.2f} dB, seed spread {s2:.2f})")
            out.append(f"({tag}) {dom}: {text} — reconstruction {rec} ({name} {a['recon_mean']:.3f} vs "
                       f"{b['recon_mean']:.3f}, gap {gap:+.3f}, seed spread {spread:.3f}){two}; generation "
                       f"{verdict} ({gen}).")
    return out


FAILED_IOU = 0.05  # a shape row whose held-out IoU stays below this did not learn the shapes at all


def claim_caveats(table: list[dict]) -> list[str]:
    """Sentences, read off the table, that qualify the verdicts of :func:`claim_verdicts`.

    * a row that failed outright (shape IoU below :data:`FAILED_IOU`): a claim against it is won by default;
    * the compute behind an equal step budget: the training seconds of the baseline against the median
      of the field rows;
    * a row whose training time is over three times its domain's median: a timing outlier to rerun before
      reading it as a cost of the row.
    """
    out = []
    for dom in DOMAINS:
        rows = [e for e in table if e["domain"] == dom]
        if not rows:
            continue
        failed = [e for e in rows if dom == "shape" and e["recon_mean"] < FAILED_IOU]
        if failed and len(failed) == len(rows):
            out.append(f"{dom}: no row learned the shapes (every held-out IoU below {FAILED_IOU}), so every {dom} "
                       f"verdict compares failed models and says nothing about the readouts.")
        else:
            for e in failed:
                what = ("every verdict on this domain compares against a failed model" if e["row"] == "cfc" else
                        "a claim against it holds by default, not after a close contest")
                out.append(f"{dom}: the `{e['row']}` row did not learn the shapes (held-out IoU "
                           f"{e['recon_mean']:.3f}, below {FAILED_IOU}), so {what}.")
        fields = [e["train_s"] for e in rows if e["row"] != "weightgen"]
        base = [e for e in rows if e["row"] == "weightgen"]
        if fields and base and base[0]["train_s"] > 0:
            ratio = median(fields) / base[0]["train_s"]
            out.append(f"{dom}: at the same steps and batch the field rows took {ratio:.1f}× the baseline's training "
                       f"time (median {median(fields):.1f} s vs {base[0]['train_s']:.1f} s).")
        mid = median(e["train_s"] for e in rows)
        for e in rows:
            if e["train_s"] > 3 * mid:
                out.append(f"{dom}: `{e['row']}` took {e['train_s']:.1f} s, over three times the median {mid:.1f} s, "
                           f"for the same steps with {e['params']:,} parameters; wall-clock time on shared cores "
                           f"varies between runs, so read it as a timing outlier, not a cost of the readout, unless "
                           f"a rerun repeats it.")
    return out


BAR_COLORS = {"weightgen": "#999999", "single": "#8fb3d9", "concat": "#5b8fc7", "sum": "#2f6db3", "cfc": "#d9534f"}


def table_bars(table: list[dict], path) -> Path:
    """Bar charts of the table (held-out reconstruction ± the seeds' std, generation, training time), one panel
    per column and domain, **every value axis starting at 0**, each bar labelled with its value → ``path`` (PNG)."""
    panels = []
    for dom, rec, gens in (("image", "PSNR (dB) ↑", (("fd", "FD ↓"),)),
                           ("shape", "IoU ↑", (("mmd", "MMD-CD ↓"), ("cov", "COV ↑")))):
        rows = [e for e in table if e["domain"] == dom]
        if rows:
            panels += [(rows, "recon", f"{dom}: held-out {rec}")] + [(rows, k, f"{dom}: samples {t}") for k, t in gens]
            panels.append((rows, "train_s", f"{dom}: training s"))
    if not panels:
        raise DDMIError("the ablation table is empty")
    ncols = 4
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
    for ax, (rows, key, title) in zip(axes.flat, panels):
        names = [e["row"] for e in rows]
        vals = [e["recon_mean"] if key == "recon" else e[key] for e in rows]
        errs = [e["recon_std"] for e in rows] if key == "recon" else None
        bars = ax.bar(names, vals, yerr=errs, capsize=4, color=[BAR_COLORS.get(n, "C0") for n in names])
        labels = [f"{v:.3g}" + (f"\n±{s:.1g}" if errs else "") for v, s in zip(vals, errs or vals)]
        ax.bar_label(bars, labels=labels, fontsize=6, padding=2)
        top = max([v + (s if errs else 0) for v, s in zip(vals, errs or vals)] + [1e-9])
        ax.set_ylim(0, 1.2 * top)  # from 0: bar heights compare as ratios
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
