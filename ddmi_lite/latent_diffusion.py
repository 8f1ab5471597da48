"""DDMI stage 2 end to end: VAE latents → latent diffusion → sampled latents → images → scores.

Reference §2 (DDMI §3.3): once the D2C-VAE is trained, a diffusion model learns the
distribution of its latents. The targets are posterior *samples* z = μ + σ·ε, ε ~ N(0, I),
drawn afresh every time a latent is used (not the means), with no rescaling. Generation draws
z with a sampler of :mod:`ddmi_lite.sampling`, decodes it to basis fields D_ψ(z) and renders
them at any resolution with the shared readout.

This module wires :mod:`ddmi_lite.diffusion`, :mod:`ddmi_lite.train`,
:mod:`ddmi_lite.sampling` and :mod:`ddmi_lite.metrics` to a trained VAE: encoding a dataset,
building and training the latent model (or reusing its checkpoint), sampling and decoding,
and the sample-quality report (Fréchet distance, precision / recall, KID on the features of
:class:`ddmi_lite.metrics.FeatureNet`, a nearest-neighbour memorisation check, and a sweep of
samplers and step counts).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ddmi_lite.checkpoint import checkpoint_exists, checkpoint_files
from ddmi_lite.configs import LDMConfig
from ddmi_lite.diffusion import LatentDiffusion, Schedule
from ddmi_lite.errors import DDMIError
from ddmi_lite.sampling import SAMPLERS
from ddmi_lite.train import TrainConfig, TrainResult, spent_budget, train
from ddmi_lite.unet import UNet

# LDMConfig fields that define the trained model (sampling / evaluation sizes may change freely)
MODEL_FIELDS = ("model_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "num_heads",
                "dropout", "num_timesteps", "mixed_init", "latent_scale", "hflip", "batch_size", "lr", "mix_lr",
                "warmup_steps", "weight_decay", "grad_clip", "ema_decay", "precision")


# ----------------------------------------------------------------------------------------------
# data: the posterior of every training image
@dataclass
class LatentPosterior:
    """q(z|x) of a dataset: means and standard deviations, both ``[N, C, h, w]`` (CPU, float32)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __post_init__(self):
        if self.mean.ndim != 4 or self.mean.shape != self.std.shape:
            raise DDMIError(f"mean and std must be equal [N, C, h, w] shapes; got {tuple(self.mean.shape)} "
                            f"and {tuple(self.std.shape)}")

    def __len__(self) -> int:
        return self.mean.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one latent (C, h, w)."""
        return tuple(self.mean.shape[1:])

    def sample(self, index: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ·ε with ε ~ N(0, I) for the rows ``index`` (all rows when None)."""
        mean, std = (self.mean, self.std) if index is None else (self.mean[index], self.std[index])
        return mean + std * torch.randn(mean.shape, generator=generator)

    def overall_std(self) -> float:
        """√Var(z) over the dataset and all dimensions: Var(z) = Var(μ) + E[σ²] (law of total variance)."""
        return float((self.mean.double().var() + self.std.double().pow(2).mean()).sqrt())


@torch.no_grad()
def encode_posterior(vae, images01: torch.Tensor, *, batch_size: int = 256, hflip: bool = False) -> LatentPosterior:
    """Encode images ``[N, 3, H, W]`` in [0, 1] to q(z|x); ``hflip`` appends the mirrored images' posteriors."""
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise DDMIError(f"images01 must be [N, 3, H, W] in [0, 1]; got shape {tuple(images01.shape)}")
    if batch_size < 1:
        raise DDMIError(f"batch_size={batch_size} must be >= 1")
    device = next(vae.parameters()).device
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


def resolve_latent_scale(cfg: LDMConfig, posterior: LatentPosterior | None = None) -> float:
    """The factor latents are multiplied by before diffusion.

    1 (the reference) unless ``cfg.latent_scale`` says otherwise. ``"auto"`` gives 1/std of the
    training latents (LDM's scale factor, Rombach et al. 2022 §4.3.2): the forward process
    assumes data of about unit variance — x_T ~ N(0, I) — and the mixed prediction's analytic
    term √(1−ᾱ_t)·x_t is the exact ε only for standard-normal data. A VAE whose KL weight is
    small gives latents far from unit scale (std ≈ 2.3 after a short run of the cpu image VAE
    preset); yet on those latents 600 training steps scored the same with and without the scale
    (FD 6.4 and 6.5, see :func:`ddmi_lite.configs.ldm_config`), so the image presets keep the
    reference's 1 and the notebooks print the latents' std. The value is rounded to 4
    significant digits so checkpoints match across devices.
    """
    if cfg.latent_scale == "auto":
        if posterior is None:
            raise DDMIError('latent_scale="auto" needs the training posterior to measure the latents\' std')
        return float(f"{1.0 / posterior.overall_std():.4g}")
    if isinstance(cfg.latent_scale, str) or not cfg.latent_scale > 0:
        raise DDMIError(f'latent_scale={cfg.latent_scale!r} must be a positive number or "auto"')
    return float(cfg.latent_scale)


# ----------------------------------------------------------------------------------------------
# the model and its training
def build_ldm(cfg: LDMConfig, latent_shape, *, latent_scale: float | None = None) -> LatentDiffusion:
    """UNet ε-network on latents of ``latent_shape`` (C, h, w) inside a mixed-prediction LatentDiffusion."""
    if len(latent_shape) != 3:
        raise DDMIError(f"latent_shape={tuple(latent_shape)} must be (C, h, w)")
    channels, h, w = (int(s) for s in latent_shape)
    net = UNet(channels, model_channels=cfg.model_channels, channel_mult=cfg.channel_mult,
               num_res_blocks=cfg.num_res_blocks, attention_resolutions=cfg.attention_resolutions,
               num_heads=cfg.num_heads, dropout=cfg.dropout, image_size=min(h, w))
    scale = resolve_latent_scale(cfg) if latent_scale is None else float(latent_scale)
    return LatentDiffusion(net, schedule=Schedule(num_timesteps=cfg.num_timesteps), mixed_init=cfg.mixed_init,
                           latent_scale=scale)


def model_fingerprint(module: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of a module's parameters and buffers, by name: which VAE made the latents."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_ldm(ldm: LatentDiffusion, latents_mean: torch.Tensor, latents_std: torch.Tensor, cfg: LDMConfig, *,
              device="cpu", ckpt_path=None, seed: int = 0, progress: bool = True,
              callback: Callable[[dict], None] | None = None, run_config: dict | None = None,
              resume: bool = True) -> TrainResult:
    """Train with L = E_{t,ε,z~q(z|x)} ‖ε − ε̂(√ᾱ_t·z + √(1−ᾱ_t)·ε, t)‖², a fresh posterior sample per use.

    AdamW with warm-up and cosine decay, EMA of the weights (``cfg.ema_decay``), and the mixing
    logit m in its own parameter group with lr ``cfg.mix_lr``: with s = sigmoid(−6) ≈ 0.0025 the
    network's output starts scaled down 400×, and a larger lr lets a short run move it. Resumes
    from (or reuses a finished) ``ckpt_path`` as :func:`ddmi_lite.train.train` does.
    """
    post = LatentPosterior(latents_mean.detach().float().cpu(), latents_std.detach().float().cpu())
    if ldm.channels is not None and post.shape[0] != ldm.channels:
        raise DDMIError(f"latents have {post.shape[0]} channels but the model expects {ldm.channels}")
    n, batch = len(post), cfg.batch_size
    tcfg = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
                       grad_clip=cfg.grad_clip, ema_decay=cfg.ema_decay, ema_start=cfg.warmup_steps, seed=seed,
                       max_time_s=cfg.max_time_s, precision=cfg.precision,
                       ckpt_every=max(cfg.steps // 4, 1), log_every=max(cfg.steps // 200, 1))

    def batch_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, n, (batch,), generator=generator)
        return post.sample(index, generator)  # z ~ q(z|x), [B, C, h, w]

    def loss_fn(model: LatentDiffusion, z: torch.Tensor, step: int):
        return model.loss(z)

    config = {"ldm": {k: getattr(cfg, k) for k in MODEL_FIELDS}, "latent_shape": list(post.shape),
              "latent_scale_value": ldm.latent_scale, **(run_config or {})}
    return train(ldm, loss_fn, batch_fn, tcfg, device=device, ckpt_path=ckpt_path, resume=resume,
                 params=ldm.param_groups(cfg.lr, mix_lr=cfg.mix_lr, weight_decay=cfg.weight_decay),
                 progress=progress, desc="latent diffusion", callback=callback, run_config=config)


def load_or_train_ldm(vae, posterior: LatentPosterior, cfg: LDMConfig, *, ckpt_path, device="cpu", seed: int = 0,
                      progress: bool = True) -> tuple[LatentDiffusion, TrainResult]:
    """Train the latent model on ``posterior`` (the VAE's training latents), or reuse its checkpoint.

    Returns ``(model for sampling, TrainResult)``: the EMA weights when EMA is on, in eval mode.
    A checkpoint written for another VAE (its weights' fingerprint differs) is not resumed but
    trained afresh. ``cfg.max_time_s`` bounds the training time summed over every call, so a
    run stopped by it is reused, not extended. ``result.resumed_from == result.steps_done``
    means the checkpoint was reused as is.
    """
    scale = resolve_latent_scale(cfg, posterior)
    ldm = build_ldm(cfg, posterior.shape, latent_scale=scale)
    vae_id = model_fingerprint(vae)
    resume, run_cfg = True, cfg
    if ckpt_path is not None and checkpoint_exists(ckpt_path):
        record = json.loads(checkpoint_files(ckpt_path)[1].read_text(encoding="utf-8"))
        meta = record.get("meta", record)  # the sidecar JSON wraps the training state's meta
        if meta.get("config", {}).get("run", {}).get("vae_fingerprint") != vae_id:
            print(f"[latent diffusion] {ckpt_path} was trained on another VAE's latents: training afresh")
            resume = False
        elif cfg.max_time_s is not None:  # the time budget counts over every call
            left, step = spent_budget(ckpt_path, cfg.max_time_s)
            run_cfg = dataclasses.replace(cfg, max_time_s=max(left, 1e-3))
            if left <= 0.02 * cfg.max_time_s:
                run_cfg = dataclasses.replace(run_cfg, steps=step)  # a run that spent its budget is finished
    result = train_ldm(ldm, posterior.mean, posterior.std, run_cfg, device=device, ckpt_path=ckpt_path, seed=seed,
                       progress=progress, run_config={"vae_fingerprint": vae_id}, resume=resume)
    model = result.ema.model if result.ema is not None else ldm
    return model.eval(), result


# ----------------------------------------------------------------------------------------------
# generation
def latent_shape_of(ldm: LatentDiffusion) -> tuple[int, int, int]:
    """(C, h, w) of the latents a UNet-based model was built for (square, ``net.image_size``)."""
    size = getattr(ldm.net, "image_size", None)
    if size is None or ldm.channels is None:
        raise DDMIError("the model does not record its latent size; pass latent_shape=(C, h, w)")
    return (ldm.channels, size, size)


def sample_latents(ldm: LatentDiffusion, n: int, *, sampler: str = "dpmpp_2m", steps: int = 20,
                   generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                   batch_size: int = 500, latent_shape=None, **sampler_kw) -> torch.Tensor:
    """Draw ``n`` latents ``[n, C, h, w]`` (CPU) in batches.

    The callback gets the sampler's dict with ``x`` and ``x0`` divided by ``ldm.latent_scale``
    (in the VAE's latent units, ready for ``vae.decode``) and ``batch`` (the batch index).
    """
    if sampler not in SAMPLERS:
        raise DDMIError(f"sampler={sampler!r} is not one of {tuple(SAMPLERS)}")
    if n < 1 or batch_size < 1:
        raise DDMIError(f"n={n} and batch_size={batch_size} must be >= 1")
    shape = tuple(latent_shape) if latent_shape is not None else latent_shape_of(ldm)
    out = []
    for b, start in enumerate(range(0, n, batch_size)):
        count = min(batch_size, n - start)
        report = None if callback is None else (lambda info, b=b: callback(
            {**info, "x": info["x"] / ldm.latent_scale, "x0": info["x0"] / ldm.latent_scale, "batch": b}))
        z = ldm.sample((count, *shape), sampler=sampler, steps=steps, generator=generator, callback=report,
                       **sampler_kw)
        out.append(z.float().cpu())  # [count, C, h, w]
    return torch.cat(out)


@torch.no_grad()
def decode_to_images(vae, z: torch.Tensor, size: int = 32, *, batch_size: int = 256,
                     train_resolution: int = 32) -> torch.Tensor:
    """Latents → basis fields D_ψ(z) → images rendered on a ``size²`` grid, ``[n, 3, size, size]`` in [0, 1]."""
    from ddmi_lite.domains.image import render, to_unit_range

    if z.ndim != 4:
        raise DDMIError(f"z must be latents [n, C, h, w]; got shape {tuple(z.shape)}")
    device = next(vae.parameters()).device
    was_training = vae.training
    vae.eval()
    out = []
    for start in range(0, len(z), batch_size):
        fields = vae.decode(z[start:start + batch_size].to(device))  # list of [b, 1, C_pe, h_l, w_l]
        out.append(to_unit_range(render(vae, fields, size, train_resolution=train_resolution)).cpu())
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
    device = next(ldm.parameters()).device
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
    from ddmi_lite.metrics import frechet_distance, kid, precision_recall

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
    from ddmi_lite.metrics import frechet_distance, image_features

    rows = []
    for name, step_list in grid.items():
        for steps in step_list:
            counts: list[int] = []
            t0 = time.perf_counter()
            z = sample_latents(ldm, n, sampler=name, steps=int(steps), batch_size=batch_size,
                               generator=torch.Generator().manual_seed(seed), callback=counts_nfe(counts))
            sec = (time.perf_counter() - t0) / n
            feats = image_features(feature_net, decode_to_images(vae, z, size))
            rows.append({"sampler": name, "steps": int(steps), "nfe": max(counts), "fd": frechet_distance(real_feats, feats),
                         "sec_per_image": sec})
            if progress:
                r = rows[-1]
                print(f"{name:>9} {r['steps']:>5} steps  NFE {r['nfe']:>5}  FD {r['fd']:8.3f}  "
                      f"{1e3 * sec:7.2f} ms/image", flush=True)
    return rows


def history_curve(history: list[dict], key: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged quantity of a :class:`TrainResult` history."""
    pairs = [(h["step"], h[key]) for h in history if key in h]
    if not pairs:
        raise DDMIError(f"history holds no {key!r} entries")
    steps, values = zip(*pairs)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


__all__ = [
    "MODEL_FIELDS",
    "LatentPosterior",
    "build_ldm",
    "decode_to_images",
    "encode_dataset",
    "encode_posterior",
    "fd_report",
    "history_curve",
    "latent_shape_of",
    "load_or_train_ldm",
    "loss_per_timestep",
    "model_fingerprint",
    "nearest_neighbours",
    "resolve_latent_scale",
    "sample_latents",
    "sweep_samplers",
    "train_ldm",
]
