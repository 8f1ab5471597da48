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
# Training maximises the ELBO
#
# $$\mathcal L = \sum_c \big|\hat\omega(c) - \omega(c)\big| + \beta(t)\,\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,\mathcal N(0, I)\big),$$
#
# with the reconstruction summed over the pixels of the target and β annealed linearly. The
# target is not always the 32² input: a third of the time it is a 32² crop of the same emoji at
# 48² or 64², read at the matching coordinates and with the render scale $s$ given to the readout.
# This is what teaches the model what the image looks like *between* its pixels.

# %%
import time

import matplotlib.pyplot as plt
import torch

from ddmi_lite import fields as F
from ddmi_lite.data import load_emoji
from ddmi_lite.domains.image import (image_vae_config, load_or_train_image_vae, reconstruct, render, to_model_range,
                                     to_unit_range)
from ddmi_lite.metrics import psnr
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("03_d2c_vae", PROFILE, DEVICE, SEED, OUT_DIR)
ckpt = ckpt_dir / "image_vae"
cfg = image_vae_config(PROFILE)
print(cfg)

# %% [markdown]
# ## 1. Train (or reuse the checkpoint of an earlier run of this profile)

# %%
vae, result = load_or_train_image_vae(cfg, ckpt_path=ckpt, device=device, seed=SEED)
print(result.summary(ckpt))
print(f"parameters: {count_parameters(vae):,}; latent per image: {cfg.net.z_channels}×8×8")

hist = result.history
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot([h["step"] for h in hist], [h["rec"] for h in hist]); axes[0].set_yscale("log")
axes[0].set_title("reconstruction (L1 summed over pixels)"); axes[0].set_xlabel("step")
axes[1].plot([h["step"] for h in hist], [h["kl"] for h in hist]); axes[1].set_title("KL (nats per image)")
axes[1].set_xlabel("step")
fig.tight_layout(); fig.savefig(out / "training.png", dpi=120); plt.show()

# %% [markdown]
# ## 2. Held-out reconstructions
#
# Reconstructions use the posterior mean and are rendered on the 32² pixel-centre grid. PSNR is
# computed per image on values in [0, 1] and averaged.

# %%
test32, test64 = load_emoji(32, "test"), load_emoji(64, "test")
train32 = load_emoji(32, "train")
n_eval = {"smoke": 64}.get(PROFILE, len(test32))
show = torch.randperm(n_eval, generator=torch.Generator().manual_seed(SEED))[:12]  # emoji shown in figures
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
print(f"2× render vs true 64²: {psnr_2x:.2f} dB   (bicubic upsampling of the input: {psnr_2x_bicubic:.2f} dB)")

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
# ## 4. The learned basis fields
#
# Each field's 64 channels projected on their three principal components: the coarse field holds
# layout and colour regions, the fine one edges and outlines.

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
# ## 5. Latent interpolation
#
# Linear interpolation between the posterior means of two held-out emoji, decoded to fields and
# rendered at 64²: the latent space is continuous, every point of it decodes to a continuous image.

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
    "train_s": result.total_time_s,
    "train_steps": result.steps_done,
    "params": count_parameters(vae),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * The D2C-VAE encodes a 32² emoji into a small Gaussian grid latent and decodes it into three
#   basis fields; the shared CFC readout turns them into colour at any coordinate.
# * The loss is the reference's: L1 summed over the target pixels plus an annealed KL.
# * Because training also targets 48² and 64² crops with the render scale as input, one latent
#   renders at 1×, 2× and 4×; at 2× we compare with the true 64² image and with bicubic upsampling.
# * Latents interpolate smoothly — the property the latent diffusion model of notebook 04 relies on.
