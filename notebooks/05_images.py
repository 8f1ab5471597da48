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

from ddmi_lite.domains.image import (image_ldm_config, image_splits, image_vae_config, load_or_train_image_vae,
                                     reconstruct)
from ddmi_lite.features import InceptionFeatures, image_features, train_feature_net
from ddmi_lite.io import tensor_digest
from ddmi_lite.latent_diffusion import decode_to_images, encode_posterior, nearest_neighbours, sweep_samplers
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.metrics import fd_infinity, fd_vs_sample_size, frechet_distance, kid, precision_recall, psnr, ssim
from ddmi_lite.notebook import start_notebook, write_answers, write_metrics

# %% [markdown]
# `DATA_DIR` empty uses the bundled emoji. Set it to a folder of your own `.png` / `.jpg` / `.webp`
# images (subfolders allowed, only read) to train and sample on those, with the same held-out split
# as notebook 03: every 10th image in sorted path order. `INCEPTION_WEIGHTS` empty skips the Inception
# FID of section 3; set it to a local copy of FID's InceptionV3 weights (pytorch-fid's
# `pt_inception-2015-12-05-6726825d.pth`, or the same state dict as `.safetensors`) to add it.

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""
DATA_DIR = ""
INCEPTION_WEIGHTS = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("05_images", PROFILE, DEVICE, SEED, OUT_DIR)
cfg = image_ldm_config(PROFILE)

# %% [markdown]
# > **Paper vs this repo.** The paper generates AFHQv2 (cats, dogs) and CelebA-HQ faces at 256²
# > (CelebA-HQ also at 512²) from a 64×64×64 latent, with an ADM-style UNet of 224–256 base
# > channels trained for 1,500 epochs on 4 GPUs and sampled with DDIM, η = 0, 50 steps. Its code
# > scores FID with InceptionV3 pool3 features: 10,000 samples against the statistics of the whole
# > *training* set; the paper also reports precision and recall, whose code is not in the release.
# > Here the data are 32² emoji (3,862 training, 466 held-out), the latent and UNet are a few
# > percent of the reference's size (the latent shape is printed below), and the default sampler is
# > DPM-Solver++(2M) with the preset's step count (DDIM-50 is in the sweep of section 5). The score
# > is an FD on 128-d features of a small contrastively trained CNN (Inception weights cannot be
# > downloaded here), against the *held-out* emoji, with a floor and a ceiling computed at the same
# > number of images. Numbers here therefore rank models of this project only; they are not FIDs.
# > Given a local copy of the Inception weights (`INCEPTION_WEIGHTS`), section 3 adds an Inception
# > FID of the same sets; on 32² emoji upsampled to 299² and a few thousand images it is still not
# > comparable with the paper's FIDs.

# %% [markdown]
# ## 1. The two trained stages
#
# Both models come from checkpoints of this profile: the VAE of notebook 03
# (`checkpoints/image_vae`) and the latent diffusion model of notebook 04
# (`checkpoints/ldm_image`, its EMA weights). Each is trained here only if that notebook has not
# run.

# %%
vae_cfg = image_vae_config(PROFILE)
images = image_splits(DATA_DIR, sorted({vae_cfg.resolution, 32, 48, 64}))  # {"train": {size: images}, "test": {…}}
data_id = tensor_digest(*images["train"].values()) if DATA_DIR else None  # names the data in the checkpoints
print(f"data: {DATA_DIR or 'bundled emoji'}")
vae, vae_result = load_or_train_image_vae(vae_cfg, ckpt_path=ckpt_dir / "image_vae", device=device, seed=SEED,
                                          train=images["train"], data_id=data_id)
train32, test32 = images["train"][32], images["test"][32]
posterior = encode_posterior(vae, train32, hflip=cfg.hflip)
ldm, ldm_result = load_or_train_ldm(vae, posterior, cfg, ckpt_path=ckpt_dir / "ldm_image", device=device, seed=SEED,
                                    data_id=data_id)
for name, res in (("VAE", vae_result), ("latent diffusion", ldm_result)):
    print(f"{name}: " + ("reused the checkpoint" if res.resumed_from == res.steps_done else "trained here")
          + f" ({res.steps_done} steps, {res.total_time_s:.0f} s of training)")
print(f"latent per image: {tuple(posterior.shape)} (reference: (64, 64, 64)); {len(posterior)} training latents")

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
# **What fails in these samples.** Emoji are flat colour regions inside clean dark outlines on a
# white background. Where the grid above falls short of that, it does so in three ways worth
# naming: outlines broken into fragments, colour regions that are blotchy rather than flat, and
# stray dark specks on the white background; and a sample can be an arrangement of emoji-like
# parts rather than a recognisable object (section 4 shows samples next to their nearest training
# emoji). A barely trained model (the `smoke` profile, seconds of training) fails differently:
# smooth blobs with no outlines at all, which then score *below* the real emoji in roughness. The
# numbers below say how far this run's samples are from the real ones on two of these counts.
# Two cheap numbers put the visual impression on a scale, each compared with the held-out emoji
# and with their VAE reconstructions (the decoder's own rendering of encoded latents):
#
# * **specks**: the fraction of pixels that are not near-white (some channel below 0.8) while at
#   least 6 of their 8 neighbours are near-white (every channel above 0.9): isolated dots;
# * **roughness**: the mean absolute difference between neighbouring pixels, high for blotchy
#   colour and broken outlines, low for flat regions.

# %%
def specks_and_roughness(images):
    dark = (images.amin(1, keepdim=True) < 0.8).float()              # [n, 1, H, W]
    white = (images.amin(1, keepdim=True) > 0.9).float()
    ring = torch.ones(1, 1, 3, 3); ring[0, 0, 1, 1] = 0
    white_nb = torch.nn.functional.conv2d(white, ring, padding=1)    # white neighbours, 0..8
    specks = (dark * (white_nb >= 6)).mean().item()
    rough = 0.5 * ((images[..., 1:, :] - images[..., :-1, :]).abs().mean()
                   + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()).item()
    return specks, rough


n_look = min(len(test32), len(samples32))
look = {"held-out": test32[:n_look], "VAE recon (held-out)": reconstruct(vae, test32[:n_look]),
        "samples": samples32[:n_look]}
look_stats = {name: specks_and_roughness(images) for name, images in look.items()}
for name, (sp, ro) in look_stats.items():
    print(f"{name:>22}: specks {100 * sp:.3f}% of pixels   roughness {ro:.4f}")
sp_ratio = look_stats["samples"][0] / max(look_stats["held-out"][0], 1e-12)
ro_ratio = look_stats["samples"][1] / look_stats["held-out"][1]
print(f"samples vs held-out: {sp_ratio:.1f}x the specks, {ro_ratio:.2f}x the roughness ({n_look} images each)")

# %% [markdown]
# ## 3. Fréchet distance on ddmi_lite features (not FID)
#
# FID uses InceptionV3 features, whose weights cannot be downloaded here. Instead a small CNN,
# `FeatureNet`, is trained once without labels on the training emoji by instance discrimination
# (SimCLR's contrastive loss) and cached under `checkpoints/`. Its 128-d features give an
# **FD on ddmi_lite features**: meaningful for comparisons inside this project, not comparable
# with published FIDs.
#
# FD depends on the number of images (the Q6 section below measures how much), so the reference
# sets have as many images as the samples:
#
# * **floor**: a random subset of training emoji against the held-out emoji, two draws of real
#   emoji; a generator that matched the data distribution would score about this;
# * **VAE reconstructions** of that subset: what the decoder makes of *encoded* latents, a
#   reference point for the stage-1 model's quality. It is not a bound on the samples: the latent
#   model feeds the decoder other latents, and nothing in the mathematics stops a sample set from
#   scoring better or worse than the reconstructions;
# * **prior decodes**: latents drawn from $\mathcal N(0, \operatorname{std}(z)^2 I)$ and decoded, the
#   VAE without a learned latent distribution;
# * **ceiling**: uniform noise images.

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
print({name: tuple(f.shape) for name, f in feats.items()}, "held-out:", tuple(real.shape))

# %% [markdown]
# **The key lines.** Fit a Gaussian to each feature set (mean, unbiased covariance) and take the
# Fréchet (2-Wasserstein) distance between the two Gaussians, the equation at the top. The only
# delicate term is $\operatorname{tr}(\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2})^{1/2}$: with
# $S = \Sigma_r^{1/2}$ (from an eigendecomposition), $S\Sigma_g S$ is symmetric positive
# semi-definite, so the trace of its square root is the sum of the square roots of its
# eigenvalues. In plain torch, on the held-out and sample features:

# %%
def fd_plain(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)                        # [D, D], unbiased (N − 1)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T        # Σ_a^½
    inner = root_a @ cov_b @ root_a                                      # Σ_a^½ Σ_b Σ_a^½, symmetric PSD
    tr_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    return (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * tr_covmean


fd_open = fd_plain(real, feats["samples"])
torch.testing.assert_close(fd_open, torch.tensor(frechet_distance(real, feats["samples"]), dtype=torch.float64))
print(f"FD(samples, held-out): plain torch {fd_open.item():.6f} = ddmi_lite.metrics.frechet_distance")

# %% [markdown]
# The library's `frechet_distance` (numpy, float64) computes the same thing; here it scores every
# set of the list above. Precision / recall and KID score the samples **and the floor**, so each has
# the value a generator of the training distribution would get next to it. Both sets are scored
# against the held-out emoji at the same sizes. The k-NN balls of precision / recall shrink as a set
# grows, so a set of 2,000 samples against 466 held-out emoji would tilt the two numbers; the larger
# set is therefore subsampled to the smaller one's size, ten draws, and the numbers averaged (± is
# the std over the draws). KID is computed on subsets of that size too.

# %%
def set_scores(fake):
    """Precision / recall at equal set sizes (10 draws of the larger set) and KID against the held-out set."""
    p, r, p_std, r_std = precision_recall(real, fake, k=3, equal_sizes=True, repeats=10, seed=SEED, return_std=True)
    kid_mean, kid_std = kid(real, fake, subsets=10, seed=SEED, return_std=True)
    return {"precision": p, "recall": r, "precision_std": p_std, "recall_std": r_std, "kid": kid_mean, "kid_std": kid_std}


fds = {name: frechet_distance(real, f) for name, f in feats.items()}
scored = {name: set_scores(feats[name]) for name in ("samples", "floor")}
for name, value in fds.items():
    print(f"FD({name:>12}, held-out) = {value:10.3f}")
n_pr = min(len(real), len(feats["samples"]))
print(f"\n{'':>10} {'samples':>19} {'floor':>19}   ({n_pr} images per set in each draw: {len(feats['samples'])} "
      f"samples or training emoji subsampled, {len(real)} held-out)")
for m, fmt in (("precision", ".3f"), ("recall", ".3f"), ("kid", ".4f")):
    print(f"{m:>10} " + " ".join(f"{scored[n][m]:>11{fmt}} ± {scored[n][m + '_std']:<5{fmt}}" for n in scored))
print(f"{'FD':>10} {fds['samples']:>11.3f}         {fds['floor']:>11.3f}")


def against_floor(m, higher_is_better, fmt):
    """Where the samples' value of metric m sits against the floor's, in units of the draws' spread."""
    s_, f_ = scored["samples"], scored["floor"]
    gap, spread = s_[m] - f_[m], 2 * max(s_[m + "_std"], f_[m + "_std"])
    if abs(gap) <= spread:
        return f"{m} {s_[m]:{fmt}} is within twice the draws' spread of the floor's {f_[m]:{fmt}}"
    side = "worse" if (gap < 0) == higher_is_better else "better"
    return f"{m} {s_[m]:{fmt}} is {side} than the floor's {f_[m]:{fmt}} by {abs(gap):{fmt}}, more than twice the spread"


print("; ".join([against_floor("precision", True, ".3f"), against_floor("recall", True, ".3f"),
                 against_floor("kid", False, ".4f")]) + ".")
p_unequal, r_unequal = precision_recall(real, feats["samples"], k=3)
print(f"with the sets' own sizes ({len(feats['samples'])} samples vs {len(real)} held-out) precision would read "
      f"{p_unequal:.3f} and recall {r_unequal:.3f}, against {scored['samples']['precision']:.3f} and "
      f"{scored['samples']['recall']:.3f} at equal sizes.")
print(f"FD(samples) / FD(floor) = {fds['samples'] / fds['floor']:.2f};  "
      f"FD(samples) / FD(vae_recon) = {fds['samples'] / fds['vae_recon']:.2f};  "
      f"FD(samples) / FD(ceiling) = {fds['samples'] / fds['ceiling']:.4f}")
above = [name for name in ("floor", "vae_recon") if fds["samples"] > fds[name]]
print("the samples score " + (f"worse than {' and '.join(above)}" if above else "at or below both floor and recon")
      + f"; {'better' if fds['samples'] < fds['prior_decode'] else 'not better'} than the prior decodes")

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
# The bars share one log axis; the printed lines above say where the samples fall between the
# floor and the ceiling in this run, and whether the diffusion model improves on decoding prior
# draws. A gap between samples and reconstructions is the part of the FD that the latent model,
# not the decoder, is responsible for. The table above it reads precision (do the samples fall
# where real emoji are), recall (do the samples cover the real emoji) and KID against the values
# that real training emoji get: the sentence under it says, from this run's numbers, which of them
# the samples reach.
#
# **Inception FID (optional).** With `INCEPTION_WEIGHTS` set, the same held-out emoji, samples and
# floor set pass through FID's InceptionV3 (pool3, 2,048-d; the 32² images are resized to 299² by
# the network), and the Fréchet distance of those features is printed next to its floor. With so
# few and so small images it still does not compare with published FIDs.

# %%
if INCEPTION_WEIGHTS:
    inception = InceptionFeatures(INCEPTION_WEIGHTS, device=device)
    real_inception = inception(test32)
    fid = {name: frechet_distance(real_inception, inception(sets[name])) for name in ("samples", "floor")}
    print(f"Inception FID vs {len(test32)} held-out emoji: samples {fid['samples']:.2f}, floor {fid['floor']:.2f} "
          f"({cfg.n_samples} images each; weights {INCEPTION_WEIGHTS})")
else:
    fid = {}
    print("Inception FID skipped: no weights file was given (INCEPTION_WEIGHTS is empty). It needs FID's "
          "InceptionV3 weights (pytorch-fid's pt_inception-2015-12-05 file, as a .pth or .safetensors state dict) "
          "on disk; ddmi_lite never downloads them.")

# %% [markdown]
# ## Q6: metrics
#
# Every metric this repository computes, what it measures, and one strength and one weakness of
# each. $\phi$ is a feature extractor (here `FeatureNet` for images, `ClipFeatureNet` for videos);
# $r$ and $g$ are real and generated sets.
#
# | metric | where | definition | strength | weakness |
# |---|---|---|---|---|
# | **FD** (FID, FVD) | 05, 08, 10 | $\lVert\mu_r-\mu_g\rVert^2+\operatorname{tr}\big(\Sigma_r+\Sigma_g-2(\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2})^{1/2}\big)$ on $\phi$ | one number that reacts to both fidelity and diversity | biased upwards at small $n$ (shown below); Gaussian assumption; only as good as $\phi$ |
# | **precision / recall** | 05 | share of $g$ inside the union of $k$-NN balls of $r$, and vice versa | separates fidelity (precision) from coverage (recall) | depends on $k$ and on both set sizes (here scored at equal sizes, the larger set subsampled); one outlier with a large ball inflates the other set's score |
# | **KID** | 05 | unbiased MMD² with the kernel $(x^\top y/d+1)^3$ on $\phi$ | unbiased at any $n$, so small sets compare fairly | higher variance than FD; still tied to $\phi$ |
# | **PSNR** | 02, 03, 08, 09 | $10\log_{10}(1/\mathrm{MSE})$ between a reconstruction and its target | simple, exact, per image | needs a pixel-aligned target; a 1-pixel shift costs more than a visible blur (shown below) |
# | **SSIM** | 09 | local means, variances and covariance compared in an 11×11 Gaussian window | follows local structure more than raw error | still needs alignment; insensitive to some colour shifts |
# | **IoU** | 06 | $\lvert\hat o\wedge o\rvert/\lvert\hat o\vee o\rvert$ of occupancies on sampled points | direct measure of a reconstructed volume | depends on the query points and the threshold; blind to thin parts |
# | **Chamfer distance** | 06 | mean squared nearest-neighbour distance, both directions, between point clouds | cheap; works on any surface sampling | dominated by the bulk of the points: a missing thin part costs little |
# | **MMD / COV / 1-NNA** (CD) | 06, 10 | over pairwise Chamfer distances: mean distance of each reference to its nearest sample; share of references that are some sample's nearest; leave-one-out 1-NN accuracy of real vs generated | quality (MMD), coverage (COV) and a two-sample test (1-NNA, 0.5 ideal) | MMD ignores poor extra samples, COV can be gamed by spread, all need many shapes |
#
# Two demonstrations on this notebook's own sets. First, **FD against the number of images**:
# random subsets of the floor set (real training emoji) and of the samples, each scored against all
# the held-out emoji, five draws per size. If FD were unbiased the floor would be flat.

# %%
sizes = sorted({s for s in (16, 32, 64, 128, 256, 512, 1024) if s < n_ref} | {n_ref})
curves = {name: fd_vs_sample_size(feats[name], real, sizes, repeats=5, seed=SEED) for name in ("floor", "samples")}
fit_sizes = sizes[-3:]
fd_inf = {name: fd_infinity(fit_sizes, c["mean"][-3:])[0] for name, c in curves.items()}
print("   n " + "".join(f"{s:>9}" for s in sizes))
for name, c in curves.items():
    print(f"{name:>8} " + "".join(f"{m:9.3f}" for m in c["mean"]) + f"   FD∞ ≈ {fd_inf[name]:.3f}")
fd_small, fd_large = curves["floor"]["mean"][0], curves["floor"]["mean"][-1]
gap_small = curves["samples"]["mean"][0] - curves["floor"]["mean"][0]
gap_large = curves["samples"]["mean"][-1] - curves["floor"]["mean"][-1]

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, color in (("floor", "tab:green"), ("samples", "tab:blue")):
    c = curves[name]
    ax.errorbar(c["n"], c["mean"], yerr=c["std"], fmt="o-", color=color, capsize=3, label=f"{name} vs held-out")
    if fd_inf[name] > 0:  # a log axis; at small n the c/n fit can overshoot below zero
        ax.axhline(fd_inf[name], color=color, ls=":", lw=1)
ax.set_xscale("log", base=2); ax.set_yscale("log"); ax.set_xlabel("images in the set (n)")
ax.set_xticks(sizes); ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
ax.set_ylabel("FD vs held-out"); ax.legend(fontsize=8)
ax.set_title("FD against set size (mean ± std of 5 draws); dotted: FD∞ fit", fontsize=9)
fig.tight_layout(); fig.savefig(out / "fd_vs_n.png", dpi=120); plt.show()

# %% [markdown]
# If the floor curve falls as the set grows, that is the bias at work: the sample mean and
# covariance of $n$ points are noisy, and the noise adds to the distance. With 128-d features a
# covariance of fewer than 129 points is not even full rank. So an FD is meaningful only next to
# another FD at the same $n$, which is why every reference of section 3 uses the samples' size.
# The dotted lines extrapolate $\mathrm{FD}(n)\approx\mathrm{FD}_\infty+c/n$ (Chong & Forsyth
# 2020) from the three largest sizes; the printed values above say how large the small-$n$ bias
# is compared with the gap between samples and floor. The $c/n$ form holds only once $n$ is well
# above the feature dimension (128), so with sets of a few dozen images the fit is rough and can
# even fall below zero.
#
# Second, **what each metric sees**: four controlled changes of the floor set, scored by the
# paired pixel metrics (against the unchanged images) and by the distribution metrics (against
# the held-out emoji): a one-pixel shift, a 3×3 blur, Gaussian noise, and a collapse onto 16
# images repeated.

# %%
base = sets["floor"]
blur_kernel = torch.full((3, 1, 3, 3), 1 / 9)
variants = {
    "unchanged": base,
    "shift 1 px": torch.roll(base, 1, dims=-1),
    "blur 3x3": torch.nn.functional.conv2d(torch.nn.functional.pad(base, (1, 1, 1, 1), mode="replicate"),
                                           blur_kernel, groups=3),
    "noise 0.1": (base + 0.1 * torch.randn(base.shape, generator=gen)).clamp(0, 1),
    "16 repeated": base[torch.arange(len(base)) % 16],
}
demo = {}
print(f"{'':>12} {'PSNR dB':>8} {'SSIM':>6} {'FD':>8} {'prec':>6} {'recall':>6} {'KID':>8}")
for name, images in variants.items():
    paired = name not in ("unchanged", "16 repeated")
    f = image_features(feature_net, images)
    r = {"fd": frechet_distance(real, f), **set_scores(f)}
    r["psnr"] = psnr(images, base).mean().item() if paired else float("nan")
    r["ssim"] = ssim(images, base).mean().item() if paired else float("nan")
    demo[name] = r
    print(f"{name:>12} {r['psnr']:8.2f} {r['ssim']:6.3f} {r['fd']:8.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
          f"{r['kid']:8.4f}")
shift, blur = demo["shift 1 px"], demo["blur 3x3"]
print(f"PSNR ranks the shift {'below' if shift['psnr'] < blur['psnr'] else 'above'} the blur "
      f"({shift['psnr']:.2f} vs {blur['psnr']:.2f} dB); FD ranks it {'better' if shift['fd'] < blur['fd'] else 'worse'} "
      f"({shift['fd']:.3f} vs {blur['fd']:.3f}). The collapse keeps precision {demo['16 repeated']['precision']:.2f} "
      f"but recall falls to {demo['16 repeated']['recall']:.2f} (unchanged: {demo['unchanged']['recall']:.2f}).")

# %% [markdown]
# The table reads row by row: PSNR and SSIM compare each image with its own original, so they
# punish a shift that leaves every emoji intact; the feature metrics compare distributions and do
# not need alignment, but they cannot say which image went wrong. The collapsed set consists of
# real emoji, so precision, which asks only whether each sample looks real, stays high, while
# recall, which asks whether the real data are covered, shows the missing diversity. The printed
# verdict under the table states which of these held in this run. The shape metrics (IoU,
# Chamfer, MMD / COV / 1-NNA) are measured in notebook 06.

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
close = 0.1  # RMS over [0, 1] pixels: well below the typical nearest-neighbour distance
print(f"share within {close} RMS of a training emoji: samples {(nn_dist < close).float().mean():.1%}, "
      f"held-out {(nn_dist_heldout < close).float().mean():.1%}")

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
# If the samples copied training emoji, their histogram would pile up near zero, left of the
# held-out one; the printed shares within 0.1 RMS say how many of each set sit that close. The
# top row lets one check the failures named in section 2 against the closest real emoji: whether
# a sample keeps its neighbour's colours and silhouette while its outline breaks up. A pixel
# distance finds the training image with the most similar colour layout, not necessarily the same
# object, so a large distance does not by itself mean the sample is novel in content.

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
best = min(rows, key=lambda r: r["fd"])
ddim_rows = [r for r in rows if r["sampler"] == "ddim"]
ddim_best = min(ddim_rows, key=lambda r: r["fd"]) if ddim_rows else None
cheaper = [r for r in rows if ddim_best and r["sampler"] != "ddim" and r["fd"] <= ddim_best["fd"]
           and r["nfe"] < ddim_best["nfe"]]
print(f"lowest FD: {best['sampler']}-{best['steps']} ({best['fd']:.3f}, NFE {best['nfe']}).")
if ddim_best:
    fewest = min(cheaper, key=lambda r: r["nfe"]) if cheaper else None
    print(f"best DDIM: {ddim_best['steps']} steps, FD {ddim_best['fd']:.3f}; "
          + (f"{fewest['sampler']}-{fewest['steps']} matches it with {fewest['nfe']} NFE instead of {ddim_best['nfe']}."
             if fewest else "no other sampler of the sweep matches it with fewer NFE."))

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

# %% [markdown]
# The FDs of neighbouring settings differ by amounts comparable with the seed-to-seed spread of an
# FD on `n_sweep` images (see the spread over random subsets in the FD-versus-n figure), so read
# the curves for
# their trend, not for single points. Notebook 11 repeats the sweep with a noise-free measure, the
# distance of each sample to a many-step solution from the same starting noise.

# %%
metrics = {
    "fd_samples": fds["samples"],
    "fd_floor": fds["floor"],
    "fd_ceiling": fds["ceiling"],
    "fd_vae_recon": fds["vae_recon"],
    "fd_prior_decode": fds["prior_decode"],
    "fd_ratio_floor": fds["samples"] / fds["floor"],
    "fd_ratio_ceiling": fds["samples"] / fds["ceiling"],
    "precision": scored["samples"]["precision"],
    "recall": scored["samples"]["recall"],
    "kid": scored["samples"]["kid"],
    "precision_std": scored["samples"]["precision_std"],
    "recall_std": scored["samples"]["recall_std"],
    "kid_std": scored["samples"]["kid_std"],
    "precision_floor": scored["floor"]["precision"],
    "recall_floor": scored["floor"]["recall"],
    "kid_floor": scored["floor"]["kid"],
    "precision_unequal_sizes": p_unequal,
    "recall_unequal_sizes": r_unequal,
    "n_precision_recall": n_pr,
    **({"fid_inception_samples": fid["samples"], "fid_inception_floor": fid["floor"]} if fid else {}),
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
    "specks_samples": look_stats["samples"][0],
    "specks_heldout": look_stats["held-out"][0],
    "roughness_samples": look_stats["samples"][1],
    "roughness_heldout": look_stats["held-out"][1],
    "nn_close_share_samples": float((nn_dist < close).float().mean()),
    "fd_floor_smallest_n": float(fd_small),
    "fd_floor_largest_n": float(fd_large),
    "fd_smallest_n": int(sizes[0]),
    "fd_inf_floor": fd_inf["floor"],
    "fd_inf_samples": fd_inf["samples"],
    "psnr_shift_1px": demo["shift 1 px"]["psnr"],
    "psnr_blur_3x3": demo["blur 3x3"]["psnr"],
    "fd_shift_1px": demo["shift 1 px"]["fd"],
    "fd_blur_3x3": demo["blur 3x3"]["fd"],
    "recall_collapse_16": demo["16 repeated"]["recall"],
    "precision_collapse_16": demo["16 repeated"]["precision"],
    "wall_s": time.time() - t_start,
}
write_answers(out, {"Q6": (
    f"Images are scored with FD, precision/recall and KID on learned features (shapes: IoU, Chamfer, MMD/COV/1-NNA; "
    f"reconstructions: PSNR/SSIM); FD is biased at small n (real vs real: {fd_small:.2f} at n={sizes[0]}, "
    f"{fd_large:.2f} at n={sizes[-1]}, so FDs compare only at equal n). "
    f"PSNR punishes a 1-pixel shift ({shift['psnr']:.1f} dB) {'more' if shift['psnr'] < blur['psnr'] else 'less'} "
    f"than a 3x3 blur ({blur['psnr']:.1f} dB) while FD rates them {shift['fd']:.2f} and {blur['fd']:.2f}, and a "
    f"16-image collapse keeps precision {demo['16 repeated']['precision']:.2f} but drops recall to "
    f"{demo['16 repeated']['recall']:.2f}.")})
write_metrics(out, metrics, trained=[vae_result, ldm_result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * Generation is three library calls: sample latents, decode them to basis fields, render the
#   readout on any grid: 32² for scoring, 128² to show the continuous representation.
# * FD, written out in plain torch above, is the Fréchet distance between Gaussians fitted to
#   `FeatureNet` features (not Inception). The floor (training vs held-out emoji), VAE
#   reconstructions, prior decodes and the noise ceiling are scored at the same number of images:
#   the reconstructions are a reference point for the decoder, not a bound on the samples, and the
#   prior decodes show what the diffusion model adds. Section 3 prints where the samples fall.
# * Precision / recall (at equal set sizes: the larger set subsampled, averaged over ten draws) and
#   KID are shown next to their floors, the values training emoji get against the held-out ones;
#   the sentence under that table says which of them the samples reach in this run. An Inception
#   FID is added only when a local weights file is given (`INCEPTION_WEIGHTS`); otherwise the
#   notebook says it was skipped.
# * The visible failures of the samples (broken outlines, blotchy colour, background specks) are
#   measured against the held-out emoji in section 2; the nearest-neighbour check of section 4
#   says whether the samples sit closer to the training set than unseen emoji do.
# * Q6: the table lists every metric of the repository with a strength and a weakness. FD is
#   biased at small n (the FD-versus-n figure prints how much for real against real emoji), so
#   FDs compare only at equal n; the controlled changes of the floor set print how PSNR, SSIM, FD,
#   precision, recall and KID react to a shift, a blur, noise and a collapse.
# * The sampler sweep puts every sampler on one axis of network evaluations; the sentence printed
#   under its table says which sampler matched the best DDIM setting with fewer evaluations in this
#   run. The differences between neighbouring settings are of the order of the FD's sampling noise.
