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
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite.data import load_emoji
from ddmi_lite.diffusion import LatentDiffusion, training_step_cost
from ddmi_lite.domains.image import image_ldm_config, image_vae_config, load_or_train_image_vae, to_model_range
from ddmi_lite.latent_diffusion import decode_to_images, encode_posterior, history_curve, loss_per_timestep
from ddmi_lite.ldm import build_ldm, load_or_train_ldm, resolve_latent_scale, sample_latents, train_ldm
from ddmi_lite.notebook import start_notebook, write_answers, write_metrics
from ddmi_lite.sampling import ddim, ddim_timesteps, dpmpp_2m, solver_timesteps
from ddmi_lite.schedule import Schedule
from ddmi_lite.unet import UNet
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
# is not much larger than unit variance, and the analytic term of the mixed prediction below is
# the optimal ε-prediction only for standard-normal data), so we measure it (printed below). Our
# VAE's KL weight is small and its latents can be larger than unit scale (an earlier short run of
# the cpu preset gave a standard deviation of 2.3; this run's value is printed below). Even so,
# $\sqrt{\bar\alpha_{T-1}} \approx 0.012$ leaves little of the signal at the last step, and in an
# earlier short trial (recorded in `LDMConfig`'s docstring, not re-run here) standardising the
# latents (`latent_scale="auto"`, which multiplies them by $1/\operatorname{std}(z)$ before
# diffusion) scored the same as the raw latents, so the presets keep the reference's choice.

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
# ### The shapes, image to sample
#
# One pass of stage 2 under this profile, printed from the tensors: the VAE encodes an image to
# its posterior, a posterior sample $z_0$ is noised to $z_t$, the denoiser (here a freshly built
# UNet of the preset's architecture, whose shapes do not depend on its weights) predicts ε̂ of the
# same shape, the sampler returns a clean latent, and the VAE's decoder and readout turn it into
# basis fields and pixels.

# %%
with torch.no_grad():
    shape_ldm = build_ldm(cfg, posterior.shape).eval()
    x_demo = train32[:2]
    post_demo = encode_posterior(vae, x_demo)
    z0_demo = post_demo.sample(generator=torch.Generator().manual_seed(SEED))
    t_demo = torch.tensor([100, 700])
    zt_demo = shape_ldm.schedule.q_sample(z0_demo * shape_ldm.latent_scale, t_demo, torch.randn(z0_demo.shape))
    eps_demo = shape_ldm.eps(zt_demo, t_demo)
    fields_demo = vae.decode(z0_demo.to(device))
    pixels_demo = decode_to_images(vae, z0_demo, 32)
chain = [("image x (pixels in [0, 1])", x_demo.shape), ("VAE encoder → posterior μ, σ", post_demo.mean.shape),
         ("z_0 = μ + σ·ε  (× latent scale)", z0_demo.shape), ("z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε", zt_demo.shape),
         (f"UNet + mixed prediction → ε̂  ({count_parameters(shape_ldm.net):,} parameters)", eps_demo.shape),
         ("sampler (DDIM / DPM-Solver++) → clean latent z", z0_demo.shape)]
chain += [(f"VAE decoder → basis field Ξ^{l + 1}", f.shape) for l, f in enumerate(fields_demo)]
chain += [("readout on the 32² grid → image", pixels_demo.shape)]
for i, (what, shape) in enumerate(chain):
    print(("      ↓\n" if i else "") + f"  {str(tuple(shape)):<22} {what}")

# %% [markdown]
# ## 2. The forward process, on a latent and on its decoded image
#
# One held-out emoji's latent is noised to $z_t = \sqrt{\bar\alpha_t} z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$
# at several $t$ (one $\epsilon$ for all of them) and every $z_t$ is **decoded and rendered** as
# if it were a clean latent. The top row shows the first latent channel; the right panel the
# signal and noise coefficients. Where along the schedule the decoded image stops resembling the
# emoji depends on how large the latents are next to the unit-variance noise; once it has, what
# remains is what the decoder makes of noise. The printed PSNR of each decoded $z_t$ against the
# decoded clean latent measures it.

# %%
schedule = Schedule(num_timesteps=cfg.num_timesteps)
scale = resolve_latent_scale(cfg, posterior)  # the factor the model will use
show_t = [0, 50, 150, 300, 500, 700, 999]
z0 = encode_posterior(vae, test32[3:4]).mean  # [1, C, h, w]
eps = torch.randn(z0.shape, generator=gen)
z_t = torch.cat([schedule.q_sample(z0 * scale, t, eps) / scale for t in show_t])  # [7, C, h, w]
decoded = decode_to_images(vae, z_t, 32)
psnr_t = 10 * torch.log10(1 / (decoded - decoded[:1]).pow(2).flatten(1).mean(1).clamp_min(1e-10))
print("PSNR of each decoded z_t against the decoded z_t at t = 0: " + ", ".join(f"t={t}: {p:.1f} dB" for t, p in zip(show_t[1:], psnr_t[1:])))

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
# This is LSGM's **mixed prediction**, always on in DDMI. The best any network can do under this
# loss is the conditional mean $\mathbb E[\epsilon \mid z_t]$ — $\epsilon$ itself is not determined by
# $z_t$. If $z_0$ were standard normal, $z_t$ would be too, and that conditional mean would be
# exactly the first term, $\sqrt{1-\bar\alpha_t}\, z_t$; so the UNet only has to learn a residual
# on top of the optimal denoiser of Gaussian data. The logit $m$ is
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
ratio = per_t["model"] / per_t["analytic"]
print(f"held-out ε-MSE, model / analytic term: below 1 at {(ratio < 1).sum()} of {len(ratio)} probed t; "
      f"{ratio[1]:.3f} at t = {probe_t[1]}, {ratio[len(ratio) // 2]:.3f} at t = {probe_t[len(ratio) // 2]}, "
      f"{ratio[-1]:.3f} at t = {probe_t[-1]}")

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
# ### The objective, line by line
#
# The three lines of the training step written out on the trained model and a batch of
# held-out posterior samples: the forward process
# $z_t = \sqrt{\bar\alpha_t}\, z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$, the mixed prediction
# $\hat\epsilon = (1-s)\sqrt{1-\bar\alpha_t}\, z_t + s\cdot\mathrm{UNet}(z_t, t)$, and the mean squared
# ε error. The timesteps and ε are drawn from one seeded generator in the order `LatentDiffusion.loss`
# draws them, so the library sees the same $t$ and ε.

# %%
z0_b = heldout.sample(generator=torch.Generator().manual_seed(SEED))[:32].to(device) * ldm.latent_scale
g = torch.Generator().manual_seed(11)
t_b = torch.randint(0, cfg.num_timesteps, (len(z0_b),), generator=g)       # t ~ U{0, …, T−1}
eps_b = torch.randn(z0_b.shape, generator=g).to(device)                     # ε ~ N(0, I)
with torch.no_grad():
    abar = schedule.alphas_cumprod[t_b].float().reshape(-1, 1, 1, 1).to(device)  # ᾱ_t per example
    z_t_b = abar.sqrt() * z0_b + (1 - abar).sqrt() * eps_b                  # forward process q(z_t | z_0)
    s_mix = torch.sigmoid(ldm.mix_logit)                                    # [1, C, 1, 1]
    eps_hat = (1 - s_mix) * (1 - abar).sqrt() * z_t_b + s_mix * ldm.net(z_t_b, t_b.to(device))
    loss_b = (eps_hat - eps_b).pow(2).mean()                                # ε-MSE over all dimensions

    torch.testing.assert_close(z_t_b, schedule.q_sample(z0_b, t_b, eps_b))
    torch.testing.assert_close(eps_hat, ldm.eps(z_t_b, t_b.to(device)))
    lib_loss_b, _ = ldm.loss(z0_b / ldm.latent_scale, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(loss_b, lib_loss_b)
print(f"ε-MSE of this batch {loss_b:.4f} (library {lib_loss_b:.4f}); the analytic term alone would give "
      f"{((1 - abar).sqrt() * z_t_b - eps_b).pow(2).mean():.4f}")

# %% [markdown]
# ## 4. A denoising trajectory
#
# The reference samples with DDIM (η = 0, 50 steps). At every step the sampler also gives its
# current guess of the clean latent, $\hat z_0 = (z_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$;
# the callback collects it every few steps and the VAE decodes it. In a well-trained model coarse
# layout and colour settle first and details last; the columns show how far this run's model gets.

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

# %% [markdown]
# ### One sampler step, written out
#
# **DDIM** (η = 0) predicts the clean latent from the current one and moves to the next timestep
# along the same ε̂:
#
# $$\hat z_0 = \frac{z_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}},\qquad
# z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\epsilon .$$
#
# **DPM-Solver++(2M)** works in $\lambda = \log(\alpha/\sigma)$ with $\alpha = \sqrt{\bar\alpha}$,
# $\sigma = \sqrt{1-\bar\alpha}$, and reuses the previous step's $\hat z_0$ for a second-order
# correction: with $h = \lambda_{t'} - \lambda_t$ and $r = h_{\text{prev}}/h$,
#
# $$D = \big(1 + \tfrac{1}{2r}\big)\hat z_0 - \tfrac{1}{2r}\hat z_0^{\text{prev}},\qquad
# z_{t'} = \frac{\sigma_{t'}}{\sigma_t} z_t - \alpha_{t'}\big(e^{-h} - 1\big) D .$$
#
# Each is written out for one step in the middle of a run of the library's sampler (the same
# model, the same starting noise), and checked against the state the sampler reached after that
# step.

# %%
eps_fn = lambda x, t: ldm.eps(x, t)  # the sampled model: EMA weights, mixed prediction
x_T = torch.randn((4, *posterior.shape), generator=torch.Generator().manual_seed(SEED + 1)).to(device)
states = []
ddim(eps_fn, x_T.shape, schedule, steps=traj_steps, x_T=x_T, callback=lambda info: states.append(info["x"]))
times = ddim_timesteps(cfg.num_timesteps, traj_steps)
k = traj_steps // 2                                        # the step from times[k] to times[k + 1]
t, t_next = times[k], times[k + 1]
a, a_next = float(schedule.alphas_cumprod[t]), float(schedule.alphas_cumprod[t_next])
with torch.no_grad():
    x = states[k - 1]                                      # the state before step k
    eps_k = eps_fn(x, torch.full((len(x),), t, device=device))
    x0_k = (x - (1 - a) ** 0.5 * eps_k) / a**0.5           # ẑ_0
    x_next = a_next**0.5 * x0_k + (1 - a_next) ** 0.5 * eps_k
torch.testing.assert_close(x_next, states[k])
print(f"DDIM step {k} (t = {t} → {t_next}) matches the library")

n_dpm = max(cfg.sample_steps, 4)
dpm_states, dpm_x0 = [], []
dpmpp_2m(eps_fn, x_T.shape, schedule, steps=n_dpm, x_T=x_T,
         callback=lambda info: (dpm_states.append(info["x"]), dpm_x0.append(info["x0"])))
ts = solver_timesteps(schedule, n_dpm)
i = len(ts) // 2                                           # a second-order step, from ts[i] to ts[i + 1]
lam = lambda t: float(0.5 * (np.log(float(schedule.alphas_cumprod[t])) - np.log(1 - float(schedule.alphas_cumprod[t]))))
alpha = lambda t: float(schedule.alphas_cumprod[t]) ** 0.5
sigma = lambda t: (1 - float(schedule.alphas_cumprod[t])) ** 0.5
with torch.no_grad():
    x = dpm_states[i - 1]
    eps_i = eps_fn(x, torch.full((len(x),), ts[i], device=device))
    x0_i = (x - sigma(ts[i]) * eps_i) / alpha(ts[i])       # data prediction D_i
    h, h_prev = lam(ts[i + 1]) - lam(ts[i]), lam(ts[i]) - lam(ts[i - 1])
    r = h_prev / h
    d = (1 + 1 / (2 * r)) * x0_i - (1 / (2 * r)) * dpm_x0[i - 1]
    x_next = (sigma(ts[i + 1]) / sigma(ts[i])) * x - alpha(ts[i + 1]) * float(np.expm1(-h)) * d
torch.testing.assert_close(x_next, dpm_states[i])
print(f"DPM-Solver++(2M) step {i} (t = {ts[i]} → {ts[i + 1]}, r = {r:.2f}) matches the library")

# %% [markdown]
# > **Paper vs this repo.** *Paper (official code):* a frozen D2C-VAE gives 64×64×64 latents of
# > 256² AFHQv2 / CelebA-HQ images; the denoiser is an ADM UNet (224–256 model channels,
# > channel_mult [1, 2, 4, 6] or [1, 2, 4, 8], 2 ResBlocks per level, attention at 32², 16², 8²);
# > T = 1000 with the scaled-linear β schedule, ε-prediction with the plain MSE, mixed prediction
# > with a per-channel logit initialised to −6 and trained with the same lr 1e-4 as the UNet;
# > AdamW without schedule, EMA 0.9999, raw posterior samples as targets (no latent scaling), days
# > of training on 4 GPUs; sampling with DDIM, η = 0, 50 steps; images scored by FID on 10k samples.
# > *Here:* 8×8 latents of 32² emoji (channels printed above), a UNet of the preset's size
# > (channel_mult (1, 2) on the cpu preset, attention at 4²), lr with warm-up and cosine decay, the
# > mixing logit on its own larger lr and a short EMA, because the runs last minutes; the same
# > schedule, loss, mixed prediction and raw latents; DDIM-50 for the trajectory above, while
# > notebook 05 scores samples with DPM-Solver++(2M) and a Fréchet distance on features of a
# > small network trained on the emoji (no Inception weights offline).
#
# ## Q5: latent space
#
# Two measurements from this run. **Mixed prediction on vs off:** two short trainings of the same
# UNet on the same latents, with the same seed, steps, batches and learning rate, one with
# $\hat\epsilon = (1-s)\sqrt{1-\bar\alpha_t}\,z_t + s\cdot\mathrm{UNet}$ and one with
# $\hat\epsilon = \mathrm{UNet}$; both are scored by the held-out ε-MSE averaged over the
# probed timesteps (every other one of the curve above), with the same held-out latents and noise
# (raw weights, no EMA). These are
# short runs next to the main model's, so they compare early training, not final quality.
# **Latent vs pixel space:** the cost of one training step (AdamW, fp32, the same batch size) of
# the preset's UNet on the latents against the same UNet on the 3×32² images themselves, with its
# attention resolutions scaled by the ratio of the input sizes, so attention sits at the same depth
# (4² on the 8² latents is 16² on the 32² images).
# Time is the median of a few steps on this machine; memory is the bytes of the tensors autograd
# keeps for the backward pass (the activations, which grow with the input), counted with
# `torch.autograd.graph.saved_tensors_hooks`, plus the parameters, which do not depend on the
# input size. The pixel model would also need many more steps to learn the image distribution;
# that is not measured here.

# %%
q5_steps = {"smoke": 10, "cpu": 100, "gpu": 2000}[PROFILE]
q5_cfg = replace(cfg, train=replace(cfg.train, steps=q5_steps, batch_size=min(cfg.train.batch_size, 32),
                                    warmup_steps=max(q5_steps // 10, 1), ema_decay=None, max_time_s=None))
q5_z0 = heldout.sample(generator=torch.Generator().manual_seed(SEED + 2))[:{"smoke": 128, "cpu": 512}.get(PROFILE)]
q5_t = probe_t[::2]  # every other probed timestep, uniform in t
q5_loss = {}
for mixed in (True, False):
    torch.manual_seed(SEED)
    arm = build_ldm(q5_cfg, posterior.shape, latent_scale=ldm.latent_scale)
    if not mixed:
        arm = LatentDiffusion(arm.net, schedule=arm.schedule, mixed_prediction=False, latent_scale=ldm.latent_scale)
    arm = arm.to(device)
    train_ldm(arm, posterior, q5_cfg, device=device, ckpt_path=None, seed=SEED, progress=False)
    q5_loss[mixed] = float(loss_per_timestep(arm.eval(), q5_z0, q5_t,
                                             generator=torch.Generator().manual_seed(SEED + 3))["model"].mean())
print(f"{q5_steps} steps of batch {q5_cfg.train.batch_size}, scored on {len(q5_z0)} held-out latents: ε-MSE with mixed prediction "
      f"{q5_loss[True]:.4f}, without {q5_loss[False]:.4f}")

cost_batch = min(cfg.train.batch_size, 16)
latent_net = build_ldm(cfg, posterior.shape, latent_scale=ldm.latent_scale)
pixel_net = LatentDiffusion(UNet(3, model_channels=cfg.model_channels, channel_mult=cfg.channel_mult,
                                 num_res_blocks=cfg.num_res_blocks, num_heads=cfg.num_heads, dropout=cfg.dropout,
                                 attention_resolutions=tuple(r * 32 // posterior.shape[-1] for r in cfg.attention_resolutions),
                                 image_size=32))
cost = {"latent": training_step_cost(latent_net.to(device), q5_z0[:cost_batch].to(device), repeats=2),
        "pixel": training_step_cost(pixel_net.to(device), to_model_range(train32[:cost_batch]).to(device), repeats=2)}
for name, c in cost.items():
    print(f"{name:>6} space: {c['sec_per_step'] * 1e3:8.1f} ms per step, {c['saved_bytes'] / 2**20:8.1f} MiB kept for "
          f"backward, {c['param_bytes'] / 2**20:5.1f} MiB of parameters (batch {cost_batch})")
time_ratio = cost["pixel"]["sec_per_step"] / cost["latent"]["sec_per_step"]
mem_ratio = cost["pixel"]["saved_bytes"] / cost["latent"]["saved_bytes"]
values_ratio = 3 * 32 * 32 / int(np.prod(posterior.shape))
print(f"pixel / latent: {time_ratio:.1f}× the time, {mem_ratio:.1f}× the activation memory, "
      f"{values_ratio:.1f}× the values per example, {32 * 32 / posterior.shape[-1] ** 2:.0f}× the positions")

mixed_better = q5_loss[True] < q5_loss[False]
q5 = (f"On this run's {'×'.join(map(str, posterior.shape))} latents one training step of the UNet costs "
      f"{cost['latent']['sec_per_step'] * 1e3:.0f} ms and keeps {cost['latent']['saved_bytes'] / 2**20:.0f} MiB of "
      f"activations at batch {cost_batch}, against {cost['pixel']['sec_per_step'] * 1e3:.0f} ms and "
      f"{cost['pixel']['saved_bytes'] / 2**20:.0f} MiB for the same UNet on the 3×32² pixels "
      f"({time_ratio:.1f}× the time, {mem_ratio:.1f}× the memory), and the one latent model serves every "
      f"resolution through the VAE's fields. To fit D2C-VAE latents DDMI diffuses raw posterior samples (std "
      f"{latent_std:.2f} here, no rescaling) with LSGM mixed prediction; in two {q5_steps}-step runs the held-out "
      f"ε-MSE was {q5_loss[True]:.4f} with it and {q5_loss[False]:.4f} without, so in this short comparison "
      f"mixed prediction {'helped' if mixed_better else 'did not help'} (one seed).")
print(q5)

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
    "q5_loss_mixed": q5_loss[True],
    "q5_loss_unmixed": q5_loss[False],
    "q5_steps": q5_steps,
    "step_s_latent": cost["latent"]["sec_per_step"],
    "step_s_pixel": cost["pixel"]["sec_per_step"],
    "saved_mib_latent": cost["latent"]["saved_bytes"] / 2**20,
    "saved_mib_pixel": cost["pixel"]["saved_bytes"] / 2**20,
    "train_s": result.total_time_s,
    "train_steps": result.steps_done,
    "params": count_parameters(ldm.net),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[vae_result, result], profile=PROFILE, device=str(device))
write_answers(out, {"Q5": q5})
metrics

# %% [markdown]
# ## Recap
#
# * Stage 2 trains a diffusion model on the frozen VAE's latents, with fresh posterior samples
#   $z = \mu + \sigma\epsilon$ as targets, $T = 1000$ and the scaled-linear β schedule (shapes at
#   the top).
# * Noising a latent and decoding it shows what the forward process destroys; the printed PSNR
#   says at which $t$ the decoded image departs from the clean one in this run.
# * The ε-prediction loss uses mixed prediction: the analytic term $\sqrt{1-\bar\alpha_t}\,z_t$
#   (the optimal prediction $\mathbb E[\epsilon \mid z_t]$ if the latents were standard normal)
#   plus a learned residual whose weight $s$ starts at 0.0025. The forward process, the mixed
#   prediction, the loss, one DDIM step and one DPM-Solver++(2M) step are written out and match
#   the library; the held-out curve and its printed ratios say at which $t$ the trained model
#   beats the analytic term.
# * Q5 measures, in this run, a short training with and without mixed prediction and the cost of
#   a training step in latent against pixel space; the answer printed there states which way
#   each came out.
# * A DDIM trajectory decoded every few steps shows how the sample forms. Notebook 05 samples many
#   latents and scores the images.
