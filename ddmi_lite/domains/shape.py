"""The 3D-shape domain: occupancy fields on tri-planes (DDMI §3, §4.2; ddmi_method.md §1.2–1.9 shape rows).

* Data: objects in the Occupancy-Networks layout (:class:`~ddmi_lite.data.shapes.ShapeNetOccupancy`),
  held in memory as :class:`ShapeTensors`. Points live in the padded cube p ∈ [−0.55, 0.55]³ and
  enter every network as c = p / 0.55 ∈ [−1, 1]³ (:func:`to_unit_coords`).
* Model: noisy surface cloud → PointNet planes → tri-plane encoder → Gaussian latent
  z ∈ ℝ^{3×z×h×w} → tri-plane decoder → HDBF on (xy, yz, xz) → PE = Σ_planes bilinear samples →
  CFC readout with the raw xyz added after block 1 → occupancy logit (reference ``MLP3D``).
* Stage-1 loss (reference §1.8): BCE-with-logits **summed over the query points**, averaged over
  the batch, plus β(t)·KL summed over all latent dimensions, β annealed to β_max = 0.01:

      L = Σ_i BCE(ω̂(cᵢ), oᵢ) + β(t)·KL(q(z|x) ‖ N(0, I)).

* Evaluation: IoU of the posterior-mean reconstruction on the uniform points of ``points.npz``
  (inside ⇔ probability > 0.5 by default; the reference meshes and scores at 0.2), dense occupancy
  grids, marching-cubes meshes.
* Stage 2: a tri-plane latent ⇄ one 2D image with the planes **stacked along channels in the
  canonical order (xy, yz, xz)**, ``[B, 3, z, h, w] ⇄ [B, 3z, h, w]`` (:func:`triplane_to_image`),
  the same order in both stages (the official code mixes two orders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from tqdm.auto import tqdm

from ddmi_lite import fields as F_fields
from ddmi_lite import geometry as geo
from ddmi_lite.data import default_data_dir
from ddmi_lite.data.onet import load_pointcloud_npz, load_points_npz
from ddmi_lite.data.shapes import ShapeNetOccupancy, prepare_shapes
from ddmi_lite.device import module_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.geometry import BOX
from ddmi_lite.io import is_foreign_folder
from ddmi_lite.ldm import TRIPLANE_LDM_PRESETS, LatentPosterior, LDMConfig
from ddmi_lite.metrics3d import iou
from ddmi_lite.nets.triplane import PLANES, TriplaneConfig, TriplaneDecoder, TriplaneEncoder
from ddmi_lite.presets import preset
from ddmi_lite.readout import CFCReadout
from ddmi_lite.train import TrainConfig, data_entry, load_or_train, model_settings
from ddmi_lite.vae import D2CVAE, encode_means, kl_weight

PLANE_ORDER = F_fields.LAYOUTS["triplane"]   # ("xy", "yz", "xz"), in both stages


@dataclass
class ShapeVAEConfig:
    """Architecture, data and stage-1 training of the shape D2C-VAE; the defaults are the ``cpu`` preset.

    Reference: PointNet 256×7 on 64² planes, ch 64 [1,2,4], z 64×16×16 per plane, C_pe 64 at
    16/32/64, cross-plane R/A/R at 64/32/16, hidden 256, 3000 points, 2048 queries. ``cpu``: 32²
    PointNet planes, a 3×8×8×8 latent, fields at 8/16/32, cross-plane mixing at 8² only (at 16² and
    32² the 3C-channel blocks cost more than the rest of the network), readout width 64, 512 encoder
    points and 1,024 queries. 0.35 s per step of 16 shapes with one thread (0.21 s with two), so
    1,400 steps take about eight minutes. Held-out IoU (p > 0.5) was 0.71 after 600 steps and 0.77
    after 1,500; train and held-out IoU stay equal, so longer training keeps paying.
    """

    net: TriplaneConfig = field(default_factory=lambda: TriplaneConfig(
        point_hidden=32, point_blocks=4, plane_channels=32, plane_resolution=32, ch=16, ch_mult=(1, 2, 2),
        z_channels=8, pe_channels=32, cross_resolutions=(8,), attention_resolutions=(8,)))
    hidden: int = 64                      # readout width [256]
    mode: str = "cfc"                     # readout.MODES
    act: str = "relu"                     # reference MLP3D: ReLU
    data_root: str = "shapes"             # folder under the data dir (``default_data_dir()``)
    n_objects: int = 2400                 # objects prepared in that folder
    n_surface: int = 512                  # encoder points per shape [3000]
    surface_noise: float = 0.005          # N(0, σ²) added to the surface points [0.005]
    n_query: int = 1024                   # query points per shape and step [2048]
    beta_max: float = 0.01                # KL weight after annealing [0.01]
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1400, batch_size=16, lr=2e-3, warmup_steps=50, max_time_s=1800.0))


# smoke: 60 objects in their own folder (~1 s to prepare), so CI never waits for the 2,400-object collection
SHAPE_VAE_PRESETS = {
    "smoke": dict(net=dict(point_hidden=16, point_blocks=2, plane_channels=8, plane_resolution=16, ch=8, z_channels=4,
                           pe_channels=8, cross_resolutions=(4,), attention_resolutions=(4,)),
                  hidden=32, data_root="shapes_smoke", n_objects=60, n_surface=256, n_query=256,
                  train=dict(steps=20, batch_size=8, lr=1e-3, warmup_steps=2, max_time_s=None)),
    "gpu": dict(net=dict(point_hidden=128, point_blocks=5, plane_resolution=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2,
                         z_channels=16, pe_channels=64, cross_resolutions=(32, 16), attention_resolutions=(16,)),
                hidden=256, n_surface=3000, n_query=2048,
                train=dict(steps=30000, batch_size=32, lr=5e-4, warmup_steps=500, max_time_s=None)),
}


def shape_vae_config(profile: str = "cpu", **overrides) -> ShapeVAEConfig:
    """The shape D2C-VAE preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(ShapeVAEConfig, profile, SHAPE_VAE_PRESETS, **overrides)


@dataclass
class ShapeEvalConfig:
    """Evaluation sizes of the shape notebooks (reference §4.2: 2,048 points per mesh, 1,355 clouds).

    ``cpu``: MMD / COV / 1-NNA on 48 + 48 clouds of 512 points — one Chamfer pair of 512-point
    clouds costs ≈ 4 ms on one thread, 2,048 points ≈ 140 ms — so the samples' scores and the
    floor take about a minute together.
    """

    n_iou: int | None = None          # held-out objects for IoU (None: all of the split)
    iou_threshold: float = 0.5        # occupancy probability that counts as inside for IoU
    mesh_threshold: float = 0.2       # marching-cubes level, the reference's 0.2
    mesh_resolution: int = 32         # dense grid per axis for meshes
    n_chamfer: int = 32               # held-out reconstructions meshed for the Chamfer distance
    n_points: int = 2048              # surface points per cloud for the Chamfer distance [2048]
    n_metric: int = 48                # generated and reference clouds for MMD / COV / 1-NNA [1355]
    n_metric_points: int = 512        # points per cloud there [2048]; the pairwise cost grows as its square
    n_render: int = 8                 # meshes per PNG grid
    render_size: int = 160            # pixels per mesh picture


SHAPE_EVAL_PRESETS = {
    "smoke": dict(n_iou=5, mesh_resolution=16, n_chamfer=2, n_points=256, n_metric=4, n_metric_points=128, n_render=2,
                  render_size=64),
    "gpu": dict(mesh_resolution=64, n_chamfer=100, n_metric=240, n_metric_points=2048, n_render=12, render_size=256),
}


def shape_eval_config(profile: str = "cpu", **overrides) -> ShapeEvalConfig:
    """Evaluation sizes of ``profile``."""
    return preset(ShapeEvalConfig, profile, SHAPE_EVAL_PRESETS, **overrides)


# Latent diffusion on the shape latents: the tri-plane table of ddmi_lite.ldm (shared with NeRF).
SHAPE_LDM_PRESETS = TRIPLANE_LDM_PRESETS


def shape_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """The latent-diffusion preset on shape latents of ``profile``."""
    return preset(LDMConfig, profile, SHAPE_LDM_PRESETS, **overrides)


def to_unit_coords(points: torch.Tensor) -> torch.Tensor:
    """ONet coordinates p ∈ [−0.55, 0.55]³ → network coordinates c = p / 0.55 ∈ [−1, 1]³."""
    return points / BOX


def build_shape_vae(cfg: ShapeVAEConfig) -> D2CVAE:
    """PointNet + tri-plane encoder → Gaussian latent → tri-plane decoder → CFC readout (``MLP3D``)."""
    net = cfg.net.check()
    readout = CFCReadout([net.pe_channels] * net.n_scales, hidden=cfg.hidden, out_dim=1, mode=cfg.mode,
                         coord_dim=3, act=cfg.act)
    return D2CVAE(TriplaneEncoder(net), TriplaneDecoder(net), readout, layout="triplane", aggregate="sum",
                  recon="bce", moments_dim=2)


# ----------------------------------------------------------------------------------------------- data
def shape_data_root(cfg: ShapeVAEConfig, *, prepare: bool = True, progress: bool = True) -> Path:
    """The collection of ``cfg`` under the data dir, prepared (idempotently) when ``prepare``.

    A folder the library did not make (a user's data set, :func:`ddmi_lite.io.is_foreign_folder`)
    is only read: nothing is prepared or written into it.
    """
    root = Path(cfg.data_root) if os.path.isabs(cfg.data_root) else default_data_dir() / cfg.data_root
    if prepare and not is_foreign_folder(root):
        prepare_shapes(root=root, n_objects=cfg.n_objects, progress=progress)
    return root


@dataclass
class ShapeTensors:
    """A split held in memory: every query / surface point of every object (float16 to halve memory)."""

    points: torch.Tensor          # [N, Q, 3] f16, ONet coordinates; the first ``n_uniform`` are uniform
    occupancies: torch.Tensor     # [N, Q] bool
    surface: torch.Tensor         # [N, S, 3] f16, clean surface points
    n_uniform: int
    ids: list[str]
    categories: list[str]
    captions: list[list[str]]     # every caption of each object ([] without a captions file)
    attributes: list[dict]        # {} without ``attributes.json``

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> ShapeTensors:
        """The objects at ``index`` (a list or long tensor), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = idx.tolist()
        return ShapeTensors(self.points[idx], self.occupancies[idx], self.surface[idx], self.n_uniform,
                            [self.ids[i] for i in rows], [self.categories[i] for i in rows],
                            [self.captions[i] for i in rows], [self.attributes[i] for i in rows])

    def uniform(self, index=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The uniform query points and their occupancies (for IoU): [n, U, 3] f32, [n, U] bool."""
        idx = slice(None) if index is None else index
        return self.points[idx, :self.n_uniform].float(), self.occupancies[idx, :self.n_uniform]


def load_shape_split(root, split: str = "train", *, limit: int | None = None, categories=None) -> ShapeTensors:
    """Read a split of an ONet-layout folder into memory (all points, no subsampling); ``categories``
    (folder names such as ShapeNet synset ids ``"03001627"``) keeps only those, None every one."""
    ds = ShapeNetOccupancy(root, split, categories)
    items = ds.items if limit is None else ds.items[:limit]
    pts, occ, surf, n_uni = [], [], [], []
    for category, oid in items:
        folder = ds.root / category / oid
        p, c = load_points_npz(folder / "points.npz"), load_pointcloud_npz(folder / "pointcloud.npz")
        pts.append(p["points"])
        occ.append(p["occupancies"])
        surf.append(c["points"])
        n_uni.append(p["n_uniform"])
    if len({len(p) for p in pts}) != 1 or len({len(s) for s in surf}) != 1 or len(set(n_uni)) != 1:
        raise DDMIError(f"objects of {root} ({split}) hold different numbers of points; expected one layout")
    captions = [list((ds.captions or {}).get(oid, [])) for _, oid in items]
    attributes = [dict((ds.attributes or {}).get(oid, {})) for _, oid in items]
    return ShapeTensors(torch.from_numpy(np.stack(pts)).half(), torch.from_numpy(np.stack(occ)),
                        torch.from_numpy(np.stack(surf)).half(), int(n_uni[0]), [o for _, o in items],
                        [c for c, _ in items], captions, attributes)


def spread_index(categories: list[str], n: int) -> torch.Tensor:
    """``n`` object indices taken round-robin over the categories (in order of first appearance), so a
    small evaluation subset of a category-sorted split covers every category."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(categories):
        groups.setdefault(c, []).append(i)
    order, queues = [], [list(g) for g in groups.values()]
    while len(order) < min(n, len(categories)):
        for q in queues:
            if q and len(order) < n:
                order.append(q.pop(0))
    return torch.tensor(order, dtype=torch.long)


def make_batch(data: ShapeTensors, index: torch.Tensor, generator: torch.Generator, *, n_query: int = 1024,
               n_surface: int = 1024, surface_noise: float = 0.005) -> dict:
    """Training batch (reference §1.9): noisy surface points and random query points with labels.

    Returns ``x`` [B, n_surface, 3] (encoder input), ``coords`` [B, n_query, 3] and ``target``
    [B, n_query, 1] (0/1), coordinates in [−1, 1].
    """
    b = len(index)
    q = torch.randint(0, data.points.shape[1], (b, n_query), generator=generator)  # [B, n_query]
    s = torch.randint(0, data.surface.shape[1], (b, n_surface), generator=generator)  # [B, n_surface]
    rows = index[:, None]
    surface = data.surface[rows, s].float()
    surface = surface + surface_noise * torch.randn(surface.shape, generator=generator)
    return {"x": to_unit_coords(surface), "coords": to_unit_coords(data.points[rows, q].float()),
            "target": data.occupancies[rows, q].float()[..., None]}


def encoder_input(data: ShapeTensors, index, *, n_surface: int = 1024, surface_noise: float = 0.005,
                  seed: int = 0) -> torch.Tensor:
    """Deterministic encoder inputs for evaluation: seeded surface subsets plus noise → [n, S, 3] in [−1, 1]."""
    index = torch.as_tensor(index)
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, data.surface.shape[1], (len(index), n_surface), generator=gen)
    surface = data.surface[index[:, None], s].float()
    return to_unit_coords(surface + surface_noise * torch.randn(surface.shape, generator=gen))


# ----------------------------------------------------------------------------------------------- training
def train_shape_vae(vae: D2CVAE, cfg: ShapeVAEConfig, data: ShapeTensors, *, device="cpu", ckpt_path=None,
                    seed: int = 0, progress: bool = True, callback=None, data_id: str | None = None):
    """Stage 1: Σ_points BCE + β(t)·KL, β annealed linearly to ``cfg.beta_max`` (:func:`ddmi_lite.train.load_or_train`)."""
    n = len(data)

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        index = torch.randint(0, n, (cfg.train.batch_size,), generator=generator)
        return make_batch(data, index, generator, n_query=cfg.n_query, n_surface=cfg.n_surface,
                          surface_noise=cfg.surface_noise)

    def loss_fn(model: D2CVAE, batch: dict, step: int):
        beta = kl_weight(step, cfg.train.steps, beta_max=cfg.beta_max)
        return model.loss(batch["x"], batch["coords"], batch["target"], beta=beta)

    return load_or_train(vae, loss_fn, batch_fn, replace(cfg.train, seed=seed), ckpt_path=ckpt_path,
                         run_config={"vae": model_settings(cfg), "n_train": n, **data_entry(data_id)}, device=device,
                         progress=progress, desc="shape D2C-VAE", callback=callback)


def load_or_train_shape_vae(cfg: ShapeVAEConfig, *, ckpt_path, device="cpu", seed: int = 0, progress: bool = True,
                            data: ShapeTensors | None = None, data_id: str | None = None):
    """Train the shape D2C-VAE on the training split of ``cfg``'s collection, or reuse a finished checkpoint.

    Returns ``(vae in eval mode, TrainResult)``; ``result.resumed_from == result.steps_done`` means
    the checkpoint was reused as is.
    """
    if data is None:
        data = load_shape_split(shape_data_root(cfg, progress=progress), "train")
    vae = build_shape_vae(cfg).to(device)
    result = train_shape_vae(vae, cfg, data, device=device, ckpt_path=ckpt_path, seed=seed, progress=progress,
                             data_id=data_id)
    return vae.eval(), result


# ----------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def occupancy_logits(vae: D2CVAE, z: torch.Tensor, points: torch.Tensor, *, batch_size: int = 32,
                     chunk: int = 65536, scale_mask=None, progress: bool = True) -> torch.Tensor:
    """Occupancy logits of latents ``z`` [n, 3, z, h, w] at ONet points ``[n, N, 3]`` (or shared ``[N, 3]``) → [n, N].

    ``batch_size`` latents are decoded at a time and at most ``chunk`` points are read out per call;
    ``progress`` shows a tqdm bar counting the shapes.
    """
    device, out = module_device(vae), []
    with tqdm(total=len(z), desc=f"occupancy at {points.shape[-2]} points", unit="shape", leave=False,
              disable=not progress) as bar:
        for start in range(0, len(z), batch_size):
            fields = vae.decode(z[start:start + batch_size].to(device))
            b = fields[0].shape[0]
            pts = points[start:start + b] if points.ndim == 3 else points[None].expand(b, -1, -1)
            step = max(1, chunk // b)  # at most ``chunk`` points per readout call
            parts = [vae.query(fields, to_unit_coords(pts[:, i:i + step].to(device).float()),
                               scale_mask=scale_mask)[..., 0] for i in range(0, pts.shape[1], step)]
            out.append(torch.cat(parts, 1).float().cpu())  # [b, N]
            bar.update(b)
    return torch.cat(out)


@torch.no_grad()
def dense_occupancy(vae: D2CVAE, z: torch.Tensor, resolution: int = 32, *, batch_size: int = 16,
                    chunk: int = 65536, scale_mask=None, progress: bool = True) -> torch.Tensor:
    """Occupancy logits of latents ``z`` [n, 3, z, h, w] on :func:`ddmi_lite.geometry.dense_grid` → [n, R, R, R]
    (index [x, y, z], CPU), through :func:`ddmi_lite.geometry.evaluate_occupancy`.

    ``batch_size`` latents are decoded at a time and at most ``chunk`` points are read out per call;
    ``progress`` shows a tqdm bar counting the shapes.
    """
    device, out = module_device(vae), []
    with tqdm(total=len(z), desc=f"occupancy grids {resolution}³", unit="shape", leave=False,
              disable=not progress) as bar:
        for start in range(0, len(z), batch_size):
            fields = vae.decode(z[start:start + batch_size].to(device))
            b = fields[0].shape[0]

            def fn(points: torch.Tensor) -> torch.Tensor:  # ONet points [m, 3] → logits [b, m]
                return vae.query(fields, to_unit_coords(points[None].expand(b, -1, -1)), scale_mask=scale_mask)[..., 0]

            out.append(geo.evaluate_occupancy(fn, resolution, chunk=max(1, chunk // b), device=device, batch=True))
            bar.update(b)
    return torch.cat(out)


def meshes_from_logits(logits: torch.Tensor, *, threshold: float = geo.THRESHOLD, progress: bool = True) -> list:
    """Marching cubes at occupancy probability ``threshold`` (0.2, the reference's) of [n, R, R, R] logits;
    ``progress`` shows a tqdm bar counting the meshes."""
    return [geo.extract_mesh(v, threshold=threshold, logits=True)
            for v in tqdm(logits, desc="marching cubes", unit="mesh", leave=False, disable=not progress)]


def uniform_point_logits(vae: D2CVAE, data: ShapeTensors, index=None, *, n_surface: int = 1024,
                         surface_noise: float = 0.005, seed: int = 0, batch_size: int = 32,
                         scale_mask=None, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean reconstructions read at the uniform points of ``points.npz``: logits [n, U] and
    the ground-truth occupancies [n, U] (bool); ``progress``: a tqdm bar over the shapes."""
    index = torch.arange(len(data)) if index is None else torch.as_tensor(index)
    mean, _ = encode_means(vae, encoder_input(data, index, n_surface=n_surface, surface_noise=surface_noise, seed=seed))
    points, occ = data.uniform(index)
    return occupancy_logits(vae, mean, points, batch_size=batch_size, scale_mask=scale_mask, progress=progress), occ


def reconstruction_iou(vae: D2CVAE, data: ShapeTensors, index=None, *, n_surface: int = 1024,
                       surface_noise: float = 0.005, threshold: float = 0.5, seed: int = 0,
                       batch_size: int = 32, scale_mask=None, progress: bool = True) -> torch.Tensor:
    """Per-object IoU of posterior-mean reconstructions on the uniform points of ``points.npz`` → [n].

    Predicted inside ⇔ σ(logit) > ``threshold``; ground truth from the file's occupancies.
    ``progress``: a tqdm bar over the shapes.
    """
    logits, occ = uniform_point_logits(vae, data, index, n_surface=n_surface, surface_noise=surface_noise, seed=seed,
                                       batch_size=batch_size, scale_mask=scale_mask, progress=progress)
    return iou(torch.sigmoid(logits) > threshold, occ)


def surface_clouds(meshes, n: int = 2048, *, seed: int = 0) -> torch.Tensor:
    """``n`` surface points of every mesh → [m, n, 3]; an empty mesh gives the origin repeated."""
    clouds = [torch.from_numpy(geo.sample_surface(m, n, seed=seed + i)) if not m.is_empty else torch.zeros(n, 3)
              for i, m in enumerate(meshes)]
    return torch.stack(clouds)


# ----------------------------------------------------------------------------------------------- stage 2
def triplane_to_image(z: torch.Tensor) -> torch.Tensor:
    """``[B, 3, C, h, w]`` (planes xy, yz, xz) → ``[B, 3C, h, w]``: channels [xy | yz | xz]."""
    if z.ndim != 5 or z.shape[1] != PLANES:
        raise DDMIError(f"tri-plane latents must be [B, 3, C, h, w] (planes {PLANE_ORDER}), got {tuple(z.shape)}")
    return rearrange(z, "b p c h w -> b (p c) h w")


def image_to_triplane(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`triplane_to_image`: ``[B, 3C, h, w]`` → ``[B, 3, C, h, w]`` (xy, yz, xz)."""
    if x.ndim != 4 or x.shape[1] % PLANES:
        raise DDMIError(f"stacked latents must be [B, 3C, h, w] with channels divisible by 3, got {tuple(x.shape)}")
    return rearrange(x, "b (p c) h w -> b p c h w", p=PLANES)


def encode_posterior_images(vae: D2CVAE, data: ShapeTensors, *, n_surface: int = 1024, surface_noise: float = 0.005,
                            seed: int = 0, batch_size: int = 64):
    """q(z|x) of every object as a :class:`~ddmi_lite.latent_diffusion.LatentPosterior` of stacked images [N, 3z, h, w]."""
    surface = encoder_input(data, torch.arange(len(data)), n_surface=n_surface, surface_noise=surface_noise, seed=seed)
    mean, std = encode_means(vae, surface, batch_size=batch_size)
    return LatentPosterior(triplane_to_image(mean), triplane_to_image(std))


__all__ = ["PLANE_ORDER", "ShapeVAEConfig", "ShapeTensors", "build_shape_vae", "shape_data_root",
           "load_shape_split", "spread_index", "make_batch", "encoder_input", "train_shape_vae", "load_or_train_shape_vae",
           "to_unit_coords", "occupancy_logits", "dense_occupancy",
           "meshes_from_logits", "uniform_point_logits", "reconstruction_iou", "surface_clouds", "triplane_to_image", "image_to_triplane",
           "encode_posterior_images"]
