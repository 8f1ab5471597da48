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
# # 03 · The image D2C-VAE: from pixels to a continuous image
#
# The **discrete-to-continuous VAE** connects a discrete image $x$ (32×32 pixels) to a continuous
# function. The encoder gives a Gaussian posterior over a grid latent,
# $q_\phi(z\mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$; the decoder maps a latent to
# basis fields $\Xi = D_\psi(z)$ at 8², 16² and 32²; the shared CFC readout renders
# $\hat\omega(c) = \pi_\theta(\gamma(c;\Xi^1), \gamma(c;\Xi^2), \gamma(c;\Xi^3))$ at any coordinate.
# Training **minimises** the loss
#
# $$\mathcal L = \sum_c \big|\hat\omega(c) - \omega(c)\big| + \beta(t)\,\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,\mathcal N(0, I)\big),$$
#
# with the reconstruction summed over the pixels of the target and β annealed linearly to a small
# maximum. It has the shape of a negative ELBO, but with an L1 reconstruction (not the
# log-likelihood of a normalised decoder distribution) and a KL weight far below 1 it is not an
# ELBO: it is a reconstruction loss with a light pull of the posterior towards $\mathcal N(0, I)$.
# The target is not always the 32² input: with the probabilities in `cfg.multiscale_probs`
# (printed below; 0.6 / 0.2 / 0.2 in every preset) it is the full 32² grid, a 32² crop of the same
# emoji at 48², or a 32² crop of it at 64², read at the matching coordinates and with the render
# scale $s$ given to the readout. This is what teaches the model what the image looks like
# *between* its pixels.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite import fields as F
from ddmi_lite.domains.image import (build_image_vae, build_pyramid, image_splits, image_vae_config,
                                     load_or_train_image_vae, make_batch, reconstruct, render, to_model_range,
                                     to_unit_range)
from ddmi_lite.io import tensor_digest
from ddmi_lite.metrics import psnr
from ddmi_lite.notebook import start_notebook, write_answers, write_metrics
from ddmi_lite.vae import count_parameters, kl_weight

# %% [markdown]
# `DATA_DIR` empty trains on the bundled emoji. Set it to a folder of your own `.png` / `.jpg` /
# `.webp` images (subfolders allowed, read recursively and only read) to train and evaluate on
# those instead: every 10th image in sorted path order is held out, the rest train.

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""
DATA_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("03_d2c_vae", PROFILE, DEVICE, SEED, OUT_DIR)
ckpt = ckpt_dir / "image_vae"
cfg = image_vae_config(PROFILE)
print(cfg)
print("multi-scale target probabilities (full 32² grid, 48² crop, 64² crop):", cfg.multiscale_probs)
images = image_splits(DATA_DIR, sorted({cfg.resolution, 32, 48, 64}))  # {"train": {size: [N,3,s,s]}, "test": {…}}
data_id = tensor_digest(*images["train"].values()) if DATA_DIR else None  # names the data in the checkpoint
print(f"data: {DATA_DIR or 'bundled emoji'} ({len(images['train'][cfg.resolution])} training, "
      f"{len(images['test'][cfg.resolution])} held-out images)")

# %% [markdown]
# ## 0. The shapes, data to pixels
#
# The tensors of one forward pass under this profile's architecture, printed from a freshly built
# model of the same config (the shapes do not depend on the weights). $B$ is the batch; the
# readout is queried at $N$ coordinates per image.

# %%
with torch.no_grad():
    shape_model = build_image_vae(cfg).eval()
    x_demo = to_model_range(images["train"][cfg.resolution][:2])
    post_demo = shape_model.encode(x_demo)
    fields_demo = shape_model.decode(post_demo.mode())
    coords_demo = F.image_coords(cfg.resolution)[None].expand(2, -1, -1)
    pes_demo = F.query_fields(fields_demo, coords_demo, "plane")
    out_demo = shape_model.query(fields_demo, coords_demo, scale=torch.ones(2))
chain = [("image x", x_demo.shape), ("encoder → (μ, log σ²)", (2, 2 * cfg.net.z_channels, *post_demo.mean.shape[2:])),
         ("latent z = μ + σ·ε", post_demo.mean.shape)]
chain += [(f"decoder → basis field Ξ^{l + 1}  [B, planes, C_pe, h, w]", f.shape) for l, f in enumerate(fields_demo)]
chain += [(f"bilinear query → p^{l + 1}(c)  [B, N, C_pe]", p.shape) for l, p in enumerate(pes_demo)]
chain += [("CFC readout → colour ω̂(c)  [B, N, 3]", out_demo.shape),
          ("reshaped to pixels", (2, 3, cfg.resolution, cfg.resolution))]
for i, (what, shape) in enumerate(chain):
    print(("      ↓\n" if i else "") + f"  {str(tuple(shape)):<22} {what}")
parts = {"encoder": shape_model.encoder, "decoder": shape_model.decoder, "readout": shape_model.readout}
n_params = {k: count_parameters(m) for k, m in parts.items()}
print("parameters per part: " + ", ".join(f"{k} {v:,}" for k, v in n_params.items()))
latent_shape = tuple(post_demo.mean.shape[1:])
field_sizes = [f.shape[-1] for f in fields_demo]

# %% [markdown]
# ## 1. Train (or reuse the checkpoint of an earlier run of this profile)

# %%
vae, result = load_or_train_image_vae(cfg, ckpt_path=ckpt, device=device, seed=SEED, train=images["train"],
                                      data_id=data_id)
print(result.summary(ckpt))
print(f"parameters: {count_parameters(vae):,}; latent per image: {'×'.join(map(str, latent_shape))}")

hist = result.history
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot([h["step"] for h in hist], [h["rec"] for h in hist]); axes[0].set_yscale("log")
axes[0].set_title("reconstruction (L1 summed over pixels)"); axes[0].set_xlabel("step")
axes[1].plot([h["step"] for h in hist], [h["kl"] for h in hist]); axes[1].set_title("KL (nats per image)")
axes[1].set_xlabel("step")
fig.tight_layout(); fig.savefig(out / "training.png", dpi=120); plt.show()

# %% [markdown]
# ## 1b. One training batch: which pixels are the targets
#
# A batch is drawn exactly as training draws it (`make_batch`). Each example's encoder input is
# the 32² emoji; its target is a 32×32 block of pixel centres, either the whole 32² grid
# ($s = 1$) or a random crop of the 48² ($s = 2/3$) or 64² ($s = 1/2$) rendering of the same emoji.
# (The batch here skips training's random mirroring, so the 64² image shown is the one that was
# cropped.) Below, the target coordinates of one example per scale are drawn over the 64² image: a crop at 64²
# covers a quarter of the picture at twice the pixel density.

# %%
train_pyramid = build_pyramid(images["train"][cfg.resolution], images["train"][48], images["train"][64])
batch_gen = torch.Generator().manual_seed(SEED)
batch_index = torch.randint(0, len(train_pyramid[32]), (256,), generator=batch_gen)
batch = make_batch(train_pyramid, batch_index, batch_gen,
                   resolution=cfg.resolution, multiscale=cfg.multiscale, probs=cfg.multiscale_probs, hflip=False)
levels, counts = torch.unique(batch.scale, return_counts=True)
print("render scale s_i of this batch of 256: " +
      ", ".join(f"s = {s:.3f} ({c / 256:.0%})" for s, c in zip(levels.tolist(), counts.tolist())))
picks = [int((batch.scale == s).nonzero()[0]) for s in levels.flip(0)]  # one example per scale, s = 1 first
fig, axes = plt.subplots(2, len(picks), figsize=(3.2 * len(picks), 6.2), squeeze=False)
for c, i in enumerate(picks):
    axes[0, c].imshow(train_pyramid[64][batch_index[i]].permute(1, 2, 0), extent=(-1, 1, 1, -1))  # x right, y down
    xy = batch.coords[i]
    axes[0, c].scatter(xy[:, 0], xy[:, 1], s=0.6, c="k")
    axes[0, c].set_title(f"example {i}: s = {float(batch.scale[i]):.3f}\n32² target coordinates over 64²", fontsize=9)
    axes[1, c].imshow(to_unit_range(batch.target[i]).reshape(32, 32, 3)); axes[1, c].set_title("its 32² target", fontsize=9)
    axes[1, c].axis("off")
fig.tight_layout(); fig.savefig(out / "crop_batch.png", dpi=120); plt.show()

# %% [markdown]
# ## 1c. The loss, line by line
#
# Three lines carry the VAE: the **reparameterisation** $z = \mu + \sigma\,\epsilon$ with
# $\sigma = e^{\frac12 \log\sigma^2}$ (so gradients reach μ and σ through a fixed draw ε), the
# closed-form **KL** of a diagonal Gaussian to $\mathcal N(0, I)$,
#
# $$\mathrm{KL} = \tfrac12 \sum_{c,h,w} \big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big),$$
#
# summed over the latent and averaged over the batch, and the **summed loss**, the L1 error summed
# over each example's 32² × 3 target values plus β times the KL. Written out on the trained
# model and the batch above (first 32 examples), with one fixed ε, then checked against
# `D2CVAE.loss` on the same batch and the same ε.

# %%
xb, cb, tb, sb = (v[:32].to(device) for v in batch)
beta = kl_weight(cfg.train.steps, cfg.train.steps, beta_max=cfg.beta_max)  # β at the end of training
with torch.no_grad():
    moments = vae.encoder(xb)                                  # [B, 2z, h, w]
    mu, logvar = moments.chunk(2, dim=1)
    logvar = logvar.clamp(-30.0, 20.0)                         # the reference's clamp
    sigma = torch.exp(0.5 * logvar)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(7)).to(device)
    z = mu + sigma * eps                                       # reparameterisation
    kl = 0.5 * (mu**2 + sigma**2 - 1.0 - logvar).flatten(1).sum(1).mean()
    pred = vae.query(vae.decode(z), cb, scale=sb)              # [B, 32², 3]
    rec_sum = (pred - tb).abs().flatten(1).sum(1).mean()           # L1 summed per example
    loss = rec_sum + beta * kl

    post = vae.encode(xb)
    torch.testing.assert_close(z, post.sample(torch.Generator().manual_seed(7)))
    torch.testing.assert_close(kl, post.kl().mean())
    lib_loss, logs = vae.loss(xb, cb, tb, beta=beta, scale=sb, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loss, lib_loss)
print(f"β = {beta:.1e}; L1 summed = {rec_sum:.1f}, KL = {kl:.1f} nats, β·KL = {beta * kl:.3f}, loss = {loss:.2f} "
      f"(library {lib_loss:.2f}): the reconstruction term is {rec_sum / (beta * kl):.0f}× the weighted KL")

# %% [markdown]
# > **Paper vs this repo.** *Paper (official code):* AFHQv2 and CelebA-HQ at 256² (targets cropped
# > from 384² and 512² renderings with probabilities 0.3 / 0.3 / 0.4); an LDM-style conv encoder
# > (128 base channels, ch_mult [1, 2, 4], mid self-attention) to a 64×64×64 latent; a conv decoder
# > whose 1×1 heads and final conv give basis fields of 64 channels at 64², 128² and 256²; a
# > StyleGAN2-style readout of modulated 1×1 convs (width 256) with weight demodulation, per-pixel
# > noise injection and a style vector from the render scale; loss = L1 summed over 3×256² +
# > LPIPS-VGG + β·KL with β annealed to 0.5 + an NVAE spectral-norm regulariser, then (AFHQ) a
# > fine-tuning stage with a PatchGAN hinge loss; evaluated by rFID.
# > *Here:* 32² emoji with targets from 48² and 64² renderings, drawn 0.6 / 0.2 / 0.2 (more weight on
# > the training resolution suits a minutes-long run); a smaller encoder/decoder of the same
# > layout giving the latent and fields printed in §0; a residual MLP readout (ConvONet-style
# > blocks, FiLM by a sinusoidal embedding of $\log_2 s$ plus two constant scale channels) with no
# > modulated convs and no noise injection, so rendering is deterministic; loss = L1 summed + β·KL
# > with β annealed to `cfg.beta_max` (1e-3, with sums over ~3,000 target values instead of
# > ~200,000); no LPIPS (it needs pretrained VGG weights and would dominate the cost at this size),
# > no spectral regulariser (training stayed finite without it) and no adversarial stage; evaluated
# > by PSNR on held-out emoji and against the true 64² images.

# %% [markdown]
# ## 2. Held-out reconstructions
#
# Reconstructions use the posterior mean and are rendered on the 32² pixel-centre grid. PSNR is
# computed per image on values in [0, 1] and averaged.

# %%
test32, test64 = images["test"][32], images["test"][64]
train32 = images["train"][32]
n_eval = min({"smoke": 64}.get(PROFILE, len(test32)), len(test32))
show = torch.randperm(n_eval, generator=torch.Generator().manual_seed(SEED))[:12]  # images shown in figures
show = show[torch.arange(12) % len(show)]  # a small held-out set repeats its images
rec = reconstruct(vae, test32[:n_eval])
psnr_heldout = psnr(rec, test32[:n_eval]).mean().item()
psnr_train = psnr(reconstruct(vae, train32[:n_eval]), train32[:n_eval]).mean().item()
print(f"PSNR held-out {psnr_heldout:.2f} dB on {n_eval} images; train {psnr_train:.2f} dB")

k = 10
fig, axes = plt.subplots(2, k, figsize=(1.4 * k, 3))
for i in range(k):
    j = show[i]
    axes[0, i].imshow(test32[j].permute(1, 2, 0)); axes[1, i].imshow(rec[j].permute(1, 2, 0))
for a in axes.flat: a.axis("off")
axes[0, 0].set_title("held-out", loc="left", fontsize=9); axes[1, 0].set_title("reconstruction", loc="left", fontsize=9)
fig.tight_layout(); fig.savefig(out / "reconstructions.png", dpi=120); plt.show()

# %% [markdown]
# Blur, wrong colours or missing small features in the bottom row are the reconstruction error
# that the PSNR above averages; the gap between the train and held-out PSNR is the
# generalisation gap of this run.
#
# ## 3. One latent, any resolution
#
# The same basis fields are rendered at 1×, 2× and 4× the training resolution. Only the
# coordinate grid changes, and the render scale $s = 32/N$ is given to the readout (clamped to the
# trained range [½, 1]). At 64² we can measure it: the emoji data also holds each held-out image at
# 64², so we compare the 2× render with the true 64² image, next to bicubic upsampling of the 32²
# input as a baseline.

# %%
with torch.no_grad():
    hdbf = vae.decode(vae.encode(to_model_range(test32[:n_eval].to(device))).mode())
    renders = {n: to_unit_range(render(vae, [f[show[:3]] for f in hdbf], n)).cpu() for n in (32, 64, 128)}
    up2 = torch.cat([to_unit_range(render(vae, [f[i:i + 64] for f in hdbf], 64)).cpu()
                     for i in range(0, n_eval, 64)])
bicubic = torch.nn.functional.interpolate(test32[:n_eval], size=64, mode="bicubic", align_corners=False).clamp(0, 1)
psnr_2x = psnr(up2, test64[:n_eval]).mean().item()
psnr_2x_bicubic = psnr(bicubic, test64[:n_eval]).mean().item()
print(f"2× render vs true 64²: {psnr_2x:.2f} dB   (bicubic upsampling of the input: {psnr_2x_bicubic:.2f} dB): "
      f"the render is {'above' if psnr_2x > psnr_2x_bicubic else 'below'} bicubic by {abs(psnr_2x - psnr_2x_bicubic):.2f} dB")

fig, axes = plt.subplots(3, 4, figsize=(10, 7.5))
for r in range(3):
    axes[r, 0].imshow(test32[show[r]].permute(1, 2, 0), interpolation="nearest")
    for c, n in enumerate((32, 64, 128), start=1):
        axes[r, c].imshow(renders[n][r].permute(1, 2, 0), interpolation="nearest")
        if r == 0: axes[r, c].set_title(f"render {n}²")
axes[0, 0].set_title("input 32²")
for a in axes.flat: a.axis("off")
fig.tight_layout(); fig.savefig(out / "multires.png", dpi=120); plt.show()

# %% [markdown]
# The 128² column is rendered at $s = 1/2$, the smallest scale seen in training (4× is outside the
# trained range, so the readout gets the clamped value): sharper edges there than in the 32²
# input come from the continuous fields, while blur or ringing is the model's error, not detail
# it recovered.
#
# ## Q1: D2C-VAE
#
# The D2C-VAE has four parts: an **encoder** (discrete pixels → a Gaussian over a grid latent),
# the **reparameterised latent** $z$, a **decoder** (latent → multi-scale basis fields, still
# discrete grids, but of features rather than colours) and the shared **readout** (the embeddings
# bilinearly interpolated at any continuous coordinate → colour). The step from discrete to
# continuous is the bilinear query: it defines the fields at every $c \in [-1, 1]^2$, and the
# multi-scale targets train the readout at coordinates between the 32² pixel centres. The numbers
# of this run are printed below and written to the answers.

# %%
q1 = (f"The encoder ({n_params['encoder']:,} parameters) maps a 32² image to a Gaussian latent of shape "
      f"{'×'.join(map(str, latent_shape))}; the decoder ({n_params['decoder']:,}) turns z into basis fields at "
      f"{'², '.join(map(str, field_sizes))}², which are bilinearly interpolated at any continuous coordinate and read "
      f"out by the shared CFC MLP ({n_params['readout']:,}); in this run held-out reconstructions reach "
      f"{psnr_heldout:.2f} dB PSNR at 32², and a render at 2× reaches {psnr_2x:.2f} dB against the true 64² image "
      f"(bicubic upsampling of the input: {psnr_2x_bicubic:.2f} dB).")
print(q1)

# %% [markdown]
# ## 4. The learned basis fields
#
# Each field's channels projected on their three principal components (colour = PCA of the
# feature vectors, per field). What each scale contributes to the image is measured in Q9 below.

# %%
fig, axes = plt.subplots(3, 4, figsize=(10, 7.5))
for r in range(3):
    axes[r, 0].imshow(test32[show[r]].permute(1, 2, 0))
    for l, f in enumerate(hdbf):
        axes[r, l + 1].imshow(F.fields_to_rgb(f[show[r], 0].cpu()), interpolation="nearest")
        if r == 0: axes[r, l + 1].set_title(f"Ξ^{l + 1} ({f.shape[-1]}²)")
for a in axes.flat: a.axis("off")
fig.tight_layout(); fig.savefig(out / "fields_trained.png", dpi=120); plt.show()

# %% [markdown]
# ## Q9: what the scales show
#
# To see what each scale carries, we render with **one scale at a time**: the embeddings of the
# other two are set to zero before the readout (`scale_mask`), and the image is rendered at 32².
# Because the readout is nonlinear, a single-scale render is what the shared MLP makes of that
# scale alone, not an additive component of the full image. For each render we compute the
# **radially averaged power spectrum**: the squared magnitude of the 2D Fourier transform (mean
# colour removed, the three channels summed), averaged over rings of equal spatial frequency
# $|f| = \sqrt{f_x^2 + f_y^2}$ in cycles per pixel, whose Nyquist limit is 0.5. As one number per
# scale, the fraction of the (non-DC) spectral energy above half-Nyquist, $|f| > 0.25$:
#
# $$h = \frac{\sum_{|f| > 0.25} |\hat x(f)|^2}{\sum_{f \ne 0} |\hat x(f)|^2}.$$

# %%
def radial_spectrum(images: torch.Tensor, n_bins: int = 16):
    """Radially averaged power [n_bins] over |f| in [0, 0.5√2] and the energy fraction above |f| = 0.25."""
    x = images - images.mean(dim=(-2, -1), keepdim=True)        # remove the mean colour (DC)
    power = torch.fft.fft2(x).abs().pow(2).sum(1).mean(0)        # [H, W], channels summed, batch mean
    fy, fx = torch.meshgrid(torch.fft.fftfreq(x.shape[-2]), torch.fft.fftfreq(x.shape[-1]), indexing="ij")
    radius = (fx**2 + fy**2).sqrt()
    bins = (radius / radius.max() * (n_bins - 1e-6)).long()
    profile = torch.zeros(n_bins).index_add_(0, bins.flatten(), power.flatten())
    profile /= torch.bincount(bins.flatten(), minlength=n_bins).clamp_min(1)
    high = float(power[radius > 0.25].sum() / power[radius > 0].sum().clamp_min(1e-12))
    return radius.max() * (torch.arange(n_bins) + 0.5) / n_bins, profile, high


n_q9 = min(n_eval, 256)
n_scales = len(hdbf)
with torch.no_grad():
    fields_q9 = [f[:n_q9] for f in hdbf]
    single = [to_unit_range(render(vae, fields_q9, 32, scale_mask=[float(i == l) for i in range(n_scales)])).cpu()
              for l in range(n_scales)]
    full_q9 = to_unit_range(render(vae, fields_q9, 32)).cpu()
spectra = {f"Ξ^{l + 1} only ({field_sizes[l]}²)": radial_spectrum(img) for l, img in enumerate(single)}
spectra["all scales"] = radial_spectrum(full_q9)
spectra["data (32² input)"] = radial_spectrum(test32[:n_q9])
high_frac = [spectra[k][2] for k in list(spectra)[:n_scales]]
psnr_single = [psnr(img, test32[:n_q9]).mean().item() for img in single]
for name, (_, _, h) in spectra.items():
    print(f"{name:<22} energy above half-Nyquist {h:6.1%}")

fig = plt.figure(figsize=(14, 4.2))
grid = fig.add_gridspec(3, n_scales + 4)
for r in range(3):  # the first three held-out emoji of the spectra's set
    ax = fig.add_subplot(grid[r, 0]); ax.imshow(test32[r].permute(1, 2, 0)); ax.axis("off")
    if r == 0: ax.set_title("input", fontsize=9)
    for l in range(n_scales):
        ax = fig.add_subplot(grid[r, l + 1]); ax.imshow(single[l][r].permute(1, 2, 0)); ax.axis("off")
        if r == 0: ax.set_title(f"Ξ^{l + 1} only", fontsize=9)
    ax = fig.add_subplot(grid[r, n_scales + 1]); ax.imshow(full_q9[r].permute(1, 2, 0)); ax.axis("off")
    if r == 0: ax.set_title("all scales", fontsize=9)
ax = fig.add_subplot(grid[:, n_scales + 2:])
for name, (freq, profile, h) in spectra.items():
    style = "--" if name.startswith(("all", "data")) else "-"
    ax.plot(freq, profile, style, label=f"{name}: {h:.1%} above 0.25")
ax.axvline(0.25, color="gray", lw=0.8); ax.axvline(0.5, color="gray", lw=0.8, ls=":")
ax.set_yscale("log"); ax.set_xlabel("spatial frequency |f| (cycles / pixel)"); ax.set_ylabel("power")
ax.set_title("radially averaged power spectrum (32² renders)", fontsize=9); ax.legend(fontsize=7)
fig.tight_layout(); fig.savefig(out / "scales_spectrum.png", dpi=120); plt.show()

order = sorted(range(n_scales), key=lambda l: high_frac[l])
monotone = order == list(range(n_scales))
q9 = (f"Rendering one scale at a time, the share of spectral energy above half-Nyquist is "
      + ", ".join(f"{h:.1%} for Ξ^{l + 1} ({field_sizes[l]}²)" for l, h in enumerate(high_frac))
      + f" (all scales {spectra['all scales'][2]:.1%}, the data {spectra['data (32² input)'][2]:.1%}): "
      + ("it rises from coarse to fine, so in this run the coarse field carries the lower frequencies "
         "and the finer fields the higher ones."
         if monotone else
         f"it does not rise from coarse to fine in this run (the order from least to most high-frequency is "
         f"{', '.join(f'Ξ^{l + 1}' for l in order)}), so the scales did not separate cleanly into frequency bands.")
      + f" Alone, each scale reconstructs the input at "
      + ", ".join(f"{p:.1f} dB" for p in psnr_single) + " (coarse → fine).")
print(q9)

# %% [markdown]
# Read the figure with the numbers: a scale whose single-scale render is a smooth blob of the
# right colours and whose spectrum falls fastest carries the low band; one that shows outlines and
# keeps more power past 0.25 cycles/pixel carries the high band. A single-scale render that is
# flat grey or noisy means the readout relies on the other scales to make sense of it; the
# printed PSNR of each single-scale render says how much of the image one scale alone explains.
#
# ## 5. Latent interpolation
#
# Linear interpolation between the posterior means of two held-out emoji, decoded to fields and
# rendered at 64²: every point on the line decodes to basis fields and so to a continuous image;
# whether the intermediate images are plausible emoji is what the figure shows.

# %%
pairs = [(0, 1), (2, 3), (4, 5)]
alphas = torch.linspace(0, 1, 7)
with torch.no_grad():
    mu = vae.encode(to_model_range(test32[show[6:12]].to(device))).mode()
    rows = []
    for a, b in pairs:
        z = torch.stack([(1 - t) * mu[a] + t * mu[b] for t in alphas])
        rows.append(to_unit_range(render(vae, vae.decode(z), 64)).cpu())
fig, axes = plt.subplots(len(pairs), len(alphas), figsize=(1.5 * len(alphas), 1.6 * len(pairs)))
for r, row in enumerate(rows):
    for c in range(len(alphas)):
        axes[r, c].imshow(row[c].permute(1, 2, 0)); axes[r, c].axis("off")
fig.tight_layout(); fig.savefig(out / "interpolation.png", dpi=120); plt.show()

# %%
metrics = {
    "psnr_heldout": psnr_heldout,
    "psnr_train": psnr_train,
    "psnr_2x_heldout": psnr_2x,
    "psnr_2x_bicubic": psnr_2x_bicubic,
    "params_encoder": n_params["encoder"],
    "params_decoder": n_params["decoder"],
    "params_readout": n_params["readout"],
    "latent_numel": int(np.prod(latent_shape)),
    **{f"high_freq_fraction_scale{l + 1}": h for l, h in enumerate(high_frac)},
    "high_freq_fraction_all": spectra["all scales"][2],
    "high_freq_fraction_data": spectra["data (32² input)"][2],
    **{f"psnr_scale{l + 1}_only": p for l, p in enumerate(psnr_single)},
    "loss_rec_batch": float(rec_sum),
    "loss_kl_batch": float(kl),
    "train_s": result.total_time_s,
    "train_steps": result.steps_done,
    "params": count_parameters(vae),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[result], profile=PROFILE, device=str(device))
write_answers(out, {"Q1": q1, "Q9": q9})
metrics

# %% [markdown]
# ## Recap
#
# * The D2C-VAE encodes a 32² emoji into a small Gaussian grid latent and decodes it into three
#   basis fields; the shared CFC readout turns them into colour at any coordinate (shapes in §0).
# * The loss, written out and checked against the library: L1 summed over the target pixels plus
#   an annealed, small-weight KL — minimised, and not an ELBO.
# * Training targets are the full 32² grid or 32² crops of the 48² and 64² renderings, drawn with
#   probabilities 0.6 / 0.2 / 0.2 and with the render scale given to the readout; so one latent
#   renders at 1×, 2× and 4×, and at 2× the printed PSNR compares it with the true 64² image and
#   with bicubic upsampling.
# * Q9 renders one scale at a time and measures each one's high-frequency share; whether the
#   scales split into frequency bands in this run is printed there, with the numbers.
# * The interpolation figure shows what lies between two latents — the latent space the
#   diffusion model of notebook 04 learns.
