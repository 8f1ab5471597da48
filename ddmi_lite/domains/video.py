"""The video domain: RGB fields over (x, y, t) on the planes (xy, xt, yt) (DDMI §3, §4.3; ddmi_method.md
§1.2–1.9 video rows, pitfall 10).

* Coordinates: c = (x, y, t) ∈ [−1, 1]³ at pixel and frame centres, x, y = (2i+1)/R − 1 and
  t = (2k+1)/T − 1 (reference: ±255/256 and ±15/16), queried with ``align_corners=True``
  (``fields.py``, layout ``xyt``). Plane ``xt`` has width x and height t, ``yt`` width y and
  height t, and each is queried with the spatial coordinate in ``grid[..., 0]`` and t in
  ``grid[..., 1]`` (the official code transposes that query; we do not).
* Embedding: the three plane samples are **concatenated**, and (``aggregate="concat_prod"``, the
  default) the product of the two time planes is appended (4·C_pe channels per scale),
  pˡ(c) = [Ξˡ_xy(x, y) ‖ Ξˡ_xt(x, t) ‖ Ξˡ_yt(y, t) ‖ Ξˡ_xt(x, t) ⊙ Ξˡ_yt(y, t)], read out by the
  shared CFC MLP into RGB in [−1, 1]; g(x, t)·h(y, t) is a bump that moves with t, as a sprite does
  (the reference concatenates only: ``aggregate="concat"``).
* Stage-1 loss (reference §1.8, ``recon="l1"``): L1 **summed** over the queried outputs, averaged over
  the batch, plus β(t)·KL, on a random subset of the T·R² pixels of every clip, the clips randomly
  mirrored and played backwards. The cpu preset sums the **squared** error (``recon="mse"``) and
  draws ``moving_share`` of the points from moving pixels, so the static background does not
  dominate: the 20% of pixels that move held 91% of the L1 model's squared error (notebook 08,
  section *Where the error is*, measures both changes at equal steps).
* Stage 2: the latent planes share one shape ``[3, z, S, S]``, so they stack along channels,
  ``[B, 3, z, S, S] ⇄ [B, 3z, S, S]`` in the order (xy, xt, yt) (:func:`pack_planes`, exactly
  invertible), and the 2D latent diffusion model of notebook 04 runs on the stack.
* Evaluation: PSNR per frame, averaged per clip, then over clips; a Fréchet distance on small 3D-conv
  features (:func:`ddmi_lite.features.train_feature_net`, **not** I3D: not FVD); GIF, frame strips.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image

from ddmi_lite import fields as F_fields
from ddmi_lite.device import module_device
from ddmi_lite.data.video import load_frame_folder, load_moving_emoji
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write
from ddmi_lite.io import save_gif as write_gif
from ddmi_lite.ldm import LatentPosterior, LDMConfig
from ddmi_lite.metrics import psnr
from ddmi_lite.nets.video import PLANE_ORDER, VideoDecoder, VideoEncoder, VideoNetConfig
from ddmi_lite.presets import preset
from ddmi_lite.readout import CFCReadout
from ddmi_lite.train import TrainConfig, data_entry, load_or_train, model_settings
from ddmi_lite.vae import D2CVAE, kl_weight

__all__ = [
    "PLANE_ORDER",
    "VideoVAEConfig",
    "build_video_vae",
    "clip_psnr",
    "decode_to_clips",
    "encode_posterior_clips",
    "frame_strip",
    "frame_times",
    "load_or_train_video_vae",
    "load_video_split",
    "make_batch",
    "moving_pixels",
    "pack_planes",
    "reconstruct",
    "region_psnr",
    "render",
    "save_gif",
    "save_png",
    "to_model_range",
    "train_video_vae",
    "unpack_planes",
    "video_aggregate_config",
    "video_coords",
]


@dataclass
class VideoVAEConfig:
    """Architecture, data and stage-1 training of the video D2C-VAE; the defaults are the ``cpu`` preset.

    Reference: TimeSformer 384×8, planes xy 64×32², xt / yt 64×16×32, C_pe 64 per plane concatenated
    to 192, readout 256, L1 summed over 16×256², β_max 0.1. ``cpu``: 16 frames of 32²; a conv trunk
    (widths 16/32, one stride-2 level), attention pooling along each axis to three 16×16² planes,
    fields at 16 and 32 with C_pe 24 per plane, the time planes' product appended
    (``aggregate="concat_prod"``), readout width 80; the squared error on 4,096 points per clip and
    step, half on moving pixels; bf16 autocast; 2,300 steps (≈ 0.24 s each with two threads). One-thread
    trials, 300 steps, held-out PSNR on 64 clips: 8² planes with three scales 21.3 dB; 16² planes
    22.4 dB; + the product 22.6 dB; a wider readout (160) or a cross-plane block at 16² added nothing
    (notebook 08 re-measures concat against concat_prod on every run, :func:`video_aggregate_config`).
    The encoder's pixel shortcut (nets/video.py) lets per-clip colours reach z.
    """

    net: VideoNetConfig = field(default_factory=lambda: VideoNetConfig(
        ch=16, ch_mult=(1, 2), time_down=1, z_channels=16, pe_channels=24, n_scales=2, pool_heads=2,
        cross_resolutions=(), attention_resolutions=()))
    hidden: int = 80                      # readout width [256]
    mode: str = "cfc"                     # readout.MODES
    aggregate: str = "concat_prod"        # plane samples: "concat" [reference] or "concat_prod" (+ xt ⊙ yt)
    act: str = "silu"
    n_train: int | None = None            # training clips used (None: the whole split)
    n_query: int = 4096                   # (x, y, t) points supervised per clip and step [all T·R²]
    moving_share: float = 0.5             # share of them drawn from moving pixels [0: uniform]
    hflip: bool = True                    # mirror clips left–right
    reverse: bool = True                  # play clips backwards (the sprites' motion is reversible)
    beta_max: float = 1e-3                # KL weight after annealing (sum-reduced losses)
    recon: str = "mse"                    # per-point reconstruction loss, summed: "mse" or "l1" [l1]
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2300, batch_size=8, lr=2e-3, warmup_steps=50, precision="bf16", max_time_s=1080.0))


VIDEO_VAE_PRESETS = {
    "smoke": dict(net=dict(ch=8, z_channels=4, pe_channels=8), hidden=32, n_train=64, n_query=512,
                  train=dict(steps=20, batch_size=4, warmup_steps=2, precision="fp32", max_time_s=None)),
    "gpu": dict(net=dict(resolution=64, ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, time_down=2, pe_channels=64,
                         n_scales=3, pool_heads=4, cross_resolutions=(16, 8), attention_resolutions=(8,)),
                hidden=256, n_query=16384, recon="l1", moving_share=0.0,
                train=dict(steps=20000, batch_size=16, lr=5e-4, warmup_steps=500, precision="fp32", max_time_s=None)),
}


def video_vae_config(profile: str = "cpu", **overrides) -> VideoVAEConfig:
    """The video D2C-VAE preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(VideoVAEConfig, profile, VIDEO_VAE_PRESETS, **overrides)


@dataclass
class VideoEvalConfig:
    """Evaluation sizes of the video notebook (reference §4.2: FVD with I3D on 16-frame clips)."""

    n_psnr: int = 200                 # held-out (and training) clips reconstructed for PSNR
    n_fvd: int = 200                  # clips per set for the Fréchet distances (samples, floor, ceiling)
    feature_clips: int = 1000         # training clips the 3D feature network learns from
    feature_steps: int = 300          # its contrastive training steps
    feature_batch: int = 32
    n_show: int = 4                   # clips per figure / GIF
    gif_fps: float = 8.0
    n_ablation: int = 48              # held-out clips scoring the two short aggregation runs
    n_between: int = 16               # held-out clips redrawn between frames (true in-between frames)


VIDEO_EVAL_PRESETS = {
    "smoke": dict(n_psnr=4, n_fvd=8, feature_clips=32, feature_steps=3, feature_batch=8, n_show=2, n_ablation=4,
                  n_between=2),
    "gpu": dict(feature_clips=2000, feature_steps=2000, feature_batch=64),
}


def video_eval_config(profile: str = "cpu", **overrides) -> VideoEvalConfig:
    """Evaluation sizes of ``profile``."""
    return preset(VideoEvalConfig, profile, VIDEO_EVAL_PRESETS, **overrides)


# Latent diffusion on the channel-stacked planes [3z, S, S] (reference: a UNet over the three planes with
# 1D cross-plane attention, 256 channels, DDIM 200 steps). cpu: [48, 16, 16] latents, a UNet at 16/8/4
# with attention at 4², 850 steps (≈ 0.28 s per step of 64 with two threads: about four minutes).
VIDEO_LDM_PRESETS = {
    "cpu": dict(channel_mult=(1, 2, 2), latent_scale="auto", hflip=False, mix_lr=5e-2, sampler="ddim",
                sample_steps=50, n_samples=200, sample_batch=100, n_sweep=500,
                train=dict(steps=850, warmup_steps=50, ema_decay=0.995, max_time_s=480.0)),
    "smoke": dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), num_heads=2,
                  hflip=True, sample_steps=5, n_samples=8, sample_batch=64,
                  train=dict(steps=20, batch_size=16, lr=1e-3, warmup_steps=2, ema_decay=0.9, precision="fp32",
                             max_time_s=None)),
    "gpu": dict(model_channels=128, attention_resolutions=(4, 2), hflip=True, sample_steps=100, n_samples=500,
                sample_batch=250,
                train=dict(steps=40000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                           precision="fp32", max_time_s=None)),
}


def video_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """The latent-diffusion preset on video latents of ``profile``."""
    return preset(LDMConfig, profile, VIDEO_LDM_PRESETS, **overrides)


# Equal-steps comparison of the plane aggregation ("concat" against "concat_prod"): the profile's VAE with
# a shorter schedule, the same for both arms. cpu: 300 steps of 4 clips × 2,048 points (≈ 0.08 s per step
# with two threads: under a minute for both arms).
VIDEO_AGGREGATE_PRESETS = {
    "smoke": dict(n_query=512, train=dict(steps=10, batch_size=4, warmup_steps=2)),
    "cpu": dict(n_query=2048, train=dict(steps=300, batch_size=4, warmup_steps=20, max_time_s=180.0)),
    "gpu": dict(n_query=8192, train=dict(steps=3000, warmup_steps=200)),
}


def video_aggregate_config(profile: str = "cpu", aggregate: str = "concat") -> VideoVAEConfig:
    """The video VAE of ``profile`` with ``aggregate`` switched and the short schedule of
    :data:`VIDEO_AGGREGATE_PRESETS` (identical for both aggregations, so they compare at equal steps)."""
    if aggregate not in ("concat", "concat_prod"):
        raise DDMIError(f"aggregate={aggregate!r} must be 'concat' or 'concat_prod'")
    if profile not in VIDEO_AGGREGATE_PRESETS:
        raise DDMIError(f"profile={profile!r} is not one of {sorted(VIDEO_AGGREGATE_PRESETS)}")
    return video_vae_config(profile, aggregate=aggregate, **VIDEO_AGGREGATE_PRESETS[profile])


def build_video_vae(cfg: VideoVAEConfig) -> D2CVAE:
    """VideoEncoder → Gaussian planes → VideoDecoder (HDBF) → CFC readout on the plane samples
    (concatenated, with the time planes' product for ``cfg.aggregate="concat_prod"``)."""
    net = cfg.net.check()
    channels = F_fields.embedding_channels(net.pe_channels, "xyt", aggregate=cfg.aggregate)
    readout = CFCReadout([channels] * net.n_scales, hidden=cfg.hidden, out_dim=net.in_channels,
                         mode=cfg.mode, act=cfg.act)
    if cfg.recon not in ("l1", "mse"):  # D2CVAE also knows "bce", which is no loss for colours
        raise DDMIError(f"VideoVAEConfig.recon={cfg.recon!r} must be 'l1' (the reference) or 'mse'")
    return D2CVAE(VideoEncoder(net), VideoDecoder(net), readout, layout="xyt", aggregate=cfg.aggregate,
                  recon=cfg.recon, moments_dim=2)


# ----------------------------------------------------------------------------------------------- coordinates
def frame_times(frames: int, *, rate: int = 1, device=None) -> torch.Tensor:
    """t of the frames' centres (2k+1)/T − 1; ``rate`` r > 1 adds r−1 evenly spaced times between
    consecutive frames ((T−1)·r + 1 times from the first frame to the last)."""
    if rate < 1:
        raise DDMIError(f"rate={rate} must be an int >= 1")
    centres = F_fields.pixel_centers(frames, device=device)  # [T]
    if rate == 1:
        return centres
    return torch.linspace(float(centres[0]), float(centres[-1]), (frames - 1) * rate + 1, device=device)


def video_coords(times: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """(x, y, t) of every pixel centre of frames at ``times`` → ``[T·H·W, 3]``, t outer, then y, then x."""
    width = width or height
    xy = F_fields.image_coords(height, width, device=times.device)  # [H·W, 2] (x, y), y outer
    t = times[:, None, None].expand(-1, height * width, 1)  # [T, H·W, 1]
    return rearrange(torch.cat([xy.expand(len(times), -1, -1), t], -1), "t n d -> (t n) d")


# ----------------------------------------------------------------------------------------------- data
def load_video_split(split: str = "train", *, size: int = 32, limit: int | None = None, data_dir: str = "",
                     frames: int = 16) -> torch.Tensor:
    """Moving-emoji clips uint8 ``[N, T, 3, H, W]`` (prepared on first use), the first ``limit`` of them; with
    ``data_dir``, the first ``frames`` frames of each clip of that frame folder's split (only read; decoded
    once into the checked uint8 cache of :func:`~ddmi_lite.data.video.load_frame_folder`)."""
    if data_dir:
        return load_frame_folder(data_dir, split, frames, size, limit=limit, cache=True, progress=True, dtype="uint8")
    clips = load_moving_emoji(split, size=size, dtype=torch.uint8)
    return clips if limit is None else clips[:limit]


def to_model_range(clips: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float clips → float in [−1, 1]."""
    x = clips.float() / 255.0 if clips.dtype == torch.uint8 else clips.float()
    return x * 2.0 - 1.0


def make_batch(clips: torch.Tensor, index: torch.Tensor, generator: torch.Generator, *, n_query: int = 4096,
               hflip: bool = True, reverse: bool = True, moving_share: float = 0.0) -> dict:
    """Training batch: ``x`` [B, T, 3, R, R] in [−1, 1] (the encoder's input), ``coords`` [B, n, 3] at
    random pixel/frame centres and ``target`` [B, n, 3] the pixels there (the same augmented clip).

    ``moving_share`` > 0 draws that share of the n points from the clip's moving pixels
    (:func:`moving_pixels`; static ones fill in where too few move), 0 all uniformly (reference)."""
    if not 0.0 <= moving_share <= 1.0:
        raise DDMIError(f"moving_share={moving_share} must be in [0, 1]")
    b, (t, _, h, w) = len(index), clips.shape[1:]
    x = to_model_range(clips[index])  # [B, T, 3, H, W]
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
    if reverse:
        back = torch.rand(b, generator=generator) < 0.5
        x = torch.where(back[:, None, None, None, None], x.flip(1), x)
    total = t * h * w
    n = min(n_query, total)
    if moving_share > 0:
        pick = _moving_first(moving_pixels((x + 1) * 0.5), t, n, round(moving_share * n), generator)  # [B, n]
    else:
        pick = torch.rand(b, total, generator=generator).argsort(dim=1)[:, :n]  # distinct points per clip [B, n]
    coords = video_coords(F_fields.pixel_centers(t), h, w)[pick]  # [B, n, 3]
    flat = rearrange(x, "b t c h w -> b (t h w) c")
    target = torch.gather(flat, 1, pick[..., None].expand(-1, -1, 3))  # [B, n, 3]
    return {"x": x, "coords": coords, "target": target}


def _moving_first(moving: torch.Tensor, frames: int, n: int, n_moving: int, generator: torch.Generator) -> torch.Tensor:
    """(t, y, x) point indices ``[B, n]``, none twice: ``n_moving`` on the mask [B, 1, 1, H, W], then uniform."""
    flat = rearrange(moving.expand(-1, frames, -1, -1, -1), "b t one h w -> b (t one h w)").float()  # [B, T·H·W]
    first = (torch.rand(flat.shape, generator=generator) + flat).argsort(dim=1, descending=True)[:, :n_moving]
    rest = torch.rand(flat.shape, generator=generator).scatter(1, first, -1.0)  # drawn points sort last
    return torch.cat([first, rest.argsort(dim=1, descending=True)[:, :n - n_moving]], 1)  # [B, n]


# ----------------------------------------------------------------------------------------------- rendering
@torch.no_grad()
def render(vae: D2CVAE, fields: list[torch.Tensor], times: torch.Tensor, height: int, width: int | None = None, *,
           chunk: int = 32768) -> torch.Tensor:
    """Render basis fields at frame times ``times`` [T] on an H×W pixel-centre grid → ``[B, T, 3, H, W]`` in [−1, 1]."""
    width = width or height
    if height <= 0 or width <= 0 or times.ndim != 1 or len(times) == 0:
        raise DDMIError(f"render needs H, W > 0 and a 1-D tensor of times; got {height}×{width}, {tuple(times.shape)}")
    b = fields[0].shape[0]
    coords = video_coords(times.to(fields[0].device), height, width)  # [T·H·W, 3]
    out = [vae.query(fields, coords[s:s + chunk].expand(b, -1, -1)) for s in range(0, len(coords), chunk)]
    return rearrange(torch.cat(out, 1), "b (t h w) c -> b t c h w", t=len(times), h=height, w=width)


@torch.no_grad()
def reconstruct(vae: D2CVAE, clips: torch.Tensor, *, rate: int = 1, size: int | None = None,
                batch_size: int = 16) -> torch.Tensor:
    """Posterior-mean reconstructions → [0, 1] ``[N, (T−1)·rate+1 or T, 3, s, s]`` (``rate`` > 1: in-between frames)."""
    t, size = clips.shape[1], size or clips.shape[-1]
    times = frame_times(t, rate=rate)
    out = []
    for s in range(0, len(clips), batch_size):
        fields = vae.decode(vae.encode(to_model_range(clips[s:s + batch_size]).to(module_device(vae))).mode())
        out.append(((render(vae, fields, times, size) + 1) * 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


def clip_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR of every frame of clips in [0, 1] ``[N, T, 3, H, W]``, averaged over the frames → ``[N]``."""
    if a.shape != b.shape or a.ndim != 5:
        raise DDMIError(f"clip_psnr needs two equal [N, T, 3, H, W] shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    per_frame = psnr(rearrange(a, "n t c h w -> (n t) c h w"), rearrange(b, "n t c h w -> (n t) c h w"))
    return rearrange(per_frame, "(n t) -> n t", n=a.shape[0]).mean(1)


def moving_pixels(clips01: torch.Tensor, *, tol: float = 0.02) -> torch.Tensor:
    """Pixels whose colour changes during the clip (a sprite passes there; the background is static):
    the std over frames of some channel above ``tol`` → bool ``[N, 1, 1, H, W]``."""
    return clips01.float().std(1, keepdim=True).amax(2, keepdim=True) > tol


def region_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (peak 1) of clips ``[N, T, 3, H, W]`` over the pixels where ``mask`` (broadcast) is true,
    the squared error pooled over all of them; ``nan`` for an empty mask."""
    weight = mask.expand_as(a).float()
    mse = ((a.float() - b.float()).pow(2) * weight).sum() / weight.sum()
    return float(-10.0 * torch.log10(mse.clamp_min(1e-12)))


# ----------------------------------------------------------------------------------------------- stage 2
def pack_planes(z: torch.Tensor) -> torch.Tensor:
    """``[B, 3, z, S, S]`` (xy, xt, yt) → ``[B, 3z, S, S]``, channels [z_xy | z_xt | z_yt]."""
    if z.ndim != 5 or z.shape[1] != 3:
        raise DDMIError(f"z must be plane latents [B, 3, z, S, S] (xy, xt, yt), got {tuple(z.shape)}")
    return rearrange(z, "b p c h w -> b (p c) h w")


def unpack_planes(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_planes`: ``[B, 3z, S, S]`` → ``[B, 3, z, S, S]``."""
    if x.ndim != 4 or x.shape[1] % 3:
        raise DDMIError(f"x must be a packed latent [B, 3z, S, S], got {tuple(x.shape)}")
    return rearrange(x, "b (p c) h w -> b p c h w", p=3)


@torch.no_grad()
def encode_posterior_clips(vae: D2CVAE, clips: torch.Tensor, *, batch_size: int = 64, hflip: bool = False):
    """q(z|x) of every clip as packed planes (:class:`~ddmi_lite.ldm.LatentPosterior`,
    ``[N, 3z, S, S]``); ``hflip`` appends the mirrored clips' posteriors."""
    means, stds = [], []
    for source in ([clips, clips.flip(-1)] if hflip else [clips]):
        for s in range(0, len(source), batch_size):
            post = vae.encode(to_model_range(source[s:s + batch_size]).to(module_device(vae)))
            means.append(pack_planes(post.mean).float().cpu())
            stds.append(pack_planes(post.std).float().cpu())
    return LatentPosterior(torch.cat(means), torch.cat(stds))


@torch.no_grad()
def decode_to_clips(vae: D2CVAE, z: torch.Tensor, frames: int, size: int, *, rate: int = 1,
                    batch_size: int = 16) -> torch.Tensor:
    """Packed latents ``[n, 3z, S, S]`` → basis fields → clips in [0, 1] ``[n, T', 3, size, size]``."""
    times = frame_times(frames, rate=rate)
    out = []
    for s in range(0, len(z), batch_size):
        fields = vae.decode(unpack_planes(z[s:s + batch_size]).to(module_device(vae)))
        out.append(((render(vae, fields, times, size) + 1) * 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------- training
def train_video_vae(vae: D2CVAE, cfg: VideoVAEConfig, clips: torch.Tensor, *, device="cpu", ckpt_path=None,
                    seed: int = 0, progress: bool = True, callback=None, data_id: str | None = None):
    """Stage 1: Σ_points ‖ω̂ − ω‖² (``recon="mse"``; |ω̂ − ω|₁ for ``"l1"``) + β(t)·KL, β annealed linearly to
    ``cfg.beta_max`` (:func:`ddmi_lite.train.load_or_train`)."""
    n = len(clips)

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        index = torch.randint(0, n, (min(cfg.train.batch_size, n),), generator=generator)
        return make_batch(clips, index, generator, n_query=cfg.n_query, hflip=cfg.hflip, reverse=cfg.reverse,
                          moving_share=cfg.moving_share)

    def loss_fn(model: D2CVAE, batch: dict, step: int):
        beta = kl_weight(step, cfg.train.steps, beta_max=cfg.beta_max)
        return model.loss(batch["x"], batch["coords"], batch["target"], beta=beta)

    return load_or_train(vae, loss_fn, batch_fn, replace(cfg.train, seed=seed), ckpt_path=ckpt_path,
                         run_config={"vae": model_settings(cfg), "n_train": n, **data_entry(data_id)}, device=device,
                         progress=progress, desc="video D2C-VAE", callback=callback)


def load_or_train_video_vae(cfg: VideoVAEConfig, *, ckpt_path, device="cpu", seed: int = 0, progress: bool = True,
                            clips: torch.Tensor | None = None, data_id: str | None = None):
    """Train the video D2C-VAE on the moving-emoji training clips (or ``clips``), or reuse a finished checkpoint:
    ``(vae in eval mode, TrainResult)``, ``result.resumed_from == result.steps_done`` when reused as is."""
    if clips is None:
        clips = load_video_split("train", size=cfg.net.resolution, limit=cfg.n_train)
    want = (cfg.net.frames, 3, cfg.net.resolution, cfg.net.resolution)
    if clips.ndim != 5 or tuple(clips.shape[1:]) != want:
        raise DDMIError(f"clips must be [N, {', '.join(map(str, want))}], got {tuple(clips.shape)}")
    vae = build_video_vae(cfg).to(device)
    result = train_video_vae(vae, cfg, clips, device=device, ckpt_path=ckpt_path, seed=seed, progress=progress,
                             data_id=data_id)
    return vae.eval(), result


# ----------------------------------------------------------------------------------------------- export
def _to_uint8(frames01: torch.Tensor) -> np.ndarray:
    return (frames01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def frame_strip(clips01: torch.Tensor, *, gap: int = 1) -> np.ndarray:
    """Clips ``[N, T, 3, H, W]`` in [0, 1] → one uint8 image ``[N·(H+gap)−gap, T·(W+gap)−gap, 3]``:
    a row per clip, a column per frame, white gaps."""
    if clips01.ndim != 5 or clips01.shape[2] != 3:
        raise DDMIError(f"clips01 must be [N, T, 3, H, W], got {tuple(clips01.shape)}")
    n, t, _, h, w = clips01.shape
    padded = torch.nn.functional.pad(clips01.detach().cpu().float(), (0, gap, 0, gap), value=1.0)  # [N, T, 3, H+g, W+g]
    canvas = rearrange(padded, "n t c h w -> c (n h) (t w)")[:, :n * (h + gap) - gap, :t * (w + gap) - gap]
    return rearrange(_to_uint8(canvas), "c h w -> h w c")


def save_png(image: np.ndarray, path, *, scale: int = 1) -> Path:
    """uint8 ``[H, W, 3]`` → PNG (nearest-neighbour ×``scale``), written atomically."""
    path = Path(path)
    img = Image.fromarray(np.ascontiguousarray(image))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    return path


def save_gif(clips01: torch.Tensor, path, *, fps: float = 8.0, scale: int = 2, gap: int = 1) -> Path:
    """Clips ``[N, T, 3, H, W]`` (or one ``[T, 3, H, W]``) in [0, 1] → an animated GIF, the clips side
    by side, looping; written atomically by :func:`ddmi_lite.io.save_gif`."""
    if clips01.ndim == 4:
        clips01 = clips01[None]
    if clips01.ndim != 5 or fps <= 0:
        raise DDMIError(f"clips01 must be [N, T, 3, H, W] or [T, 3, H, W] and fps > 0, got {tuple(clips01.shape)}, {fps}")
    row = rearrange(clips01, "n t c h w -> t n c h w")  # one strip of the N clips per frame
    strips = torch.stack([torch.from_numpy(frame_strip(r[None], gap=gap)) for r in row])  # [T, H', W', 3] uint8
    frames = rearrange(strips, "t h w c -> t c h w").float() / 255  # exact: write_gif rounds back to these bytes
    return write_gif(frames, path, duration_ms=int(round(1000 / fps)), scale=scale)
