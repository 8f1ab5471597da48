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
# # 06 · 3D shapes: occupancy fields on tri-planes
#
# A shape is a continuous **occupancy function** $o(p) \in \{0, 1\}$ over the padded unit cube
# $p \in [-0.55, 0.55]^3$. The D2C-VAE of DDMI learns it from a *discrete* input, a noisy surface
# point cloud: a PointNet scatters the points' features onto three axis-aligned planes (xy, yz, xz),
# a 2D conv encoder turns the planes into a Gaussian **tri-plane latent** $z$, and the decoder
# turns $z$ into basis fields on each plane at three resolutions. The embedding of a point sums the
# bilinear samples of its three projections,
#
# $$p^l(c) = \Xi^l_{xy}(c_x, c_y) + \Xi^l_{yz}(c_y, c_z) + \Xi^l_{xz}(c_x, c_z),\qquad c = p / 0.55,$$
#
# and the shared CFC readout (with the raw $c$ added after its first block) gives the occupancy
# logit $\hat\omega(c)$. Training minimises the binary cross-entropy **summed** over the query
# points plus a lightly weighted KL,
#
# $$\mathcal L = \sum_i \operatorname{BCE}\big(\hat\omega(c_i), o_i\big) + \beta(t)\,\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,\mathcal N(0, I)\big),\qquad \beta \nearrow 0.01.$$
#
# Stage 2 stacks the three latent planes along channels into one 2D image, always in the order
# (xy, yz, xz), and trains the latent diffusion model of notebook 04 on it.

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite import fields as F
from ddmi_lite import geometry as geo
from ddmi_lite.vae import encode_means
from ddmi_lite.domains.shape import (PLANE_ORDER, dense_occupancy, encode_posterior_images,
                                     encoder_input, image_to_triplane, load_or_train_shape_vae, load_shape_split,
                                     meshes_from_logits, shape_data_root, shape_eval_config, shape_ldm_config,
                                     shape_vae_config, spread_index, surface_clouds, triplane_to_image,
                                     uniform_point_logits)
from ddmi_lite.domains.shape_attributes import procedural_shape
from ddmi_lite.latent_diffusion import history_curve
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.metrics3d import chamfer_distance, iou, mmd_cov_nna, normalize_to_unit_sphere
from ddmi_lite.nets.pointnet import plane_cell_index, scatter_mean_planes
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("06_shapes", PROFILE, DEVICE, SEED, OUT_DIR)
cfg, ldm_cfg, ev = shape_vae_config(PROFILE), shape_ldm_config(PROFILE), shape_eval_config(PROFILE)
print(cfg, ev, sep="\n")

# %% [markdown]
# ## 1. The data: procedural furniture in the Occupancy-Networks layout
#
# Every object comes with 20,000 labelled query points (half uniform in the cube, half near the
# surface) and 4,000 surface points; the encoder sees a random subset of the surface points plus
# $\mathcal N(0, 0.005^2)$ noise. The collection is generated once (about a minute for 2,400
# objects) and cached.

# %%
root = shape_data_root(cfg)
train, test = load_shape_split(root, "train"), load_shape_split(root, "test")
print(f"{len(train)} training and {len(test)} held-out objects from {root}")
show = torch.tensor([test.categories.index(c) for c in sorted(set(test.categories))])  # one per category
x_show = encoder_input(test, show, n_surface=cfg.n_surface, surface_noise=cfg.surface_noise, seed=SEED)  # [k, S, 3]

fig, axes = plt.subplots(1, len(show), figsize=(2.6 * len(show), 2.8), subplot_kw={"projection": "3d"})
for ax, pts, i in zip(np.atleast_1d(axes), x_show, show.tolist()):
    ax.scatter(pts[:, 0], pts[:, 2], pts[:, 1], s=1, c=pts[:, 1], cmap="viridis")  # y up
    ax.set_title(textwrap.fill(test.captions[i][0] if test.captions[i] else test.ids[i], 28), fontsize=7)
    ax.set_axis_off(); ax.set_box_aspect((1, 1, 1))
fig.tight_layout(); fig.savefig(out / "point_clouds.png", dpi=120); plt.show()

# %% [markdown]
# ## 2. Point cloud → three planes
#
# Each point is projected onto the planes in the canonical order (xy, yz, xz): plane $ab$ takes
# $(c_a, c_b)$, its width axis is $a$ and its height axis $b$. The PointNet's per-point features
# are **averaged** over the points that fall in the same texel (scatter-mean), and between its
# blocks each point also sees the maximum over its texel (local pooling). Below: how many points
# land in each texel of the 32² planes for one chair.

# %%
R = cfg.net.plane_resolution
index = plane_cell_index(x_show[:1], R)  # [1, 3, S] flat texel per plane
counts = scatter_mean_planes(torch.ones(1, x_show.shape[1], 1), index, R)  # 1 where a texel got points
hits = torch.zeros(3, R * R).scatter_add_(1, index[0], torch.ones_like(index[0], dtype=torch.float32))
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for p, name in enumerate(PLANE_ORDER):
    axes[p].imshow(hits[p].reshape(R, R), origin="lower", cmap="magma")
    axes[p].set_title(f"{name}: width {name[0]}, height {name[1]}", fontsize=9); axes[p].axis("off")
fig.tight_layout(); fig.savefig(out / "plane_projection.png", dpi=120); plt.show()
print("occupied texels per plane:", counts[0, :, 0].flatten(1).sum(1).tolist())

# %% [markdown]
# ## 3. Train the D2C-VAE (or reuse the checkpoint of an earlier run of this profile)

# %%
vae, result = load_or_train_shape_vae(cfg, ckpt_path=ckpt_dir / "shape_vae", device=device, seed=SEED, data=train)
print(result.summary())
print(f"parameters: {count_parameters(vae):,}; latent per shape: {tuple(cfg.net.latent_shape)}")
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
steps_h, rec_h = history_curve(result.history, "rec")
axes[0].plot(steps_h, rec_h); axes[0].set_title(f"BCE summed over {cfg.n_query} points"); axes[0].set_xlabel("step")
axes[1].plot(*history_curve(result.history, "kl")); axes[1].set_title("KL (nats per shape)"); axes[1].set_xlabel("step")
fig.tight_layout(); fig.savefig(out / "training.png", dpi=120); plt.show()

# %% [markdown]
# ## 4. Held-out reconstructions: IoU and Chamfer distance
#
# Reconstructions use the posterior mean. **IoU** compares predicted and true occupancy on the
# 10,000 uniform points of each held-out object (inside ⇔ $\sigma(\hat\omega) > 0.5$; the
# reference meshes and scores at 0.2, also reported). Meshes come from marching cubes of the
# occupancy probability at 0.2 on a dense grid; the **Chamfer distance** (PointFlow's: the sum of the
# two mean squared nearest-neighbour distances, in ONet units) compares points sampled on them with
# the true surface points.

# %%
n_iou = len(test) if ev.n_iou is None else min(ev.n_iou, len(test))
logits, occ = uniform_point_logits(vae, test, torch.arange(n_iou), n_surface=cfg.n_surface,
                                   surface_noise=cfg.surface_noise, seed=SEED)
iou_heldout = iou(torch.sigmoid(logits) > ev.iou_threshold, occ).mean().item()
iou_heldout_t02 = iou(torch.sigmoid(logits) > 0.2, occ).mean().item()
by_cat = {}
for k, c in enumerate(test.categories[:n_iou]):
    by_cat.setdefault(c, []).append(iou(torch.sigmoid(logits[k]) > ev.iou_threshold, occ[k]).item())
print(f"IoU held-out ({n_iou} objects): {iou_heldout:.3f} at p>{ev.iou_threshold}, {iou_heldout_t02:.3f} at p>0.2")
print({c: round(float(np.mean(v)), 3) for c, v in by_cat.items()})

n_ch = min(ev.n_chamfer, len(test))
sub = spread_index(test.categories, n_ch)  # the split is sorted by category: take every category in turn
mean_z, _ = encode_means(vae, encoder_input(test, sub, n_surface=cfg.n_surface, surface_noise=cfg.surface_noise,
                                            seed=SEED))
recon_meshes = meshes_from_logits(dense_occupancy(vae, mean_z, ev.mesh_resolution), threshold=ev.mesh_threshold)
recon_clouds = surface_clouds(recon_meshes, ev.n_points, seed=SEED)
pick = torch.randint(0, test.surface.shape[1], (ev.n_points,), generator=gen)
true_clouds = test.surface[sub][:, pick].float()
chamfer_heldout = chamfer_distance(recon_clouds, true_clouds).mean().item()
print(f"Chamfer held-out ({n_ch} meshes at {ev.mesh_resolution}³): {chamfer_heldout:.5f}")

k = min(ev.n_render, n_ch)
gt_meshes = [procedural_shape(test.ids[i]).to_trimesh() for i in sub[:k].tolist()]
titles = [f"true {test.categories[i]}" for i in sub[:k].tolist()] + ["reconstruction"] * k
geo.render_meshes_grid(gt_meshes + recon_meshes[:k], out / "reconstructions.png", titles=titles, ncols=k,
                       size=ev.render_size)
plt.figure(figsize=(1.6 * k, 3.6)); plt.imshow(plt.imread(out / "reconstructions.png")); plt.axis("off"); plt.show()

# %% [markdown]
# ## 5. What each scale contributes
#
# The decoder emits three basis fields per plane (8², 16², 32² here). Switching scales off in the
# query (their embedding set to zero, `scale_mask`) shows how much the readout relies on each. The
# readout was only ever trained with all three, so this is a probe, not a coarse-to-fine
# approximation: with the finer embeddings missing it still places the object's rough mass, but
# the parts and all thin structures come from the finer fields. The fields themselves are drawn
# below (three principal components per plane).

# %%
masks = {"coarse": (1, 0, 0), "coarse + mid": (1, 1, 0), "all three": (1, 1, 1)}
mask_index = spread_index(test.categories, min(48, n_iou))
iou_mask, mask_meshes = {}, []
for name, mask in masks.items():
    lg, oc = uniform_point_logits(vae, test, mask_index, n_surface=cfg.n_surface,
                                  surface_noise=cfg.surface_noise, seed=SEED, scale_mask=mask)
    iou_mask[name] = iou(torch.sigmoid(lg) > ev.iou_threshold, oc).mean().item()
    grid = dense_occupancy(vae, mean_z[:2], ev.mesh_resolution, scale_mask=mask)
    mask_meshes += meshes_from_logits(grid, threshold=ev.mesh_threshold)
print({k: round(v, 3) for k, v in iou_mask.items()})
order = [0, 2, 4, 1, 3, 5]  # first object for each mask, then the second
geo.render_meshes_grid([mask_meshes[i] for i in order], out / "scales.png", ncols=3, size=ev.render_size,
                       titles=[f"{n} (IoU {iou_mask[n]:.2f})" for n in masks] * 2)
plt.figure(figsize=(6, 4)); plt.imshow(plt.imread(out / "scales.png")); plt.axis("off"); plt.show()

with torch.no_grad():
    hdbf = vae.decode(mean_z[:1].to(device))
fig, axes = plt.subplots(3, 3, figsize=(7.5, 7.5))
for l, f in enumerate(hdbf):
    for p, name in enumerate(PLANE_ORDER):
        axes[l, p].imshow(F.fields_to_rgb(f[0, p].cpu()), origin="lower", interpolation="nearest")
        axes[l, p].set_title(f"$\\Xi^{l + 1}$ {name} ({f.shape[-1]}²)", fontsize=9); axes[l, p].axis("off")
fig.tight_layout(); fig.savefig(out / "fields.png", dpi=120); plt.show()

# %% [markdown]
# ## 6. Latent diffusion on channel-stacked tri-planes
#
# The three latent planes $[3, z, h, w]$ become one image $[3z, h, w]$, channels
# $[z_{xy} \,|\, z_{yz} \,|\, z_{xz}]$, and the same order is used to turn samples back into
# tri-planes (the official code stacks in one order and un-stacks in another). The targets are
# posterior samples $z = \mu + \sigma\epsilon$ of every training shape; training and sampling are
# those of notebook 04 (ε-prediction, mixed prediction, DDIM).

# %%
posterior = encode_posterior_images(vae, train, n_surface=cfg.n_surface, surface_noise=cfg.surface_noise, seed=SEED)
z_planes = image_to_triplane(posterior.mean)  # [N, 3, z, h, w], planes (xy, yz, xz)
assert torch.equal(triplane_to_image(z_planes), posterior.mean)  # exact round trip
print(f"{len(posterior)} latents, stacked shape {posterior.shape}; std(z) = {posterior.overall_std():.3f}")
zc = cfg.net.z_channels
fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
for p, name in enumerate(PLANE_ORDER):
    axes[p].imshow(posterior.mean[0, p * zc], cmap="RdBu_r", origin="lower")
    axes[p].set_title(f"channel {p * zc}: {name}", fontsize=9); axes[p].axis("off")
fig.tight_layout(); fig.savefig(out / "stacked_latent.png", dpi=120); plt.show()

ldm, ldm_result = load_or_train_ldm(vae, posterior, ldm_cfg, ckpt_path=ckpt_dir / "ldm_shape", device=device,
                                    seed=SEED)
print(("reused the checkpoint" if ldm_result.resumed_from == ldm_result.steps_done else
       f"trained {ldm_result.steps_done} steps in {ldm_result.total_time_s:.0f} s")
      + f"; UNet parameters {count_parameters(ldm.net):,}; latent scale {ldm.latent_scale:.4g}")

n_gen = ev.n_metric
z_img = sample_latents(ldm, n_gen, sampler=ldm_cfg.sampler, steps=ldm_cfg.sample_steps, batch_size=ldm_cfg.sample_batch,
                       generator=torch.Generator().manual_seed(SEED))
sample_meshes = meshes_from_logits(dense_occupancy(vae, image_to_triplane(z_img), ev.mesh_resolution),
                                   threshold=ev.mesh_threshold)
print(f"{n_gen} samples, {sum(m.is_empty for m in sample_meshes)} empty meshes")
geo.render_meshes_grid(sample_meshes[:2 * ev.n_render], out / "samples.png", ncols=ev.n_render, size=ev.render_size)
plt.figure(figsize=(1.6 * ev.n_render, 3.4)); plt.imshow(plt.imread(out / "samples.png")); plt.axis("off"); plt.show()

# %% [markdown]
# ## 7. Sample quality: MMD, COV and 1-NNA with the Chamfer distance
#
# As in the reference (PointFlow's protocol): points sampled on every generated mesh and on every
# held-out object (fewer clouds and points than the reference's 1,355 × 2,048 under the cpu
# profile: the pairwise Chamfer distances dominate the cost), each cloud normalised to the unit sphere; **MMD** (lower is better) is the mean
# distance of each held-out shape to its nearest sample, **COV** (higher is better) the fraction of
# held-out shapes that are some sample's nearest, **1-NNA** the leave-one-out 1-NN accuracy of
# telling samples from held-out shapes (0.5 is ideal). The **floor** scores training shapes in
# place of samples: what a model that reproduces the training distribution exactly would get.

# %%
ref_index = spread_index(test.categories, min(n_gen, len(test)))
few = pick[:ev.n_metric_points]
ref = normalize_to_unit_sphere(test.surface[ref_index][:, few].float())
gen_clouds = normalize_to_unit_sphere(surface_clouds(sample_meshes, ev.n_metric_points, seed=SEED))
scores = mmd_cov_nna(gen_clouds, ref)
floor_index = torch.randperm(len(train), generator=gen)[:n_gen]
floor = mmd_cov_nna(normalize_to_unit_sphere(train.surface[floor_index][:, few].float()), ref)
print(f"samples: MMD {scores['mmd']:.5f}  COV {scores['cov']:.3f}  1-NNA {scores['nna']:.3f}")
print(f"floor  : MMD {floor['mmd']:.5f}  COV {floor['cov']:.3f}  1-NNA {floor['nna']:.3f}  (training shapes)")

# %% [markdown]
# ## 8. Interactive view (JupyterLab)
#
# A k3d scene: a held-out object, its reconstruction, and three samples. (k3d draws in the browser;
# an executed copy of this notebook keeps only the PNGs above.)

# %%
scene = geo.k3d_scene([gt_meshes[0], recon_meshes[0], *[m for m in sample_meshes if not m.is_empty][:3]])
scene

# %%
metrics = {
    "iou_heldout": iou_heldout,
    "iou_heldout_t02": iou_heldout_t02,
    "chamfer_heldout": chamfer_heldout,
    "iou_coarse_only": iou_mask["coarse"],
    "iou_coarse_mid": iou_mask["coarse + mid"],
    "mmd": scores["mmd"], "cov": scores["cov"], "nna": scores["nna"],
    "mmd_floor": floor["mmd"], "cov_floor": floor["cov"], "nna_floor": floor["nna"],
    "latent_std": posterior.overall_std(),
    "train_s_vae": result.total_time_s, "train_steps_vae": result.steps_done,
    "train_s_ldm": ldm_result.total_time_s, "train_steps_ldm": ldm_result.steps_done,
    "params_vae": count_parameters(vae),
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[result, ldm_result], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * A PointNet scatters a noisy surface cloud onto three planes; a shared 2D conv encoder with
#   cross-plane blocks gives a Gaussian tri-plane latent, and the decoder turns it into basis
#   fields at three resolutions on each plane. Summing the three projections' samples gives the
#   positional embedding of any 3D point; the CFC readout gives its occupancy.
# * The loss is the reference's: BCE summed over the query points and a KL weighted at most 0.01.
# * IoU and Chamfer measure held-out reconstructions; switching scales off shows the coarse-to-fine
#   split of the work.
# * Stacked along channels in one fixed order (xy, yz, xz), the latents are ordinary 2D images for the
#   latent diffusion model; MMD / COV / 1-NNA compare its samples with held-out shapes, next to the
#   floor that training shapes reach.
