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
# # 02 · Coarse-to-fine conditioning (CFC)
#
# The decoder gives three positional embeddings per coordinate, $p^1$ (coarse), $p^2$, $p^3$
# (fine). How should one shared MLP read them? DDMI's answer is **coarse-to-fine conditioning**:
# the coarse embedding alone enters the first block, and the finer ones are *concatenated* to the
# hidden state before later blocks,
#
# $$h_1 = \mathrm{RB}_1([p^1, s]),\quad h_2 = \mathrm{RB}_2([h_1, p^2, s]),\quad
#   h_3 = \mathrm{RB}_3([h_2, p^3, s]),\quad h_4 = \mathrm{RB}_4(h_3),\quad \hat\omega = W h_4 + b,$$
#
# where RB is a residual MLP block and $s$ the render scale (images only). The network first
# forms a coarse description of the signal and then refines it with detail. The variants we compare
# are the usual alternatives: every scale at the input (`concat_input`), the scales summed into one
# embedding (`sum`), and a single fine-scale field (`single_scale`).

# %%
import time

import matplotlib.pyplot as plt
import torch

from ddmi_lite import seed_everything
from ddmi_lite.data import load_emoji
from ddmi_lite.domains.image import build_image_vae, build_pyramid, image_vae_config, reconstruct, train_image_vae
from ddmi_lite.metrics import psnr
from ddmi_lite.readout import MODES, CFCReadout, readout_block_inputs
from ddmi_lite.notebook import start_notebook, write_metrics
from ddmi_lite.vae import count_parameters

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device, gen, out, ckpt_dir = start_notebook("02_coarse_to_fine", PROFILE, DEVICE, SEED, OUT_DIR)
# per profile: training steps per variant, images fitted, evaluation period
STEPS, N_IMAGES, EVAL_EVERY = {"smoke": (6, 32, 3), "cpu": (200, 3862, 25), "gpu": (3000, 3862, 100)}[PROFILE]
print(f"steps/variant={STEPS}, images={N_IMAGES}")

# %% [markdown]
# ## 1. The wiring of each mode
#
# The input width of every block shows where each embedding enters (64 channels per embedding,
# 2 scale channels, hidden width $H$).

# %%
for mode in MODES:
    dims = [64] * (1 if mode == "single_scale" else 3)
    r = CFCReadout(dims, hidden=96, mode=mode, scale_cond=True)
    print(f"{mode:13s} block input widths {readout_block_inputs(r)}  parameters {count_parameters(r):,}")

# %% [markdown]
# In `cfc` mode, block 1 never sees the fine embedding: perturbing $p^3$ cannot change $h_1$.
# We check it with a forward hook on block 1.

# %%
r = CFCReadout([64, 64, 64], hidden=96, mode="cfc", scale_cond=True)
seen = []
hook = r.blocks[0].register_forward_hook(lambda m, i, o: seen.append(o.detach()))
pes = [torch.randn(1, 10, 64) for _ in range(3)]
y0 = r(pes, scale=1.0)
y1 = r([pes[0], pes[1], pes[2] + torch.randn_like(pes[2])], scale=1.0)
hook.remove()
block1_change = (seen[0] - seen[1]).abs().max().item()
print(f"block-1 change when p³ changes: {block1_change:.1e}; output change: {(y0 - y1).abs().max().item():.2e}")

# %% [markdown]
# ## 2. Fitting the same images with each variant
#
# Each variant is a full image D2C-VAE (same encoder, decoder, latent and training budget; the
# single-scale one has a decoder that emits only the finest field) trained on the same emoji for
# the same number of steps with the same seed. We track the reconstruction PSNR of a fixed batch of
# training images, and report the held-out PSNR at the end.

# %%
train32, train48, train64 = (load_emoji(r, "train")[:N_IMAGES] for r in (32, 48, 64))
test32 = load_emoji(32, "test")[:256]
pyramid = build_pyramid(train32, train48, train64)
probe = train32[:64]
curves, final, params, times, results = {}, {}, {}, {}, {}
for mode in MODES:
    cfg = image_vae_config(PROFILE, mode=mode, train=dict(steps=STEPS, max_time_s=None))
    seed_everything(SEED)
    vae = build_image_vae(cfg).to(device)
    params[mode] = count_parameters(vae)
    curve = []

    def track(record, vae=vae, curve=curve):
        if record["step"] % EVAL_EVERY == 0 or record["step"] == STEPS:
            vae.eval()
            curve.append((record["step"], psnr(reconstruct(vae, probe), probe).mean().item()))
            vae.train()

    t0 = time.time()
    results[mode] = train_image_vae(vae, cfg, pyramid, device=device, seed=SEED, progress=True, callback=track)
    times[mode] = time.time() - t0
    curves[mode] = curve
    final[mode] = psnr(reconstruct(vae.eval(), test32), test32).mean().item()
    print(f"{mode:13s} params {params[mode]:,}  train-probe PSNR {curve[-1][1]:.2f} dB  "
          f"held-out PSNR {final[mode]:.2f} dB  ({times[mode]:.0f} s)")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for mode, curve in curves.items():
    steps, values = zip(*curve)
    ax.plot(steps, values, marker="o", ms=3, label=f"{mode} (held-out {final[mode]:.1f} dB)")
ax.set_xlabel("training step"); ax.set_ylabel("PSNR on training images (dB)")
ax.set_title("Readout variants, same VAE, data and budget"); ax.legend(); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig(out / "psnr_curves.png", dpi=120); plt.show()

# %% [markdown]
# At this scale and budget the differences between variants are small and can change order with
# the seed: notebook 10 repeats the comparison with several seeds and reports the spread. What the
# wiring guarantees is structural: in CFC the first blocks work on coarse structure only, and each
# finer scale can only *refine* the hidden state.

# %%
metrics = {"block1_change_cfc": block1_change, "wall_s": time.time() - t_start}
for mode in MODES:
    metrics[f"psnr_heldout_{mode}"] = final[mode]
    metrics[f"psnr_train_{mode}"] = curves[mode][-1][1]
write_metrics(out, metrics, trained=list(results.values()), profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * CFC feeds the coarse embedding into the first block and concatenates finer embeddings before
#   later blocks; the fine embedding provably cannot affect the first block.
# * The alternatives — all scales at the input, summed scales, one fine scale — share the same
#   training code through `CFCReadout(mode=...)`.
# * The PSNR curves above compare the variants under an equal budget on the same images.
