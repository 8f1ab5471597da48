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
