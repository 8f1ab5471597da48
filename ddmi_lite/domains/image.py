"""The image domain: pixel-centre coordinates, multi-scale training targets, chunked rendering, PSNR.

Implements the image rows of ddmi_method.md §1.5–1.9, scaled from 256/384/512 down to 32/48/64:

* coordinates are pixel centres ``linspace(−(N−1)/N, (N−1)/N, N)`` queried with
  ``align_corners=False`` (decided in ``fields.py``);
* the encoder always sees the 32² image; the training target is, at random, the full 32² grid
  (``si = 1``), a random 32² crop of the same emoji rendered at 48² with the matching crop of the 48² grid
  (``si = 2/3``), or a 32² crop of the 64² image (``si = 1/2``) — §1.9's multi-scale regime, which
  is what lets a model trained at 32² render at 64² and beyond;
* rendering evaluates the readout over any grid in chunks of points so memory stays bounded;
* images live in [−1, 1] inside the model and in [0, 1] everywhere else (PSNR, figures).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from einops import rearrange

from ddmi_lite import fields as F_fields
from ddmi_lite.data import load_emoji, load_image_folder
from ddmi_lite.device import module_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.ldm import LDMConfig
from ddmi_lite.nets.conv2d import Conv2dConfig, Decoder2D, Encoder2D
from ddmi_lite.presets import preset
from ddmi_lite.readout import CFCReadout
from ddmi_lite.train import TrainConfig, data_entry, load_or_train, model_settings
from ddmi_lite.vae import D2CVAE, kl_weight


@dataclass
class ImageVAEConfig:
    """Architecture and stage-1 training of the image D2C-VAE; the defaults are the ``cpu`` preset.

    Reference (§3): 256², ch 128, z 64×64×64, C_pe 64, readout width 256. ``cpu``: 32² emoji, a
    32×8×8 latent, fields at 8/16/32 with C_pe 64, readout width 96; ≈ 0.4 s per step of 32 on two
    cores, so 1,400 steps take about ten minutes (the budget is a safety stop at twice that).
    """

    net: Conv2dConfig = field(default_factory=lambda: Conv2dConfig(
        ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, z_channels=32, pe_channels=64))
    resolution: int = 32                  # training resolution (reference: 256)
    hidden: int = 96                      # readout width (reference: 256)
    mode: str = "cfc"                     # readout.MODES
    scale_cond: bool = True               # render-scale conditioning (reference §1.6)
    recon: str = "l1"                     # reference: L1 summed over pixels
    multiscale: bool = True               # §1.9 targets at 32/48/64
    # full grid / 48² crop / 64² crop (reference 0.3/0.3/0.4; at a 10-minute budget more weight on the
    # training resolution gives +0.4 dB held-out at 32² while keeping 2× renders sharp)
    multiscale_probs: tuple[float, float, float] = (0.6, 0.2, 0.2)
    hflip: bool = True
    beta_max: float = 1e-3                # KL weight after annealing (sum-reduced losses)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1400, batch_size=32, lr=2e-3, warmup_steps=100, max_time_s=1200.0))


IMAGE_VAE_PRESETS = {
    "smoke": dict(net=dict(ch=16, ch_mult=(1, 2, 2), z_channels=4, pe_channels=16, mid_attention=False), hidden=32,
                  train=dict(steps=20, batch_size=8, warmup_steps=2, max_time_s=None)),
    "gpu": dict(net=dict(ch=128, ch_mult=(1, 2, 2), num_res_blocks=2, z_channels=16), hidden=256,
                train=dict(steps=20000, batch_size=64, lr=1e-3, warmup_steps=500, max_time_s=None)),
}


def image_vae_config(profile: str = "cpu", **overrides) -> ImageVAEConfig:
    """The image D2C-VAE preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(ImageVAEConfig, profile, IMAGE_VAE_PRESETS, **overrides)


# Latent diffusion on the image latents (notebooks 04, 05): LDMConfig's defaults are the cpu preset.
IMAGE_LDM_PRESETS = {
    "smoke": dict(model_channels=16, num_res_blocks=1, num_heads=2, mix_lr=5e-2, sample_steps=5, n_samples=64,
                  sample_batch=64, n_sweep=32, feature_steps=20,
                  sweep={"ddpm": (20,), "ddim": (5, 10), "dpmpp_2m": (3, 5), "heun": (3,)},
                  train=dict(steps=30, batch_size=16, lr=1e-3, warmup_steps=3, ema_decay=0.9, precision="fp32",
                             max_time_s=None)),
    "gpu": dict(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(4, 2), n_samples=5000,
                sample_batch=1000, n_sweep=2000, feature_steps=2000,
                train=dict(steps=40000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                           precision="fp32", max_time_s=None)),
}


def image_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """The latent-diffusion preset on image latents (reference: ADM UNet 224–256 channels, DDIM-50)."""
    return preset(LDMConfig, profile, IMAGE_LDM_PRESETS, **overrides)


def build_image_vae(cfg: ImageVAEConfig) -> D2CVAE:
    """Encoder2D → Gaussian latent → Decoder2D (HDBF) → CFCReadout, in the ``plane`` layout."""
    net = cfg.net
    if cfg.mode == "single_scale" and net.n_scales != 1:  # the ablation: one field, at the finest scale
        net = replace(net, n_scales=1)
    enc, dec = Encoder2D(net), Decoder2D(net)
    readout = CFCReadout([net.pe_channels] * net.n_scales, hidden=cfg.hidden, out_dim=cfg.net.in_channels,
                         mode=cfg.mode, scale_cond=cfg.scale_cond)
    return D2CVAE(enc, dec, readout, layout="plane", aggregate="sum", recon=cfg.recon)


def to_model_range(images01: torch.Tensor) -> torch.Tensor:
    return images01 * 2.0 - 1.0


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)


def image_targets(images: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]`` → ``[B,H·W,C]``, row-major like ``fields.image_coords``."""
    return rearrange(images, "b c h w -> b (h w) c")


def crop_coords(full_res: int, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel-centre coordinates of ``size²`` crops at (top, left) of a ``full_res²`` grid → ``[B,size²,2]`` (x, y)."""
    centres = F_fields.pixel_centers(full_res, device=top.device)  # [R]
    idx = torch.arange(size, device=top.device)
    ys = centres[top[:, None] + idx[None]]  # [B,size]
    xs = centres[left[:, None] + idx[None]]  # [B,size]
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)  # [B,size,size,2]
    return rearrange(grid, "b h w d -> b (h w) d")


class ImageBatch(NamedTuple):
    x: torch.Tensor        # encoder input [B,3,R,R] in [−1,1]
    coords: torch.Tensor   # [B,R²,2]
    target: torch.Tensor   # [B,R²,3] in [−1,1]
    scale: torch.Tensor    # [B] render scale si = R / full resolution


def make_batch(pyramid: dict[int, torch.Tensor], index: torch.Tensor, generator: torch.Generator, *,
               resolution: int = 32, multiscale: bool = True,
               probs: tuple[float, float, float] = (0.6, 0.2, 0.2), hflip: bool = True) -> ImageBatch:
    """Training batch per §1.9: ``pyramid`` maps resolution → images ``[N,3,r,r]`` in [0,1]."""
    R = resolution
    B = len(index)
    flip = (torch.rand(B, generator=generator) < 0.5) if hflip else torch.zeros(B, dtype=torch.bool)

    def level(r: int, sel: torch.Tensor) -> torch.Tensor:  # the flipped-as-drawn images [b,3,r,r]
        imgs = pyramid[r][index[sel]]
        return torch.where(flip[sel][:, None, None, None], imgs.flip(-1), imgs)

    everyone = torch.arange(B)
    x = level(R, everyone)  # [B,3,R,R]
    target = x.clone()
    coords = F_fields.image_coords(R, R).expand(B, -1, -1).clone()  # [B,R²,2]
    scale = torch.ones(B)
    if multiscale:
        levels = sorted(r for r in pyramid if r > R)
        p = torch.tensor(probs[: 1 + len(levels)], dtype=torch.float32)
        choice = torch.multinomial(p / p.sum(), B, replacement=True, generator=generator)  # 0 = full grid
        for k, full in enumerate(levels, start=1):
            sel = (choice == k).nonzero().flatten()
            if len(sel) == 0:
                continue
            top = torch.randint(0, full - R + 1, (len(sel),), generator=generator)
            left = torch.randint(0, full - R + 1, (len(sel),), generator=generator)
            big = level(full, sel)  # [b,3,full,full]
            rows = (top[:, None] + torch.arange(R))[:, :, None]  # [b,R,1]
            cols = (left[:, None] + torch.arange(R))[:, None, :]  # [b,1,R]
            crop = big[torch.arange(len(sel))[:, None, None], :, rows, cols]  # [b,R,R,3]
            target[sel] = rearrange(crop, "b h w c -> b c h w")
            coords[sel] = crop_coords(full, top, left, R)
            scale[sel] = R / full
    return ImageBatch(to_model_range(x), coords, image_targets(to_model_range(target)), scale)


def build_pyramid(images: torch.Tensor, *larger: torch.Tensor, resolution: int | None = None) -> dict:
    """Resolution → images ``[N,3,r,r]``: the encoder resolution first, then larger renderings of the
    same images (e.g. the emoji at 48² and 64²) used as multi-scale targets."""
    pyramid = {images.shape[-1] if resolution is None else resolution: images}
    for imgs in larger:
        if imgs is None:
            continue
        if imgs.ndim != 4 or imgs.shape[0] != images.shape[0] or imgs.shape[-1] != imgs.shape[-2]:
            raise DDMIError(f"multi-scale images must be [{images.shape[0]},3,r,r], got {tuple(imgs.shape)}")
        pyramid[imgs.shape[-1]] = imgs
    return pyramid


@torch.no_grad()
def render(vae: D2CVAE, fields: list[torch.Tensor], height: int, width: int | None = None, *,
           train_resolution: int = 32, scale: float | None = None, chunk: int = 16384,
           scale_mask=None) -> torch.Tensor:
    """Render basis fields on an ``height×width`` pixel-centre grid in chunks → ``[B,3,H,W]`` in [−1,1].

    ``scale`` defaults to ``si = train_resolution / height`` clamped to the trained range [1/2, 1].
    """
    width = width or height
    if height <= 0 or width <= 0:
        raise DDMIError(f"render size must be positive, got {height}×{width}")
    B = fields[0].shape[0]
    device = fields[0].device
    si = scale if scale is not None else min(max(train_resolution / height, 0.5), 1.0)
    si_t = torch.full((B,), float(si), device=device)
    coords = F_fields.image_coords(height, width, device=device)  # [H·W,2]
    out = []
    for start in range(0, coords.shape[0], chunk):
        c = coords[start:start + chunk].expand(B, -1, -1)  # [B,n,2]
        out.append(vae.query(fields, c, scale=si_t, scale_mask=scale_mask))  # [B,n,3]
    return rearrange(torch.cat(out, 1), "b (h w) c -> b c h w", h=height, w=width)


@torch.no_grad()
def reconstruct(vae: D2CVAE, images01: torch.Tensor, *, size: int | None = None, batch_size: int = 64,
                train_resolution: int = 32) -> torch.Tensor:
    """Posterior-mean reconstructions rendered at ``size`` (default: input size) → [0,1] ``[N,3,s,s]``."""
    size = size or images01.shape[-1]
    out = []
    device = module_device(vae)
    for start in range(0, len(images01), batch_size):
        x = to_model_range(images01[start:start + batch_size].to(device))
        fields = vae.decode(vae.encode(x).mode())
        out.append(to_unit_range(render(vae, fields, size, train_resolution=train_resolution)).cpu())
    return torch.cat(out)


def image_vae_batches(cfg: ImageVAEConfig, pyramid: dict[int, torch.Tensor]):
    """``batch_fn(step, generator)`` for :func:`ddmi_lite.train.train`: random emoji, §1.9 targets."""
    n = len(pyramid[cfg.resolution])

    def batch_fn(step: int, generator: torch.Generator) -> ImageBatch:
        index = torch.randint(0, n, (cfg.train.batch_size,), generator=generator)
        return make_batch(pyramid, index, generator, resolution=cfg.resolution, multiscale=cfg.multiscale,
                          probs=cfg.multiscale_probs, hflip=cfg.hflip)

    return batch_fn


def image_vae_loss(cfg: ImageVAEConfig):
    """``loss_fn(model, batch, step)``: the ELBO with β(t) annealed to ``cfg.beta_max`` over the run."""

    def loss_fn(model: D2CVAE, batch: ImageBatch, step: int):
        beta = kl_weight(step, cfg.train.steps, beta_max=cfg.beta_max)
        return model.loss(batch.x, batch.coords, batch.target, beta=beta, scale=batch.scale)

    return loss_fn


def train_image_vae(vae: D2CVAE, cfg: ImageVAEConfig, pyramid: dict[int, torch.Tensor], *, device="cpu",
                    ckpt_path=None, seed: int = 0, progress: bool = True, callback=None, data_id: str | None = None):
    """Stage-1 training of the image D2C-VAE (:func:`ddmi_lite.train.load_or_train`'s resume policy)."""
    return load_or_train(vae, image_vae_loss(cfg), image_vae_batches(cfg, pyramid), replace(cfg.train, seed=seed),
                         ckpt_path=ckpt_path, run_config={"vae": model_settings(cfg), **data_entry(data_id)}, device=device,
                         progress=progress, desc="image D2C-VAE", callback=callback)


def load_or_train_image_vae(cfg: ImageVAEConfig, *, ckpt_path, device="cpu", seed: int = 0,
                            progress: bool = True, train: dict[int, torch.Tensor] | None = None,
                            data_id: str | None = None):
    """Train the image D2C-VAE on the emoji training split, or reuse a finished checkpoint.

    ``train`` (size → images, e.g. ``image_splits(folder)["train"]``) replaces the emoji at the
    sizes it holds; ``data_id`` names that data in the checkpoint's run (:func:`ddmi_lite.train.data_entry`).
    Returns ``(vae in eval mode, TrainResult)``; ``result.resumed_from == result.steps_done``
    means the checkpoint was reused as is (notebooks say so).
    """
    vae = build_image_vae(cfg).to(device)
    train = train or {}

    def images(r: int) -> torch.Tensor:
        return train[r] if r in train else load_emoji(r, "train")

    larger = [images(r) for r in (48, 64)] if cfg.multiscale else []
    pyramid = build_pyramid(images(cfg.resolution), *larger)
    result = train_image_vae(vae, cfg, pyramid, device=device, ckpt_path=ckpt_path, seed=seed, progress=progress,
                             data_id=data_id)
    return vae.eval(), result


HELD_OUT_EVERY = 10  # a user's folder: images 9, 19, 29, … of the sorted list are held out


def image_splits(data_dir: str | os.PathLike | None = "", sizes=(32, 48, 64), *,
                 progress: bool = True) -> dict[str, dict[int, torch.Tensor]]:
    """Training and held-out images at each of ``sizes``: ``{"train": {size: [N,3,s,s]}, "test": {…}}``, in [0,1].

    Empty ``data_dir``: the bundled emoji and their grouped split (:func:`ddmi_lite.data.load_emoji`).
    Otherwise every image under the folder in sorted path order
    (:func:`ddmi_lite.data.load_image_folder`, decoded once into the uint8 cache under
    ``<data dir>/cache/image_folders``; the folder itself is only read), with every
    ``HELD_OUT_EVERY``-th image (positions 9, 19, 29, …) held out and the rest for training.
    """
    if not data_dir:
        return {split: {s: load_emoji(s, split) for s in sizes} for split in ("train", "test")}
    splits: dict[str, dict[int, torch.Tensor]] = {"train": {}, "test": {}}
    for s in sizes:
        images = load_image_folder(data_dir, s, cache=True, progress=progress)
        held = torch.arange(len(images)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
        if not held.any():
            raise DDMIError(f"image folder {data_dir} holds {len(images)} images; at least {HELD_OUT_EVERY} are "
                            f"needed to hold every {HELD_OUT_EVERY}th out")
        splits["train"][s], splits["test"][s] = images[~held], images[held]
    return splits
