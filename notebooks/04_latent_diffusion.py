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
# # 04 · Latent diffusion: learning the distribution of the VAE's latents
#
# Stage 2 of DDMI leaves the D2C-VAE of notebook 03 frozen and trains a diffusion model on its
# latents $z$ (8×8 grids here, 64×64 in the paper). The **forward process** adds Gaussian noise in
# $T = 1000$ steps,
#
# $$q(z_t \mid z_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, z_0,\ (1-\bar\alpha_t)\, I\big),\qquad
# \bar\alpha_t = \prod_{s \le t} (1-\beta_s),\quad \beta_t = \Big(\sqrt{0.0015} + \tfrac{t}{T-1}\big(\sqrt{0.0195}-\sqrt{0.0015}\big)\Big)^2,$$
#
# so that $z_{T-1}$ is almost pure noise. A network learns to undo it; sampling then runs the
# reverse process from noise, and the VAE's decoder turns the result into basis fields — an image
# at any resolution. The training targets are posterior **samples** $z_0 = \mu + \sigma\,\epsilon$,
# drawn afresh each time a training image is used, as in the reference.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite.data import load_emoji
from ddmi_lite.domains.image import image_ldm_config, image_vae_config, load_or_train_image_vae
from ddmi_lite.latent_diffusion import decode_to_images, encode_posterior, history_curve, loss_per_timestep
from ddmi_lite.ldm import load_or_train_ldm, resolve_latent_scale, sample_latents
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.schedule import Schedule
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("04_latent_diffusion", PROFILE, DEVICE, SEED, OUT_DIR)
cfg = image_ldm_config(PROFILE)
print(cfg)

# %% [markdown]
# ## 1. The frozen VAE and its training latents
#
# The VAE is the one of notebook 03: `load_or_train_image_vae` reuses its checkpoint
# (`checkpoints/image_vae` of this profile) and only trains it when notebook 03 has not run.
# Every training emoji — and its mirror image, a free augmentation the VAE was also trained
# with — is encoded once to its posterior $\mathcal N(\mu, \operatorname{diag}\sigma^2)$.
#
# The reference diffuses the raw latents and relies on the KL term to keep them near unit
# scale. The forward process assumes about that ($z_{T-1} \approx \mathcal N(0, I)$ only if $z_0$
# is not much larger than unit variance, and the mixed prediction below is exact only for
# standard-normal data), so we measure it (printed below). Our VAE's KL weight is small and its
# latents can be larger — a short run of the cpu preset gave a standard deviation of 2.3. Even
# so, $\sqrt{\bar\alpha_{T-1}} \approx 0.012$ leaves little of the signal at the last step, and in
# a short trial standardising the latents (`latent_scale="auto"`, which multiplies them by
# $1/\operatorname{std}(z)$ before diffusion) scored the same as the raw latents, so the presets
# keep the reference's choice.

# %%
vae, vae_result = load_or_train_image_vae(image_vae_config(PROFILE), ckpt_path=ckpt_dir / "image_vae",
                                          device=device, seed=SEED)
print("VAE: " + ("reused the checkpoint of notebook 03" if vae_result.resumed_from == vae_result.steps_done
                 else f"trained here ({vae_result.steps_done} steps)"))
train32, test32 = load_emoji(32, "train"), load_emoji(32, "test")
posterior = encode_posterior(vae, train32, hflip=cfg.hflip)
latent_std = posterior.overall_std()
print(f"{len(posterior)} training latents of shape {posterior.shape}")
print(f"std of the means {posterior.mean.std():.3f}, mean posterior std σ {posterior.std.mean():.3f}, "
      f"overall std(z) {latent_std:.3f}")

# %% [markdown]
# ## 2. The forward process, on a latent and on its decoded image
#
# One held-out emoji's latent is noised to $z_t = \sqrt{\bar\alpha_t} z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$
# at several $t$ (one $\epsilon$ for all of them) and every $z_t$ is **decoded and rendered** as
# if it were a clean latent. The top row shows the first latent channel; the right panel the
# signal and noise coefficients. Around the middle of the schedule the decoded image has lost the
# emoji: what remains is what the decoder makes of noise.

# %%
schedule = Schedule(num_timesteps=cfg.num_timesteps)
scale = resolve_latent_scale(cfg, posterior)  # the factor the model will use
show_t = [0, 50, 150, 300, 500, 700, 999]
z0 = encode_posterior(vae, test32[3:4]).mean  # [1, C, h, w]
eps = torch.randn(z0.shape, generator=gen)
z_t = torch.cat([schedule.q_sample(z0 * scale, t, eps) / scale for t in show_t])  # [7, C, h, w]
decoded = decode_to_images(vae, z_t, 32)

fig = plt.figure(figsize=(13, 3.6))
grid = fig.add_gridspec(2, len(show_t) + 2)
for i, t in enumerate(show_t):
    ax = fig.add_subplot(grid[0, i]); ax.imshow(z_t[i, 0], cmap="RdBu_r"); ax.axis("off")
    ax.set_title(f"t = {t}", fontsize=9)
    ax = fig.add_subplot(grid[1, i]); ax.imshow(decoded[i].permute(1, 2, 0)); ax.axis("off")
ax = fig.add_subplot(grid[:, -2:])
ts = np.arange(cfg.num_timesteps)
ax.plot(ts, schedule.sqrt_alphas_cumprod.numpy(), label=r"$\sqrt{\bar\alpha_t}$ (signal)")
ax.plot(ts, schedule.sqrt_one_minus_alphas_cumprod.numpy(), label=r"$\sqrt{1-\bar\alpha_t}$ (noise)")
ax.set_xlabel("t"); ax.legend(fontsize=8)
fig.tight_layout(); fig.savefig(out / "forward_process.png", dpi=120); plt.show()

# %% [markdown]
# ## 3. The objective: ε-prediction with mixed prediction
#
# The network predicts the noise that was added, and is trained with the plain mean squared error
# over all latent dimensions and uniformly drawn $t$:
#
# $$\mathcal L = \mathbb E_{z_0 \sim q(z\mid x),\ t,\ \epsilon}\ \big\|\epsilon - \hat\epsilon(z_t, t)\big\|^2,
# \qquad \hat\epsilon(z_t, t) = (1 - s)\,\sqrt{1-\bar\alpha_t}\; z_t + s \cdot \mathrm{UNet}(z_t, t),\quad s = \operatorname{sigmoid}(m).$$
#
# This is LSGM's **mixed prediction**, always on in DDMI: if $z_0$ were standard normal, the first
# term would be the exact $\epsilon$, so the UNet only has to learn a residual. The logit $m$ is
# learned, one per latent channel, and starts at −6 ($s \approx 0.0025$): at first the model is
# almost the analytic Gaussian answer, and $s$ grows as the UNet becomes useful. It gets its own,
# larger learning rate here because our runs are minutes, not days.

# %%
ldm, result = load_or_train_ldm(vae, posterior, cfg, ckpt_path=ckpt_dir / "ldm_image", device=device, seed=SEED)
print(result.summary(ckpt_dir / 'ldm_image'))
mixing = ldm.mixing_weight.detach().flatten().cpu()
print(f"UNet parameters: {count_parameters(ldm.net):,}; latent scale {ldm.latent_scale:.4g}")
print("learned mixing weight s per channel:", np.round(mixing.numpy(), 3))

steps_l, loss_l = history_curve(result.history, "loss")
steps_s, mix_s = history_curve(result.history, "mix_weight")
window = max(len(loss_l) // 20, 1)
smooth = np.convolve(loss_l, np.ones(window) / window, mode="valid")

# loss per timestep on held-out latents: the model against the analytic term alone
probe_t = np.linspace(0, cfg.num_timesteps - 1, 21).round().astype(int).tolist()  # uniform in t, like training
heldout = encode_posterior(vae, test32)
per_t = loss_per_timestep(ldm, heldout.sample(generator=gen), probe_t, generator=gen)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
axes[0].plot(steps_l, loss_l, alpha=0.3, label="logged")
axes[0].plot(steps_l[window - 1:], smooth, label=f"mean of {window}")
axes[0].set_yscale("log"); axes[0].set_xlabel("step"); axes[0].set_title("training loss"); axes[0].legend(fontsize=8)
axes[1].plot(steps_s, mix_s); axes[1].set_yscale("log"); axes[1].set_xlabel("step")
axes[1].set_title("mixing weight s (mean over channels)")
axes[2].plot(per_t["t"], per_t["analytic"], "o-", label=r"analytic term only ($s=0$)")
axes[2].plot(per_t["t"], per_t["model"], "o-", label="trained model (EMA)")
axes[2].set_yscale("log"); axes[2].set_xlabel("t"); axes[2].set_title("held-out ε-MSE per timestep")
axes[2].legend(fontsize=8)
fig.tight_layout(); fig.savefig(out / "training.png", dpi=120); plt.show()

# %% [markdown]
# ## 4. A denoising trajectory
#
# The reference samples with DDIM (η = 0, 50 steps). At every step the sampler also gives its
# current guess of the clean latent, $\hat z_0 = (z_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$;
# the callback collects it every few steps and the VAE decodes it. Coarse layout and colour settle
# first, details last.

# %%
traj_steps = 50 if PROFILE != "smoke" else 10
keep = sorted({round(float(k)) for k in np.linspace(0, traj_steps - 1, 8)})
snapshots = {}


def collect(info):
    if info["step"] in keep:
        snapshots[info["step"]] = (int(info["t"]), info["x0"].detach().cpu())


z = sample_latents(ldm, 6, sampler="ddim", steps=traj_steps, generator=torch.Generator().manual_seed(SEED),
                   callback=collect)
frames = [decode_to_images(vae, snapshots[k][1], 32) for k in keep]  # each [6, 3, 32, 32]
final = decode_to_images(vae, z, 64)

fig, axes = plt.subplots(6, len(keep) + 1, figsize=(1.35 * (len(keep) + 1), 1.45 * 6))
for c, k in enumerate(keep):
    axes[0, c].set_title(f"step {k + 1}\nt = {snapshots[k][0]}", fontsize=8)
    for r in range(6):
        axes[r, c].imshow(frames[c][r].permute(1, 2, 0))
axes[0, -1].set_title("sample\nat 64²", fontsize=8)
for r in range(6):
    axes[r, -1].imshow(final[r].permute(1, 2, 0))
for a in axes.flat: a.axis("off")
fig.tight_layout(); fig.savefig(out / "trajectory.png", dpi=120); plt.show()

# %%
n_head = max(len(loss_l) // 20, 1)
metrics = {
    "loss_initial": float(loss_l[:n_head].mean()),
    "loss_final": float(loss_l[-n_head:].mean()),
    "loss_heldout": float(per_t["model"].mean()),
    "loss_heldout_analytic": float(per_t["analytic"].mean()),
    "mixing_weight": float(mixing.mean()),
    "latent_std": latent_std,
    "latent_scale": ldm.latent_scale,
    "train_s": result.total_time_s,
    "train_steps": result.steps_done,
    "params": count_parameters(ldm.net),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[vae_result, result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * Stage 2 trains a diffusion model on the frozen VAE's latents, with fresh posterior samples
#   $z = \mu + \sigma\epsilon$ as targets, $T = 1000$ and the scaled-linear β schedule.
# * Noising a latent and decoding it shows what the forward process destroys: by mid-schedule
#   the decoded image no longer resembles the emoji.
# * The ε-prediction loss uses mixed prediction: the analytic ε of a standard-normal latent plus a
#   learned residual whose weight $s$ starts at 0.0025 and grows during training. On held-out
#   latents the learned residual matters at small and medium $t$; near $t = T$ the analytic term
#   is already almost exact ($z_t \approx \epsilon$).
# * A DDIM trajectory decoded at every few steps shows the sample forming coarse-to-fine.
#   Notebook 05 samples many latents and scores the images.
