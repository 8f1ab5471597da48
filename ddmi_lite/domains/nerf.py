"""The NeRF domain: radiance fields on tri-planes from a coloured point cloud (DDMI §4.4;
ddmi_method.md §1.2–1.9 NeRF rows).

* Data: posed views and a coloured point cloud per object in the SRN-cars layout
  (:mod:`ddmi_lite.data.views`) or Points2NeRF's npz files (:mod:`ddmi_lite.data.points2nerf`), held
  in memory as :class:`ViewTensors`. Each object's ray bounds (near, far, box; read or derived by
  :func:`ddmi_lite.data.srn.view_bounds`) scale it so that its box is [−0.55, 0.55]³ (ours: scale 1,
  objects fit [−0.5, 0.5]³); points enter the networks as c = p / 0.55 ∈ [−1, 1]³.
* Model: coloured cloud (xyz ‖ rgb, 6 values per point, reference ``dim: 6``) → PointNet with local
  pooling → scatter-mean onto (xy, yz, xz) → tri-plane encoder → Gaussian latent z ∈ ℝ^{3×z×h×w}
  → tri-plane decoder → HDBF at **three** scales (the released NeRF config has one scale and no
  CFC, reference pitfall 12; here NeRF gets the full method) → PE per scale = the three plane
  samples **concatenated** (reference §1.5) → :class:`NeRFReadout`: the CFC trunk gives a raw
  density σ and a feature h; the colour head reads [h ‖ γ(d)] (γ: Fourier features of the view
  direction, 4 frequencies) with ReLUs (the reference's ``LeakyReLU(True)`` made its MLP linear)
  and a sigmoid.
* Rendering (:mod:`ddmi_lite.rays`): stratified samples on the part of each ray inside
  the cube [−0.55, 0.55]³ (ray–box slabs; density is zero outside it),

      C(r) = Σ_i T_i (1 − exp(−σ_i δ_i)) c_i + (1 − Σ_i w_i)·1,   T_i = exp(−Σ_{j<i} σ_j δ_j),

  with σ = softplus(raw) and a white background (reference §1.7).
* Stage-1 loss (reference §1.8): 20 × Σ_rays |Ĉ(r) − C(r)| (summed over rays and channels) per
  object, averaged over the batch, plus β(t)·KL with β annealed to 0.05. One random view per
  object and step, random pixels of it (reference §1.9).
* Stage 2: the latents are stacked along channels in the order (xy, yz, xz) exactly as for shapes
  (:func:`ddmi_lite.domains.shape.triplane_to_image`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ddmi_lite.data import default_data_dir
from ddmi_lite.data.points2nerf import list_view_objects, load_view_object
from ddmi_lite.data.views import prepare_views
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.io import is_foreign_folder
from ddmi_lite.ldm import TRIPLANE_LDM_PRESETS, LDMConfig
from ddmi_lite.nets.triplane import TriplaneConfig, TriplaneDecoder, TriplaneEncoder
from ddmi_lite.presets import preset
from ddmi_lite.rays import camera_rays, stratified_samples, volume_render
from ddmi_lite.readout import CFCReadout, activation
from ddmi_lite.train import TrainConfig, data_entry, load_or_train, model_settings
from ddmi_lite.vae import D2CVAE, kl_weight


@dataclass
class NeRFVAEConfig:
    """Architecture, data, rendering and stage-1 training of the NeRF D2C-VAE; the defaults are ``cpu``.

    Reference (in brackets): PointNet on 64² planes, z 64×16×16 per plane, one 32-channel 64² field
    per plane, MLP 6×256, 256 samples per ray, 5000 rays; here three scales and CFC. ``cpu``: the
    shape preset's tri-plane networks (latent 3×8×8×8, fields at 8/16/32 with 16 channels per
    plane), 8 objects × 192 rays × 24 samples per step (the samples span only the ray's stretch
    inside the cube). Trials of the same preset with fixed step counts, held-out PSNR over 48
    objects × 4 views: 600 steps of 256 rays × 32 samples 20.6 dB, 1,100 steps 21.2; 800 steps of
    192 × 24 21.4 dB, 1,500 steps 21.8 (SSIM 0.83), with training objects no better (no
    overfitting at 640 objects).
    """

    net: TriplaneConfig = field(default_factory=lambda: TriplaneConfig(
        point_hidden=32, point_blocks=4, plane_channels=32, plane_resolution=32, ch=16, ch_mult=(1, 2, 2),
        z_channels=8, pe_channels=16, cross_resolutions=(8,), attention_resolutions=(8,), point_features=3))
    hidden: int = 64                      # CFC trunk width [256]
    color_hidden: int = 32                # colour head width [128]
    dir_freqs: int = 4                    # Fourier frequencies of the view direction [4]
    mode: str = "cfc"                     # readout.MODES
    act: str = "relu"
    data_root: str = "views"              # folder under the data dir: 800 objects × 16 views of 32²
    n_objects: int = 800                  # objects prepared there
    views: int = 16                       # views per object
    size: int = 32                        # view side in pixels [200]
    n_points: int = 1024                  # encoder points per object [all]
    n_rays: int = 192                     # random pixels per object and step [5000]
    n_samples: int = 24                   # stratified samples per ray [256]
    rec_weight: float = 20.0              # L1 weight [20]
    beta_max: float = 0.05                # KL weight after annealing [0.05]
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1500, batch_size=8, lr=2e-3, warmup_steps=50, max_time_s=800.0))


# smoke: 40 objects × 6 views in their own folder (under a second to render)
NERF_VAE_PRESETS = {
    "smoke": dict(net=dict(point_hidden=16, point_blocks=2, plane_channels=8, plane_resolution=16, ch=8, z_channels=4,
                           pe_channels=8, cross_resolutions=(4,), attention_resolutions=(4,)),
                  hidden=32, color_hidden=16, data_root="views_smoke", n_objects=40, views=6, n_points=256, n_rays=64,
                  n_samples=16, train=dict(steps=20, batch_size=4, warmup_steps=2, max_time_s=None)),
    "gpu": dict(net=dict(point_hidden=128, point_blocks=5, plane_resolution=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2,
                         z_channels=16, pe_channels=32, cross_resolutions=(32, 16), attention_resolutions=(16,)),
                hidden=128, color_hidden=64, n_points=2048, n_rays=1024, n_samples=64,
                train=dict(steps=30000, batch_size=16, lr=5e-4, warmup_steps=500, max_time_s=None)),
}


def nerf_vae_config(profile: str = "cpu", **overrides) -> NeRFVAEConfig:
    """The NeRF D2C-VAE preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(NeRFVAEConfig, profile, NERF_VAE_PRESETS, **overrides)


@dataclass
class NeRFEvalConfig:
    """Evaluation sizes of the NeRF notebook (``cpu``: about a minute and a half of rendering and scoring)."""

    n_heldout: int = 48             # held-out objects scored by PSNR / SSIM
    views_heldout: int = 4          # of their views each
    n_train: int = 24               # training objects scored the same way (psnr_train)
    n_gen: int = 64                 # generated scenes
    gen_views: int = 2              # random cameras per generated scene for the FD
    n_fd: int = 128                 # images per FD set (samples, held-out, floor, ceiling)
    feature_views: int = 4000       # training views the FD feature network learns from
    feature_steps: int = 200
    novel_size: int = 48            # side of the novel-view / turntable renders (trained at 32²)
    gif_frames: int = 16
    n_show: int = 4                 # scenes per figure row
    mesh_resolution: int = 40       # density grid per axis for marching cubes
    mesh_level: float = 10.0        # σ level of the density surface


NERF_EVAL_PRESETS = {
    "smoke": dict(n_heldout=3, views_heldout=2, n_train=2, n_gen=3, gen_views=2, n_fd=6, feature_views=24,
                  feature_steps=3, novel_size=16, gif_frames=3, n_show=2, mesh_resolution=12),
    "gpu": dict(n_heldout=200, views_heldout=8, n_train=100, n_gen=500, gen_views=4, n_fd=2000, feature_views=20000,
                feature_steps=2000, novel_size=128, gif_frames=36, n_show=6, mesh_resolution=96),
}


def nerf_eval_config(profile: str = "cpu", **overrides) -> NeRFEvalConfig:
    """Evaluation sizes of ``profile``."""
    return preset(NeRFEvalConfig, profile, NERF_EVAL_PRESETS, **overrides)


# Latent diffusion on the channel-stacked NeRF tri-planes (reference: 192×16×16, as for shapes). The
# latents have the shape preset's layout (cpu: 24×8×8), so the table is the tri-plane one of
# ddmi_lite.ldm, with 64 generated scenes on cpu.
NERF_LDM_PRESETS = {**TRIPLANE_LDM_PRESETS, "cpu": {**TRIPLANE_LDM_PRESETS["cpu"], "n_samples": 64}}


def nerf_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """The latent-diffusion preset on NeRF latents of ``profile``."""
    return preset(LDMConfig, profile, NERF_LDM_PRESETS, **overrides)


# ----------------------------------------------------------------------------------------------- model
def direction_encoding(dirs: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """γ(d) = [d, sin(2ᵏ d), cos(2ᵏ d)]_{k<n}: ``[..., 3]`` → ``[..., 3 + 6n]`` (NeRF's view PE)."""
    freqs = 2.0 ** torch.arange(n_freqs, device=dirs.device, dtype=dirs.dtype)  # [n]
    args = rearrange(dirs[..., None, :] * freqs[:, None], "... n d -> ... (n d)")  # [..., 3n]
    return torch.cat([dirs, args.sin(), args.cos()], -1)


class NeRFReadout(nn.Module):
    """CFC trunk → (raw density σ, feature h); colour head: c = sigmoid(W₂ ReLU(W₁ [ReLU(h) ‖ γ(d)])).

    Inputs: the per-scale embeddings ``[B, N, C_l]`` (coarse first), the sample coordinates
    ``coords [B, N, 3]`` (added after the first block, as for shapes) and the unit view
    directions ``dirs [B, N, 3]``. Output ``[B, N, 4]``: raw σ, then rgb ∈ (0, 1).
    """

    coord_dim = 3

    def __init__(self, pe_dims, *, hidden: int = 64, color_hidden: int = 32, dir_freqs: int = 4,
                 mode: str = "cfc", act: str = "relu"):
        super().__init__()
        self.dir_freqs = dir_freqs
        self.trunk = CFCReadout(pe_dims, hidden=hidden, out_dim=1 + hidden, mode=mode, coord_dim=3, act=act)
        self.act = activation(act)
        self.color = nn.Sequential(nn.Linear(hidden + 3 + 6 * dir_freqs, color_hidden), activation(act),
                                   nn.Linear(color_hidden, 3))
        with torch.no_grad():  # start almost empty (softplus(−2) ≈ 0.13 per unit length): white views
            self.trunk.head.bias[0] = -2.0

    def forward(self, pes, *, coords: torch.Tensor | None = None, dirs: torch.Tensor | None = None) -> torch.Tensor:
        if dirs is None:
            raise DDMIError("NeRFReadout needs the view directions: pass dirs= [B, N, 3]")
        out = self.trunk(pes, coords=coords)  # [B, N, 1 + hidden]
        sigma, feat = out[..., :1], out[..., 1:]
        rgb = torch.sigmoid(self.color(torch.cat([self.act(feat), direction_encoding(dirs, self.dir_freqs)], -1)))
        return torch.cat([sigma, rgb], -1)  # [B, N, 4]


def build_nerf_vae(cfg: NeRFVAEConfig) -> D2CVAE:
    """Coloured-cloud PointNet + tri-plane encoder → Gaussian latent → tri-plane HDBF → NeRF readout."""
    net = cfg.net.check()
    if net.point_features != 3:
        raise DDMIError(f"net.point_features={net.point_features}; the NeRF encoder reads xyz + rgb (3)")
    readout = NeRFReadout([3 * net.pe_channels] * net.n_scales, hidden=cfg.hidden, color_hidden=cfg.color_hidden,
                          dir_freqs=cfg.dir_freqs, mode=cfg.mode, act=cfg.act)
    encoder = TriplaneEncoder(net)
    with torch.no_grad():  # start with a narrow posterior, σ_z = e^{−2}: z carries the cloud from step one
        bias = rearrange(encoder.quant.bias, "(p m c) -> p m c", p=3, m=2)  # [planes, (mean, log σ²), z]
        bias[:, 1].fill_(-4.0)
    return D2CVAE(encoder, TriplaneDecoder(net), readout, layout="triplane", aggregate="concat",
                  recon="l1", moments_dim=2)


# ----------------------------------------------------------------------------------------------- rendering
def box_interval(origins: torch.Tensor, dirs: torch.Tensor, *, near, far, half: float = BOX):
    """Where rays enter and leave the cube [−half, half]³ (slab method), within [near, far].

    ``[..., 3]`` → ``t_in, t_out, hit`` each ``[...]``; ``near``/``far`` are floats or tensors that
    broadcast to ``[...]``. A ray that misses gets [near, far] and ``hit = False`` (all its samples
    then lie outside the cube and get zero density).
    """
    near, far = (torch.as_tensor(v, dtype=origins.dtype, device=origins.device) for v in (near, far))
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-half - origins) * inv, (half - origins) * inv  # [..., 3] each
    t_in = torch.maximum(torch.minimum(t0, t1).amax(-1), near)
    t_out = torch.minimum(torch.maximum(t0, t1).amin(-1), far)
    hit = t_out > t_in + 1e-4
    return torch.where(hit, t_in, near), torch.where(hit, t_out, far), hit


def render_rays(vae: D2CVAE, fields, origins: torch.Tensor, dirs: torch.Tensor, *, n_samples: int,
                near=0.9, far=2.7, perturb: bool = True, generator: torch.Generator | None = None):
    """Volume-render rays ``[B, R, 3]`` of the scenes whose basis fields are ``fields`` → :class:`rays.Rendered`
    with ``rgb [B, R, 3]``, ``depth``/``acc [B, R]``. ``near``/``far``: floats, or ``[B]`` one per scene
    (:attr:`ViewTensors.object_near`). ``perturb=False``: samples at the bin centres."""
    b, r, _ = origins.shape
    near, far = (v[:, None] if torch.is_tensor(v) and v.ndim == 1 else v for v in (near, far))  # [B] → [B, 1]
    t_in, t_out, _ = box_interval(origins, dirs, near=near, far=far)  # [B, R]
    t = stratified_samples(t_in.reshape(-1), t_out.reshape(-1), n_samples, perturb=perturb, generator=generator)
    t = t.reshape(b, r, n_samples).to(origins)  # [B, R, S]
    coords = (origins[..., None, :] + t[..., None] * dirs[..., None, :]) / BOX  # [B, R, S, 3] in the cube's units
    view = dirs[..., None, :].expand(b, r, n_samples, 3)
    out = vae.query(fields, rearrange(coords, "b r s d -> b (r s) d"), dirs=rearrange(view, "b r s d -> b (r s) d"))
    out = rearrange(out, "b (r s) k -> (b r) s k", s=n_samples)  # [B·R, S, 4]
    inside = (coords.abs() <= 1.0).all(-1).reshape(b * r, n_samples)
    density = torch.nn.functional.softplus(out[..., 0]) * inside  # σ = softplus(raw), 0 outside the cube
    rendered = volume_render(density, out[..., 1:], t.reshape(b * r, n_samples), white_background=True,
                             density_activation="none")
    return type(rendered)(rendered.rgb.reshape(b, r, 3), rendered.depth.reshape(b, r), rendered.acc.reshape(b, r),
                          rendered.weights.reshape(b, r, n_samples))


# ----------------------------------------------------------------------------------------------- data
def nerf_data_root(cfg: NeRFVAEConfig, *, prepare: bool = True, progress: bool = True) -> Path:
    """The collection of ``cfg`` under the data dir, prepared (idempotently) when ``prepare``.

    A folder the library did not make (a user's data set, :func:`ddmi_lite.io.is_foreign_folder`)
    is only read: nothing is prepared or written into it.
    """
    root = Path(cfg.data_root) if os.path.isabs(cfg.data_root) else default_data_dir() / cfg.data_root
    if prepare and not is_foreign_folder(root):
        prepare_views(root, n_objects=cfg.n_objects, views=cfg.views, size=cfg.size, progress=progress)
    return root


@dataclass
class ViewTensors:
    """A split in memory: every view (uint8), pose and the coloured cloud of every object.

    Poses and cloud are in model units: the data's units × ``object_scale`` = 0.55 / box, so every
    object's box is the cube [−0.55, 0.55]³ that the fields cover (images and intrinsics are unchanged
    by the scaling). ``near``/``far`` are the split's widest interval, ``object_near``/``object_far``
    each object's own, both in model units.
    """

    images: torch.Tensor        # [N, V, H, W, 3] uint8
    poses: torch.Tensor         # [N, V, 4, 4] camera-to-world, model units
    object_intrinsics: torch.Tensor  # [N, 4] (fx, fy, cx, cy) of each object's camera
    cloud: torch.Tensor         # [N, M, 6] xyz (model units) ‖ rgb in [0, 1]
    ids: list[str]
    object_bounds: torch.Tensor | None = None  # [N, 3] float64 (near, far, box) in the data's units

    def __post_init__(self):
        if self.object_bounds is None:  # the procedural views' bounds
            self.object_bounds = torch.tensor([[0.9, 2.7, BOX]], dtype=torch.float64).expand(len(self.ids), 3)

    @property
    def object_scale(self) -> torch.Tensor:
        return BOX / self.object_bounds[:, 2]  # [N]

    @property
    def object_near(self) -> torch.Tensor:
        return self.object_bounds[:, 0] * self.object_scale  # [N], model units

    @property
    def object_far(self) -> torch.Tensor:
        return self.object_bounds[:, 1] * self.object_scale  # [N], model units

    near = property(lambda self: float(self.object_near.min()), doc="The split's nearest near (model units).")
    far = property(lambda self: float(self.object_far.max()), doc="The split's farthest far (model units).")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def intrinsics(self) -> torch.Tensor:
        """The split's one camera model ``[4]``; an error when objects have their own (use ``object_intrinsics``)."""
        k = self.object_intrinsics
        if not torch.allclose(k, k[:1].expand_as(k)):
            raise DDMIError("the objects of this split have different intrinsics; use object_intrinsics[i] "
                            f"(e.g. {self.ids[0]}: {k[0].tolist()})")
        return k[0]

    @property
    def size(self) -> int:
        return self.images.shape[2]

    def views01(self, index=None, views=None) -> torch.Tensor:
        """Views as floats in [0, 1]: ``[n, v, 3, H, W]``."""
        x = self.images if index is None else self.images[torch.as_tensor(index)]
        x = x if views is None else x[:, torch.as_tensor(views)]
        return rearrange(x, "n v h w c -> n v c h w").float() / 255.0


def load_view_split(root, split: str = "train", *, limit: int | None = None) -> ViewTensors:
    """Read a split of an SRN-layout folder (with ``pointcloud.npz``) or of Points2NeRF ``.npz`` files into
    memory, each object scaled into model units by its bounds (:class:`ViewTensors`)."""
    objects = list_view_objects(Path(root), split)[:limit]
    folder = objects[0].parent
    items = [load_view_object(o) for o in objects]
    if any(it["points"] is None for it in items):
        raise DDMIError(f"objects in {folder} lack pointcloud.npz; the NeRF encoder needs the coloured cloud")
    height, width = items[0]["images"].shape[-2:]
    if height != width:  # the renderer and the metrics draw square views
        raise DDMIError(f"views of {objects[0]} are {width}×{height} pixels; the NeRF domain needs square views "
                        f"(crop them, or load them with load_srn_object(..., size=S))")
    if len({tuple(it["images"].shape) for it in items}) != 1 or len({len(it["points"]) for it in items}) != 1:
        shapes = {it["id"]: (tuple(it["images"].shape), len(it["points"])) for it in items}
        odd = next(i for i, v in shapes.items() if v != shapes[items[0]["id"]])
        raise DDMIError(f"objects of {folder} differ in view count, size or cloud size ({odd}: views "
                        f"{shapes[odd][0]}, {shapes[odd][1]} points; {items[0]['id']}: views "
                        f"{shapes[items[0]['id']][0]}, {shapes[items[0]['id']][1]} points); expected one layout")
    images = torch.stack([(it["images"] * 255).round().to(torch.uint8) for it in items])  # [N, V, 3, H, W]
    cloud = torch.stack([torch.cat([it["points"], it["point_rgb"]], -1) for it in items])  # [N, M, 6]
    intrinsics = torch.stack([torch.as_tensor(it["intrinsics"]).float() for it in items])  # [N, 4]: each object's own
    bounds = torch.stack([it["bounds"] for it in items])  # [N, 3] (near, far, box), data units
    scale = (BOX / bounds[:, 2]).float()  # [N]; 1 for ours
    poses = torch.stack([it["poses"] for it in items])  # [N, V, 4, 4]
    poses[..., :3, 3] *= scale[:, None, None]  # camera centres into model units
    cloud[..., :3] *= scale[:, None, None]
    return ViewTensors(rearrange(images, "n v c h w -> n v h w c").contiguous(), poses, intrinsics, cloud,
                       [it["id"] for it in items], bounds)


def encoder_input(data: ViewTensors, index, *, n_points: int = 1024, seed: int | None = 0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A random subset of each object's cloud → ``[n, n_points, 6]``: xyz / 0.55 ∈ [−1, 1] ‖ 2·rgb − 1."""
    index = torch.as_tensor(index, dtype=torch.long)
    gen = generator if generator is not None else torch.Generator().manual_seed(int(seed or 0))
    pick = torch.randint(0, data.cloud.shape[1], (len(index), n_points), generator=gen)
    pts = data.cloud[index[:, None], pick]  # [n, n_points, 6]
    return torch.cat([pts[..., :3] / BOX, pts[..., 3:] * 2.0 - 1.0], -1)


def view_rays(data: ViewTensors, obj: torch.Tensor, view: torch.Tensor):
    """Rays of whole views: ``origins, dirs [n, H·W, 3]`` for objects ``obj`` and views ``view`` ([n] each)."""
    s = data.size
    return camera_rays(data.poses[obj, view], data.object_intrinsics[obj], s, s)  # each object's own camera


def make_batch(data: ViewTensors, index: torch.Tensor, generator: torch.Generator, *, n_rays: int = 256,
               n_points: int = 1024) -> dict:
    """One random view per object, ``n_rays`` random pixels of it (reference §1.9).

    Returns ``x [B, n_points, 6]``, ``origins``/``dirs [B, n_rays, 3]``, ``target [B, n_rays, 3]`` in [0, 1],
    ``near``/``far [B]`` (each object's, model units).
    """
    b, s = len(index), data.size
    view = torch.randint(0, data.poses.shape[1], (b,), generator=generator)
    pix = torch.randint(0, s * s, (b, n_rays), generator=generator)  # [B, R] row-major pixel index
    origins, dirs = view_rays(data, index, view)  # [B, H·W, 3]
    rows = torch.arange(b)[:, None]
    target = data.images[index, view].reshape(b, s * s, 3)[rows, pix].float() / 255.0
    return {"x": encoder_input(data, index, n_points=n_points, generator=generator),
            "origins": origins[rows, pix], "dirs": dirs[rows, pix], "target": target,
            "near": data.object_near[index].float(), "far": data.object_far[index].float()}


# ----------------------------------------------------------------------------------------------- training
def nerf_loss(vae: D2CVAE, batch: dict, *, beta: float, n_samples: int, near, far,
              rec_weight: float = 20.0, generator: torch.Generator | None = None,
              sample: bool = True) -> tuple[torch.Tensor, dict]:
    """L = w·Σ_rays |Ĉ(r) − C(r)|₁ + β·KL(q(z|x) ‖ N(0, I)) per object, averaged over the batch
    (``sample=False``: decode the posterior mean, a plain autoencoder; ``near``/``far``: floats or [B])."""
    posterior = vae.encode(batch["x"])
    fields = vae.decode(posterior.sample(generator) if sample else posterior.mode())
    out = render_rays(vae, fields, batch["origins"], batch["dirs"], n_samples=n_samples, near=near, far=far,
                      perturb=True, generator=generator)
    l1 = (out.rgb - batch["target"]).abs()  # [B, R, 3]
    rec = rec_weight * l1.flatten(1).sum(1).mean()
    kl = posterior.kl().mean()
    mse = (out.rgb.detach() - batch["target"]).pow(2).mean()
    return rec + beta * kl, {"rec": float(rec.detach()), "kl": float(kl.detach()), "beta": float(beta),
                             "psnr": float(-10 * torch.log10(mse.clamp_min(1e-10)))}


def train_nerf_vae(vae: D2CVAE, cfg: NeRFVAEConfig, data: ViewTensors, *, device="cpu", ckpt_path=None,
                   seed: int = 0, progress: bool = True, callback=None, data_id: str | None = None):
    """Stage 1: ``rec_weight``·Σ_rays L1 + β(t)·KL (:func:`nerf_loss`, :func:`ddmi_lite.train.load_or_train`)."""
    n = len(data)

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        index = torch.randint(0, n, (cfg.train.batch_size,), generator=generator)
        return make_batch(data, index, generator, n_rays=cfg.n_rays, n_points=cfg.n_points)

    def loss_fn(model: D2CVAE, batch: dict, step: int):
        beta = kl_weight(step, cfg.train.steps, beta_max=cfg.beta_max)
        return nerf_loss(model, batch, beta=beta, n_samples=cfg.n_samples, near=batch["near"], far=batch["far"],
                         rec_weight=cfg.rec_weight)

    return load_or_train(vae, loss_fn, batch_fn, replace(cfg.train, seed=seed), ckpt_path=ckpt_path,
                         run_config={"vae": model_settings(cfg), "n_train": n, **data_entry(data_id)}, device=device,
                         progress=progress, desc="NeRF D2C-VAE", callback=callback)


def load_or_train_nerf_vae(cfg: NeRFVAEConfig, *, ckpt_path, device="cpu", seed: int = 0, progress: bool = True,
                           data: ViewTensors | None = None, data_id: str | None = None):
    """Train the NeRF D2C-VAE on the training split, or reuse a finished checkpoint at ``ckpt_path``.

    Returns ``(vae in eval mode, TrainResult)``; ``result.resumed_from == result.steps_done``
    means the checkpoint was reused as is.
    """
    if data is None:
        data = load_view_split(nerf_data_root(cfg, progress=progress), "train")
    vae = build_nerf_vae(cfg).to(device)
    result = train_nerf_vae(vae, cfg, data, device=device, ckpt_path=ckpt_path, seed=seed, progress=progress,
                             data_id=data_id)
    return vae.eval(), result


__all__ = [
    "NeRFReadout",
    "NeRFVAEConfig",
    "ViewTensors",
    "box_interval",
    "build_nerf_vae",
    "direction_encoding",
    "encoder_input",
    "load_or_train_nerf_vae",
    "load_view_split",
    "make_batch",
    "nerf_data_root",
    "nerf_loss",
    "render_rays",
    "train_nerf_vae",
    "view_rays",
]
