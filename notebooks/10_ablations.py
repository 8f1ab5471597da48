# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Ablations: what the basis fields and the coarse-to-fine readout buy
#
# DDMI makes three architectural claims (§4.4, Tables 5–6):
#
# * **(a)** generating *adaptive positional embeddings* — basis fields decoded from the latent —
#   beats generating the *weights* of a network that reads the raw coordinate (Functa-style);
# * **(b)** multi-scale basis fields (HDBF) beat a single scale;
# * **(c)** coarse-to-fine conditioning (CFC) beats feeding every scale at the input.
#
# We test each at CPU scale with five rows, on images (emoji) and shapes (tri-plane occupancy).
# With $L$ fields $p^1$ (coarsest) … $p^L$ (finest) read at a coordinate $c$:
#
# | row | readout of a coordinate $c$ |
# | --- | --- |
# | `weightgen` | $h_1 = \sin(\omega_0(W_1 c + b_1) + s_1(z))$, $h_l = \sin(\omega_0(W_l h_{l-1} + b_l) + s_l(z))$, $\hat\omega = W_o h_K + b_o$, shifts $s(z) = W_s\,\mathrm{vec}(z) + b_s$ |
# | `single` | $\hat\omega(c) = \pi_\theta(p^L(c))$, one field at the finest scale |
# | `concat` | $h_1 = \mathrm{RB}_1([p^1, \dots, p^L])$ |
# | `sum` | $h_1 = \mathrm{RB}_1(p^1 + \dots + p^L)$ |
# | `cfc` | $h_1 = \mathrm{RB}_1(p^1)$, $h_l = \mathrm{RB}_l([h_{l-1}, p^l])$ |
#
# The `weightgen` row follows Functa (Dupont et al. 2022): one SIREN ($\omega_0 = 30$, SIREN's
# initialisation) shared by every sample, whose sine layers get a per-sample shift. Unlike Functa, the
# shifts are not fitted per sample by meta-learning; they are a linear map of the latent that the same
# encoder as the other rows produces, trained jointly with it (an amortised, VAE-trained weight
# generator). Its learning rate is its own: the best of a sweep, picked on the training loss.
#
# **A setting where the claims can show.** If the finest field had one texel per pixel, a single field
# could store every pixel and leave the coarser scales nothing to add. The reference's finest image field
# (256²) is coarser than the 384² and 512² targets it renders; here, likewise, the image rows' finest
# field is **half the image's resolution** (one more encoder level than decoder levels), so every
# pixel's detail must be drawn out of interpolated features, and every row has the same latent.
# Each row is scored at the training resolution and on a **2× render** against the true emoji at twice
# the size (the data holds exact area averages of the same drawings at 32², 48² and 64²).
#
# Every row of a domain has the same encoder and latent size, parameter counts within 10% of each
# other, and trains with the same loop, steps, batch, data and seeds; only the decoder/readout differs.

# %%
import time

import matplotlib.pyplot as plt
import torch
from einops import rearrange
from IPython.display import Image, Markdown, display

from ddmi_lite.ablation_eval import masked_psnr
from ddmi_lite.ablation_table import BAR_COLORS, claim_caveats, claim_verdicts, table_bars, table_markdown
from ddmi_lite.ablations import ablation_config, build_row_model, run_ablation
from ddmi_lite.domains.image import render, to_model_range
from ddmi_lite.domains.shape import uniform_point_logits
from ddmi_lite.geometry import render_meshes_grid
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.viz import (
    ablation_panel,
    image_grid,
    resolution_grid,
    scale_mask_grid,
    trajectory_frames,
    trajectory_grid,
)

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("10_ablations", PROFILE, DEVICE, SEED, OUT_DIR)
cfg = ablation_config(PROFILE, seeds=tuple(SEED + s for s in range(len(ablation_config(PROFILE).seeds))))
print(f"image rows: {cfg.image.train.steps} steps of {cfg.image.train.batch_size}; shape rows: "
      f"{cfg.shape.train.steps} steps of {cfg.shape.train.batch_size}; seeds {cfg.seeds}; "
      f"LDMs: {cfg.image_ldm.train.steps} / {cfg.shape_ldm.train.steps} steps")

# the resolutions of this profile, read off untrained models of the `cfc` row
with torch.no_grad():
    probe_img = build_row_model("image", "cfc", cfg).eval()
    z_img = probe_img.encode(torch.zeros(1, 3, cfg.image.resolution, cfg.image.resolution)).mode()
    f_img = probe_img.decode(z_img)
    probe_shp = build_row_model("shape", "cfc", cfg).eval()
    z_shp = probe_shp.encode(torch.rand(1, cfg.shape.n_surface, 3) * 2 - 1).mode()
    f_shp = probe_shp.decode(z_shp)
print(f"images: {cfg.image.resolution}² emoji → latent {tuple(z_img.shape[1:])} → basis fields "
      + " / ".join(f"{f.shape[-1]}²" for f in f_img) + f" ({f_img[0].shape[-3]} channels each)")
print(f"shapes: {cfg.shape.n_surface} surface points → latent {tuple(z_shp.shape[1:])} (3 planes) → fields "
      + " / ".join(f"{f.shape[-1]}²" for f in f_shp) + f" per plane; {cfg.shape.n_query} query points per shape and "
      f"step; sample meshes by marching cubes on a {cfg.mesh_resolution}³ grid")

# %% [markdown]
# > **Paper vs this repo.** *Paper:* the ablations are Tables 5–6 of §4.4. The paper's models work
# > at 256² for images (fields at 64² / 128² / 256², targets up to 512²) and with 64² tri-planes for
# > ShapeNet shapes (fields at 16² / 32² / 64², meshes on a 256³ grid), each stage trained for days on
# > 4 GPUs, and score images by FID on Inception features and shapes by MMD / COV with the Chamfer
# > distance. The reference this repo works from does not say in which of these settings Tables 5–6
# > were run, nor give their baselines or numbers, so none is quoted here. *Here:* the resolutions
# > printed above (two image scales, at ¼ and ½ of the image, rather than three: a third, coarser
# > field would need a 4² latent with the same 512 numbers, which in a trial run of the `cfc` row
# > reached 16.6 dB held-out after 1,000 steps against 19.9 dB for the 8² latent), the
# > step counts printed at the top, two seeds per row (cpu), and smaller sample counts; FD on a small
# > self-trained `FeatureNet` instead of Inception FID; the baseline is our own Functa-style
# > modulated SIREN, much smaller than Functa's and trained through the VAE instead of by
# > meta-learning. So the table asks whether the paper's *ordering* appears at a scale where
# > everything trains in minutes; its numbers are not comparable with the paper's. The shape rows
# > keep notebook 06's tri-plane setting at a smaller size; they were not re-set for a coarser finest
# > plane.

# %% [markdown]
# ## 1. The table
#
# Each row × seed × domain trains from scratch (or is reused from `checkpoints/ablations/`).
# Reconstruction is scored on held-out data with posterior means: per-image PSNR on the held-out
# emoji at the training resolution and of 2× renders against the true 2× emoji; IoU at $p > 0.5$ on
# the uniform points of held-out shapes; each averaged over the seeds (± the standard deviation across
# seeds). Generation trains one latent diffusion model per row on the seed-0 VAE's latents and scores
# its samples: the Fréchet distance on the `FeatureNet` features of notebook 05 for images,
#
# $$\mathrm{FD} = \lVert\mu_r - \mu_g\rVert^2 + \operatorname{tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2}\big),$$
#
# beside its floor (training emoji against the held-out ones, the same number of images), and
# MMD / COV with the Chamfer distance for shapes. The sample counts are smaller than in notebooks
# 05–06 (see the preset table beside `AblationConfig` in `ddmi_lite/ablations.py`), so these scores
# are noisier and only comparable across rows of this table.

# %%
result = run_ablation(cfg, ckpt_dir=ckpt_dir, out_dir=out, device=device, progress=False)
display(Markdown(table_markdown(result.table)))
table_bars(result.table, out / "ablation_bars.png")  # every value axis starts at 0
display(Image(filename=str(out / "ablation_bars.png")))

# %% [markdown]
# ### Trained, not starved
#
# A row that is still climbing when training stops would be compared at an arbitrary point of its
# curve. Every image row records the held-out PSNR of the first emoji of the held-out set during
# training (left); the table's "last-20% gain" is what each row gained over the last fifth of its steps
# (mean over the seeds). The baseline's learning rate is its own: the sweep (right) trains it at each
# rate for the full length, and the lowest final *training* loss picks the rate, so the held-out data
# play no part in the choice.

# %%
image_rows = [e for e in result.table if e["domain"] == "image"]
if image_rows:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.0))
    for e in image_rows:
        for k, curve in enumerate(e["curves"]):
            steps_, vals = zip(*curve) if curve else ((), ())
            ax.plot(steps_, vals, "-o" if k == 0 else "--", ms=3, color=BAR_COLORS.get(e["row"]),
                    label=e["row"] if k == 0 else None)
    ax.axvline(0.8 * cfg.image.train.steps, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="training step", ylabel=f"held-out PSNR (dB, {cfg.n_curve} emoji)",
           title="image rows (seed 0 solid, other seeds dashed; last 20%: right of dotted line)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    sweeps = {e["domain"]: e["lr_sweep"] for e in result.table if "lr_sweep" in e}
    for dom, sw in sweeps.items():
        rel = [v / min(sw["losses"]) for v in sw["losses"]]  # 1 = the picked rate
        ax2.plot(sw["lrs"], rel, "-o", label=f"{dom} (best loss {min(sw['losses']):.4g})")
        ax2.plot([sw["best_lr"]], [1.0], "k*", ms=12)
    ax2.set(xscale="log", xlabel="baseline learning rate", ylabel="final training loss ÷ the lowest",
            title="baseline learning-rate sweep (★ picked)")
    lrs_all = sorted({lr for sw in sweeps.values() for lr in sw["lrs"]})
    ax2.set_xticks(lrs_all, [f"{lr:g}" for lr in lrs_all])
    ax2.minorticks_off()
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)
    plt.close(fig)
    display(Image(filename=str(out / "training_curves.png")))
    starved = [e["row"] for e in image_rows if not e["gain_last20"] < 0.3]
    lines = [f"`{e['row']}` {e['gain_last20']:+.2f} dB (seeds: " + ", ".join(f"{g:+.2f}" for g in e["gain_last20_seeds"])
             + ")" for e in image_rows]
    display(Markdown("Held-out PSNR gained over the last 20% of the steps: " + "; ".join(lines) + ". " + (
        "Every image row gained under 0.3 dB there: the curves have flattened, so the rows are compared near "
        "where their training ends up." if not starved else
        f"{', '.join(f'`{r}`' for r in starved)} still gained 0.3 dB or more over the last 20%: "
        "those rows are still learning, and a longer run could change their place in the table.")))
    for dom, sw in sweeps.items():
        held = sw.get("heldout")
        display(Markdown(f"{dom} baseline sweep: " + "; ".join(
            f"lr {lr:g}: loss {loss:.4g}" + (f", held-out PSNR {h:.2f} dB" if held else "")
            for lr, loss, h in zip(sw["lrs"], sw["losses"], held or sw["lrs"]))
            + f". Picked {sw['best_lr']:g}" + (" (an end of the swept range: a wider sweep could do better)"
                                               if sw["best_lr"] in (min(sw["lrs"]), max(sw["lrs"])) else "") + "."))

# %% [markdown]
# ### The weight-generation row, written out
#
# The baseline's forward pass on a coordinate $c \in [-1, 1]^2$ and a latent $z$:
#
# $$s(z) = W_s\,\mathrm{vec}(z) + b_s \in \mathbb{R}^{K\times H}, \qquad
# h_1 = \sin\bigl(\omega_0 (W_1 c + b_1) + s_1(z)\bigr), \quad
# h_k = \sin\bigl(\omega_0 (W_k h_{k-1} + b_k) + s_k(z)\bigr), \quad \hat\omega(c) = W_o h_K + b_o .$$
#
# The latent only shifts the phases of the sines; the network reads the raw coordinate, the same for
# every sample. Below, in plain torch with the trained seed-0 image model's weights, on four held-out
# emoji (posterior means), against the library's `render` of the same model.

# %%
if ("image", "weightgen") in result.models:
    wg = result.models[("image", "weightgen")]
    n, K, H, w0 = cfg.image.resolution, cfg.weightgen.n_layers, cfg.weightgen.hidden, cfg.weightgen.w0
    with torch.no_grad():
        z = wg.encode(to_model_range(result.data.test32[:4]).to(device)).mode()  # [B, z, h, w]
        p = torch.linspace(-(n - 1) / n, (n - 1) / n, n, device=device)  # pixel centres
        yy, xx = torch.meshgrid(p, p, indexing="ij")
        c = torch.stack([xx, yy], -1).reshape(1, n * n, 2)  # (x, y), row-major  [1, N, 2]
        s = (z.flatten(1) @ wg.decoder.linear.weight.T + wg.decoder.linear.bias).reshape(len(z), K, H)  # s(z)
        h = c.expand(len(z), -1, -1)
        for k, layer in enumerate(wg.readout.layers):
            h = torch.sin(w0 * (h @ layer.weight.T + layer.bias) + s[:, k, None])  # shifted sine layer  [B, N, H]
        plain = rearrange(h @ wg.readout.head.weight.T + wg.readout.head.bias, "b (y x) ch -> b ch y x", y=n)
        library = render(wg, wg.decode(z), n)
    torch.testing.assert_close(plain, library)
    print(f"s(z): {K} layers × {H} shifts from a latent of {z[0].numel()} numbers; ω₀ = {w0:g}; images "
          f"{tuple(plain.shape)} match the library (max |Δ| {(plain - library).abs().max().item():.1e})")

# %% [markdown]
# ## 2. What the table says about each claim
#
# A reconstruction gap counts only when it exceeds the spread between seeds; generation has one
# LDM per row, so its comparison has no error bar.

# %%
verdicts = claim_verdicts(result.table)
caveats = claim_caveats(result.table)
display(Markdown("\n".join(f"* {v}" for v in verdicts)
                 + ("\n\nWhat qualifies these verdicts:\n\n" + "\n".join(f"* {c}" for c in caveats) if caveats else "")))

# %% [markdown]
# Where a claim does not hold here, the verdicts above say so from the numbers; the setting was built
# so that it *could* hold (fields coarser than the image, trained rows, a tuned baseline), but it is
# still small: two image scales, 32² emoji, minutes of training, models of about 0.2 M parameters,
# against the paper's 256² images and days on GPUs. A claim that holds only at that scale cannot show
# here, and this notebook does not test that.
#
# **The shape baseline.** If the `weightgen` shape row's IoU is near zero, the cell below shows what it
# learned: the share of held-out query points it calls occupied against the true share, and how much
# that share changes from one shape to the next (if the shifts ignore the latent, every shape gets the
# same occupancy).

# %%
if ("shape", "weightgen") in result.models:
    wg_s = result.models[("shape", "weightgen")]
    idx = list(range(min(16, len(result.data.shape_test))))
    logits_s, true_occ = uniform_point_logits(wg_s, result.data.shape_test, idx, n_surface=cfg.shape.n_surface,
                                              surface_noise=cfg.shape.surface_noise, progress=False)
    prob, true_occ = torch.sigmoid(logits_s).cpu(), true_occ.float()  # [S, U] at the uniform points
    frac_pred, frac_true = (prob > 0.5).float().mean().item(), true_occ.mean().item()
    per_shape_pred, per_shape_true = (prob > 0.5).float().mean(1), true_occ.mean(1)  # [S] occupied share per shape
    across, across_true = per_shape_pred.std().item(), per_shape_true.std().item()
    print(f"shape baseline on {len(idx)} held-out shapes: predicted occupied {frac_pred:.1%} of uniform points, true "
          f"{frac_true:.1%}; mean probability {prob.mean():.3f}; the occupied share varies across shapes by "
          f"{across:.3f} (std; true {across_true:.3f})")
    iou_wg = next(e["recon_mean"] for e in result.table if e["domain"] == "shape" and e["row"] == "weightgen")
    display(Markdown(
        f"Held-out IoU {iou_wg:.3f}. " + (
            f"It calls {frac_pred:.1%} of the points occupied where {frac_true:.1%} are: the all-empty answer, which "
            f"the BCE loss rewards when most query points are empty; its occupied share varies across shapes by "
            f"{across:.3f} (std) where the truth varies by {across_true:.3f}." if frac_pred < 0.25 * frac_true else
            f"It calls {frac_pred:.1%} of the points occupied where {frac_true:.1%} are, and its occupied share "
            f"varies across shapes by {across:.3f} (std; truth {across_true:.3f}): it has left the all-empty answer.")))

# %%
images = torch.cat([result.samples[("image", r)][:8] for r in cfg.rows if ("image", r) in result.samples])
if len(images):
    image_grid(torch.cat([result.data.test32[:8], images]), out / "image_samples.png", ncols=8,
               title="held-out emoji, then LDM samples, one row per variant: " + ", ".join(r for r in cfg.rows))
    display(Image(filename=str(out / "image_samples.png")))
    print("image FD in units of its floor (training vs held-out emoji): " + ", ".join(
        f"{e['row']} {e['fd'] / e['fd_floor']:.1f}×" for e in result.table if e["domain"] == "image"))
if "shape" in cfg.domains:
    k = min(4, *(len(result.samples[("shape", r)]) for r in cfg.rows))
    meshes = [m for r in cfg.rows for m in result.samples[("shape", r)][:k]]
    render_meshes_grid(meshes, out / "shape_samples.png", ncols=k, size=96 if PROFILE == "smoke" else 128,
                       titles=[r for r in cfg.rows for _ in range(k)])
    display(Image(filename=str(out / "shape_samples.png")))

# %% [markdown]
# Read the sample rows against the held-out emoji in the first row, and the FD of each row against
# its floor (printed above). Each row's LDM is small and short (the step count printed at the top),
# so its samples may be colour blobs rather than emoji; where they are, every row sits many floors
# away from the data, the FD gaps rank sample sets that are all far from it, and the generation
# verdicts of section 2 say more about how easily each row's latents are modelled than about the
# readouts' quality. For shapes, meshes that fill the whole box or break into many small pieces are
# failures of that row's decoder or of its LDM; a row that the caveats above name as not having
# learned the shapes cannot produce shapes from its latents either, whatever its LDM does.

# %% [markdown]
# ## 3. Inside the trained image models
#
# The panel below renders the seed-0 image models: choose the variant, untick a scale to zero its
# embedding $p^l(c)$ at render time (the readout is not retrained, so this shows what the scale
# carries), drag the render resolution, and step through a DDIM trajectory of that row's LDM
# (the callback's $\hat x_0$ at each step). Each control has a static figure below it, saved
# next to the notebook's metrics.

# %%
models = {r: result.models[("image", r)] for r in cfg.rows if ("image", r) in result.models}
x = to_model_range(result.data.test32[:1]).to(device)
latents = {r: m.encode(x).mode()[0].detach() for r, m in models.items()}
frames = {r: trajectory_frames(models[r], result.ldms[("image", r)], steps=cfg.image_ldm.sample_steps, seed=SEED)
          for r in models}
panel = ablation_panel(models, latents, frames)
panel

# %%
scale_mask_grid(models, latents, out / "scale_masks.png", target=result.data.test32[0])
resolution_grid(models, latents, out / "resolutions.png")
trajectory_grid(frames, out / "trajectory.png")
for name in ("scale_masks", "resolutions", "trajectory"):
    display(Image(filename=str(out / f"{name}.png")))

# %% [markdown]
# The same question in numbers: the held-out PSNR of each HDBF row when one scale's embedding is
# zeroed at render time. A large drop means the readout relies on that scale. If CFC splits the
# work coarse → fine as intended, its drop without the coarse scale should be large and its drop
# without the fine scale should cost detail only; `concat` and `sum` mix every scale in the first
# layer, so there is no reason for such an ordering there. The numbers, not this expectation,
# are what the run shows. (None of these rows was trained on multi-scale targets, `multiscale=False`;
# the 2× column of the table scores how well they interpolate.)

# %%
n_mask = min(cfg.n_psnr, 128)
mask_psnr = {r: masked_psnr(m, result.data.test32[:n_mask]) for r, m in models.items() if r != "weightgen"}
cols = list(dict.fromkeys(k for v in mask_psnr.values() for k in v))  # all, then each scale off
lines = ["| row | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
for r, v in mask_psnr.items():
    lines.append(f"| {r} | " + " | ".join(f"{v[k]:.2f}" if k in v else "—" for k in cols) + " |")
display(Markdown(f"Held-out PSNR (dB, {n_mask} emoji) with one scale switched off:\n\n" + "\n".join(lines)))
costliest = {r: min((k for k in v if k != "all"), key=v.get) for r, v in mask_psnr.items() if len(v) > 1}
if costliest:
    display(Markdown("The scale whose removal costs the most, per row: " + "; ".join(
        f"`{r}` {k.replace('no_', '')} ({mask_psnr[r][k] - mask_psnr[r]['all']:+.2f} dB)" for r, k in costliest.items())
        + "."))

# %% [markdown]
# Read the numbers with `scale_masks.png` above. In the `cpu` run every two-scale row splits the work
# the same way: without the coarse field the outlines stay but the colours shift (olive or brown
# where the emoji is black and white), without the fine field only a blurred blob of the right
# colours remains. The coarse field carries colour and layout, the fine one the edges, whichever
# readout combines them; CFC's renders show no split that `concat` and `sum` lack.

# %%
mask_metrics = {f"psnr_{k}_{r}": v for r, d in mask_psnr.items() for k, v in d.items() if k != "all"}
metrics = {**result.metrics, **mask_metrics, "n_psnr": min(cfg.n_psnr, len(result.data.test32))
           if result.data.test32 is not None else 0, "n_fd": cfg.n_fd, "n_metric": cfg.n_metric,
           "wall_s": time.time() - t_start}
write_metrics(out, metrics, trained=result.trained, profile=PROFILE, device=str(device))
plt.close("all")
metrics

# %% [markdown]
# ## Recap
#
# * Five readouts over one encoder and one latent size per domain — a Functa-style shift-modulated
#   SIREN (weight generation), a single field, HDBF with all scales at the input, summed, and with
#   CFC — with parameter counts within 10% of each other, trained with the same loop, steps, batch
#   and seeds on images and shapes; the baseline with its own learning rate from a sweep on the
#   training loss. The table (`ablation.json`, `ablation.csv`) gives parameters, training time,
#   held-out reconstruction (mean ± std over seeds), 2× renders against the true 2× emoji, the PSNR
#   gained over the last 20% of the steps, and the generation scores of an LDM trained on each row's
#   latents, with the FD floor.
# * The image fields are coarser than the image (the finest at half its resolution), as the
#   reference's are at its largest targets, so a single field cannot store one value per pixel.
# * The baseline's forward pass (sine layers whose phases are shifted by $s(z) = W_s\,\mathrm{vec}(z) + b_s$)
#   was written out in plain torch and matched the library.
# * Section 2 states, from this run's numbers and with the seeds' spread, which of DDMI's claims (a)–(c)
#   hold at this scale, and lists what qualifies them; `training_curves.png` shows that the rows were
#   trained to where their held-out curves flatten (or says which were not).
# * Switching scales off at render time, changing the render resolution and stepping through the
#   denoising trajectory are available live in the panel and frozen in `scale_masks.png`,
#   `resolutions.png` and `trajectory.png`.
