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
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=32, ch_mult=(1, 2, 4), num_res_blocks=1, z_channels=16,
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

    Every preset standardises the latents (``latent_scale="auto"``, unlike the reference): the
    image VAE's small KL weight leaves them with std ≈ 2.3, and on such latents a 600-step run
    reached FD 13.9 with the scale against 36.4 without it (FD on ddmi_lite features, floor 5.5).
    ``cpu``: a 4 M-parameter UNet on the 8×8 latents, 4,000 steps of batch 64 in bf16 autocast,
    capped at 9 minutes of training on two cores; DDPM-1000 in the sampler sweep.
    """
    check_profile(profile)
    if domain not in LDM_DOMAINS:
        raise DDMIError(f"domain={domain!r} is not one of {LDM_DOMAINS}")
    if profile == "smoke":
        cfg = LDMConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, num_heads=2, steps=30, latent_scale="auto",
                        batch_size=16, lr=1e-3, mix_lr=1e-2, warmup_steps=3, ema_decay=0.9,
                        sample_steps=5, n_samples=64, sample_batch=64, n_sweep=32, feature_steps=20,
                        sweep={"ddpm": (20,), "ddim": (5, 10), "dpmpp_2m": (3, 5), "heun": (3,)})
    elif profile == "cpu":
        cfg = LDMConfig(model_channels=64, channel_mult=(1, 2), latent_scale="auto", steps=4000, batch_size=64, lr=4e-4,
                        warmup_steps=200, ema_decay=0.999, precision="bf16", max_time_s=540.0,
                        n_samples=2000, n_sweep=500)
    else:  # gpu
        cfg = LDMConfig(model_channels=128, channel_mult=(1, 2, 2), attention_resolutions=(4, 2), latent_scale="auto",
                        steps=40000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9995,
                        n_samples=5000, sample_batch=1000, n_sweep=2000, feature_steps=2000)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise DDMIError(f"unknown LDMConfig field {key!r}")
        setattr(cfg, key, value)
    return cfg
