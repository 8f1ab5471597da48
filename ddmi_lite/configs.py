"""Dataclass configs with named presets per domain: ``smoke``, ``cpu``, ``gpu``.

``smoke`` runs a notebook in seconds (CI), ``cpu`` is the miniature reproduction on a 2-core
CPU, ``gpu`` is sized for one CUDA GPU. Paper values (ddmi_method.md §3) are cited where a
preset departs from them.
"""

from __future__ import annotations

from ddmi_lite.errors import DDMIError

PROFILES = ("smoke", "cpu", "gpu")


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is a known preset name, else raise naming the allowed ones."""
    if profile not in PROFILES:
        raise DDMIError(f"profile={profile!r} is not one of {PROFILES}")
    return profile


def image_vae_config(profile: str = "cpu", **overrides):
    """Image D2C-VAE preset (32² emoji; reference: 256², ch 128, z 64×64×64, C_pe 64, hidden 256)."""
    from ddmi_lite.domains.image import ImageVAEConfig
    from ddmi_lite.nets.conv2d import Conv2dConfig

    check_profile(profile)
    if profile == "smoke":
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=16, ch_mult=(1, 2, 2), z_channels=4, pe_channels=16,
                                              mid_attention=False),
                             hidden=32, steps=20, batch_size=8, warmup_steps=2)
    elif profile == "cpu":  # ~0.4 s per step on 2 cores: 1,400 steps fit the 10-minute budget
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, z_channels=32,
                                              pe_channels=64),
                             hidden=96, steps=1400, batch_size=32, lr=2e-3, max_time_s=600.0)
    else:  # gpu
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=128, ch_mult=(1, 2, 2), num_res_blocks=2, z_channels=16,
                                              pe_channels=64),
                             hidden=256, steps=20000, batch_size=64, lr=1e-3, warmup_steps=500)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise DDMIError(f"unknown ImageVAEConfig field {key!r}")
        setattr(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------------------------
# stage 2: latent diffusion (reference §2 and §3 "stage-2 configs")
from dataclasses import dataclass, field  # noqa: E402  (this section is self-contained)

LDM_DOMAINS = ("image",)


@dataclass
class LDMConfig:
    """Latent diffusion on the D2C-VAE latents: denoiser, training, sampling and evaluation sizes.

    Reference values (§2, §3): ADM UNet with 2 ResBlocks per level, attention at the low
    resolutions, 224–256 model channels; T = 1000, scaled-linear β, ε-prediction, mixed
    prediction with logit −6; AdamW lr 1e-4 without schedule, weight decay 0 for images; EMA
    0.9999; raw posterior samples (no latent scale); DDIM η = 0 with 50 steps. Our latents are
    8×8 instead of 64×64, the runs are minutes instead of days, so the UNet is smaller, the lr
    higher (with warm-up and cosine decay) and the EMA shorter.
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
    # data
    hflip: bool = True                               # also encode the mirrored training images (2× latents)
    # training (ddmi_lite.train.TrainConfig)
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-4                                 # reference: 1e-4, constant
    mix_lr: float | None = 1e-2                      # lr of the mixing logit m (None: same as lr)
    warmup_steps: int = 100
    weight_decay: float = 0.0                        # reference (images): 0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999                  # reference: 0.9999 over days of training
    precision: str = "fp32"                          # "fp32" | "bf16" autocast
    max_time_s: float | None = None                  # wall-clock budget of the training run
    # sampling and evaluation (notebooks 04 and 05)
    sampler: str = "dpmpp_2m"                        # reference: "ddim" with 50 steps
    sample_steps: int = 20
    n_samples: int = 2000                            # samples scored against the held-out emoji
    sample_batch: int = 500
    sweep: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "ddpm": (1000,), "ddim": (10, 20, 50, 100), "dpmpp_2m": (5, 10, 15, 20), "heun": (5, 10, 20)})
    n_sweep: int = 500                               # samples per sampler setting of the sweep
    feature_steps: int = 400                         # training steps of the FD feature network


def ldm_config(profile: str = "cpu", domain: str = "image", **overrides) -> LDMConfig:
    """Latent-diffusion preset for ``domain`` (only ``"image"`` so far) and ``profile``.

    Trials of 600 steps on the latents of a short cpu-preset image VAE (std ≈ 2.3; FD on
    ddmi_lite features of 500 DPM-Solver++ samples, floor 5.5, VAE reconstructions 7.2), scored
    with the raw weights: latent scale 1 (the reference) FD 6.5, ``"auto"`` 6.4, so the presets
    keep the reference's raw latents; mixing-logit lr 1e-2 → 5e-2 and lr 4e-4 → 1e-3 did not
    help (11.5, 8.3). The EMA of those short runs lagged far behind (decay 0.999: FD 14–36, s
    still ≈ 0.03 while the raw s had reached 0.04–0.26), so its window must stay short next to
    the run: 0.998 for 4,500 steps.
    ``cpu``: a 4 M-parameter UNet on the 8×8 latents, 4,500 steps of batch 64 in bf16 autocast,
    capped at 9 minutes of training on two cores; DDPM-1000 in the sampler sweep.
    """
    check_profile(profile)
    if domain not in LDM_DOMAINS:
        raise DDMIError(f"domain={domain!r} is not one of {LDM_DOMAINS}")
    if profile == "smoke":
        cfg = LDMConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, num_heads=2, steps=30,
                        batch_size=16, lr=1e-3, mix_lr=5e-2, warmup_steps=3, ema_decay=0.9,
                        sample_steps=5, n_samples=64, sample_batch=64, n_sweep=32, feature_steps=20,
                        sweep={"ddpm": (20,), "ddim": (5, 10), "dpmpp_2m": (3, 5), "heun": (3,)})
    elif profile == "cpu":  # ~0.16 s per bf16 step on one busy core, ~0.1 s estimated on two idle ones
        cfg = LDMConfig(model_channels=64, channel_mult=(1, 2), steps=4500, batch_size=64, lr=4e-4, mix_lr=1e-2,
                        warmup_steps=200, ema_decay=0.998, precision="bf16", max_time_s=540.0,
                        n_samples=2000, n_sweep=256)
    else:  # gpu
        cfg = LDMConfig(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(4, 2), steps=40000,
                        batch_size=128, lr=2e-4, mix_lr=1e-2, warmup_steps=1000, ema_decay=0.9995,
                        n_samples=5000, sample_batch=1000, n_sweep=2000, feature_steps=2000)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise DDMIError(f"unknown LDMConfig field {key!r}")
        setattr(cfg, key, value)
    return cfg


# ----------------------------------------------------------------------------------------------
# 3D shapes: tri-plane D2C-VAE, latent diffusion on channel-stacked tri-planes, text-to-shape
# (reference §1.2–1.9 shape rows, §2, §3 ``shapenet``)
def _apply(cfg, overrides: dict, name: str):
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise DDMIError(f"unknown {name} field {key!r}")
        setattr(cfg, key, value)
    return cfg


def shape_data_settings(profile: str = "cpu") -> dict:
    """Which procedural collection a profile uses: ``{"data_root", "n_objects"}``.

    ``smoke`` prepares 60 objects in its own folder (``shapes_smoke``, ~1 s) so CI never waits for
    the 2,400-object default collection (``shapes``, ~70 s once) that ``cpu`` and ``gpu`` share.
    """
    check_profile(profile)
    return {"data_root": "shapes_smoke", "n_objects": 60} if profile == "smoke" else \
        {"data_root": "shapes", "n_objects": 2400}


def shape_vae_config(profile: str = "cpu", **overrides):
    """Shape D2C-VAE preset (reference: PointNet 256×7 on 64² planes, ch 64 [1,2,4], z 64×16×16 per
    plane, C_pe 64 at 16/32/64, cross-plane R/A/R at 64/32/16, hidden 256, 3000 points, 2048 queries).

    ``cpu``: 32² PointNet planes, a 3×8×8×8 latent, fields at 8/16/32, cross-plane mixing at 8²
    only (at 16² and 32² the 3C-channel blocks cost more than the rest of the network), readout
    width 64, 512 encoder points and 1,024 queries. Measured with one thread: 0.35 s per step of 16
    shapes (0.21 s with two), so 1,400 steps take ≈ 8 minutes; ``max_time_s`` (15 minutes) only
    guards slower or busy machines. Held-out IoU (p > 0.5) was 0.71 after 600 steps and 0.77 after 1,500;
    train and held-out IoU stay equal, so longer training keeps paying.
    """
    from ddmi_lite.domains.shape import ShapeVAEConfig
    from ddmi_lite.nets.triplane import TriplaneConfig

    data = shape_data_settings(profile)
    if profile == "smoke":
        cfg = ShapeVAEConfig(net=TriplaneConfig(point_hidden=16, point_blocks=2, plane_channels=8, plane_resolution=16,
                                                ch=8, ch_mult=(1, 2, 2), z_channels=4, pe_channels=8,
                                                cross_resolutions=(4,), attention_resolutions=(4,)),
                             hidden=32, n_surface=256, n_query=256, steps=20, batch_size=8, warmup_steps=2, **data)
    elif profile == "cpu":
        cfg = ShapeVAEConfig(net=TriplaneConfig(point_hidden=32, point_blocks=4, plane_channels=32, plane_resolution=32,
                                                ch=16, ch_mult=(1, 2, 2), z_channels=8, pe_channels=32,
                                                cross_resolutions=(8,), attention_resolutions=(8,)),
                             hidden=64, n_surface=512, n_query=1024, steps=1400, batch_size=16, lr=2e-3,
                             warmup_steps=50, max_time_s=900.0, **data)
    else:  # gpu
        cfg = ShapeVAEConfig(net=TriplaneConfig(point_hidden=128, point_blocks=5, plane_channels=32, plane_resolution=64,
                                                ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=16,
                                                pe_channels=64, cross_resolutions=(32, 16), attention_resolutions=(16,)),
                             hidden=256, n_surface=3000, n_query=2048, steps=30000, batch_size=32, lr=5e-4,
                             warmup_steps=500, **data)
    return _apply(cfg, overrides, "ShapeVAEConfig")


@dataclass
class ShapeEvalConfig:
    """Evaluation sizes of the shape notebooks (reference §4.2: 2,048 points per mesh, 1,355 clouds)."""

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


def shape_eval_config(profile: str = "cpu", **overrides) -> ShapeEvalConfig:
    """Evaluation sizes per profile. ``cpu``: MMD / COV / 1-NNA on 48 + 48 clouds of 512 points — one
    Chamfer pair of 512-point clouds costs ≈ 4 ms on one thread, 2,048 points ≈ 140 ms — so the
    samples' scores and the floor take about a minute together."""
    check_profile(profile)
    if profile == "smoke":
        cfg = ShapeEvalConfig(n_iou=5, mesh_resolution=16, n_chamfer=2, n_points=256, n_metric=4, n_metric_points=128,
                              n_render=2, render_size=64)
    elif profile == "cpu":
        cfg = ShapeEvalConfig()
    else:
        cfg = ShapeEvalConfig(mesh_resolution=64, n_chamfer=100, n_metric=240, n_metric_points=2048, n_render=12,
                              render_size=256)
    return _apply(cfg, overrides, "ShapeEvalConfig")


def shape_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """Latent diffusion on the 3z×h×w channel-stacked tri-plane latents (reference: 192×16×16, UNet 256
    [1,2,4,6], DDIM 200 steps). ``latent_scale="auto"``: the small KL weight (0.01) leaves the latents
    far from unit variance; the mixing logit gets lr 5e-2 as in ``ldm_config``.
    ``cpu``: 24×8×8 latents, a 4 M-parameter UNet; ≈ 0.2 s per step of 64 in bf16 with one thread,
    so 600 steps or 2.5 minutes."""
    check_profile(profile)
    if profile == "smoke":
        cfg = LDMConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2,),
                        num_heads=2, latent_scale="auto", hflip=False, steps=30, batch_size=16, lr=1e-3, mix_lr=5e-2,
                        warmup_steps=3, ema_decay=0.9, sampler="ddim", sample_steps=5, n_samples=4, sample_batch=64)
    elif profile == "cpu":
        cfg = LDMConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=2, attention_resolutions=(4,),
                        latent_scale="auto", hflip=False, steps=600, batch_size=64, lr=4e-4, mix_lr=5e-2,
                        warmup_steps=50, ema_decay=0.995, precision="bf16", max_time_s=150.0, sampler="ddim", sample_steps=50,
                        n_samples=48, sample_batch=100)
    else:
        cfg = LDMConfig(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(8, 4), latent_scale="auto",
                        hflip=False, steps=40000, batch_size=128, lr=2e-4, mix_lr=5e-2, warmup_steps=1000,
                        ema_decay=0.9995, sampler="ddim", sample_steps=200, n_samples=240, sample_batch=240)
    return _apply(cfg, overrides, "LDMConfig")


def text_to_shape_config(profile: str = "cpu", **overrides):
    """Caption-conditioned LDM on the shape latents, the caption encoder, guidance sweep and classifier.

    The paper's text encoder is not known (reference §2); ours is a 2-layer Transformer over the
    captions' words, trained jointly with the denoiser. ``cpu``: 1,000 steps of joint training
    (168 s with one thread, capped at 4 minutes), a 300-step attribute classifier, 100 held-out
    captions × 4 guidance weights; notebook 07 ran in 6 minutes (one thread), 06 in 11.
    """
    from ddmi_lite.domains.shape_attributes import AttributeClassifierConfig
    from ddmi_lite.domains.text_to_shape import TextToShapeConfig

    ldm = shape_ldm_config(profile)
    if profile == "smoke":
        cfg = TextToShapeConfig(ldm=ldm, text_dim=16, text_layers=1, text_heads=2, cond_dim=16, guidance=(0.0, 2.0),
                                n_eval=4, eval_resolution=16,
                                classifier=AttributeClassifierConfig(resolution=16, width=8, steps=10, batch_size=8))
    elif profile == "cpu":
        ldm = shape_ldm_config(profile, steps=1000, max_time_s=240.0)
        cfg = TextToShapeConfig(ldm=ldm, guidance=(0.0, 1.0, 2.0, 4.0), n_eval=100,
                                classifier=AttributeClassifierConfig(steps=300, batch_size=32, max_time_s=90.0))
    else:
        cfg = TextToShapeConfig(ldm=ldm, text_dim=128, text_layers=3, cond_dim=128, n_eval=240,
                                classifier=AttributeClassifierConfig(steps=3000, batch_size=64))
    return _apply(cfg, overrides, "TextToShapeConfig")


# ----------------------------------------------------------------------------------------------
# ablation study (notebook 10): weight generation vs basis fields, single vs multi-scale, readout wiring
def ablation_config(profile: str = "cpu", **overrides):
    """Ablation table preset: 5 rows × 2 seeds × 2 domains of stage 1, one LDM per row and domain.

    Every row trains for the same steps and batch (no time budget, so the budget is equal by
    construction); the nets are smaller than notebooks 03/06 so the whole table fits about 25
    minutes on two cores. Measured with one (shared) thread: an image row ≈ 0.08–0.12 s per step
    of 16 (the weight-generation baseline 0.04 s), a shape row ≈ 0.25–0.43 s per step of 16 with
    512 query points (baseline 0.15 s). ``cpu``: 600 image steps, 250 shape steps, LDMs of
    400 / 300 steps; 466 held-out emoji for PSNR and 466 samples for FD, 96 held-out shapes for IoU
    and 32 + 32 clouds of 256 points for MMD / COV (notebooks 05 / 06 use 2,000 samples and 48 clouds
    of 512 points).
    """
    from dataclasses import replace as _replace

    from ddmi_lite.ablations import AblationConfig
    from ddmi_lite.baselines import WeightGenConfig
    from ddmi_lite.nets.conv2d import Conv2dConfig

    check_profile(profile)
    if profile == "smoke":
        image = image_vae_config("smoke", multiscale=False, scale_cond=False, steps=2, batch_size=4, warmup_steps=1)
        shape = shape_vae_config("smoke", steps=2, batch_size=4, n_query=128, n_surface=128, warmup_steps=1)
        image_ldm = ldm_config("smoke", steps=3, batch_size=8, warmup_steps=1, hflip=False, sample_steps=3)
        shape_ldm = shape_ldm_config("smoke", steps=3, batch_size=8, warmup_steps=1, sample_steps=3)
        cfg = AblationConfig(image=image, shape=shape, image_ldm=image_ldm, shape_ldm=shape_ldm,
                             weightgen=WeightGenConfig(hidden=32, n_layers=3, n_freqs=4),
                             n_psnr=8, n_fd=16, feature_steps=5, n_iou=4, n_metric=3, n_metric_points=64,
                             mesh_resolution=12, n_ldm_train=64)
    elif profile == "cpu":
        image = image_vae_config("cpu", multiscale=False, scale_cond=False, steps=600, batch_size=16, warmup_steps=30,
                                 hidden=64, max_time_s=None,
                                 net=Conv2dConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=8,
                                                  pe_channels=32, mid_attention=False))
        shape = shape_vae_config("cpu", steps=250, batch_size=16, n_query=512, n_surface=512, warmup_steps=20,
                                 max_time_s=None)
        image_ldm = ldm_config("cpu", model_channels=32, num_res_blocks=1, steps=400, batch_size=64, warmup_steps=20,
                               ema_decay=0.99, hflip=False, max_time_s=None, sample_steps=20)
        shape_ldm = shape_ldm_config("cpu", model_channels=32, num_res_blocks=1, steps=300, warmup_steps=20,
                                     ema_decay=0.99, max_time_s=None, sample_steps=25)
        cfg = AblationConfig(image=image, shape=shape, image_ldm=image_ldm, shape_ldm=shape_ldm,
                             weightgen=WeightGenConfig(hidden=64, n_layers=4, n_freqs=6),
                             n_psnr=466, n_fd=466, feature_steps=ldm_config("cpu").feature_steps, n_iou=96,
                             n_metric=32, n_metric_points=256, mesh_resolution=24)
    else:  # gpu: the notebook presets' networks, shorter runs
        image = image_vae_config("gpu", multiscale=False, scale_cond=False, steps=5000)
        shape = shape_vae_config("gpu", steps=5000)
        image_ldm = ldm_config("gpu", steps=10000, hflip=False)
        shape_ldm = shape_ldm_config("gpu", steps=10000)
        cfg = AblationConfig(image=image, shape=shape, image_ldm=image_ldm, shape_ldm=shape_ldm,
                             weightgen=WeightGenConfig(hidden=256, n_layers=6, n_freqs=8),
                             seeds=(0, 1, 2), n_psnr=466, n_fd=2000, feature_steps=ldm_config("gpu").feature_steps,
                             n_iou=240, n_metric=128, n_metric_points=1024, mesh_resolution=48)
    cfg.image, cfg.shape = _replace(cfg.image), _replace(cfg.shape)
    return _apply(cfg, overrides, "AblationConfig")
# end of the ablation section


# ----------------------------------------------------------------------------------------------
# NeRF: tri-plane radiance fields from coloured point clouds, latent diffusion on the stacked
# tri-planes (reference §1.2–1.9 NeRF rows, §3 ``srncars_nerf_3plane``)
def nerf_data_settings(profile: str = "cpu") -> dict:
    """Which rendered collection a profile uses: ``{"data_root", "n_objects", "views", "size"}``.

    ``smoke``: 40 objects × 6 views in ``views_smoke`` (under a second). ``cpu`` and ``gpu`` share
    ``views``: 800 objects × 16 views of 32² (≈ 27,000 files, about 40 s to render once).
    """
    check_profile(profile)
    if profile == "smoke":
        return {"data_root": "views_smoke", "n_objects": 40, "views": 6, "size": 32}
    return {"data_root": "views", "n_objects": 800, "views": 16, "size": 32}


def nerf_vae_config(profile: str = "cpu", **overrides):
    """NeRF D2C-VAE preset (reference: PointNet on 64² planes, z 64×16×16 per plane, one 32-channel
    64² field per plane, MLP 6×256, 256 samples per ray, 5000 rays; here three scales and CFC).

    ``cpu``: the shape preset's tri-plane networks (latent 3×8×8×8, fields at 8/16/32 with 16
    channels per plane), 8 objects × 192 rays × 24 samples per step (the samples span only the
    ray's stretch inside the cube). Trials of the same preset with fixed step counts (on a GPU, so
    that only the step count mattered), held-out PSNR over 48 objects × 4 views: 600 steps of
    256 rays × 32 samples 20.6 dB, 1,100 steps 21.2; 800 steps of 192 × 24 21.4 dB, 1,500 steps
    21.8 (SSIM 0.83), with training objects no better (no overfitting at 640 objects). Capped
    at 6.5 minutes of training."""
    from ddmi_lite.domains.nerf import NeRFVAEConfig
    from ddmi_lite.nets.triplane import TriplaneConfig

    data = nerf_data_settings(profile)
    if profile == "smoke":
        cfg = NeRFVAEConfig(net=TriplaneConfig(point_hidden=16, point_blocks=2, plane_channels=8, plane_resolution=16,
                                               ch=8, ch_mult=(1, 2, 2), z_channels=4, pe_channels=8,
                                               cross_resolutions=(4,), attention_resolutions=(4,), point_features=3),
                            hidden=32, color_hidden=16, n_points=256, n_rays=64, n_samples=16, steps=20,
                            batch_size=4, warmup_steps=2, **data)
    elif profile == "cpu":
        cfg = NeRFVAEConfig(net=TriplaneConfig(point_hidden=32, point_blocks=4, plane_channels=32, plane_resolution=32,
                                               ch=16, ch_mult=(1, 2, 2), z_channels=8, pe_channels=16,
                                               cross_resolutions=(8,), attention_resolutions=(8,), point_features=3),
                            hidden=64, color_hidden=32, n_points=1024, n_rays=192, n_samples=24, steps=1500,
                            batch_size=8, lr=2e-3, warmup_steps=50, max_time_s=390.0, **data)
    else:  # gpu
        cfg = NeRFVAEConfig(net=TriplaneConfig(point_hidden=128, point_blocks=5, plane_channels=32, plane_resolution=64,
                                               ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=16,
                                               pe_channels=32, cross_resolutions=(32, 16), attention_resolutions=(16,),
                                               point_features=3),
                            hidden=128, color_hidden=64, n_points=2048, n_rays=1024, n_samples=64, steps=30000,
                            batch_size=16, lr=5e-4, warmup_steps=500, **data)
    return _apply(cfg, overrides, "NeRFVAEConfig")


@dataclass
class NeRFEvalConfig:
    """Evaluation sizes of the NeRF notebook."""

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


def nerf_eval_config(profile: str = "cpu", **overrides) -> NeRFEvalConfig:
    """Evaluation sizes per profile (``cpu``: about a minute and a half of rendering and scoring)."""
    check_profile(profile)
    if profile == "smoke":
        cfg = NeRFEvalConfig(n_heldout=3, views_heldout=2, n_train=2, n_gen=3, gen_views=2, n_fd=6, feature_views=24,
                             feature_steps=3, novel_size=16, gif_frames=3, n_show=2, mesh_resolution=12)
    elif profile == "cpu":
        cfg = NeRFEvalConfig()
    else:
        cfg = NeRFEvalConfig(n_heldout=200, views_heldout=8, n_train=100, n_gen=500, gen_views=4, n_fd=2000,
                             feature_views=20000, feature_steps=2000, novel_size=128, gif_frames=36, n_show=6,
                             mesh_resolution=96)
    return _apply(cfg, overrides, "NeRFEvalConfig")


def nerf_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """Latent diffusion on the channel-stacked NeRF tri-planes (reference: 192×16×16, as for shapes).
    The latents have the shape preset's layout (``cpu``: 24×8×8), so the presets are the shape ones;
    ``cpu`` caps training at 2.5 minutes."""
    cfg = shape_ldm_config(profile)
    if profile == "cpu":
        cfg = shape_ldm_config(profile, steps=600, max_time_s=150.0, n_samples=64)
    return _apply(cfg, overrides, "LDMConfig")
# end of the NeRF section


# ----------------------------------------------------------------------------------------------
# video: D2C-VAE on the planes (xy, xt, yt), latent diffusion on the channel-stacked planes
# (reference §1.2–1.9 video rows, §3 ``skytimelapse``)
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


def video_vae_config(profile: str = "cpu", **overrides):
    """Video D2C-VAE preset (reference: TimeSformer 384×8, planes xy 64×32², xt / yt 64×16×32, C_pe 64
    per plane concatenated to 192, readout 256, L1 summed over 16×256², β_max 0.1).

    ``cpu``: 16 frames of 32²; a conv trunk (widths 16/32, one stride-2 level) to 16×16² with no
    temporal stride, then attention pooling along each axis gives three 16×16² planes (time planes:
    16 rows for 16 frames), fields at 16 and 32 (two scales) with C_pe 24 per plane, the time
    planes' product appended to the concatenation (``aggregate="concat_prod"``), readout width 80;
    4,096 supervised points per clip and step, bf16 autocast, a 9-minute budget (2,284 steps with
    two threads in the reference run: 24.6 dB held out). One-thread trials with 300 steps, held-out PSNR on 64 clips: 8² planes with
    three scales 21.3 dB; 16² planes 22.4 dB (22.8 at 900 steps); + the product 22.6 dB; a wider
    readout (160) or a cross-plane block at 16² added nothing. The encoder's pixel shortcut
    (nets/video.py) is what lets per-clip colours reach z: without it held-out PSNR sat near the
    data-set mean (16 dB) for the first few hundred steps.
    """
    from ddmi_lite.domains.video import VideoVAEConfig
    from ddmi_lite.nets.video import VideoNetConfig

    check_profile(profile)
    if profile == "smoke":
        cfg = VideoVAEConfig(net=VideoNetConfig(ch=8, ch_mult=(1, 2), time_down=1, z_channels=4, pe_channels=8,
                                                n_scales=2, pool_heads=2, cross_resolutions=(),
                                                attention_resolutions=()),
                             hidden=32, n_train=64, n_query=512, steps=20, batch_size=4, warmup_steps=2)
    elif profile == "cpu":
        cfg = VideoVAEConfig(net=VideoNetConfig(ch=16, ch_mult=(1, 2), time_down=1, z_channels=16, pe_channels=24,
                                                n_scales=2, pool_heads=2, cross_resolutions=(),
                                                attention_resolutions=()),
                             hidden=80, n_query=4096, steps=2800, batch_size=8, lr=2e-3, warmup_steps=50,
                             precision="bf16", max_time_s=540.0)
    else:  # gpu
        cfg = VideoVAEConfig(net=VideoNetConfig(resolution=64, ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                                                z_channels=16, pe_channels=64, cross_resolutions=(16, 8)),
                             hidden=256, n_query=16384, steps=20000, batch_size=16, lr=5e-4, warmup_steps=500)
    return _apply(cfg, overrides, "VideoVAEConfig")


def video_ldm_config(profile: str = "cpu", **overrides) -> LDMConfig:
    """Latent diffusion on the channel-stacked planes [3z, S, S] (reference: a UNet over the three planes
    with 1D cross-plane attention, 256 channels, DDIM 200 steps). ``latent_scale="auto"``.

    ``cpu``: [48, 16, 16] latents, a UNet at 16/8/4 with attention at 4², a 4-minute budget
    (~0.3 s per step of 64 with two threads)."""
    check_profile(profile)
    if profile == "smoke":
        cfg = LDMConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
                        num_heads=2, latent_scale="auto", hflip=True, steps=20, batch_size=16, lr=1e-3, mix_lr=5e-2,
                        warmup_steps=2, ema_decay=0.9, sampler="ddim", sample_steps=5, n_samples=8, sample_batch=64)
    elif profile == "cpu":
        cfg = LDMConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(4,),
                        latent_scale="auto", hflip=False, steps=1000, batch_size=64, lr=4e-4, mix_lr=5e-2,
                        warmup_steps=50, ema_decay=0.995, precision="bf16", max_time_s=240.0, sampler="ddim",
                        sample_steps=50, n_samples=200, sample_batch=100)
    else:
        cfg = LDMConfig(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(4, 2), latent_scale="auto",
                        hflip=True, steps=40000, batch_size=128, lr=2e-4, mix_lr=5e-2, warmup_steps=1000,
                        ema_decay=0.9995, sampler="ddim", sample_steps=100, n_samples=500, sample_batch=250)
    return _apply(cfg, overrides, "LDMConfig")


def video_eval_config(profile: str = "cpu", **overrides) -> VideoEvalConfig:
    """Evaluation sizes per profile (``cpu``: 200 held-out clips, a 300-step 3D feature network)."""
    check_profile(profile)
    if profile == "smoke":
        cfg = VideoEvalConfig(n_psnr=4, n_fvd=8, feature_clips=32, feature_steps=3, feature_batch=8, n_show=2)
    elif profile == "cpu":
        cfg = VideoEvalConfig()
    else:
        cfg = VideoEvalConfig(n_fvd=200, feature_clips=2000, feature_steps=2000, feature_batch=64)
    return _apply(cfg, overrides, "VideoEvalConfig")
# end of the video section
# ----------------------------------------------------------------------------------------------
