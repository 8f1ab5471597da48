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
# # 05 · Generating images: samples, Fréchet distance, memorisation, samplers
#
# The whole DDMI pipeline for images: draw a latent with the diffusion model of notebook 04,
# decode it into basis fields $\Xi = D_\psi(z)$, and render the readout $\pi_\theta$ on any grid —
# here at the 32² training resolution and at 128². We then score the samples against the 466
# held-out emoji with the Fréchet distance of Heusel et al. (2017),
#
# $$\mathrm{FD} = \lVert\mu_r - \mu_g\rVert^2 + \operatorname{tr}\Sigma_r + \operatorname{tr}\Sigma_g
# - 2\operatorname{tr}\big(\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2}\big)^{1/2},$$
#
# where $(\mu, \Sigma)$ are the mean and covariance of image features, with precision / recall
# (Kynkäänniemi et al. 2019) and KID (Bińkowski et al. 2018) next to it.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, LogLocator

from ddmi_lite.data import load_emoji
from ddmi_lite.domains.image import image_ldm_config, image_vae_config, load_or_train_image_vae, reconstruct
from ddmi_lite.features import image_features, train_feature_net
from ddmi_lite.latent_diffusion import (decode_to_images, encode_posterior, fd_report, nearest_neighbours,
                                        sweep_samplers)
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.metrics import frechet_distance
from ddmi_lite.notebook import start_notebook, write_metrics

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("05_images", PROFILE, DEVICE, SEED, OUT_DIR)
cfg = image_ldm_config(PROFILE)

# %% [markdown]
# ## 1. The two trained stages
#
# Both models come from checkpoints of this profile: the VAE of notebook 03
# (`checkpoints/image_vae`) and the latent diffusion model of notebook 04
# (`checkpoints/ldm_image`, its EMA weights). Each is trained here only if that notebook has not
# run.

# %%
vae, vae_result = load_or_train_image_vae(image_vae_config(PROFILE), ckpt_path=ckpt_dir / "image_vae",
                                          device=device, seed=SEED)
train32, test32 = load_emoji(32, "train"), load_emoji(32, "test")
posterior = encode_posterior(vae, train32, hflip=cfg.hflip)
ldm, ldm_result = load_or_train_ldm(vae, posterior, cfg, ckpt_path=ckpt_dir / "ldm_image", device=device, seed=SEED)
for name, res in (("VAE", vae_result), ("latent diffusion", ldm_result)):
    print(f"{name}: " + ("reused the checkpoint" if res.resumed_from == res.steps_done else "trained here")
          + f" ({res.steps_done} steps, {res.total_time_s:.0f} s of training)")

# %% [markdown]
# ## 2. Samples at 32² and at 128²
#
# We draw `n_samples` latents with DPM-Solver++(2M) (Lu et al. 2022; section 5 compares it with
# the reference's DDIM), decode them and render every one on the 32² grid for scoring. The same
# latents rendered on a 128² grid show the continuous representation: nothing is upsampled, the
# readout is simply queried at 16× as many coordinates.

# %%
t0 = time.perf_counter()
z = sample_latents(ldm, cfg.n_samples, sampler=cfg.sampler, steps=cfg.sample_steps, batch_size=cfg.sample_batch,
                   generator=torch.Generator().manual_seed(SEED))
sample_s = time.perf_counter() - t0
t0 = time.perf_counter()
samples32 = decode_to_images(vae, z, 32)
decode_s = time.perf_counter() - t0
print(f"{cfg.n_samples} samples: {1e3 * sample_s / cfg.n_samples:.2f} ms/latent ({cfg.sampler}, "
      f"{cfg.sample_steps} steps), {1e3 * decode_s / cfg.n_samples:.2f} ms/image to decode and render at 32²")

k = 10
fig, axes = plt.subplots(6, k, figsize=(1.2 * k, 1.25 * 6))
for i, ax in enumerate(axes.flat):
    ax.imshow(samples32[i].permute(1, 2, 0)); ax.axis("off")
fig.suptitle(f"{6 * k} of {cfg.n_samples} samples, rendered at 32²", fontsize=10)
fig.tight_layout(); fig.savefig(out / "samples_32.png", dpi=120); plt.show()

big = decode_to_images(vae, z[:4], 128)
fig, axes = plt.subplots(2, 4, figsize=(10, 5.2))
for i in range(4):
    axes[0, i].imshow(samples32[i].permute(1, 2, 0), interpolation="nearest"); axes[0, i].set_title("32²", fontsize=9)
    axes[1, i].imshow(big[i].permute(1, 2, 0), interpolation="nearest")
    axes[1, i].set_title("128², same latent", fontsize=9)
for a in axes.flat: a.axis("off")
fig.tight_layout(); fig.savefig(out / "samples_128.png", dpi=120); plt.show()

# %% [markdown]
# ## 3. Fréchet distance on ddmi_lite features (not FID)
#
# FID uses InceptionV3 features, whose weights cannot be downloaded here. Instead a small CNN,
# `FeatureNet`, is trained once without labels on the training emoji by instance discrimination
# (SimCLR's contrastive loss) and cached under `checkpoints/`. Its 128-d features give an
# **FD on ddmi_lite features**: meaningful for comparisons inside this project, not comparable
# with published FIDs.
#
# FD depends on the number of images, so the references use the same sizes as the samples:
#
# * **floor** — a random subset of training emoji (as many as samples) against the held-out
#   emoji: two draws from the same distribution, the best a generator can do;
# * **VAE reconstructions** of that subset: the best the *latent* model can do through this VAE;
# * **prior decodes** — latents drawn from $\mathcal N(0, \operatorname{std}(z)^2 I)$ and decoded: the
#   VAE without a learned latent distribution;
# * **ceiling** — uniform noise images.

# %%
feature_net = train_feature_net(train32, steps=cfg.feature_steps, seed=SEED, device=device,
                                cache_path=ckpt_dir / "feature_net_emoji32.safetensors")
real = image_features(feature_net, test32)
n_ref = min(cfg.n_samples, len(train32))
subset = torch.randperm(len(train32), generator=gen)[:n_ref]
z_prior = torch.randn((cfg.n_samples, *posterior.shape), generator=gen) * posterior.overall_std()
sets = {
    "floor": train32[subset],
    "vae_recon": reconstruct(vae, train32[subset]),
    "samples": samples32,
    "prior_decode": decode_to_images(vae, z_prior, 32),
    "ceiling": torch.rand((cfg.n_samples, 3, 32, 32), generator=gen),
}
feats = {name: image_features(feature_net, images) for name, images in sets.items()}
report = fd_report(real, feats["samples"], seed=SEED)
fds = {name: frechet_distance(real, f) for name, f in feats.items()}
for name, value in fds.items():
    print(f"FD({name:>12}, held-out) = {value:10.3f}")
print(f"samples: precision {report['precision']:.3f}  recall {report['recall']:.3f}  KID {report['kid']:.4f}")
print(f"FD(samples) / FD(floor) = {fds['samples'] / fds['floor']:.2f};  "
      f"FD(samples) / FD(ceiling) = {fds['samples'] / fds['ceiling']:.4f}")

fig, ax = plt.subplots(figsize=(7, 3.2))
names = list(fds)
colors = ["tab:green", "tab:olive", "tab:blue", "tab:orange", "tab:red"]
ax.bar(names, [fds[n] for n in names], color=colors)
for i, n in enumerate(names):
    ax.text(i, fds[n], f"{fds[n]:.3g}", ha="center", va="bottom", fontsize=8)
ax.set_yscale("log"); ax.set_ylabel("FD vs held-out (ddmi_lite features)")
ax.set_title(f"{cfg.n_samples} images per set, {len(test32)} held-out emoji", fontsize=10)
fig.tight_layout(); fig.savefig(out / "fd_bars.png", dpi=120); plt.show()

# %% [markdown]
# ## 4. Memorisation check: nearest training neighbours
#
# A generator that copies its training set would score a perfect FD. For every sample we find
# the training emoji closest in pixels (RMS over the 32×32×3 values) and compare these distances
# with those from the *held-out* emoji to the training set: memorised samples would sit much
# closer to the training set than unseen real images do.

# %%
nn_idx, nn_dist = nearest_neighbours(samples32, train32)
_, nn_dist_heldout = nearest_neighbours(test32, train32)
print(f"median RMS distance to the nearest training emoji: samples {nn_dist.median():.3f}, "
      f"held-out {nn_dist_heldout.median():.3f}")

show = 8
fig = plt.figure(figsize=(13, 3.6))
grid = fig.add_gridspec(2, show + 3)
for i in range(show):
    ax = fig.add_subplot(grid[0, i]); ax.imshow(samples32[i].permute(1, 2, 0)); ax.axis("off")
    ax.set_title(f"{nn_dist[i]:.2f}", fontsize=8)
    ax = fig.add_subplot(grid[1, i]); ax.imshow(train32[nn_idx[i]].permute(1, 2, 0)); ax.axis("off")
fig.text(0.01, 0.72, "sample", rotation=90, fontsize=9); fig.text(0.01, 0.2, "nearest\ntrain", rotation=90, fontsize=9)
ax = fig.add_subplot(grid[:, show:])
bins = np.linspace(0, float(max(nn_dist.max(), nn_dist_heldout.max())), 40)
ax.hist(nn_dist.numpy(), bins=bins, density=True, alpha=0.6, label="samples → train")
ax.hist(nn_dist_heldout.numpy(), bins=bins, density=True, alpha=0.6, label="held-out → train")
ax.set_xlabel("RMS pixel distance to the nearest training emoji"); ax.legend(fontsize=8)
fig.tight_layout(); fig.savefig(out / "nearest_neighbours.png", dpi=120); plt.show()

# %% [markdown]
# ## 5. Samplers: steps against quality and time
#
# Every sampler of `ddmi_lite.sampling` starts from the same noise and is scored on
# `n_sweep` samples (fewer than above, so these FDs sit higher than section 3's; the floor line
# is computed at the same size). NFE counts network evaluations per sample: DDPM (ancestral),
# DDIM (η = 0, the reference's sampler), DPM-Solver++(2M) and EDM's Heun (two evaluations per
# step). Times are wall-clock seconds for sampling latents on this machine (noisy when the CPU is
# shared); decoding costs the same for every sampler.

# %%
rows = sweep_samplers(ldm, vae, feature_net, real, cfg.sweep, n=cfg.n_sweep, seed=SEED,
                      batch_size=cfg.sample_batch)
fd_floor_sweep = frechet_distance(real, feats["floor"][:cfg.n_sweep])
print("\n| sampler | steps | NFE | FD | ms / image |\n|---|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {r['fd']:.3f} | {1e3 * r['sec_per_image']:.2f} |")
print(f"floor at {cfg.n_sweep} images: {fd_floor_sweep:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name in cfg.sweep:
    rs = [r for r in rows if r["sampler"] == name]
    axes[0].plot([r["nfe"] for r in rs], [r["fd"] for r in rs], "o-", label=name)
    axes[1].plot([r["nfe"] for r in rs], [1e3 * r["sec_per_image"] for r in rs], "o-", label=name)
axes[0].axhline(fd_floor_sweep, color="gray", ls="--", label="floor")
axes[0].set_xscale("log"); axes[0].set_yscale("log"); axes[0].set_xlabel("NFE (network evaluations)")
axes[0].set_ylabel(f"FD vs held-out ({cfg.n_sweep} samples)"); axes[0].legend(fontsize=8)
axes[1].set_xscale("log"); axes[1].set_yscale("log"); axes[1].set_xlabel("NFE")
axes[1].set_ylabel("ms per image (latent sampling)")
for ax in axes:
    for axis in (ax.xaxis, ax.yaxis):  # ticks at 1, 2, 5 × 10^k, printed as plain numbers
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
fig.tight_layout(); fig.savefig(out / "samplers.png", dpi=120); plt.show()

# %%
metrics = {
    "fd_samples": fds["samples"],
    "fd_floor": fds["floor"],
    "fd_ceiling": fds["ceiling"],
    "fd_vae_recon": fds["vae_recon"],
    "fd_prior_decode": fds["prior_decode"],
    "fd_ratio_floor": fds["samples"] / fds["floor"],
    "fd_ratio_ceiling": fds["samples"] / fds["ceiling"],
    "precision": report["precision"],
    "recall": report["recall"],
    "kid": report["kid"],
    "n_samples": cfg.n_samples,
    "n_heldout": len(test32),
    "n_sweep": cfg.n_sweep,
    "nn_rms_samples_median": float(nn_dist.median()),
    "nn_rms_heldout_median": float(nn_dist_heldout.median()),
    "sec_per_image_sampling": sample_s / cfg.n_samples,
    "sec_per_image_decode_32": decode_s / cfg.n_samples,
    "fd_floor_sweep": fd_floor_sweep,
    **{f"fd_{r['sampler']}_{r['steps']}": r["fd"] for r in rows},
    **{f"sec_per_image_{r['sampler']}_{r['steps']}": r["sec_per_image"] for r in rows},
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[vae_result, ldm_result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * Generation is three library calls: sample latents, decode them to basis fields, render the
#   readout on any grid — 32² for scoring, 128² to show the continuous representation.
# * Scores use FD on ddmi_lite features (a contrastively trained `FeatureNet`, not Inception), with
#   the floor (training vs held-out emoji), VAE reconstructions, prior decodes and the noise
#   ceiling on the same plot, at the same number of images. The VAE reconstructions bound what a
#   latent model can reach; the prior decodes show how much the diffusion model adds.
# * The nearest-neighbour distances compare samples with unseen real emoji: samples copied from
#   the training set would sit far closer to it than held-out emoji do.
# * The sweep puts every sampler on one axis of network evaluations: the deterministic
#   second-order solvers (DPM-Solver++(2M), Heun) need far fewer evaluations than DDIM for the
#   same FD, and ancestral DDPM is by far the most expensive.
