"""The stages that :mod:`ddmi_lite.bench` times: one step of every part of DDMI (§3.2, §3.3, §4).

Each builder returns a :class:`Stage`: a closure running one step on synthetic data of the
profile's sizes, the samples it processes, and what to measure.

* training steps (the optimiser step of :func:`ddmi_lite.train.train`): the image, shape, video
  and NeRF D2C-VAEs (§3.2) and the latent diffusion model (§3.3);
* sampling: one call of a latent sampler;
* rendering: an image at any resolution, a dense occupancy grid (chunked, through
  :func:`ddmi_lite.geometry.evaluate_occupancy`);
* queries: forward + backward of the multi-scale plane queries, fused or one call per plane.

:func:`channels_last_difference` checks the channels-last path against NCHW for the comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ddmi_lite import geometry as geo
from ddmi_lite.domains.image import build_image_vae, image_ldm_config, image_vae_config, render
from ddmi_lite.domains.image import make_batch as make_image_batch
from ddmi_lite.domains.nerf import build_nerf_vae, nerf_loss, nerf_vae_config
from ddmi_lite.domains.shape import build_shape_vae, shape_vae_config
from ddmi_lite.domains.video import build_video_vae, video_vae_config
from ddmi_lite.domains.video import make_batch as make_video_batch
from ddmi_lite.fields import query_fields
from ddmi_lite.ldm import build_ldm
from ddmi_lite.train import autocast


@dataclass
class Stage:
    """One benchmarked step and how to count and measure it (see :func:`ddmi_lite.bench.measure`)."""

    name: str
    step: Callable[[], object]          # one step (a training step, a render, a sampling call)
    samples: int                        # samples per step (images, shapes, latents, pixels/points)
    kind: str = "train"                 # train | render | sample | query
    memory: bool = False                # measure its peak memory
    info: dict = field(default_factory=dict)
    count: Callable[[], object] | None = None  # a smaller step with the same FLOPs per sample
    count_factor: float = 1.0           # FLOPs of ``step`` = factor × FLOPs of ``count``
    single: bool = False                # too long to repeat: one run, timed with the memory profiler on


def _train_step(model, loss_fn, params, device, precision: str) -> Callable:
    """The optimiser step of :func:`ddmi_lite.train.train`: zero grad, loss, backward, clip, AdamW."""
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def image_vae_stage(profile, device, precision="fp32", *, batch=None, channels_last=False) -> Stage:
    cfg = image_vae_config(profile)
    b = batch or cfg.train.batch_size
    torch.manual_seed(0)
    vae = build_image_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    r = cfg.resolution
    pyramid = {s: torch.rand(b, 3, s, s, generator=g) for s in (r, r * 3 // 2, 2 * r)}  # synthetic images
    batch_ = make_image_batch(pyramid, torch.arange(b), g, resolution=r)
    x, coords, target, scale = (t.to(device) for t in batch_)
    if channels_last:
        vae.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(x, coords, target, beta=1e-3, scale=scale)[0], params, device, precision)
    return Stage("vae_train_image", step, b, memory=True, info={"batch": b, "model": vae})


def shape_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    cfg = shape_vae_config(profile)
    b = batch or cfg.train.batch_size
    torch.manual_seed(0)
    vae = build_shape_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(b, cfg.n_surface, 3, generator=g) * 2 - 1).to(device)  # synthetic points
    coords = (torch.rand(b, cfg.n_query, 3, generator=g) * 2 - 1).to(device)
    target = (torch.rand(b, cfg.n_query, 1, generator=g) < 0.3).float().to(device)
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(x, coords, target, beta=1e-2)[0], params, device, precision)
    return Stage("vae_train_shape", step, b, memory=True, info={"batch": b, "model": vae})


def video_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    """Video D2C-VAE step on random clips (the ``xyt`` planes, concatenated plane samples)."""
    cfg = video_vae_config(profile)
    b, net = batch or cfg.train.batch_size, cfg.net
    torch.manual_seed(0)
    vae = build_video_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(b, net.frames, net.in_channels, net.resolution, net.resolution, generator=g)
    bt = {k: v.to(device) for k, v in make_video_batch(clips, torch.arange(b), g, n_query=cfg.n_query).items()}
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(bt["x"], bt["coords"], bt["target"], beta=1e-3)[0], params, device,
                       precision)
    return Stage("vae_train_video", step, b, memory=True, info={"batch": b})


def nerf_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    """NeRF D2C-VAE step on random coloured points and rays (volume rendering of the tri-plane readout)."""
    cfg = nerf_vae_config(profile)
    b = batch or cfg.train.batch_size
    torch.manual_seed(0)
    vae = build_nerf_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(b, cfg.n_rays, 3, generator=g), dim=-1)
    bt = {"x": torch.rand(b, cfg.n_points, 6, generator=g) - 0.5, "origins": -1.5 * dirs, "dirs": dirs,
          "target": torch.rand(b, cfg.n_rays, 3, generator=g)}
    bt = {k: v.to(device) for k, v in bt.items()}
    params = list(vae.parameters())
    step = _train_step(vae, lambda: nerf_loss(vae, bt, beta=1e-2, n_samples=cfg.n_samples, near=0.5, far=2.5)[0],
                       params, device, precision)
    return Stage("vae_train_nerf", step, b, memory=True, info={"batch": b})


def ldm_stage(profile, device, precision="fp32", *, batch=256) -> Stage:
    vcfg, cfg = image_vae_config(profile), image_ldm_config(profile)
    f = 2 ** (len(vcfg.net.ch_mult) - 1)
    shape = (vcfg.net.z_channels, vcfg.resolution // f, vcfg.resolution // f)
    torch.manual_seed(0)
    ldm = build_ldm(cfg, shape, latent_scale=1.0).to(device)
    z = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    params = list(ldm.parameters())
    step = _train_step(ldm, lambda: ldm.loss(z)[0], params, device, precision)
    return Stage("ldm_train", step, batch, memory=True, info={"batch": batch, "model": ldm, "shape": shape})


def sampling_stage(ldm, shape, device, precision="fp32", *, batch=256, steps=10, sampler="dpmpp_2m") -> Stage:
    g = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def step():
        with autocast(device, precision):
            return ldm.sample((batch, *shape), sampler=sampler, steps=steps, generator=g)
    ldm.eval()
    return Stage(f"sample_{sampler}_{steps}", step, batch, kind="sample", memory=True,
                 info={"batch": batch, "sampler": sampler, "steps": steps})


def render_stage(vae, device, res: int, precision="fp32", *, train_resolution: int = 32,
                 single: bool = False) -> Stage:
    vae.eval()
    with torch.no_grad():
        h = train_resolution // vae.encoder.downsample_factor
        fields = vae.decode(torch.randn(1, vae.decoder.cfg.z_channels, h, h, device=device))

    def run(side):
        with autocast(device, precision):
            return render(vae, fields, side)
    small = max(res // 4, 1)  # FLOPs per pixel are constant: count a 16× smaller render
    return Stage(f"render_image_{res}", lambda: run(res), res * res, kind="render", memory=True,
                 info={"pixels": res * res}, count=lambda: run(small), count_factor=(res / small) ** 2,
                 single=single)


def occupancy_stage(vae, device, res: int, precision="fp32", *, single: bool = False) -> Stage:
    vae.eval()
    with torch.no_grad():
        fields = vae.decode(torch.randn(1, *vae.decoder.cfg.latent_shape, device=device))

    def run(side):  # logits on the corner-aligned side³ grid of [−1, 1]³, kept on the device
        with autocast(device, precision):
            return geo.evaluate_occupancy(lambda c: vae.query(fields, c[None])[0, :, 0], side, padding=1.0,
                                          device=device, out_device=device)
    small = max(res // 4, 1)  # FLOPs per point are constant: count a 64× smaller grid
    return Stage(f"occupancy_{res}", lambda: run(res), res ** 3, kind="render", memory=True,
                 info={"points": res ** 3}, count=lambda: run(small), count_factor=(res / small) ** 3,
                 single=single)


def query_stage(fields, coords, *, fused: bool, layout="triplane") -> Stage:
    """Forward + backward of ``fields.query_fields`` (fused planes or one call per plane)."""
    leaf = [f.detach().requires_grad_() for f in fields]

    def step():
        out = query_fields(leaf, coords, layout, fused=fused)
        sum(o.sum() for o in out).backward()
        return out
    return Stage(f"query_{layout}_{'fused' if fused else 'per_plane'}", step, coords.shape[0] * coords.shape[1],
                 kind="query")


def channels_last_difference(profile, device) -> float:
    """Loss and gradients of one image-VAE step, NCHW vs channels-last: largest relative difference."""
    out = []
    for cl in (False, True):
        st = image_vae_stage(profile, device, batch=4, channels_last=cl)
        vae = st.info["model"]
        r = image_vae_config(profile).resolution
        g = torch.Generator().manual_seed(1)
        b = make_image_batch({s: torch.rand(4, 3, s, s, generator=g) for s in (r, r * 3 // 2, 2 * r)}, torch.arange(4), g)
        x = b.x.to(device)
        x = x.contiguous(memory_format=torch.channels_last) if cl else x
        post = vae.encode(x)
        loss = vae.query(vae.decode(post.mean), b.coords.to(device), scale=b.scale.to(device)).pow(2).mean()
        loss.backward()
        out.append(torch.cat([loss.detach().reshape(1)] + [p.grad.flatten() for p in vae.parameters()]))
    return float(((out[0] - out[1]).abs().max() / out[0].abs().max()).item())


__all__ = [
    "Stage",
    "channels_last_difference",
    "image_vae_stage",
    "ldm_stage",
    "nerf_vae_stage",
    "occupancy_stage",
    "query_stage",
    "render_stage",
    "sampling_stage",
    "shape_vae_stage",
    "video_vae_stage",
]
