"""The ablation table of DDMI (§4.4, Tables 5–6): what the basis fields and the CFC readout buy.

Five rows, each trained with the same loop, steps, batch, data and seeds, on images (emoji 32²)
and shapes (procedural furniture, tri-planes):

==============  ==================================================================================
row             model
==============  ==================================================================================
``weightgen``   the latent generates per-layer shifts of one MLP over fixed Fourier features
                (:mod:`ddmi_lite.weightgen`, Functa-style weight generation)
``single``      D2C-VAE with one basis field at the finest scale (``mode="single_scale"``)
``concat``      HDBF, every scale concatenated at the readout's input (``mode="concat_input"``)
``sum``         HDBF, the scales summed at the input (``mode="sum"``)
``cfc``         HDBF with coarse-to-fine conditioning (``mode="cfc"``, the paper's)
==============  ==================================================================================

Columns: parameters, training seconds, held-out reconstruction (PSNR of posterior means for
images, IoU for shapes; mean ± standard deviation over the seeds), and generation quality of a
latent diffusion model trained on each row's latents (seed-0 VAE): the Fréchet distance on
:class:`~ddmi_lite.features.FeatureNet` features for images, MMD / COV (Chamfer) for shapes.
Checkpoints live under ``<ckpt_dir>/ablations/`` and are reused; the table is written as JSON and CSV.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ddmi_lite.ablation_table import DOMAINS, READOUT_MODES, ROW_LABELS, ROWS, flat_metrics, write_table
from ddmi_lite.data import load_emoji
from ddmi_lite.device import module_device
from ddmi_lite.domains.image import (
    ImageVAEConfig,
    build_image_vae,
    image_ldm_config,
    image_vae_config,
    reconstruct,
    render,
    to_model_range,
    to_unit_range,
    train_image_vae,
)
from ddmi_lite.domains.shape import (
    ShapeVAEConfig,
    build_shape_vae,
    dense_occupancy,
    encode_posterior_images,
    image_to_triplane,
    load_shape_split,
    meshes_from_logits,
    reconstruction_iou,
    shape_data_root,
    shape_ldm_config,
    shape_vae_config,
    spread_index,
    surface_clouds,
    train_shape_vae,
)
from ddmi_lite.errors import DDMIError
from ddmi_lite.features import image_features, train_feature_net
from ddmi_lite.fields import image_coords, query_fields
from ddmi_lite.latent_diffusion import decode_to_images, encode_posterior
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.ldm import LDMConfig
from ddmi_lite.metrics import frechet_distance, psnr
from ddmi_lite.metrics3d import mmd_cov_nna, normalize_to_unit_sphere
from ddmi_lite.nets.conv2d import Conv2dConfig, Decoder2D, Encoder2D
from ddmi_lite.presets import preset
from ddmi_lite.readout import CFCReadout
from ddmi_lite.vae import D2CVAE, count_parameters
from ddmi_lite.viz import n_scales, scale_masks
from ddmi_lite.weightgen import WeightGenConfig, build_image_weightgen, build_shape_weightgen



def _image_rows() -> ImageVAEConfig:
    return image_vae_config("cpu", net=Conv2dConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=8,
                                                    pe_channels=32, mid_attention=False),
                            hidden=64, multiscale=False, scale_cond=False,
                            train=dict(steps=600, batch_size=16, warmup_steps=30, max_time_s=None))


@dataclass
class AblationConfig:
    """Models, training length and evaluation sizes of the ablation table; the defaults are ``cpu``.

    Every row trains for the same steps and batch (no time budget, so the compute is equal by
    construction); the nets are smaller than notebooks 03/06 so the whole table fits about 25
    minutes on two cores. Measured with one (shared) thread: an image row ≈ 0.08–0.12 s per step
    of 16 (the weight-generation baseline 0.04 s), a shape row ≈ 0.25–0.43 s per step of 16 with
    512 query points (baseline 0.15 s). ``cpu``: 600 image steps, 250 shape steps, LDMs of
    400 / 300 steps; 466 held-out emoji for PSNR and 466 samples for FD, 96 held-out shapes for
    IoU and 32 + 32 clouds of 256 points for MMD / COV.
    """

    image: ImageVAEConfig = field(default_factory=_image_rows)   # shared by every image row (mode set per row)
    shape: ShapeVAEConfig = field(default_factory=lambda: shape_vae_config(  # shared by every shape row
        "cpu", n_query=512, n_surface=512, train=dict(steps=250, batch_size=16, warmup_steps=20, max_time_s=None)))
    image_ldm: LDMConfig = field(default_factory=lambda: image_ldm_config(
        "cpu", model_channels=32, num_res_blocks=1, hflip=False, sample_steps=20,
        train=dict(steps=400, batch_size=64, warmup_steps=20, ema_decay=0.99, max_time_s=None)))
    shape_ldm: LDMConfig = field(default_factory=lambda: shape_ldm_config(
        "cpu", model_channels=32, num_res_blocks=1, sample_steps=25,
        train=dict(steps=300, warmup_steps=20, ema_decay=0.99, max_time_s=None)))
    weightgen: WeightGenConfig = field(default_factory=lambda: WeightGenConfig(hidden=64, n_layers=4, n_freqs=6))
    rows: tuple[str, ...] = ROWS
    domains: tuple[str, ...] = DOMAINS
    seeds: tuple[int, ...] = (0, 1)     # stage-1 seeds (reconstruction mean ± std); the LDM uses seeds[0]
    n_psnr: int = 466                   # held-out emoji for PSNR
    n_fd: int = 466                     # samples for the FD (scored against every held-out emoji)
    feature_steps: int = 400            # FeatureNet training steps (cached, shared with notebook 05)
    n_iou: int = 96                     # held-out shapes for IoU (spread over the categories)
    n_metric: int = 32                  # generated and reference clouds for MMD / COV
    n_metric_points: int = 256          # points per cloud there
    mesh_resolution: int = 24           # dense grid per axis for the samples' meshes
    n_ldm_train: int | None = None      # training items encoded for the LDM (None: the whole split)

    def check(self) -> AblationConfig:
        bad = [r for r in self.rows if r not in ROWS]
        if bad or not self.rows:
            raise DDMIError(f"rows={self.rows!r}: each must be one of {ROWS}")
        if not self.domains or any(d not in DOMAINS for d in self.domains):
            raise DDMIError(f"domains={self.domains!r}: each must be one of {DOMAINS}")
        if not self.seeds:
            raise DDMIError("seeds must list at least one seed")
        return self


ABLATION_PRESETS = {
    "smoke": dict(image=dict(hidden=32, net=dict(pe_channels=16, z_channels=4), train=dict(steps=2, batch_size=4,
                                                                                          warmup_steps=1)),
                  shape=dict(data_root="shapes_smoke", n_objects=60, hidden=32, n_query=128, n_surface=128,
                             net=dict(point_hidden=16, point_blocks=2, plane_channels=8, plane_resolution=16, ch=8,
                                      z_channels=4, pe_channels=8, cross_resolutions=(4,), attention_resolutions=(4,)),
                             train=dict(steps=2, batch_size=4, lr=1e-3, warmup_steps=1)),
                  image_ldm=dict(model_channels=16, num_heads=2, mix_lr=5e-2, sample_steps=3, n_samples=64, sample_batch=64,
                                 n_sweep=32, feature_steps=20,
                                 sweep={"ddpm": (20,), "ddim": (5, 10), "dpmpp_2m": (3, 5), "heun": (3,)},
                                 train=dict(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, ema_decay=0.9,
                                            precision="fp32")),
                  shape_ldm=dict(model_channels=16, attention_resolutions=(2,), num_heads=2, sample_steps=3, n_samples=4,
                                 sample_batch=64, train=dict(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, ema_decay=0.9,
                                                             precision="fp32")),
                  weightgen=dict(hidden=32, n_layers=3, n_freqs=4),
                  n_psnr=8, n_fd=16, feature_steps=5, n_iou=4, n_metric=3, n_metric_points=64, mesh_resolution=12,
                  n_ldm_train=64),
    # gpu: the notebook presets' networks, shorter runs
    "gpu": dict(image=dict(hidden=256, net=dict(ch=128, num_res_blocks=2, z_channels=16, pe_channels=64, mid_attention=True),
                           train=dict(steps=5000, batch_size=64, lr=1e-3, warmup_steps=500)),
                shape=dict(hidden=256, n_query=2048, n_surface=3000,
                           net=dict(point_hidden=128, point_blocks=5, plane_resolution=64, ch=32, ch_mult=(1, 2, 4),
                                    num_res_blocks=2, z_channels=16, pe_channels=64, cross_resolutions=(32, 16),
                                    attention_resolutions=(16,)),
                           train=dict(steps=5000, batch_size=32, lr=5e-4, warmup_steps=500)),
                image_ldm=dict(model_channels=128, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(4, 2),
                               n_samples=5000, sample_batch=1000, n_sweep=2000, feature_steps=2000,
                               train=dict(steps=10000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                                          precision="fp32")),
                shape_ldm=dict(model_channels=128, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(8, 4),
                               sample_steps=200, n_samples=240, sample_batch=240,
                               train=dict(steps=10000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                                          precision="fp32")),
                weightgen=dict(hidden=256, n_layers=6, n_freqs=8),
                seeds=(0, 1, 2), n_fd=2000, feature_steps=2000, n_iou=240, n_metric=128, n_metric_points=1024,
                mesh_resolution=48),
}


def ablation_config(profile: str = "cpu", **overrides) -> AblationConfig:
    """The ablation preset of ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(AblationConfig, profile, ABLATION_PRESETS, **overrides)


# ----------------------------------------------------------------------------------------------- models
def image_row_config(cfg: AblationConfig, row: str):
    """The ImageVAEConfig of a row (the readout mode; ``weightgen`` keeps the shared one)."""
    return replace(cfg.image, mode=READOUT_MODES.get(row, "cfc"))


def shape_row_config(cfg: AblationConfig, row: str):
    """The ShapeVAEConfig of a row; ``single`` decodes one field (``n_scales=1``) at the finest scale."""
    shape = replace(cfg.shape, mode=READOUT_MODES.get(row, "cfc"))
    if row == "single":
        shape = replace(shape, net=replace(shape.net, n_scales=1))
    return shape


def build_row_model(domain: str, row: str, cfg: AblationConfig):
    """A fresh model of ``row`` for ``domain``: the baseline or a D2C-VAE with the row's readout."""
    if row not in ROWS:
        raise DDMIError(f"row={row!r} is not one of {ROWS}")
    if domain == "image":
        rc = image_row_config(cfg, row)
        return build_image_weightgen(rc, cfg.weightgen) if row == "weightgen" else build_image_vae(rc)
    if domain == "shape":
        rc = shape_row_config(cfg, row)
        return build_shape_weightgen(rc, cfg.weightgen) if row == "weightgen" else build_shape_vae(rc)
    raise DDMIError(f"domain={domain!r} is not one of {DOMAINS}")


def train_row(domain: str, row: str, seed: int, cfg: AblationConfig, data, *, ckpt_dir, device="cpu",
              progress: bool = True):
    """Train (or reuse the checkpoint of) one row and seed with the library's loop → (model in eval mode, TrainResult).

    ``data``: the emoji pyramid (``{32: images}``) for images, the training ``ShapeTensors`` for shapes.
    """
    model = build_row_model(domain, row, cfg).to(device)
    path = Path(ckpt_dir) / "ablations" / f"{domain}_{row}_s{seed}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if domain == "image":
        result = train_image_vae(model, image_row_config(cfg, row), data, device=device, ckpt_path=path, seed=seed,
                                 progress=progress)
    else:
        result = train_shape_vae(model, shape_row_config(cfg, row), data, device=device, ckpt_path=path, seed=seed,
                                 progress=progress)
    return model.eval(), result


def coarse_field_image_vae(cfg: ImageVAEConfig, *, extra_down: int = 1) -> D2CVAE:
    """An image D2C-VAE whose finest basis field is ``2^extra_down`` times coarser than the image.

    The encoder gets ``extra_down`` more stride-2 levels than the decoder has upsamplings, so for a
    32² image and ``ch_mult=(1, 2, 4)`` with ``extra_down=1`` the latent is 4² and the fields are
    4², 8², 16²: the readout must draw every 32² detail out of interpolated fields (as the reference
    does when it renders 384² or 512² from fields of at most 256²). ``mode="single_scale"`` keeps the
    finest field only; everything else is :func:`~ddmi_lite.domains.image.build_image_vae`'s.
    """
    if extra_down < 0:
        raise DDMIError(f"extra_down must be >= 0, got {extra_down}")
    net = replace(cfg.net, n_scales=1) if cfg.mode == "single_scale" else cfg.net
    enc = Encoder2D(replace(net, ch_mult=net.ch_mult + (net.ch_mult[-1],) * extra_down))
    readout = CFCReadout([net.pe_channels] * net.n_scales, hidden=cfg.hidden, out_dim=net.in_channels,
                         mode=cfg.mode, scale_cond=cfg.scale_cond)
    return D2CVAE(enc, Decoder2D(net), readout, layout="plane", aggregate="sum", recon=cfg.recon)


@torch.no_grad()
def image_embeddings(model: D2CVAE, images01: torch.Tensor, resolution: int | None = None) -> list[torch.Tensor]:
    """Posterior-mean embeddings ``pˡ(c)`` (coarse first, each ``[B, R², C_pe]``) on the ``R²`` pixel centres."""
    resolution = resolution or images01.shape[-1]
    device = module_device(model)
    fields = model.decode(model.encode(to_model_range(images01).to(device)).mode())
    coords = image_coords(resolution, resolution, device=device).expand(len(images01), -1, -1)
    return query_fields(fields, coords, "plane")


# ----------------------------------------------------------------------------------------------- evaluation
@dataclass
class AblationData:
    """Everything the evaluation reads, loaded once."""

    train32: torch.Tensor | None = None    # emoji [N,3,32,32] in [0,1]
    test32: torch.Tensor | None = None
    real_feats: np.ndarray | None = None   # FeatureNet features of every held-out emoji
    feature_net: object = None
    shape_train: object = None             # ShapeTensors
    shape_test: object = None


def load_data(cfg: AblationConfig, *, ckpt_dir, device="cpu", progress: bool = True) -> AblationData:
    data = AblationData()
    if "image" in cfg.domains:
        data.train32, data.test32 = load_emoji(32, "train"), load_emoji(32, "test")
        data.feature_net = train_feature_net(data.train32, steps=cfg.feature_steps, seed=0, device=device,
                                             cache_path=Path(ckpt_dir) / "feature_net_emoji32.safetensors")
        data.real_feats = image_features(data.feature_net, data.test32)
    if "shape" in cfg.domains:
        root = shape_data_root(cfg.shape, progress=progress)
        data.shape_train, data.shape_test = load_shape_split(root, "train"), load_shape_split(root, "test")
    return data


def image_psnr(model, data: AblationData, n: int) -> float:
    """Mean per-image PSNR (dB, [0,1] range) of posterior-mean reconstructions of ``n`` held-out emoji."""
    x = data.test32[:n]
    return float(psnr(reconstruct(model, x), x).mean())


def shape_iou(model, cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> float:
    """Mean IoU (p > 0.5) of posterior-mean reconstructions of ``n_iou`` held-out shapes over the categories."""
    index = spread_index(data.shape_test.categories, min(cfg.n_iou, len(data.shape_test)))
    return float(reconstruction_iou(model, data.shape_test, index, n_surface=cfg.shape.n_surface,
                                    surface_noise=cfg.shape.surface_noise, seed=seed).mean())


def row_ldm(domain: str, row: str, model, cfg: AblationConfig, data: AblationData, *, ckpt_dir, device="cpu",
            progress: bool = True):
    """The latent diffusion model of a row, trained on its training posteriors (or reused) → (ldm, TrainResult)."""
    n = cfg.n_ldm_train
    if domain == "image":
        images = data.train32 if n is None else data.train32[:n]
        posterior, lcfg = encode_posterior(model, images, hflip=cfg.image_ldm.hflip), cfg.image_ldm
    else:
        shapes = data.shape_train if n is None else data.shape_train.subset(list(range(min(n, len(data.shape_train)))))
        posterior = encode_posterior_images(model, shapes, n_surface=cfg.shape.n_surface,
                                            surface_noise=cfg.shape.surface_noise)
        lcfg = cfg.shape_ldm
    path = Path(ckpt_dir) / "ablations" / f"{domain}_{row}_ldm"
    return load_or_train_ldm(model, posterior, lcfg, ckpt_path=path, device=device, seed=cfg.seeds[0],
                             progress=progress)


def image_generation(model, ldm, cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> dict:
    """FD (FeatureNet features) of ``n_fd`` decoded samples against every held-out emoji."""
    z = sample_latents(ldm, cfg.n_fd, sampler=cfg.image_ldm.sampler, steps=cfg.image_ldm.sample_steps,
                       batch_size=cfg.image_ldm.sample_batch, generator=torch.Generator().manual_seed(seed))
    images = decode_to_images(model, z, 32)
    return {"fd": frechet_distance(data.real_feats, image_features(data.feature_net, images)), "samples": images[:16]}


def shape_reference_clouds(cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> torch.Tensor:
    index = spread_index(data.shape_test.categories, min(cfg.n_metric, len(data.shape_test)))
    pick = torch.randint(0, data.shape_test.surface.shape[1], (cfg.n_metric_points,),
                         generator=torch.Generator().manual_seed(seed))
    return normalize_to_unit_sphere(data.shape_test.surface[index][:, pick].float())


def shape_generation(model, ldm, cfg: AblationConfig, data: AblationData, ref: torch.Tensor, *, seed: int = 0) -> dict:
    """MMD / COV (Chamfer) of ``n_metric`` sampled shapes (meshed at ``mesh_resolution``³) against held-out clouds."""
    z = sample_latents(ldm, cfg.n_metric, sampler=cfg.shape_ldm.sampler, steps=cfg.shape_ldm.sample_steps,
                       batch_size=cfg.shape_ldm.sample_batch, generator=torch.Generator().manual_seed(seed))
    meshes = meshes_from_logits(dense_occupancy(model, image_to_triplane(z), cfg.mesh_resolution))
    clouds = normalize_to_unit_sphere(surface_clouds(meshes, cfg.n_metric_points, seed=seed))
    scores = mmd_cov_nna(clouds, ref)
    return {"mmd": scores["mmd"], "cov": scores["cov"], "empty": sum(m.is_empty for m in meshes),
            "meshes": meshes[:8]}


# ----------------------------------------------------------------------------------------------- the table
@dataclass
class AblationResult:
    table: list[dict]                                   # one dict per (domain, row): the table's cells
    metrics: dict                                       # flat snake_case numbers for metrics.json
    models: dict = field(default_factory=dict)          # (domain, row) → seed-0 model (eval mode)
    ldms: dict = field(default_factory=dict)            # (domain, row) → latent diffusion model
    samples: dict = field(default_factory=dict)         # (domain, row) → images [16,3,32,32] or meshes
    data: AblationData | None = None
    trained: list = field(default_factory=list)         # every TrainResult (stage 1 and 2), for stopped_by_budget


def run_ablation(cfg: AblationConfig, *, ckpt_dir, out_dir=None, device="cpu", progress: bool = True,
                 log=print) -> AblationResult:
    """Train / reuse every row × seed × domain, its LDM, evaluate, and write ``ablation.json`` / ``ablation.csv``."""
    cfg.check()
    data = load_data(cfg, ckpt_dir=ckpt_dir, device=device, progress=progress)
    res = AblationResult([], {}, data=data)
    ref = shape_reference_clouds(cfg, data) if "shape" in cfg.domains else None
    for domain in cfg.domains:
        train_data = {32: data.train32} if domain == "image" else data.shape_train
        for row in cfg.rows:
            recon, secs, steps, params = [], [], [], 0
            for seed in cfg.seeds:
                model, result = train_row(domain, row, seed, cfg, train_data, ckpt_dir=ckpt_dir, device=device,
                                          progress=progress)
                recon.append(image_psnr(model, data, cfg.n_psnr) if domain == "image" else
                             shape_iou(model, cfg, data, seed=seed))
                secs.append(result.total_time_s)
                res.trained.append(result)
                steps.append(result.steps_done)
                params = count_parameters(model)
                if seed == cfg.seeds[0]:
                    res.models[(domain, row)] = model
            model = res.models[(domain, row)]
            t0 = time.perf_counter()
            ldm, ldm_result = row_ldm(domain, row, model, cfg, data, ckpt_dir=ckpt_dir, device=device,
                                      progress=progress)
            res.ldms[(domain, row)] = ldm
            res.trained.append(ldm_result)
            gen = image_generation(model, ldm, cfg, data) if domain == "image" else \
                shape_generation(model, ldm, cfg, data, ref)
            res.samples[(domain, row)] = gen.pop("samples", None) if domain == "image" else gen.pop("meshes")
            entry = {"domain": domain, "row": row, "label": ROW_LABELS[row], "params": params,
                     "train_s": float(np.mean(secs)), "steps": int(min(steps)),
                     "recon_metric": "psnr" if domain == "image" else "iou",
                     "recon_mean": float(np.mean(recon)), "recon_std": float(np.std(recon, ddof=1)) if len(recon) > 1
                     else 0.0, "recon_seeds": [float(v) for v in recon],
                     "ldm_train_s": ldm_result.total_time_s, "gen_eval_s": time.perf_counter() - t0, **gen}
            res.table.append(entry)
            log(f"[ablation] {domain:5s} {row:9s} params {params:>9,}  train {entry['train_s']:6.1f} s  "
                f"{entry['recon_metric']} {entry['recon_mean']:.3f} ± {entry['recon_std']:.3f}  "
                + ", ".join(f"{k} {v:.4g}" for k, v in gen.items()))
    res.metrics = flat_metrics(res.table)
    if out_dir is not None:
        write_table(res.table, out_dir, config=cfg)
    return res


@torch.no_grad()
def masked_psnr(model, images01: torch.Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """Held-out PSNR with every scale on, then with each scale's embedding zeroed at render time (no retraining).

    Keys: ``all``, then ``no_coarse`` / ``no_mid`` / ``no_fine`` (``no_field`` for one scale); {} for the baseline.
    """
    k = n_scales(model)
    if k == 0:
        return {}
    device = module_device(model)
    out: dict[str, list] = {}
    for start in range(0, len(images01), batch_size):
        x = images01[start:start + batch_size]
        fields = model.decode(model.encode(to_model_range(x).to(device)).mode())
        for name, mask in scale_masks(k).items():
            img = to_unit_range(render(model, fields, x.shape[-1], scale_mask=mask)).cpu()
            out.setdefault(name.replace(" scales", "").replace(" ", "_"), []).append(psnr(img, x))
    return {name: float(torch.cat(v).mean()) for name, v in out.items()}


__all__ = [
    "AblationConfig",
    "AblationData",
    "AblationResult",
    "build_row_model",
    "coarse_field_image_vae",
    "image_embeddings",
    "image_generation",
    "image_psnr",
    "load_data",
    "masked_psnr",
    "row_ldm",
    "run_ablation",
    "shape_generation",
    "shape_iou",
    "train_row",
]
