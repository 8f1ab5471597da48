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
# # 07 · Text to shape: captions → tri-plane latents with classifier-free guidance
#
# DDMI's teaser generates shapes from captions ("A curved chair", Text2Shape). The released code has
# no text encoder, so here a small one is trained from scratch, **jointly** with a conditional
# latent diffusion model on the tri-plane latents of notebook 06. A caption $c$ is tokenised into
# words, embedded by a 2-layer Transformer and mean-pooled to a vector $e(c)$, which the UNet adds
# to its time embedding. The caption is dropped (replaced by a learned null embedding $\varnothing$)
# with probability $p_\text{uncond}$, so one network learns the conditional and the unconditional
# noise predictions:
#
# $$\mathcal L = \mathbb E\,\big\|\epsilon - \hat\epsilon(z_t, t, \tilde c)\big\|^2,\qquad
# \tilde c = \varnothing \text{ w.p. } p_\text{uncond}.$$
#
# Sampling follows **classifier-free guidance** with weight $w$:
#
# $$\tilde\epsilon = (1 + w)\,\hat\epsilon(z_t, t, c) - w\,\hat\epsilon(z_t, t, \varnothing),$$
#
# so $w = 0$ is the plain conditional model and larger $w$ pushes samples towards what the caption
# says. We measure that with an **attribute classifier** (a small 3D CNN trained on the true
# occupancy grids of the training shapes): does a shape generated from a held-out caption have the
# category, armrests, legs, height … the caption states? Unconditional samples scored against the
# same captions give the chance line.

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite import geometry as geo
from ddmi_lite.vae import encode_means
from ddmi_lite.domains.shape import (dense_occupancy, encode_posterior_images, encoder_input,
                                     image_to_triplane, load_or_train_shape_vae, load_shape_split, meshes_from_logits,
                                     shape_data_root, shape_eval_config, shape_vae_config, spread_index)
from ddmi_lite.domains.shape_attributes import (HEADS, attribute_accuracy, gt_occupancy_grids, label_matrix,
                                                predict_attributes, train_attribute_classifier)
from ddmi_lite.domains.text_to_shape import load_or_train_text_ldm, text_to_shape_config
from ddmi_lite.latent_diffusion import history_curve
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.text import tokenize
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("07_text_to_shape", PROFILE, DEVICE, SEED, OUT_DIR)
vae_cfg, cfg, ev = shape_vae_config(PROFILE), text_to_shape_config(PROFILE), shape_eval_config(PROFILE)
print(cfg)

# %% [markdown]
# ## 1. The shape VAE of notebook 06 and the captions
#
# The VAE is reused from notebook 06's checkpoint (trained here only if 06 has not run). Every
# object has two Text2Shape-style captions that state its attributes in different orders.

# %%
root = shape_data_root(vae_cfg)
train, test = load_shape_split(root, "train"), load_shape_split(root, "test")
vae, vae_result = load_or_train_shape_vae(vae_cfg, ckpt_path=ckpt_dir / "shape_vae", device=device, seed=SEED,
                                          data=train)
print("VAE: " + ("reused the checkpoint of notebook 06" if vae_result.resumed_from == vae_result.steps_done
                 else f"trained here ({vae_result.steps_done} steps)"))
for caps in train.captions[:3]:
    print(" |", " / ".join(caps))
words = sorted({w for caps in train.captions for c in caps for w in tokenize(c)})
print(f"{len(words)} distinct words in the training captions, e.g. {words[:12]}")

# %% [markdown]
# ## 2. The yardstick: an attribute classifier on true occupancy grids
#
# Six heads (category, armrests, legs, height, lamp type, sofa shape); a head is only scored on the
# objects it applies to. Trained on the exact occupancy of the training objects on the
# $R^3$ grid; checked on held-out objects, both on their true grids and on the VAE's reconstructions
# of them (the best a generated shape can hope for, given the VAE).

# %%
R = cfg.eval_resolution
t0 = time.time()
train_grids, test_grids = gt_occupancy_grids(train.ids, R), gt_occupancy_grids(test.ids, R)
train_labels, test_labels = label_matrix(train.attributes), label_matrix(test.attributes)
print(f"true grids {tuple(train_grids.shape)} in {time.time() - t0:.0f} s; heads: {list(HEADS)}")
classifier, clf_result = train_attribute_classifier(train_grids, train_labels, cfg.classifier, device=device,
                                                    ckpt_path=ckpt_dir / "shape_attributes", seed=SEED)
acc_gt = attribute_accuracy(predict_attributes(classifier, test_grids), test_labels)


def occupancy_grids(z_planes: torch.Tensor) -> torch.Tensor:
    """Latents [n, 3, z, h, w] → inside / outside grids [n, R, R, R] (probability > 0.5)."""
    return (torch.sigmoid(dense_occupancy(vae, z_planes, R)) > 0.5).float()


mean_test, _ = encode_means(vae, encoder_input(test, torch.arange(len(test)), n_surface=vae_cfg.n_surface,
                                               surface_noise=vae_cfg.surface_noise, seed=SEED))
acc_recon = attribute_accuracy(predict_attributes(classifier, occupancy_grids(mean_test)), test_labels)
print(f"classifier accuracy on held-out true grids {acc_gt['all']:.3f}, on their VAE reconstructions "
      f"{acc_recon['all']:.3f}")
print({h: round(acc_gt[h], 3) for h in HEADS})

# %% [markdown]
# ## 3. Joint training of the caption encoder and the conditional denoiser
#
# The targets are posterior samples of the training shapes' tri-plane latents, stacked along
# channels in the order (xy, yz, xz); each step pairs every latent with one of its object's captions.

# %%
posterior = encode_posterior_images(vae, train, n_surface=vae_cfg.n_surface, surface_noise=vae_cfg.surface_noise,
                                    seed=SEED)
model, result = load_or_train_text_ldm(vae, posterior, train.captions, cfg, ckpt_path=ckpt_dir / "text_to_shape",
                                       device=device, seed=SEED)
print(("reused the checkpoint" if result.resumed_from == result.steps_done else
       f"trained {result.steps_done} steps in {result.total_time_s:.0f} s")
      + f"; vocabulary {len(model.text.vocab)} words; parameters: UNet {count_parameters(model.ldm.net):,}, "
        f"text encoder {count_parameters(model.text):,}")
steps_l, loss_l = history_curve(result.history, "loss")
window = max(len(loss_l) // 20, 1)
plt.figure(figsize=(5, 3))
plt.plot(steps_l[window - 1:], np.convolve(loss_l, np.ones(window) / window, mode="valid"))
plt.xlabel("step"); plt.ylabel("ε-MSE (smoothed)"); plt.tight_layout(); plt.savefig(out / "training.png", dpi=120)
plt.show()

# %% [markdown]
# ## 4. Captions → shapes
#
# Held-out captions, and a few written by hand (words the encoder never saw map to `<unk>`).
# The same initial noise is used for every guidance weight.

# %%
own = ["a tall chair with a solid back, four legs and armrests", "a round table with a single pedestal leg",
       "a floor lamp with a spherical shade", "a three-seater sofa with armrests and short legs"]
n_own = max(1, ev.n_render // 2)
shown = own[:n_own] + [test.captions[i][0] for i in spread_index(test.categories, ev.n_render - n_own).tolist()]
sample_kw = dict(sampler=cfg.ldm.sampler, steps=cfg.ldm.sample_steps, batch_size=cfg.ldm.sample_batch)
rows, titles = [], []
for w in (0.0, max(cfg.guidance)):
    z = model.sample(shown, guidance=w, generator=torch.Generator().manual_seed(SEED), **sample_kw)
    rows += meshes_from_logits(dense_occupancy(vae, image_to_triplane(z), ev.mesh_resolution), threshold=ev.mesh_threshold)
    titles += [f"w={w:g}: " + textwrap.shorten(c, 60) for c in shown]
geo.render_meshes_grid(rows, out / "captions_to_shapes.png", titles=titles, ncols=len(shown), size=ev.render_size,
                       title_width=26)
plt.figure(figsize=(1.7 * len(shown), 4.4)); plt.imshow(plt.imread(out / "captions_to_shapes.png")); plt.axis("off")
plt.show()

# %% [markdown]
# ## 5. Guidance sweep: attribute accuracy on held-out captions
#
# One caption per held-out object; the generated shape's occupancy grid goes through the
# classifier and is compared with the attributes of the object the caption was written for.
# Unconditional samples (the null caption) scored against the same targets give the chance line.

# %%
eval_index = spread_index(test.categories, min(cfg.n_eval, len(test)))  # every category in turn
n_eval = len(eval_index)
captions = [test.captions[i][0] for i in eval_index.tolist()]
targets = test_labels[eval_index]
sweep = {}
for w in cfg.guidance:
    z = model.sample(captions, guidance=w, generator=torch.Generator().manual_seed(SEED + 1), **sample_kw)
    sweep[w] = attribute_accuracy(predict_attributes(classifier, occupancy_grids(image_to_triplane(z))), targets)
    print(f"w = {w:g}: attribute accuracy {sweep[w]['all']:.3f}  "
          + "  ".join(f"{h} {sweep[w][h]:.2f}" for h in HEADS))
z_u = model.sample(None, n=n_eval, generator=torch.Generator().manual_seed(SEED + 1), **sample_kw)
acc_uncond = attribute_accuracy(predict_attributes(classifier, occupancy_grids(image_to_triplane(z_u))), targets)
best_w = max(sweep, key=lambda w: sweep[w]["all"])
print(f"unconditional: {acc_uncond['all']:.3f}; best guidance w = {best_w:g}: {sweep[best_w]['all']:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
ws = list(sweep)
axes[0].plot(ws, [sweep[w]["all"] for w in ws], "o-", label="from held-out captions")
axes[0].axhline(acc_uncond["all"], color="0.5", ls="--", label="unconditional (chance line)")
axes[0].axhline(acc_recon["all"], color="C2", ls=":", label="VAE reconstructions (ceiling)")
axes[0].set_xlabel("guidance weight w"); axes[0].set_ylabel("attribute accuracy"); axes[0].legend(fontsize=8)
x = np.arange(len(HEADS))
axes[1].bar(x - 0.2, [sweep[best_w][h] for h in HEADS], 0.4, label=f"w = {best_w:g}")
axes[1].bar(x + 0.2, [acc_uncond[h] for h in HEADS], 0.4, label="unconditional", color="0.6")
axes[1].set_xticks(x, list(HEADS), rotation=30, fontsize=8); axes[1].legend(fontsize=8)
axes[1].set_title("per attribute", fontsize=9)
fig.tight_layout(); fig.savefig(out / "guidance_sweep.png", dpi=120); plt.show()

# %%
metrics = {
    "attr_acc_cond": sweep[best_w]["all"],
    "attr_acc_uncond": acc_uncond["all"],
    **{f"attr_acc_cond_w{w:g}".replace(".", "p"): sweep[w]["all"] for w in cfg.guidance},
    "attr_acc_best_w": best_w,
    "attr_acc_classifier_gt": acc_gt["all"],
    "attr_acc_classifier_recon": acc_recon["all"],
    "train_s_text_ldm": result.total_time_s, "train_steps_text_ldm": result.steps_done,
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[vae_result, clf_result, result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * A caption encoder trained from scratch (words → Transformer → mean pool) conditions the
#   latent diffusion model on tri-plane latents through the UNet's time embedding; dropping the
#   caption in training gives the unconditional model for free.
# * Classifier-free guidance $(1+w)\hat\epsilon_c - w\hat\epsilon_\varnothing$ trades diversity for
#   faithfulness to the caption; $w = 0$ is the plain conditional model.
# * An attribute classifier trained on true occupancy grids scores generated shapes against the
#   attributes their caption states; unconditional samples give the chance line and VAE
#   reconstructions the ceiling.
