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
# # 00 · Notebook conventions
#
# The smallest notebook that follows the conventions every notebook here shares: imports, one
# `parameters` cell, a body that writes `metrics.json` into `OUT_DIR`, and a recap.

# %%
import time

import torch

from ddmi_lite import resolve_device, seed_everything
from ddmi_lite.reproduce import notebook_out_dir, write_metrics

# %% tags=["parameters"]
PROFILE = "cpu"
DEVICE = "auto"
SEED = 0
OUT_DIR = ""

# %%
t_start = time.time()
device = resolve_device(DEVICE)
generator = seed_everything(SEED)
out = notebook_out_dir("00_template_check", PROFILE, OUT_DIR)
print(f"profile={PROFILE} device={device} out={out}")

# %%
# 1 + 2 + ... + n = n (n + 1) / 2, computed on the chosen device
n = 100
total = torch.arange(1, n + 1, device=device).sum().item()
assert total == n * (n + 1) // 2
noise_mean = torch.randn(1000, generator=generator).mean().item()
metrics = {"arange_sum": total, "noise_mean": noise_mean, "wall_s": time.time() - t_start}
write_metrics(out, metrics, profile=PROFILE, device=str(device))
metrics

# %% [markdown]
# ## Recap
#
# * Parameters arrive through the cell tagged `parameters`; `OUT_DIR = ""` means `runs/<PROFILE>/<name>/`.
# * `write_metrics` checks that `metrics.json` is flat, finite and snake-case, and adds `profile` and `device`.
