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
# # 08 · Videos: RGB fields over (x, y, t) on three planes
#
# A video clip is a continuous function $\omega(x, y, t) \in \mathbb R^3$ sampled at the pixel
# centres of $T$ frames. DDMI's video D2C-VAE encodes the frames into **three latent planes**, one
# per pair of axes, in the order (xy, xt, yt): plane $xy$ has width $x$ and height $y$, and the two
# time planes have the spatial coordinate on the width axis and $t$ on the height axis. The decoder
# turns them into basis fields at several resolutions (two in the cpu preset), and the embedding of
# a point **concatenates** the three planes' bilinear samples (for shapes they were summed) and, in
# this library, appends the product of the two time planes:
#
# $$p^l(x, y, t) = \big[\,\Xi^l_{xy}(x, y)\ \|\ \Xi^l_{xt}(x, t)\ \|\ \Xi^l_{yt}(y, t)\ \|\ \Xi^l_{xt}(x, t) \odot \Xi^l_{yt}(y, t)\,\big],$$
#
# read out by the shared CFC MLP into a colour. Why the product: a sprite at $(x_0(t), y_0(t))$ is
# a bump in $x - x_0(t)$ *times* a bump in $y - y_0(t)$; a product channel $g(x, t)\,h(y, t)$ is
# exactly such a moving bump, while a concatenation reaches it only through the MLP's
# non-linearities (the reference concatenates; `aggregate="concat"` restores that). Training minimises the L1 error **summed** over the
# supervised points plus a lightly weighted KL,
#
# $$\mathcal L = \sum_i \big|\hat\omega(c_i) - \omega(c_i)\big|_1 + \beta(t)\,\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,\mathcal N(0, I)\big).$$
#
# The data are *moving emoji*: 1–3 OpenMoji sprites gliding, spinning and bouncing over a smooth
# static background, 16 frames of 32² per clip.

# %%
import time

import matplotlib.pyplot as plt
import torch

from ddmi_lite import fields as F
from ddmi_lite.domains.video import (
    PLANE_ORDER,
    clip_psnr,
    decode_to_clips,
    encode_posterior_clips,
    frame_strip,
    frame_times,
    load_or_train_video_vae,
    load_video_split,
    pack_planes,
    reconstruct,
    save_gif,
    save_png,
    to_model_range,
    unpack_planes,
    video_eval_config,
    video_ldm_config,
    video_vae_config,
)
from ddmi_lite.features import clip_features, train_feature_net
from ddmi_lite.latent_diffusion import history_curve
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.metrics import frechet_distance
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("08_videos", PROFILE, DEVICE, SEED, OUT_DIR)
cfg, ldm_cfg, ev = video_vae_config(PROFILE), video_ldm_config(PROFILE), video_eval_config(PROFILE)
T, R = cfg.net.frames, cfg.net.resolution
print(cfg, ev, sep="\n")


def show_strip(image, path, title=""):
    """Save a uint8 frame strip as a PNG (×3) and draw it."""
    save_png(image, path, scale=3)
    plt.figure(figsize=(min(14, image.shape[1] / 24), image.shape[0] / 24 + 0.4))
    plt.imshow(image, interpolation="nearest"); plt.axis("off"); plt.title(title, fontsize=9); plt.show()


# %% [markdown]
# ## 1. The data: moving emoji
#
# Training clips use training emoji only, held-out clips held-out emoji only (the emoji split is
# grouped, so no sprite is shared). Each row below is one clip, each column one frame.

# %%
train = load_video_split("train", size=R, limit=cfg.n_train)  # uint8 [N, T, 3, R, R]
test = load_video_split("test", size=R)
print(f"{len(train)} training and {len(test)} held-out clips of {T} frames at {R}²")
show = torch.arange(ev.n_show)
show_strip(frame_strip(test[show].float() / 255), out / "data.png", "held-out clips")
save_gif(test[show].float() / 255, out / "data.gif", fps=ev.gif_fps)

# %% [markdown]
# ## 2. What the time planes see
#
# A time plane is indexed by (t, x) or (t, y). Averaging a clip over $y$ gives an image whose rows
# are frames and whose columns are $x$ — a sprite gliding right draws a slanted band, a static
# background vertical stripes. The encoder's planes are *learned* collapses of this kind
# (attention pooling along the collapsed axis, the reference uses a small Transformer there):
# $\Pi_{xy}$ pools over $t$, $\Pi_{xt}$ over $y$, $\Pi_{yt}$ over $x$. These plain averages, area-pooled
# to the latent size, also enter the latent directly through a linear *pixel shortcut*, so each clip's
# colours reach $z$ without passing a normalisation layer.

# %%
clip = test[0].float() / 255  # [T, 3, R, R]
views = {"xy: mean over t": clip.mean(0).permute(1, 2, 0),  # [y, x, 3]
         "xt: mean over y (rows = t)": clip.mean(2).permute(0, 2, 1),  # [t, x, 3]
         "yt: mean over x (rows = t)": clip.mean(3).permute(0, 2, 1)}  # [t, y, 3]
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, (name, img) in zip(axes, views.items()):
    ax.imshow(img.clamp(0, 1), interpolation="nearest"); ax.set_title(name, fontsize=9)
    ax.set_xlabel("x" if name[:2] in ("xy", "xt") else "y"); ax.set_ylabel("y" if name.startswith("xy") else "t")
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout(); fig.savefig(out / "axis_means.png", dpi=120); plt.show()

# %% [markdown]
# ## 3. Train the D2C-VAE (or reuse the checkpoint of an earlier run of this profile)
#
# Each step supervises a random subset of the $T\cdot R^2$ pixels of every clip (an INR can be
# trained on any points), with clips mirrored and played backwards at random.

# %%
vae, result = load_or_train_video_vae(cfg, ckpt_path=ckpt_dir / "video_vae", device=device, seed=SEED, clips=train)
print(result.summary())
print(f"parameters: {count_parameters(vae):,}; latent per clip: {cfg.net.latent_shape} (planes {PLANE_ORDER})")
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(*history_curve(result.history, "rec")); axes[0].set_yscale("log")
axes[0].set_title(f"L1 summed over {cfg.n_query} points × 3"); axes[0].set_xlabel("step")
axes[1].plot(*history_curve(result.history, "kl")); axes[1].set_title("KL (nats per clip)"); axes[1].set_xlabel("step")
fig.tight_layout(); fig.savefig(out / "training.png", dpi=120); plt.show()

# %% [markdown]
# ## 4. Held-out reconstructions
#
# Posterior-mean reconstructions rendered at the frames' centres. PSNR is computed **per frame**,
# averaged over the frames of a clip, then over clips; the same on as many training clips shows
# the generalisation gap.

# %%
n_psnr = min(ev.n_psnr, len(test))
rec_test = reconstruct(vae, test[:n_psnr])  # [n, T, 3, R, R] in [0, 1]
rec_train = reconstruct(vae, train[:n_psnr])
psnr_heldout = clip_psnr(rec_test, test[:n_psnr].float() / 255).mean().item()
psnr_train = clip_psnr(rec_train, train[:n_psnr].float() / 255).mean().item()
print(f"PSNR held-out {psnr_heldout:.2f} dB, train {psnr_train:.2f} dB ({n_psnr} clips each)")
pairs = torch.stack([test[show].float() / 255, rec_test[show]], 1).flatten(0, 1)  # true, rec, true, rec, …
show_strip(frame_strip(pairs), out / "reconstructions.png", "held-out clips (odd rows) and reconstructions (even rows)")
save_gif(torch.cat([test[show].float() / 255, rec_test[show]], -1), out / "reconstructions.gif", fps=ev.gif_fps)

# %% [markdown]
# ## 5. The three planes' basis fields
#
# The decoder's fields of one held-out clip, three principal components each. On the $xy$ plane
# the background and the sprites' appearance show; on the time planes (rows = t) the motion: a
# slanted band is a sprite moving along that axis.

# %%
with torch.no_grad():
    z0 = vae.encode(to_model_range(test[:1]).to(device)).mode()  # [1, 3, z, S, S]
    hdbf = vae.decode(z0)
fig, axes = plt.subplots(len(hdbf), 3, figsize=(7.5, 2.5 * len(hdbf)), squeeze=False)
for l, f in enumerate(hdbf):
    for p, name in enumerate(PLANE_ORDER):
        axes[l, p].imshow(F.fields_to_rgb(f[0, p].float().cpu()), interpolation="nearest")
        axes[l, p].set_title(f"$\\Xi^{l + 1}$ {name} ({f.shape[-2]}×{f.shape[-1]})", fontsize=9)
        axes[l, p].set_ylabel(name[1]); axes[l, p].set_xlabel(name[0]); axes[l, p].set_xticks([]); axes[l, p].set_yticks([])
fig.tight_layout(); fig.savefig(out / "planes.png", dpi=120); plt.show()

# %% [markdown]
# ## 6. Continuous time: twice the frame rate
#
# The representation is a function of a continuous $t$, so it can be queried *between* frames,
# $t_k + 1/T$, which no frame-based model offers without an interpolation network. Below, every
# second column is a new frame the model was never shown. (There is no ground truth in between,
# so this is judged by eye: sprites should move half a step, not cross-fade.)

# %%
rec2x = reconstruct(vae, test[show[:2]], rate=2)  # [2, 2T−1, 3, R, R]
print(f"{rec2x.shape[1]} frames at t = {frame_times(T, rate=2)[:3].tolist()} …")
show_strip(frame_strip(rec2x[:, :12]), out / "frame_rate_2x.png", "2× frame rate (odd columns are in between frames)")
save_gif(rec2x, out / "frame_rate_2x.gif", fps=2 * ev.gif_fps)

# %% [markdown]
# ## 7. Latent diffusion on the planes
#
# The three latent planes have **one shape**: the encoder keeps all 16 frames as rows as it halves
# space (32 → 16), so $z \in \mathbb R^{3 \times z \times 16 \times 16}$. We therefore
# stack them along channels in the fixed order (xy, xt, yt),
# $[3, z, S, S] \rightleftarrows [3z, S, S]$, an exact reshaping, and train the 2D latent
# diffusion model of notebook 04 on the stack. We chose this over the reference's UNet that runs
# over the planes with 1D cross-plane attention because it reuses the denoiser unchanged, costs one
# small UNet call per step, and mixes the planes at every layer for free through its channels
# (the same choice notebook 06 makes for tri-planes). Were the time planes shorter than the $xy$
# plane (e.g. 4 rows), stacking $xt$ over $yt$ along the height would restore one shape; the
# design here avoids that by construction. Training targets are posterior samples of the
# training clips (and of their mirror images when the preset's `hflip` is on).

# %%
posterior = encode_posterior_clips(vae, train, hflip=ldm_cfg.hflip)
assert torch.equal(pack_planes(unpack_planes(posterior.mean)), posterior.mean)  # exact round trip
print(f"{len(posterior)} latents, packed shape {posterior.shape}; std(z) = {posterior.overall_std():.3f}")
ldm, ldm_result = load_or_train_ldm(vae, posterior, ldm_cfg, ckpt_path=ckpt_dir / "ldm_video", device=device, seed=SEED)
print(("reused the checkpoint" if ldm_result.resumed_from == ldm_result.steps_done else
       f"trained {ldm_result.steps_done} steps in {ldm_result.total_time_s:.0f} s")
      + f"; UNet parameters {count_parameters(ldm.net):,}; latent scale {ldm.latent_scale:.4g}")
n_gen = max(ev.n_fvd, ev.n_show)
z_gen = sample_latents(ldm, n_gen, sampler=ldm_cfg.sampler, steps=ldm_cfg.sample_steps,
                       batch_size=ldm_cfg.sample_batch, generator=torch.Generator().manual_seed(SEED))
samples = decode_to_clips(vae, z_gen, T, R)  # [n, T, 3, R, R] in [0, 1]
show_strip(frame_strip(samples[:2 * ev.n_show]), out / "samples.png", "samples")
save_gif(samples[:2 * ev.n_show], out / "samples.gif", fps=ev.gif_fps)

# %% [markdown]
# ## 8. Sample quality: a Fréchet distance on small-network clip features
#
# The reference scores videos with FVD, the Fréchet distance between I3D features of real and
# generated clips. I3D weights are not available offline, so the features here come from a small
# 3D-conv network trained on the training clips without labels (SimCLR instance discrimination,
# :class:`~ddmi_lite.features.ClipFeatureNet`). The numbers below are **not FVD** and compare only
# with each other: the **floor** scores training clips against held-out ones (what a perfect model
# of the training distribution gets), the **ceiling** uniform-noise clips, and the VAE's
# reconstructions show how much the autoencoder alone costs.

# %%
n_fvd = min(ev.n_fvd, len(test))
feat_clips = train[torch.randperm(len(train), generator=gen)[:ev.feature_clips]].float() / 255
feature_net = train_feature_net(feat_clips, steps=ev.feature_steps, batch_size=ev.feature_batch, seed=SEED,
                                cache_path=ckpt_dir / "clip_feature_net.safetensors", device=device)
real = clip_features(feature_net, test[:n_fvd].float() / 255)
floor_index = torch.randperm(len(train), generator=gen)[:n_fvd]
fds = {name: frechet_distance(real, clip_features(feature_net, clips)) for name, clips in {
    "samples": samples[:n_fvd],
    "reconstructions": rec_test[:n_fvd],
    "floor": train[floor_index].float() / 255,
    "ceiling": torch.rand((n_fvd, T, 3, R, R), generator=gen),
}.items()}
for name, value in fds.items():
    print(f"Fréchet distance ({name:>15} vs {n_fvd} held-out clips): {value:10.3f}")
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(fds), list(fds.values()), color=["C0", "C1", "gray", "k"]); ax.set_xscale("log")
ax.set_xlabel("Fréchet distance on 3D-conv features (log scale; not I3D-FVD)")
fig.tight_layout(); fig.savefig(out / "frechet.png", dpi=120); plt.show()

# %%
metrics = {
    "psnr_heldout": psnr_heldout,
    "psnr_train": psnr_train,
    "fvd_samples": fds["samples"],
    "fvd_reconstructions": fds["reconstructions"],
    "fvd_floor": fds["floor"],
    "fvd_ceiling": fds["ceiling"],
    "latent_std": posterior.overall_std(),
    "train_s_vae": result.total_time_s, "train_steps_vae": result.steps_done,
    "train_s_ldm": ldm_result.total_time_s, "train_steps_ldm": ldm_result.steps_done,
    "params_vae": count_parameters(vae), "params_ldm": count_parameters(ldm.net),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[result, ldm_result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * A conv trunk over the frames, a temporal conv and attention pooling along each axis give three
#   Gaussian latent planes (xy, xt, yt); the time planes keep t on their height axis and the spatial
#   coordinate on their width, in both the encoder and the query.
# * The decoder turns them into multi-scale basis fields; a point's embedding concatenates its
#   three plane samples plus the time planes' product (a moving bump), and the CFC readout gives
#   its colour. The loss is the reference's L1
#   summed over the supervised points plus a small KL.
# * PSNR (per frame, then per clip, then over clips) measures held-out reconstructions; the same
#   model renders at twice the frame rate by querying $t$ between frames.
# * The planes share one shape, so they stack along channels into one image for the latent
#   diffusion model; samples are scored with a Fréchet distance on small 3D-conv features — a
#   stand-in for FVD, read against its floor (training clips) and ceiling (noise).
