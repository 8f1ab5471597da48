"""Stage 2 on images and its scores (DDMI §4.1): encode the emoji, decode samples, measure them.

The latent model itself (config, training, sampling) is :mod:`ddmi_lite.ldm`. This module wires
it to the image D2C-VAE: the posterior of every training image (optionally mirrored), sampled
latents rendered to images at any resolution, the per-timestep loss against the analytic term
of mixed prediction, and the sample-quality report — Fréchet distance, precision / recall and
KID on the features of :class:`ddmi_lite.features.FeatureNet`, a nearest-neighbour
memorisation check, and a sweep of samplers and step counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ddmi_lite.device import module_device
from ddmi_lite.diffusion import LatentDiffusion
from ddmi_lite.domains.image import render, to_unit_range
from ddmi_lite.errors import DDMIError
from ddmi_lite.features import image_features
from ddmi_lite.ldm import LatentPosterior, sample_latents
from ddmi_lite.metrics import frechet_distance, kid, precision_recall


@torch.no_grad()
def encode_posterior(vae, images01: torch.Tensor, *, batch_size: int = 256, hflip: bool = False) -> LatentPosterior:
    """Encode images ``[N, 3, H, W]`` in [0, 1] to q(z|x); ``hflip`` appends the mirrored images' posteriors."""
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise DDMIError(f"images01 must be [N, 3, H, W] in [0, 1]; got shape {tuple(images01.shape)}")
    if batch_size < 1:
        raise DDMIError(f"batch_size={batch_size} must be >= 1")
    device = module_device(vae)
    was_training = vae.training
    vae.eval()
    means, stds = [], []
    sources = [images01, images01.flip(-1)] if hflip else [images01]
    for images in sources:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device) * 2.0 - 1.0  # pixels in [−1, 1], the VAE's range
            post = vae.encode(x)
            means.append(post.mean.float().cpu())  # [b, C, h, w]
            stds.append(post.std.float().cpu())
    vae.train(was_training)
    return LatentPosterior(torch.cat(means), torch.cat(stds))


def encode_dataset(vae, images01: torch.Tensor, *, batch_size: int = 256, sample: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Latents ``[N, C, h, w]`` of images in [0, 1]: posterior samples (``sample``) or the means."""
    post = encode_posterior(vae, images01, batch_size=batch_size)
    return post.sample(generator=generator) if sample else post.mean


@torch.no_grad()
def decode_to_images(vae, z: torch.Tensor, size: int = 32, *, batch_size: int = 256,
                     train_resolution: int = 32, progress: bool = True) -> torch.Tensor:
    """Latents → basis fields D_ψ(z) → images rendered on a ``size²`` grid, ``[n, 3, size, size]`` in [0, 1].

    ``progress``: a tqdm bar counting the images decoded.
    """
    if z.ndim != 4:
        raise DDMIError(f"z must be latents [n, C, h, w]; got shape {tuple(z.shape)}")
    device = module_device(vae)
    was_training = vae.training
    vae.eval()
    out = []
    with tqdm(total=len(z), desc=f"decoding latents to {size}² images", unit="image", leave=False,
              disable=not progress) as bar:
        for start in range(0, len(z), batch_size):
            fields = vae.decode(z[start:start + batch_size].to(device))  # list of [b, 1, C_pe, h_l, w_l]
            out.append(to_unit_range(render(vae, fields, size, train_resolution=train_resolution)).cpu())
            bar.update(len(out[-1]))
    vae.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# evaluation
@torch.no_grad()
def loss_per_timestep(ldm: LatentDiffusion, z0: torch.Tensor, timesteps, *, generator: torch.Generator | None = None,
                      batch_size: int = 512) -> dict[str, np.ndarray]:
    """E_ε ‖ε − ε̂(z_t, t)‖² at each t, for the model and for the analytic term √(1−ᾱ_t)·z_t alone (s = 0).

    ``z0`` are latents in the VAE's units; the gap between the two curves is what the network adds
    on top of the exact ε of standard-normal data.
    """
    device = module_device(ldm)
    sch = ldm.schedule
    model, analytic = [], []
    for t in timesteps:
        m_sum = a_sum = 0.0
        for start in range(0, len(z0), batch_size):
            x0 = z0[start:start + batch_size].to(device) * ldm.latent_scale
            noise = torch.randn(x0.shape, generator=generator).to(device)
            t_vec = torch.full((len(x0),), int(t), dtype=torch.long, device=device)
            x_t = sch.q_sample(x0, t_vec, noise)  # √ᾱ_t·z_0 + √(1−ᾱ_t)·ε
            m_sum += float((ldm.eps(x_t, t_vec) - noise).pow(2).sum())
            a_sum += float((sch.at(sch.sqrt_one_minus_alphas_cumprod, t_vec, x_t) * x_t - noise).pow(2).sum())
        model.append(m_sum / z0.numel())
        analytic.append(a_sum / z0.numel())
    return {"t": np.asarray(list(timesteps)), "model": np.asarray(model), "analytic": np.asarray(analytic)}


def fd_report(real_feats, fake_feats, *, k: int = 3, kid_subsets: int = 10, seed: int = 0) -> dict[str, float]:
    """Fréchet distance, precision / recall (k-NN manifolds) and KID between two feature sets [N, D]."""
    precision, recall = precision_recall(real_feats, fake_feats, k=k)
    return {"fd": frechet_distance(real_feats, fake_feats), "precision": precision, "recall": recall,
            "kid": kid(real_feats, fake_feats, subsets=kid_subsets, seed=seed)}


def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor, *, batch_size: int = 256):
    """For each query image the index of, and the RMS pixel distance to, its nearest image in ``pool``."""
    if queries.shape[1:] != pool.shape[1:]:
        raise DDMIError(f"queries {tuple(queries.shape)} and pool {tuple(pool.shape)} must share [C, H, W]")
    q, p = queries.flatten(1).double(), pool.flatten(1).double()  # [n, D], [m, D]
    best_d, best_i = [], []
    for start in range(0, len(q), batch_size):
        a = q[start:start + batch_size]
        d2 = (a.pow(2).sum(1)[:, None] + p.pow(2).sum(1)[None] - 2.0 * a @ p.T).clamp_min(0.0)  # ‖a − b‖² [b, m]
        d, i = d2.min(dim=1)
        best_d.append((d / q.shape[1]).sqrt())  # RMS over the C·H·W values
        best_i.append(i)
    return torch.cat(best_i), torch.cat(best_d).float()


def counts_nfe(counts: list[int]) -> Callable[[dict], None]:
    """A sampler callback that appends each step's cumulative ``nfe`` to ``counts``."""
    return lambda info: counts.append(int(info["nfe"]))


def sweep_samplers(ldm: LatentDiffusion, vae, feature_net, real_feats, grid: dict, *, n: int, seed: int = 0,
                   batch_size: int = 500, size: int = 32, progress: bool = True) -> list[dict]:
    """Score every (sampler, steps) of ``grid`` on ``n`` samples from the same initial noise.

    Returns one dict per setting: ``sampler``, ``steps``, ``nfe`` (network evaluations per
    sample), ``fd`` against ``real_feats``, and ``sec_per_image`` (latent sampling only; decoding
    is the same for every sampler).
    """
    rows = []
    for name, step_list in grid.items():
        for steps in step_list:
            counts: list[int] = []
            t0 = time.perf_counter()
            z = sample_latents(ldm, n, sampler=name, steps=int(steps), batch_size=batch_size,
                               generator=torch.Generator().manual_seed(seed), callback=counts_nfe(counts),
                               progress=progress)
            sec = (time.perf_counter() - t0) / n
            feats = image_features(feature_net, decode_to_images(vae, z, size, progress=progress))
            rows.append({"sampler": name, "steps": int(steps), "nfe": max(counts), "fd": frechet_distance(real_feats, feats),
                         "sec_per_image": sec})
            if progress:
                r = rows[-1]
                print(f"{name:>9} {r['steps']:>5} steps  NFE {r['nfe']:>5}  FD {r['fd']:8.3f}  "
                      f"{1e3 * sec:7.2f} ms/image", flush=True)
    return rows


def nfe_to_match(rows: list[dict], *, metric: str = "fd", ref: tuple[str, int] = ("ddim", 50),
                 rtol: float = 0.0) -> dict:
    """Per sampler, the fewest network evaluations whose ``metric`` is ≤ (1 + rtol) × that of ``ref``.

    ``rows``: dicts with ``sampler``, ``steps``, ``nfe`` and ``metric`` (lower is better), e.g. from
    :func:`sweep_samplers`. Returns ``{"reference": value, "per_sampler": {name: nfe or None},
    "best_sampler": name, "best_nfe": nfe, "best_steps": steps}``.
    """
    match = [r for r in rows if (r["sampler"], int(r["steps"])) == (ref[0], int(ref[1]))]
    if not match:
        raise DDMIError(f"rows hold no {ref[0]}-{ref[1]} setting to match; add it to the sweep")
    target = match[0][metric]
    bar = target + rtol * abs(target)
    per, best = {}, None
    for r in sorted(rows, key=lambda r: r["nfe"]):
        if r[metric] <= bar and per.get(r["sampler"]) is None:
            per[r["sampler"]] = int(r["nfe"])
            if best is None:
                best = r
        per.setdefault(r["sampler"], None)
    return {"reference": float(target), "per_sampler": per, "best_sampler": best["sampler"],
            "best_nfe": int(best["nfe"]), "best_steps": int(best["steps"])}


def history_curve(history: list[dict], key: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged quantity of a :class:`TrainResult` history."""
    pairs = [(h["step"], h[key]) for h in history if key in h]
    if not pairs:
        raise DDMIError(f"history holds no {key!r} entries")
    steps, values = zip(*pairs)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


__all__ = ["counts_nfe", "decode_to_images", "encode_dataset", "encode_posterior", "fd_report", "history_curve",
           "loss_per_timestep", "nearest_neighbours", "nfe_to_match", "sweep_samplers"]
