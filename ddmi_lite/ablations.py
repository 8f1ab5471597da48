"""The ablation table of DDMI (§4.4, Tables 5–6): what the basis fields and the CFC readout buy.

Five rows, each trained with the same loop, steps, batch, data and seeds, on images (emoji) and
shapes (procedural furniture, tri-planes):

==============  ==================================================================================
row             model
==============  ==================================================================================
``weightgen``   the latent generates per-layer shifts of one SIREN over the raw coordinate
                (:mod:`ddmi_lite.weightgen`, Functa-style weight generation), with its own
                learning rate picked by a sweep (:func:`sweep_weightgen`)
``single``      D2C-VAE with one basis field at the finest scale (``mode="single_scale"``)
``concat``      HDBF, every scale concatenated at the readout's input (``mode="concat_input"``)
``sum``         HDBF, the scales summed at the input (``mode="sum"``)
``cfc``         HDBF with coarse-to-fine conditioning (``mode="cfc"``, the paper's)
==============  ==================================================================================

A setting where the claims can show: as in the reference, whose finest image field (256²) is
coarser than the 384² / 512² targets it renders, the image rows' finest field is half the image's
resolution (:func:`coarse_field_image_vae`), so no field can store one value per pixel; every row
has the same latent, and the single-field row's field has the finest scale's resolution.
Every image row records its held-out PSNR curve during training (``heldout_psnr`` in the training
history, :func:`heldout_curve`), so the table can show that rows are trained rather than starved
(the PSNR gained over the last 20% of the steps).

Columns: parameters, training seconds, held-out reconstruction (PSNR of posterior means at the
training resolution and of 2× renders against the true 2× emoji for images, IoU for shapes; mean
± standard deviation over the seeds), and generation quality of a latent diffusion model trained
on each row's latents (seed-0 VAE): FD on :class:`~ddmi_lite.features.FeatureNet` features with
its training-vs-held-out floor for images, MMD / COV (Chamfer) for shapes
(:mod:`ddmi_lite.ablation_eval`). Checkpoints live under ``<ckpt_dir>/ablations/`` and are reused;
the table is written as JSON and CSV (:mod:`ddmi_lite.ablation_table`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ddmi_lite.ablation_eval import (
    AblationData,
    image_generation,
    image_psnr,
    image_psnr_2x,
    load_data,
    row_ldm,
    shape_generation,
    shape_iou,
    shape_reference_clouds,
)
from ddmi_lite.ablation_table import (
    DOMAINS,
    READOUT_MODES,
    ROW_LABELS,
    ROWS,
    flat_metrics,
    write_table,
)
from ddmi_lite.device import module_device, seed_everything
from ddmi_lite.domains.image import (
    ImageVAEConfig,
    image_ldm_config,
    image_vae_config,
    to_model_range,
    train_image_vae,
)
from ddmi_lite.domains.shape import (
    ShapeVAEConfig,
    build_shape_vae,
    shape_ldm_config,
    shape_vae_config,
    train_shape_vae,
)
from ddmi_lite.errors import DDMIError
from ddmi_lite.fields import image_coords, query_fields
from ddmi_lite.ldm import LDMConfig
from ddmi_lite.nets.conv2d import Conv2dConfig, Decoder2D, Encoder2D
from ddmi_lite.presets import preset
from ddmi_lite.readout import CFCReadout
from ddmi_lite.vae import D2CVAE, count_parameters
from ddmi_lite.weightgen import (
    WeightGenConfig,
    build_image_weightgen,
    build_shape_weightgen,
)


def _image_rows() -> ImageVAEConfig:
    # 32² emoji → an 8² latent (one extra encoder level) → fields at 8² and 16²: the finest is half the image
    return image_vae_config("cpu", net=Conv2dConfig(ch=16, ch_mult=(1, 2), n_scales=2, num_res_blocks=1, z_channels=8,
                                                    pe_channels=32, mid_attention=False),
                            hidden=64, multiscale=False, scale_cond=False, hflip=True,
                            train=dict(steps=1500, batch_size=16, lr=2e-3, warmup_steps=50, max_time_s=None))


@dataclass
class AblationConfig:
    """Models, training length and evaluation sizes of the ablation table; the defaults are ``cpu``.

    Every row trains for the same steps and batch (no time budget, so the compute is equal by
    construction). Images: 32² emoji, an 8×8×8 latent, fields at 8² and 16² (``extra_down=1``),
    1,500 steps of 16, which is where the held-out curve of every field row has flattened (less
    than 0.3 dB gained over the last 20% of the steps, measured by the cpu run). The baseline's
    learning rate is the best of ``weightgen_lrs`` by its final training loss (seed 0, full length),
    so the sweep costs ``len(weightgen_lrs) − 1`` extra baseline runs per domain. Shapes: the
    tri-plane model of notebook 06 at a smaller size, 250 steps of 16. LDMs of 400 / 300 steps;
    466 held-out emoji for PSNR and 466 samples for FD, 96 held-out shapes for IoU and 32 + 32
    clouds of 256 points for MMD / COV.
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
    # the baselines' SIRENs, sized so every row of a domain has parameter counts within 10% of each other
    weightgen: WeightGenConfig = field(default_factory=lambda: WeightGenConfig(hidden=48, n_layers=4, w0=30.0))
    shape_weightgen: WeightGenConfig = field(default_factory=lambda: WeightGenConfig(hidden=128, n_layers=4, w0=30.0))
    weightgen_lrs: tuple[float, ...] = (2e-4, 1e-3, 5e-3)  # the baseline's learning-rate sweep (seed 0)
    extra_down: int = 1                 # image fields: the finest is 2^extra_down times coarser than the image
    rows: tuple[str, ...] = ROWS
    domains: tuple[str, ...] = DOMAINS
    seeds: tuple[int, ...] = (0, 1)     # stage-1 seeds (reconstruction mean ± std); the LDM uses seeds[0]
    n_psnr: int = 466                   # held-out emoji for PSNR (and the 2× renders)
    n_curve: int = 128                  # held-out emoji scored during training (the curves)
    curve_points: int = 10              # points of each curve (every steps / curve_points)
    n_fd: int = 466                     # samples for the FD (scored against every held-out emoji), and the floor's size
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
        if not self.weightgen_lrs or any(not lr > 0 for lr in self.weightgen_lrs):
            raise DDMIError(f"weightgen_lrs={self.weightgen_lrs!r} must list positive learning rates")
        if self.curve_points < 5 or self.image.train.steps % self.curve_points:
            raise DDMIError(f"curve_points={self.curve_points} must be >= 5 and divide the image steps "
                            f"({self.image.train.steps}), so the curve has a point at 80% of the run")
        return self


ABLATION_PRESETS = {
    "smoke": dict(image=dict(hidden=32, net=dict(pe_channels=16, z_channels=4), train=dict(steps=10, batch_size=4,
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
                  weightgen=dict(hidden=32, n_layers=3), shape_weightgen=dict(hidden=32, n_layers=3),
                  weightgen_lrs=(1e-3, 3e-3),
                  n_psnr=8, n_curve=8, curve_points=5, n_fd=16, feature_steps=5, n_iou=4, n_metric=3,
                  n_metric_points=64, mesh_resolution=12, n_ldm_train=64),
    # gpu: larger nets, longer runs, three seeds
    "gpu": dict(image=dict(hidden=256, net=dict(ch=64, num_res_blocks=2, z_channels=16, pe_channels=64),
                           train=dict(steps=6000, batch_size=64, lr=1e-3, warmup_steps=300)),
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
                weightgen=dict(hidden=256, n_layers=6), shape_weightgen=dict(hidden=256, n_layers=6),
                weightgen_lrs=(1e-4, 3e-4, 1e-3, 3e-3),
                seeds=(0, 1, 2), n_fd=466, feature_steps=2000, n_iou=240, n_metric=128, n_metric_points=1024,
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
    """A fresh model of ``row`` for ``domain``: the baseline or a D2C-VAE with the row's readout.

    Image rows: the fields are ``2^extra_down`` times coarser than the image (:func:`coarse_field_image_vae`),
    and the baseline's encoder has the same extra levels, so every row has the same latent.
    """
    if row not in ROWS:
        raise DDMIError(f"row={row!r} is not one of {ROWS}")
    if domain == "image":
        rc = image_row_config(cfg, row)
        if row == "weightgen":
            return build_image_weightgen(rc, cfg.weightgen, extra_down=cfg.extra_down)
        return coarse_field_image_vae(rc, extra_down=cfg.extra_down)
    if domain == "shape":
        rc = shape_row_config(cfg, row)
        return build_shape_weightgen(rc, cfg.shape_weightgen) if row == "weightgen" else build_shape_vae(rc)
    raise DDMIError(f"domain={domain!r} is not one of {DOMAINS}")


def heldout_curve(result) -> list[tuple[int, float]]:
    """``[(step, held-out PSNR)]`` recorded during a row's training (``heldout_psnr`` in its history)."""
    return [(int(h["step"]), float(h["heldout_psnr"])) for h in result.history if "heldout_psnr" in h]


def gain_last(curve: list[tuple[int, float]], fraction: float = 0.2) -> float:
    """Held-out PSNR gained over the last ``fraction`` of the steps: curve(end) − curve(end·(1 − fraction))."""
    if not curve:
        return float("nan")
    end_step, end = curve[-1]
    before = [p for s, p in curve if s <= round(end_step * (1 - fraction))]
    return float(end - before[-1]) if before else float("nan")


def train_row(domain: str, row: str, seed: int, cfg: AblationConfig, data, *, ckpt_dir, device="cpu",
              progress: bool = True, lr: float | None = None, curve_images: torch.Tensor | None = None):
    """Train (or reuse the checkpoint of) one row and seed with the library's loop → (model in eval mode, TrainResult).

    ``data``: the emoji pyramid (``{R: images}``) for images, the training ``ShapeTensors`` for shapes.
    ``lr`` replaces the row's learning rate (the baseline's sweep; its checkpoints are named by it).
    ``curve_images`` (images): held-out emoji scored every ``steps / curve_points`` steps; the PSNR is
    kept in the training history as ``heldout_psnr`` (:func:`heldout_curve`), so a reused run keeps it.
    The initial weights depend on ``seed`` alone (the global generators are seeded before the model is built).
    """
    seed_everything(seed)
    model = build_row_model(domain, row, cfg).to(device)
    name = f"{domain}_{row}" + (f"_lr{lr:g}" if lr is not None else "") + f"_s{seed}"
    path = Path(ckpt_dir) / "ablations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if domain == "image":
        rc = image_row_config(cfg, row)
        every = rc.train.steps // cfg.curve_points
        rc = replace(rc, train=replace(rc.train, log_every=every, **({} if lr is None else {"lr": lr})))
        callback = None
        if curve_images is not None:
            def callback(record):  # the history keeps what the callback adds to a logged record
                if record["step"] % every == 0:
                    record["heldout_psnr"] = image_psnr(model, curve_images)
        result = train_image_vae(model, rc, data, device=device, ckpt_path=path, seed=seed, progress=progress,
                                 callback=callback)
    else:
        rc = shape_row_config(cfg, row)
        if lr is not None:
            rc = replace(rc, train=replace(rc.train, lr=lr))
        result = train_shape_vae(model, rc, data, device=device, ckpt_path=path, seed=seed, progress=progress)
    return model.eval(), result


def final_loss(result, fraction: float = 0.1) -> float:
    """Mean training loss over the last ``fraction`` of the logged steps (the sweep's in-sample score)."""
    tail = result.history[-max(1, round(len(result.history) * fraction)):]
    return float(np.mean([h["loss"] for h in tail]))


def sweep_weightgen(domain: str, cfg: AblationConfig, data, *, ckpt_dir, device="cpu", progress: bool = True,
                    curve_images: torch.Tensor | None = None) -> dict:
    """Train the baseline (seed ``seeds[0]``, full length) at every learning rate of ``weightgen_lrs``.

    The pick is the lowest final *training* loss (:func:`final_loss`), so the held-out data that
    scores the table plays no part in it. Returns ``{"lrs", "losses", "best_lr", "runs": {lr: (model, result)}}``.
    """
    runs = {lr: train_row(domain, "weightgen", cfg.seeds[0], cfg, data, ckpt_dir=ckpt_dir, device=device,
                          progress=progress, lr=lr, curve_images=curve_images) for lr in cfg.weightgen_lrs}
    losses = {lr: final_loss(result) for lr, (_, result) in runs.items()}
    finite = {lr: v for lr, v in losses.items() if np.isfinite(v)}
    if not finite:
        raise DDMIError(f"{domain} baseline: every learning rate of {cfg.weightgen_lrs} diverged")
    best = min(finite, key=finite.get)
    return {"lrs": list(cfg.weightgen_lrs), "losses": [losses[lr] for lr in cfg.weightgen_lrs], "best_lr": best,
            "runs": runs}


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


# ----------------------------------------------------------------------------------------------- the table
@dataclass
class AblationResult:
    table: list[dict]                                   # one dict per (domain, row): the table's cells
    metrics: dict                                       # flat snake_case numbers for metrics.json
    models: dict = field(default_factory=dict)          # (domain, row) → seed-0 model (eval mode)
    ldms: dict = field(default_factory=dict)            # (domain, row) → latent diffusion model
    samples: dict = field(default_factory=dict)         # (domain, row) → images [16,3,R,R] or meshes
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
        image = domain == "image"
        train_data = {cfg.image.resolution: data.train32} if image else data.shape_train
        curve_images = data.test32[:cfg.n_curve] if image else None
        kw = dict(ckpt_dir=ckpt_dir, device=device, progress=progress, curve_images=curve_images)
        for row in cfg.rows:
            sweep, lr = None, None
            if row == "weightgen":
                sweep = sweep_weightgen(domain, cfg, train_data, **kw)
                lr = sweep["best_lr"]
            recon, recon2x, gains, curves, secs, steps, params = [], [], [], [], [], [], 0
            for seed in cfg.seeds:
                if sweep is not None and seed == cfg.seeds[0]:
                    model, result = sweep["runs"][lr]
                else:
                    model, result = train_row(domain, row, seed, cfg, train_data, lr=lr, **kw)
                if image:
                    recon.append(image_psnr(model, data.test32[:cfg.n_psnr]))
                    recon2x.append(image_psnr_2x(model, data.test32[:cfg.n_psnr], data.test2x))
                    curves.append(heldout_curve(result))
                    gains.append(gain_last(curves[-1]))
                else:
                    recon.append(shape_iou(model, cfg, data, seed=seed, progress=progress))
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
            gen = image_generation(model, ldm, cfg, data, progress=progress) if image else \
                shape_generation(model, ldm, cfg, data, ref, progress=progress)
            res.samples[(domain, row)] = gen.pop("samples", None) if image else gen.pop("meshes")
            entry = {"domain": domain, "row": row, "label": ROW_LABELS[row], "params": params,
                     "train_s": float(np.mean(secs)), "steps": int(min(steps)),
                     "recon_metric": "psnr" if image else "iou", **_mean_std("recon", recon),
                     "ldm_train_s": ldm_result.total_time_s, "gen_eval_s": time.perf_counter() - t0, **gen}
            if image:
                entry.update(_mean_std("psnr_2x", recon2x), gain_last20=float(np.mean(gains)),
                             gain_last20_seeds=gains, curves=curves, fd_floor=data.fd_floor)
            if sweep is not None:
                entry["lr"] = lr
                entry["lr_sweep"] = {k: v for k, v in sweep.items() if k != "runs"}
                if image:
                    entry["lr_sweep"]["heldout"] = [heldout_curve(r)[-1][1] for _, r in sweep["runs"].values()]
            res.table.append(entry)
            extra = f"  2× {entry['psnr_2x_mean']:.2f} dB, last-20% gain {entry['gain_last20']:+.2f} dB" if image else ""
            log(f"[ablation] {domain:5s} {row:9s} params {params:>9,}  train {entry['train_s']:6.1f} s  "
                f"{entry['recon_metric']} {entry['recon_mean']:.3f} ± {entry['recon_std']:.3f}{extra}  "
                + ", ".join(f"{k} {v:.4g}" for k, v in gen.items()))
    res.metrics = flat_metrics(res.table)
    if out_dir is not None:
        write_table(res.table, out_dir, config=cfg)
    return res


def _mean_std(name: str, values: list[float]) -> dict:
    """``{name_mean, name_std (ddof 1; 0 for one seed), name_seeds}``."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {f"{name}_mean": float(np.mean(values)), f"{name}_std": std, f"{name}_seeds": [float(v) for v in values]}


__all__ = [
    "AblationConfig",
    "AblationData",
    "AblationResult",
    "ablation_config",
    "build_row_model",
    "coarse_field_image_vae",
    "gain_last",
    "heldout_curve",
    "image_embeddings",
    "run_ablation",
    "sweep_weightgen",
    "train_row",
]
