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
# # 01 · Basis fields: positional embeddings by interpolation
#
# An implicit neural representation (INR) maps a continuous coordinate $c$ to a signal value.
# DDMI does not generate the weights of that network. It generates **basis fields**: dense feature
# grids $\Xi^1, \Xi^2, \Xi^3$ (coarse → fine) produced by a convolutional decoder. The positional
# embedding (PE) of a coordinate is read from each field by bilinear interpolation,
#
# $$p^l(c) = \gamma(c; \Xi^l) = \sum_{ab \in \text{planes}} \operatorname{bilinear}\big(\Xi^l_{ab}, (c_a, c_b)\big),$$
#
# and one shared MLP turns $(p^1, p^2, p^3)$ into the signal (notebook 02). Because the PE depends on
# the *sample*, the embedding adapts to the data: this is what "generating adaptive positional
# embeddings" means. This notebook shows how querying works, the three plane layouts, and the one
# detail that silently breaks arbitrary-resolution rendering when it is wrong: `align_corners`.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddmi_lite import fields as F
from ddmi_lite.data import load_emoji
from ddmi_lite.notebook import start_notebook, write_metrics

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("01_basis_fields", PROFILE, DEVICE, SEED, OUT_DIR)

# %% [markdown]
# ## 1. A field is a grid; a PE is an interpolated read
#
# Take an 8×8 grid of 3-channel features: here, to be able to *see* it, the features are the
# colours of an emoji downsampled to 8×8. The field layout is `[B, P, C, H, W]` (P = 1 plane for
# images). Querying it at the pixel centres of a 64×64 grid is a bilinear upsampling; querying it at
# its own 8×8 pixel centres returns the texels exactly.

# %%
emoji = load_emoji(32, "train")[:8]  # [8, 3, 32, 32] in [0, 1]
field = torch.nn.functional.avg_pool2d(emoji[3:4], 4)[:, None]  # [1, P=1, C=3, 8, 8]
coords_64 = F.image_coords(64)[None]  # [1, 4096, 2] pixel centres, (x, y)
coords_8 = F.image_coords(8)[None]
pe_64 = F.query_fields([field], coords_64, "plane")[0]  # [1, 4096, 3]
pe_8 = F.query_fields([field], coords_8, "plane")[0]  # [1, 64, 3]
texel_err = (pe_8.reshape(8, 8, 3) - field[0, 0].permute(1, 2, 0)).abs().max().item()
print(f"query at the field's own pixel centres vs texels: max |diff| = {texel_err:.2e}")

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(emoji[3].permute(1, 2, 0)); axes[0].set_title("image 32²")
axes[1].imshow(field[0, 0].permute(1, 2, 0), interpolation="nearest"); axes[1].set_title("field Ξ, 8×8 texels")
axes[2].imshow(pe_64.reshape(64, 64, 3).clamp(0, 1)); axes[2].set_title("PE queried on a 64² grid")
for a in axes: a.axis("off")
fig.tight_layout(); fig.savefig(out / "query.png", dpi=120); plt.show()

# %% [markdown]
# ## 2. Checking `grid_sample` against the definition
#
# Bilinear interpolation at $c$ with pixel-centre texels (`align_corners=False`) puts texel $i$ of
# an $n$-texel axis at $u_i = (2i+1)/n - 1$. A naive loop over points that implements exactly that
# (with border clamping) must agree with the batched `grid_sample` call used by the library.

# %%
def naive_bilinear(grid: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear read of a [C, H, W] grid at (x, y) ∈ [-1, 1]², pixel-centre texels, border clamp."""
    C, H, W = grid.shape
    fx, fy = ((x + 1) * W - 1) / 2, ((y + 1) * H - 1) / 2  # continuous texel index
    fx, fy = min(max(fx, 0), W - 1), min(max(fy, 0), H - 1)
    x0, y0 = int(np.floor(fx)), int(np.floor(fy))
    x1, y1 = min(x0 + 1, W - 1), min(y0 + 1, H - 1)
    wx, wy = fx - x0, fy - y0
    top = (1 - wx) * grid[:, y0, x0] + wx * grid[:, y0, x1]
    bottom = (1 - wx) * grid[:, y1, x0] + wx * grid[:, y1, x1]
    return (1 - wy) * top + wy * bottom

rng = np.random.default_rng(SEED)
pts = rng.uniform(-1, 1, size=(500, 2)).astype(np.float32)
lib = F.query_fields([field], torch.from_numpy(pts)[None], "plane")[0][0].numpy()
ref = np.stack([naive_bilinear(field[0, 0].numpy(), x, y) for x, y in pts])
naive_err = float(np.abs(lib - ref).max())
print(f"library vs naive loop on 500 random points: max |diff| = {naive_err:.2e}")

# %% [markdown]
# ## 3. `align_corners`: where the texels sit
#
# With `align_corners=False` the $n$ texels sit at pixel centres, so rendering an $N$-pixel image
# uses coordinates $\mathrm{linspace}(-(N-1)/N, (N-1)/N, N)$ and is consistent at *every*
# resolution. With `align_corners=True` the first and last texels sit on ±1. Mixing the two conventions (pixel-centre coordinates
# but corner-aligned sampling) shifts and stretches the field by half a texel: the render at the
# field's own resolution is no longer the field itself. Images therefore use `False`; the planes
# of 3D shapes and videos, whose coordinates are corner-aligned grids, use `True`. The library
# decides this in one place, `fields.align_corners_for(layout)`.

# %%
n = 8
u_false = F.pixel_centers(n).numpy()
u_true = np.linspace(-1, 1, n)
wrong = torch.nn.functional.grid_sample(field[:, 0], coords_8.reshape(1, 8, 8, 2), align_corners=True,
                                        padding_mode="border")[0].permute(1, 2, 0)
shift_err = (wrong - field[0, 0].permute(1, 2, 0)).abs().max().item()
print(f"pixel-centre coordinates read with align_corners=True: max |diff| to the texels = {shift_err:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
axes[0].scatter(u_false, np.zeros(n), label="texels, align_corners=False (pixel centres)")
axes[0].scatter(u_true, np.ones(n) * 0.2, label="texels, align_corners=True (corners)")
axes[0].set_ylim(-0.3, 0.6); axes[0].set_yticks([]); axes[0].set_xlim(-1.05, 1.05)
axes[0].legend(fontsize=7, loc="upper center"); axes[0].set_title(f"where {n} texels sit on [-1, 1]")
axes[1].imshow(field[0, 0].permute(1, 2, 0), interpolation="nearest"); axes[1].set_title("correct (False)")
axes[2].imshow(wrong.clamp(0, 1), interpolation="nearest"); axes[2].set_title("mixed convention (True)")
for a in axes[1:]: a.axis("off")
fig.tight_layout(); fig.savefig(out / "align_corners.png", dpi=120); plt.show()

# %% [markdown]
# ## 4. Three layouts: plane, tri-plane, x-y-t
#
# A 3D point $(x, y, z)$ is projected onto three axis-aligned planes in the canonical order
# **(xy, yz, xz)**; a video coordinate $(x, y, t)$ onto **(xy, xt, yt)**, where the time planes have
# the spatial axis along their width and $t$ along their height. A plane named $ab$ reads
# $c_a$ along its width and $c_b$ along its height. Shapes **sum** the three plane samples; video
# and NeRF **concatenate** them.

# %%
for layout in F.LAYOUTS:
    D = F.coord_dim(layout)
    c = torch.tensor([[[0.1, -0.5, 0.9][:D]]])  # [1, 1, D]
    grid = F.project(c, layout)[0, :, 0]  # [P, 2]
    planes = ", ".join(f"{p}→(w={g[0]:+.1f}, h={g[1]:+.1f})" for p, g in zip(F.LAYOUTS[layout], grid.tolist()))
    print(f"{layout:9s} c={c[0, 0].tolist()}  {planes}")

tri = torch.zeros(1, 3, 1, 16, 16)
tri[0, 0, 0] = torch.linspace(-1, 1, 16)[None, :]  # xy plane varies with x (its width)
tri[0, 1, 0] = torch.linspace(-1, 1, 16)[:, None]  # yz plane varies with z (its height)
tri[0, 2, 0] = 0.5                                  # xz plane constant
slice_xz = F.grid_coords(32, 32)  # (x, z) on a grid, x varying slowest
pts3 = torch.stack([slice_xz[:, 0], torch.full((1024,), 0.3), slice_xz[:, 1]], -1)[None]  # the y = 0.3 slice
pe_sum = F.query_fields([tri], pts3, "triplane", aggregate="sum")[0].reshape(32, 32)
pe_cat = F.query_fields([tri], pts3, "triplane", aggregate="concat")[0].reshape(32, 32, 3)
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for k, name in enumerate(F.LAYOUTS["triplane"]):
    axes[k].imshow(pe_cat[..., k].T, origin="lower", extent=(-1, 1, -1, 1), vmin=-1, vmax=1.5, cmap="coolwarm")
    axes[k].set_title(f"{name} plane, slice y=0.3"); axes[k].set_xlabel("x"); axes[k].set_ylabel("z")
axes[3].imshow(pe_sum.T, origin="lower", extent=(-1, 1, -1, 1), cmap="coolwarm"); axes[3].set_title("sum (shapes)")
axes[3].set_xlabel("x"); axes[3].set_ylabel("z")
fig.tight_layout(); fig.savefig(out / "triplane.png", dpi=120); plt.show()

# %% [markdown]
# ## 5. Multi-scale fields from a D2C-VAE decoder
#
# The decoder of the image D2C-VAE emits three fields, at 8², 16² and 32² for 32² images
# (HDBF). Each has 64 channels; to look at them we project each pixel's 64-vector on its three
# leading principal components and show them as RGB (`fields_to_rgb`). Here the network is freshly
# initialised, so this is the structure that comes from the encoder–decoder convolutions
# alone; notebook 03 shows the fields after training.

# %%
from ddmi_lite.domains.image import build_image_vae, image_vae_config, to_model_range

cfg = image_vae_config(PROFILE)
vae = build_image_vae(cfg).eval()
with torch.no_grad():
    hdbf = vae.decode(vae.encode(to_model_range(emoji[:2])).mode())
fig, axes = plt.subplots(2, 1 + len(hdbf), figsize=(3 * (1 + len(hdbf)), 6))
for r in range(2):
    axes[r, 0].imshow(emoji[r].permute(1, 2, 0)); axes[r, 0].set_title("input")
    for l, f in enumerate(hdbf):
        axes[r, l + 1].imshow(F.fields_to_rgb(f[r, 0]), interpolation="nearest")
        axes[r, l + 1].set_title(f"Ξ^{l + 1}: {f.shape[-2]}×{f.shape[-1]}, C={f.shape[2]}")
for a in axes.flat: a.axis("off")
fig.tight_layout(); fig.savefig(out / "hdbf_untrained.png", dpi=120); plt.show()

# %%
metrics = {
    "err_texel_query": texel_err,
    "err_naive_query": naive_err,
    "err_mixed_align_corners": shift_err,
    "wall_s": time.time() - t_start,
}
write_metrics(out, metrics, trained=[], profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * A basis field is a dense feature grid; a positional embedding is its bilinear interpolation
#   at a continuous coordinate — it can be read at any resolution.
# * Images use pixel-centre texels (`align_corners=False`): read at its own resolution, the field
#   returns its texels exactly; the mixed convention shifts everything by half a texel.
# * 3D points use three planes (xy, yz, xz) whose samples are summed; videos use (xy, xt, yt) with
#   time along the height of the time planes, and concatenate.
# * The D2C-VAE decoder emits such fields at three scales (HDBF); notebook 02 reads them out with
#   coarse-to-fine conditioning.
