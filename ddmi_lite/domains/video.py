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
  shared CFC MLP into RGB in [−1, 1]. The product channels g(x, t)·h(y, t) are bumps that move
  with t, which is what a moving sprite is (the reference concatenates only: ``aggregate="concat"``).
  Moving sprites are where the error is: on 200 held-out clips the 20% of pixels that change over
  time carried 86% of the squared error of the earlier 8²-plane concatenation model (23.3 dB) and
  still 91% of the cpu preset's (24.6 dB; static pixels 0.0010 → 0.0005 MSE, moving 0.026 → 0.020).
* Stage-1 loss (reference §1.8): L1 **summed** over the queried outputs, averaged over the batch,
  plus β(t)·KL; each step queries a random subset of the T·R² pixels of every clip (an INR can be
  supervised anywhere), the clips randomly mirrored and played backwards.
* Stage 2: the latent planes share one shape ``[3, z, S, S]``, so they stack along channels,
  ``[B, 3, z, S, S] ⇄ [B, 3z, S, S]`` in the order (xy, xt, yt) (:func:`pack_planes`, exactly
  invertible), and the 2D latent diffusion model of notebook 04 runs on the stack.
* Evaluation: PSNR per frame, averaged per clip, then over clips; a Fréchet distance on the
  features of a small 3D-conv network trained on the clips (:func:`ddmi_lite.metrics.train_feature_net`,
  **not** the I3D features of FVD); GIF and frame-strip export; rendering at any frame rate.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ddmi_lite import fields as F_fields
from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.errors import DDMIError
from ddmi_lite.metrics import psnr
from ddmi_lite.nets.video import PLANE_ORDER, VideoDecoder, VideoEncoder, VideoNetConfig
from ddmi_lite.readout import CFCReadout
from ddmi_lite.vae import D2CVAE

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
    "pack_planes",
    "reconstruct",
    "render",
    "save_gif",
    "save_png",
    "to_model_range",
    "train_video_vae",
    "unpack_planes",
    "video_coords",
]


@dataclass
class VideoVAEConfig:
    """Architecture, data and stage-1 training of the video D2C-VAE."""

    net: VideoNetConfig = field(default_factory=VideoNetConfig)
    hidden: int = 96                      # readout width [256]
    mode: str = "cfc"                     # readout.MODES
    aggregate: str = "concat_prod"        # plane samples: "concat" [reference] or "concat_prod" (+ xt ⊙ yt)
    act: str = "silu"
    n_train: int | None = None            # training clips used (None: the whole split)
    n_query: int = 4096                   # (x, y, t) points supervised per clip and step [all T·R²]
    hflip: bool = True                    # mirror clips left–right
    reverse: bool = True                  # play clips backwards (the sprites' motion is reversible)
    beta_max: float = 1e-3                # KL weight after annealing (sum-reduced losses)
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 50
    ema_decay: float | None = None
    precision: str = "fp32"
    max_time_s: float | None = None       # wall-clock budget, counted over every call


def build_video_vae(cfg: VideoVAEConfig) -> D2CVAE:
    """VideoEncoder → Gaussian planes → VideoDecoder (HDBF) → CFC readout on the plane samples
    (concatenated, with the time planes' product for ``cfg.aggregate="concat_prod"``)."""
    net = cfg.net.check()
    channels = F_fields.embedding_channels(net.pe_channels, "xyt", aggregate=cfg.aggregate)
    readout = CFCReadout([channels] * net.n_scales, hidden=cfg.hidden, out_dim=net.in_channels,
                         mode=cfg.mode, act=cfg.act)
    return D2CVAE(VideoEncoder(net), VideoDecoder(net), readout, layout="xyt", aggregate=cfg.aggregate,
                  recon="l1", moments_dim=2)


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
def load_video_split(split: str = "train", *, size: int = 32, limit: int | None = None) -> torch.Tensor:
    """Moving-emoji clips uint8 ``[N, T, 3, H, W]`` (prepared on first use), the first ``limit`` of them."""
    from ddmi_lite.data.video import load_moving_emoji

    clips = load_moving_emoji(split, size=size, dtype=torch.uint8)
    return clips if limit is None else clips[:limit]


def to_model_range(clips: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float clips → float in [−1, 1]."""
    x = clips.float() / 255.0 if clips.dtype == torch.uint8 else clips.float()
    return x * 2.0 - 1.0


def make_batch(clips: torch.Tensor, index: torch.Tensor, generator: torch.Generator, *, n_query: int = 4096,
               hflip: bool = True, reverse: bool = True) -> dict:
    """Training batch: ``x`` [B, T, 3, R, R] in [−1, 1] (the encoder's input), ``coords`` [B, n, 3] at
    random pixel/frame centres and ``target`` [B, n, 3] the pixels there (the same augmented clip)."""
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
    pick = torch.rand(b, total, generator=generator).argsort(dim=1)[:, :n]  # distinct points per clip [B, n]
    coords = video_coords(F_fields.pixel_centers(t), h, w)[pick]  # [B, n, 3]
    flat = rearrange(x, "b t c h w -> b (t h w) c")
    target = torch.gather(flat, 1, pick[..., None].expand(-1, -1, 3))  # [B, n, 3]
    return {"x": x, "coords": coords, "target": target}


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


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def reconstruct(vae: D2CVAE, clips: torch.Tensor, *, rate: int = 1, size: int | None = None,
                batch_size: int = 16) -> torch.Tensor:
    """Posterior-mean reconstructions → [0, 1] ``[N, (T−1)·rate+1 or T, 3, s, s]`` (``rate`` > 1: in-between frames)."""
    t, size = clips.shape[1], size or clips.shape[-1]
    times = frame_times(t, rate=rate)
    out = []
    for s in range(0, len(clips), batch_size):
        fields = vae.decode(vae.encode(to_model_range(clips[s:s + batch_size]).to(_device(vae))).mode())
        out.append(((render(vae, fields, times, size) + 1) * 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


def clip_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR of every frame of clips in [0, 1] ``[N, T, 3, H, W]``, averaged over the frames → ``[N]``."""
    if a.shape != b.shape or a.ndim != 5:
        raise DDMIError(f"clip_psnr needs two equal [N, T, 3, H, W] shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    per_frame = psnr(rearrange(a, "n t c h w -> (n t) c h w"), rearrange(b, "n t c h w -> (n t) c h w"))
    return rearrange(per_frame, "(n t) -> n t", n=a.shape[0]).mean(1)


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
    """q(z|x) of every clip as packed planes (:class:`~ddmi_lite.latent_diffusion.LatentPosterior`,
    ``[N, 3z, S, S]``); ``hflip`` appends the mirrored clips' posteriors."""
    from ddmi_lite.latent_diffusion import LatentPosterior

    means, stds = [], []
    for source in ([clips, clips.flip(-1)] if hflip else [clips]):
        for s in range(0, len(source), batch_size):
            post = vae.encode(to_model_range(source[s:s + batch_size]).to(_device(vae)))
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
        fields = vae.decode(unpack_planes(z[s:s + batch_size]).to(_device(vae)))
        out.append(((render(vae, fields, times, size) + 1) * 0.5).clamp(0, 1).cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------- training
def _run_settings(cfg: VideoVAEConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in ("steps", "max_time_s")}


def train_video_vae(vae: D2CVAE, cfg: VideoVAEConfig, clips: torch.Tensor, *, device="cpu", ckpt_path=None,
                    seed: int = 0, progress: bool = True, resume: bool = True, callback=None):
    """Stage 1 with the library's loop: Σ_points |ω̂ − ω| + β(t)·KL, β annealed linearly to ``cfg.beta_max``."""
    from ddmi_lite.train import TrainConfig, train
    from ddmi_lite.vae import kl_weight

    n = len(clips)
    tcfg = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, ema_decay=cfg.ema_decay,
                       seed=seed, max_time_s=cfg.max_time_s, precision=cfg.precision,
                       ckpt_every=max(cfg.steps // 4, 1), log_every=max(cfg.steps // 100, 1))

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        index = torch.randint(0, n, (min(cfg.batch_size, n),), generator=generator)
        return make_batch(clips, index, generator, n_query=cfg.n_query, hflip=cfg.hflip, reverse=cfg.reverse)

    def loss_fn(model: D2CVAE, batch: dict, step: int):
        beta = kl_weight(step, cfg.steps, beta_max=cfg.beta_max)
        return model.loss(batch["x"], batch["coords"], batch["target"], beta=beta)

    return train(vae, loss_fn, batch_fn, tcfg, device=device, ckpt_path=ckpt_path, progress=progress, resume=resume,
                 desc="video D2C-VAE", callback=callback, run_config={"vae": _run_settings(cfg), "n_train": n})


def load_or_train_video_vae(cfg: VideoVAEConfig, *, ckpt_path, device="cpu", seed: int = 0, progress: bool = True,
                            clips: torch.Tensor | None = None):
    """Train the video D2C-VAE on the moving-emoji training clips (or ``clips``), or reuse a finished checkpoint.

    Returns ``(vae in eval mode, TrainResult)``; ``result.resumed_from == result.steps_done`` means
    the checkpoint was reused as is. ``cfg.max_time_s`` counts over every call.
    """
    from ddmi_lite.domains.shape import budgeted_resume

    if clips is None:
        clips = load_video_split("train", size=cfg.net.resolution, limit=cfg.n_train)
    want = (cfg.net.frames, 3, cfg.net.resolution, cfg.net.resolution)
    if clips.ndim != 5 or tuple(clips.shape[1:]) != want:
        raise DDMIError(f"clips must be [N, {', '.join(map(str, want))}], got {tuple(clips.shape)}")
    run = {"vae": _run_settings(cfg), "n_train": len(clips)}
    steps, budget, resume = budgeted_resume(ckpt_path, cfg.steps, cfg.max_time_s, run=run)
    vae = build_video_vae(cfg).to(device)
    result = train_video_vae(vae, replace(cfg, steps=steps, max_time_s=budget), clips, device=device,
                             ckpt_path=ckpt_path, seed=seed, progress=progress, resume=resume)
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
    canvas = torch.ones(3, n * (h + gap) - gap, t * (w + gap) - gap)
    for i in range(n):
        for k in range(t):
            canvas[:, i * (h + gap):i * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = clips01[i, k].cpu()
    return rearrange(_to_uint8(canvas), "c h w -> h w c")


def save_png(image: np.ndarray, path, *, scale: int = 1) -> Path:
    """uint8 ``[H, W, 3]`` → PNG (nearest-neighbour ×``scale``), written atomically."""
    from PIL import Image

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
    by side, looping; written atomically."""
    from PIL import Image

    if clips01.ndim == 4:
        clips01 = clips01[None]
    if clips01.ndim != 5 or fps <= 0:
        raise DDMIError(f"clips01 must be [N, T, 3, H, W] or [T, 3, H, W] and fps > 0, got {tuple(clips01.shape)}, {fps}")
    row = rearrange(clips01, "n t c h w -> t n c h w")  # one strip of the N clips per frame
    frames = [Image.fromarray(frame_strip(r[None], gap=gap)) for r in row]
    if scale > 1:
        frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(round(1000 / fps)),
                   loop=0, disposal=1)
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path
