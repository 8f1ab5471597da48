"""Figures and interactive panels for the notebooks: matplotlib grids and ipywidgets views (DDMI §4.4),
and the benchmark's figure (:func:`plot_bench`).

Every interactive view has a static counterpart that writes a PNG, so an executed notebook, the
report and the README show the same result without a live kernel:

==========================  =====================================  ==================================
widget                      what it changes                        static figure
==========================  =====================================  ==================================
variant dropdown            which ablation row renders             every figure has one row per variant
scale checkboxes            zero one scale's embedding pˡ(c)       :func:`scale_mask_grid`
resolution slider           the render grid (pixel centres)        :func:`resolution_grid`
denoising-step slider       x̂₀ predicted at step i of the sampler  :func:`trajectory_grid`
==========================  =====================================  ==================================

Switching a scale off multiplies its embedding by 0 at render time (``fields.query_fields``'s
``scale_mask``); the readout is not retrained, so this shows what each scale carries, not what a
model trained without it would do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter, ScalarFormatter

from ddmi_lite.device import module_device
from ddmi_lite.domains.image import render, to_unit_range
from ddmi_lite.errors import DDMIError
from ddmi_lite.ldm import sample_latents
from ddmi_lite.weightgen import WeightGenVAE


# ----------------------------------------------------------------------------------------------- rendering
def n_scales(model) -> int:
    """Number of basis-field scales a model reads (0 for the weight-generation baseline)."""
    if isinstance(model, WeightGenVAE):
        return 0
    return len(model.readout.pe_dims)


@torch.no_grad()
def render_image(model, z: torch.Tensor, *, resolution: int = 32, scale_mask: Sequence[float] | None = None,
                 train_resolution: int = 32) -> np.ndarray:
    """One latent ``[C,h,w]`` → an ``[H,W,3]`` array in [0,1], with scales switched off by ``scale_mask``."""
    device = module_device(model)
    fields = model.decode(z[None].to(device))
    if scale_mask is not None and len(scale_mask) != len(fields):
        raise DDMIError(f"scale_mask has {len(scale_mask)} entries; this model has {len(fields)} scales")
    img = render(model, fields, resolution, train_resolution=train_resolution, scale_mask=scale_mask)
    return to_unit_range(img)[0].permute(1, 2, 0).cpu().numpy()


def scale_masks(k: int) -> dict[str, tuple[float, ...] | None]:
    """Named masks for ``k`` scales: all on, then each scale off in turn (coarse first)."""
    names = {3: ("coarse", "mid", "fine"), 2: ("coarse", "fine"), 1: ("field",)}.get(k, tuple(f"s{i}" for i in range(k)))
    masks: dict[str, tuple[float, ...] | None] = {"all scales": None}
    for i, name in enumerate(names):
        masks[f"no {name}"] = tuple(0.0 if j == i else 1.0 for j in range(k))
    return masks


@torch.no_grad()
def trajectory_frames(model, ldm, *, sampler: str = "ddim", steps: int = 20, seed: int = 0,
                      resolution: int = 32) -> list[np.ndarray]:
    """x̂₀ predicted at every step of one sampling run, decoded and rendered: ``steps`` arrays ``[H,W,3]``."""
    x0s: list[torch.Tensor] = []
    sample_latents(ldm, 1, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(seed),
                   callback=lambda info: x0s.append(info["x0"][0].float().cpu()))
    return [render_image(model, x0, resolution=resolution) for x0 in x0s]


# ----------------------------------------------------------------------------------------------- static figures
def _save(fig, path, *, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def nfe_curve(ax, rows: Sequence[Mapping], match: Mapping, *, metric: str = "fd", ylabel: str = "", title: str = ""):
    """Sampler quality against network evaluations: one line per sampler (``rows`` of ``sampler``,
    ``nfe`` and ``metric``), DDIM-50's value (``match["reference"]``) dotted, NFE ticks on a log axis."""
    for name in dict.fromkeys(r["sampler"] for r in rows):
        rr = sorted((r for r in rows if r["sampler"] == name), key=lambda r: r["nfe"])
        ax.plot([r["nfe"] for r in rr], [r[metric] for r in rr], "o-", label=name)
    ax.axhline(match["reference"], color="k", lw=0.8, ls=":", label="DDIM-50")
    ax.set_xscale("log"); ax.set_xlabel("network evaluations per sample"); ax.set_ylabel(ylabel or metric)
    ax.set_xticks(sorted({r["nfe"] for r in rows}))
    ax.xaxis.set_major_formatter(ScalarFormatter()); ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"{title}: {match['best_sampler']} matches DDIM-50 with {match['best_nfe']} NFE")
    ax.legend(fontsize=8)
    return ax


def scale_mask_grid(models: Mapping[str, object], latents: Mapping[str, torch.Tensor], path, *,
                    resolution: int = 32, target: torch.Tensor | None = None) -> Path:
    """One row per variant, one column per mask (all scales, then each scale off): the scale checkboxes, frozen.

    ``target`` (``[3,H,W]`` in [0,1], the encoded image) is shown in an extra first column.
    """
    rows = [r for r in models if n_scales(models[r]) > 0]
    if not rows:
        raise DDMIError("no model with basis-field scales to mask")
    first = 0 if target is None else 1
    ncols = max(len(scale_masks(n_scales(models[r]))) for r in rows) + first
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.9 * ncols, 2.0 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        masks = scale_masks(n_scales(models[row]))
        if target is not None:
            axes[i, 0].imshow(target.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            axes[i, 0].set_title("held-out input", fontsize=8)
        for j in range(first, ncols):
            ax = axes[i, j]
            ax.axis("off")
            j -= first
            if j < len(masks):
                name, mask = list(masks.items())[j]
                ax.imshow(render_image(models[row], latents[row], resolution=resolution, scale_mask=mask),
                          interpolation="nearest")
                ax.set_title(name, fontsize=8)
        axes[i, 0].axis("off")
        axes[i, 0].text(-0.08, 0.5, row, transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=9)
    return _save(fig, path)


def resolution_grid(models: Mapping[str, object], latents: Mapping[str, torch.Tensor], path, *,
                    resolutions: Sequence[int] = (16, 32, 64, 128)) -> Path:
    """One row per variant, one column per render resolution: the resolution slider, frozen."""
    rows = list(models)
    fig, axes = plt.subplots(len(rows), len(resolutions), figsize=(1.9 * len(resolutions), 2.0 * len(rows)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, res in enumerate(resolutions):
            axes[i, j].imshow(render_image(models[row], latents[row], resolution=res), interpolation="nearest")
            axes[i, j].set_title(f"{row} · {res}²", fontsize=8)
            axes[i, j].axis("off")
    return _save(fig, path)


def trajectory_grid(frames: Mapping[str, Sequence[np.ndarray]], path, *, n_cols: int = 6) -> Path:
    """One row per variant: x̂₀ at evenly spaced sampler steps (the denoising slider, frozen)."""
    rows = list(frames)
    n_cols = max(1, min(n_cols, max(len(v) for v in frames.values())))
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.9 * n_cols, 2.0 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        seq = frames[row]
        picks = np.unique(np.linspace(0, len(seq) - 1, n_cols).round().astype(int))
        for j in range(n_cols):
            axes[i, j].axis("off")
            if j < len(picks):
                axes[i, j].imshow(seq[picks[j]], interpolation="nearest")
                axes[i, j].set_title(f"{row} · step {picks[j] + 1}/{len(seq)}", fontsize=7)
    return _save(fig, path)


def image_grid(images: torch.Tensor, path, *, ncols: int = 8, title: str = "") -> Path:
    """Images ``[N,3,H,W]`` in [0,1] in a grid."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols, 1.25 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        ax.imshow(img.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_bench(result: Mapping, path: str | os.PathLike) -> Path:
    """The figure of :func:`ddmi_lite.bench.run_bench`. Left: achieved / peak FLOP/s per stage;
    right: before vs after of each optimisation."""
    stages = result["stages"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    names = list(stages)
    a.barh(names, [stages[n]["ratio"] for n in names], color="tab:blue")
    a.axvline(1.0, color="k", lw=0.8)
    a.set_xlabel("achieved FLOP/s ÷ matmul peak of the same dtype, same run")
    for i, n in enumerate(names):
        mem = f", {stages[n]['peak_mb']:.0f} MB" if "peak_mb" in stages[n] else ""
        a.text(stages[n]["ratio"], i, f" {1e3 * stages[n]['step_s']:.0f} ms{mem}", va="center", fontsize=8)
    a.set_title(f"{result['device']}, {result['threads']} threads", fontsize=10)
    comps = result["comparisons"]
    x = range(len(comps))
    b.bar([i - 0.2 for i in x], [1e3 * c["before_s"] for c in comps.values()], 0.4, label="before")
    b.bar([i + 0.2 for i in x], [1e3 * c["after_s"] for c in comps.values()], 0.4, label="after")
    b.set_xticks(list(x), [k.replace("_", "\n", 1) for k in comps], fontsize=8)
    b.set_ylabel("ms per step (median)")
    b.legend(fontsize=8)
    return _save(fig, path, dpi=120)


# ----------------------------------------------------------------------------------------------- widgets
def ablation_panel(models: Mapping[str, object], latents: Mapping[str, torch.Tensor],
                   frames: Mapping[str, Sequence[np.ndarray]] | None = None, *, max_resolution: int = 128):
    """An ipywidgets panel over the trained image models.

    Controls: the variant, one checkbox per basis-field scale (unticked = that embedding zeroed),
    the render resolution, and the step of a precomputed denoising trajectory (``frames``).
    Returns the ``VBox``; display it in a notebook.
    """
    import ipywidgets as W  # the optional ``notebooks`` extra: only this panel needs it

    variant = W.Dropdown(options=list(models), value=list(models)[-1], description="variant")
    boxes = [W.Checkbox(value=True, description=name, indent=False) for name in ("coarse", "mid", "fine")]
    res = W.IntSlider(value=32, min=8, max=max_resolution, step=8, description="resolution")
    longest = max((len(v) for v in (frames or {}).values()), default=1)
    step = W.IntSlider(value=longest, min=1, max=longest, description="denoise step", disabled=not frames)
    out = W.Output()

    def draw(*_):
        model = models[variant.value]
        k = n_scales(model)
        first = len(boxes) - k  # fewer scales than boxes: the finest boxes apply
        for i, box in enumerate(boxes):
            box.disabled = i < first
        mask = None if k == 0 else tuple(1.0 if boxes[first + i].value else 0.0 for i in range(k))
        fig, axes = plt.subplots(1, 2 if frames else 1, figsize=(6 if frames else 3, 3), squeeze=False)
        axes[0, 0].imshow(render_image(model, latents[variant.value], resolution=res.value, scale_mask=mask),
                          interpolation="nearest")
        axes[0, 0].set_title(f"{variant.value} at {res.value}²", fontsize=9)
        if frames:
            seq = frames[variant.value]
            i = min(step.value, len(seq)) - 1
            axes[0, 1].imshow(seq[i], interpolation="nearest")
            axes[0, 1].set_title(f"sample: x̂₀ at step {i + 1}/{len(seq)}", fontsize=9)
        for ax in axes.flat:
            ax.axis("off")
        with out:
            out.clear_output(wait=True)
            plt.show(fig)
        plt.close(fig)

    for w in (variant, res, step, *boxes):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([variant, res]), W.HBox(boxes), step, out])


__all__ = [
    "ablation_panel",
    "image_grid",
    "n_scales",
    "nfe_curve",
    "plot_bench",
    "render_image",
    "resolution_grid",
    "scale_mask_grid",
    "scale_masks",
    "trajectory_frames",
    "trajectory_grid",
]
