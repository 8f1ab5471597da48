"""The latent diffusion model of DDMI stage 2 (§3.3): its config, building, training and sampling.

Reference §2: once the D2C-VAE is trained, a diffusion model learns the distribution of its
latents. The targets are posterior *samples* z = μ + σ·ε, ε ~ N(0, I), drawn afresh every time a
latent is used (not the means), with no rescaling. Generation draws z with a sampler of
:mod:`ddmi_lite.sampling`; a domain decodes it to basis fields D_ψ(z) and renders them.

This module knows latents only (``[N, C, h, w]``, tri-planes stacked along channels); encoding a
domain's data is the domain's job, scoring samples is :mod:`ddmi_lite.latent_diffusion`'s.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from tqdm.auto import tqdm

from ddmi_lite.diffusion import LatentDiffusion
from ddmi_lite.errors import DDMIError
from ddmi_lite.sampling import SAMPLERS
from ddmi_lite.schedule import Schedule
from ddmi_lite.train import TrainConfig, TrainResult, data_entry, load_or_train
from ddmi_lite.unet import UNet


@dataclass
class LDMConfig:
    """Latent diffusion on the D2C-VAE latents: denoiser, training, sampling and evaluation sizes.

    The defaults are the ``cpu`` preset of the image latents (notebooks 04, 05); the other
    domains' presets sit beside their VAE configs. Reference values (§2, §3): ADM UNet with 2
    ResBlocks per level, attention at the low resolutions, 224–256 model channels; T = 1000,
    scaled-linear β, ε-prediction, mixed prediction with logit −6; AdamW lr 1e-4 without
    schedule, weight decay 0 for images; EMA 0.9999; raw posterior samples (no latent scale);
    DDIM η = 0 with 50 steps. Our latents are 8×8 instead of 64×64 and the runs are minutes
    instead of days, so the UNet is smaller, the lr higher (with warm-up and cosine decay) and the
    EMA shorter.

    ``cpu``: a 4 M-parameter UNet on the 8×8 image latents, 4,000 steps of batch 64 in bf16
    autocast (≈ 0.13 s per step on two cores: about nine minutes). Trials of 600 steps on the
    latents of a short cpu image VAE (std ≈ 2.3; FD on ddmi_lite features of 500 DPM-Solver++
    samples, floor 5.5, VAE reconstructions 7.2), scored with the raw weights: latent scale 1
    (the reference) FD 6.5, ``"auto"`` 6.4, so the image preset keeps the reference's raw
    latents; mixing-logit lr 1e-2 → 5e-2 and lr 4e-4 → 1e-3 did not help (11.5, 8.3). The EMA of
    those short runs lagged far behind (decay 0.999: FD 14–36), so its window stays short next to
    the run: 0.998.
    """

    # denoiser (ddmi_lite.unet.UNet)
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 2                          # reference: 2
    attention_resolutions: tuple[int, ...] = (4,)    # feature-map sizes with self-attention
    num_heads: int = 4
    dropout: float = 0.0
    # diffusion (ddmi_lite.diffusion.LatentDiffusion)
    num_timesteps: int = 1000                        # reference: 1000
    mixed_init: float = -6.0                         # reference: −6
    latent_scale: float | str = 1.0                  # reference: 1 (none); "auto" = 1 / std of the training latents
    mix_lr: float | None = 1e-2                      # lr of the mixing logit m (None: same as train.lr)
    # data
    hflip: bool = True                               # also encode the mirrored training images (2× latents)
    # training: reference lr 1e-4 constant, weight decay 0 (images), EMA 0.9999 over days
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=4000, batch_size=64, lr=4e-4, warmup_steps=200, ema_decay=0.998, precision="bf16",
        max_time_s=1080.0))
    # sampling and evaluation
    sampler: str = "dpmpp_2m"                        # reference: "ddim" with 50 steps
    sample_steps: int = 20
    n_samples: int = 2000                            # samples scored against the held-out set
    sample_batch: int = 500
    sweep: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "ddpm": (1000,), "ddim": (10, 20, 50, 100), "dpmpp_2m": (5, 10, 15, 20), "heun": (5, 10, 20)})
    n_sweep: int = 256                               # samples per sampler setting of the sweep
    feature_steps: int = 400                         # training steps of the FD feature network


# Latent diffusion on 3z×h×w channel-stacked tri-plane latents, shapes' and NeRF's (reference: 192×16×16, UNet 256
# [1,2,4,6], DDIM 200 steps). latent_scale="auto": the small KL weight (0.01) leaves the latents far
# from unit variance; the mixing logit gets lr 5e-2. cpu: 24×8×8 latents, a 4 M-parameter UNet,
# ≈ 0.2 s per step of 64 in bf16 with one thread, so 600 steps take about two minutes.
TRIPLANE_LDM_PRESETS = {
    "cpu": dict(latent_scale="auto", hflip=False, mix_lr=5e-2, sampler="ddim", sample_steps=50, n_samples=48,
                sample_batch=100, n_sweep=500, train=dict(steps=600, warmup_steps=50, ema_decay=0.995, max_time_s=300.0)),
    "smoke": dict(model_channels=16, num_res_blocks=1, attention_resolutions=(2,), num_heads=2, sample_steps=5,
                  n_samples=4, sample_batch=64,
                  train=dict(steps=30, batch_size=16, lr=1e-3, warmup_steps=3, ema_decay=0.9, precision="fp32",
                             max_time_s=None)),
    "gpu": dict(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(8, 4), sample_steps=200,
                n_samples=240, sample_batch=240,
                train=dict(steps=40000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                           precision="fp32", max_time_s=None)),
}


# LDMConfig fields that define the trained model besides its training config (sampling and
# evaluation sizes may change freely)
MODEL_FIELDS = ("model_channels", "channel_mult", "num_res_blocks", "attention_resolutions", "num_heads",
                "dropout", "num_timesteps", "mixed_init", "latent_scale", "mix_lr", "hflip")


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


def resolve_latent_scale(cfg: LDMConfig, posterior: LatentPosterior | None = None) -> float:
    """The factor latents are multiplied by before diffusion.

    1 (the reference) unless ``cfg.latent_scale`` says otherwise. ``"auto"`` gives 1/std of the
    training latents (LDM's scale factor, Rombach et al. 2022 §4.3.2): the forward process
    assumes data of about unit variance — x_T ~ N(0, I) — and the mixed prediction's analytic
    term √(1−ᾱ_t)·x_t is the exact ε only for standard-normal data. A VAE whose KL weight is
    small gives latents far from unit scale (std ≈ 2.3 after a short run of the cpu image VAE
    preset); yet on those latents 600 training steps scored the same with and without the scale
    (FD 6.4 and 6.5, see :data:`ddmi_lite.domains.image.IMAGE_LDM_PRESETS`), so the image presets keep the
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


def train_ldm(ldm: LatentDiffusion, posterior: LatentPosterior, cfg: LDMConfig, *, device="cpu", ckpt_path=None,
              seed: int = 0, progress: bool = True, callback: Callable[[dict], None] | None = None,
              run_config: dict | None = None) -> TrainResult:
    """Train with L = E_{t,ε,z~q(z|x)} ‖ε − ε̂(√ᾱ_t·z + √(1−ᾱ_t)·ε, t)‖², a fresh posterior sample per use.

    AdamW with warm-up and cosine decay, EMA of the weights from the end of the warm-up on, and the
    mixing logit m in its own parameter group with lr ``cfg.mix_lr``: with s = sigmoid(−6) ≈ 0.0025
    the network's output starts scaled down 400×, and a larger lr lets a short run move it.
    Resumes or reuses ``ckpt_path`` by :func:`ddmi_lite.train.load_or_train`'s policy.
    """
    post = LatentPosterior(posterior.mean.detach().float().cpu(), posterior.std.detach().float().cpu())
    if ldm.channels is not None and post.shape[0] != ldm.channels:
        raise DDMIError(f"latents have {post.shape[0]} channels but the model expects {ldm.channels}")
    n, tcfg = len(post), replace(cfg.train, seed=seed, ema_start=cfg.train.warmup_steps)

    def batch_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, n, (tcfg.batch_size,), generator=generator)
        return post.sample(index, generator)  # z ~ q(z|x), [B, C, h, w]

    def loss_fn(model: LatentDiffusion, z: torch.Tensor, step: int):
        return model.loss(z)

    config = {"ldm": {k: getattr(cfg, k) for k in MODEL_FIELDS}, "latent_shape": list(post.shape),
              "latent_scale_value": ldm.latent_scale, **(run_config or {})}
    return load_or_train(ldm, loss_fn, batch_fn, tcfg, ckpt_path=ckpt_path, run_config=config, device=device,
                         params=ldm.param_groups(tcfg.lr, mix_lr=cfg.mix_lr, weight_decay=tcfg.weight_decay),
                         progress=progress, desc="latent diffusion", callback=callback)


def load_or_train_ldm(vae, posterior: LatentPosterior, cfg: LDMConfig, *, ckpt_path, device="cpu", seed: int = 0,
                      progress: bool = True, data_id: str | None = None) -> tuple[LatentDiffusion, TrainResult]:
    """Train the latent model on ``posterior`` (the VAE's training latents), or reuse its checkpoint.

    Returns ``(model for sampling, TrainResult)``: the EMA weights when EMA is on, in eval mode.
    The VAE's weights' fingerprint is part of the run, so a checkpoint written for another VAE
    is trained afresh, not resumed. ``data_id`` (a digest of a user's training data, None for the
    bundled data) is stored with the run too. ``result.resumed_from == result.steps_done`` means the
    checkpoint was reused as is.
    """
    ldm = build_ldm(cfg, posterior.shape, latent_scale=resolve_latent_scale(cfg, posterior))
    result = train_ldm(ldm, posterior, cfg, device=device, ckpt_path=ckpt_path, seed=seed, progress=progress,
                       run_config={"vae_fingerprint": model_fingerprint(vae), **data_entry(data_id)})
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


def step_postfix(bar, batch: int = 0) -> Callable[[dict], None]:
    """A sampler callback that writes ``batch b step i`` beside a tqdm ``bar``, redrawn at most once per
    ``bar.mininterval`` seconds (a step can take milliseconds). It only reads the sampler's dict."""
    shown = [0.0]  # when the text was last redrawn

    def show(info: dict) -> None:
        if time.monotonic() - shown[0] >= bar.mininterval:
            bar.set_postfix_str(f"batch {batch + 1} step {int(info['step']) + 1}")
            shown[0] = time.monotonic()
    return show


def sample_latents(ldm: LatentDiffusion, n: int, *, sampler: str = "dpmpp_2m", steps: int = 20,
                   generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                   batch_size: int = 500, latent_shape=None, progress: bool = True, **sampler_kw) -> torch.Tensor:
    """Draw ``n`` latents ``[n, C, h, w]`` (CPU) in batches.

    The callback gets the sampler's dict with ``x`` and ``x0`` divided by ``ldm.latent_scale``
    (in the VAE's latent units, ready for ``vae.decode``) and ``batch`` (the batch index).
    ``progress`` shows a tqdm bar that counts the latents drawn, with the sampler step of the
    current batch beside it; it reads the sampler's callback and changes no result.
    """
    if sampler not in SAMPLERS:
        raise DDMIError(f"sampler={sampler!r} is not one of {tuple(SAMPLERS)}")
    if n < 1 or batch_size < 1:
        raise DDMIError(f"n={n} and batch_size={batch_size} must be >= 1")
    shape = tuple(latent_shape) if latent_shape is not None else latent_shape_of(ldm)
    out = []
    with tqdm(total=n, desc=f"sampling latents ({sampler}, {steps} steps)", unit="latent", leave=False,
              disable=not progress) as bar:
        for b, start in enumerate(range(0, n, batch_size)):
            count = min(batch_size, n - start)
            show = step_postfix(bar, b) if progress else None

            def report(info: dict, b: int = b, show=show) -> None:
                if show is not None:
                    show(info)
                if callback is not None:
                    callback({**info, "x": info["x"] / ldm.latent_scale, "x0": info["x0"] / ldm.latent_scale,
                              "batch": b})

            z = ldm.sample((count, *shape), sampler=sampler, steps=steps, generator=generator,
                           callback=report if (progress or callback is not None) else None, **sampler_kw)
            out.append(z.float().cpu())  # [count, C, h, w]
            bar.update(count)
    return torch.cat(out)
