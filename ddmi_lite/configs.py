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
    elif profile == "cpu":
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=64, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=8, pe_channels=64),
                             hidden=128, steps=1500, batch_size=32, lr=2e-3, max_time_s=600.0)
    else:  # gpu
        cfg = ImageVAEConfig(net=Conv2dConfig(ch=128, ch_mult=(1, 2, 2), num_res_blocks=2, z_channels=16,
                                              pe_channels=64),
                             hidden=256, steps=20000, batch_size=64, lr=1e-3, warmup_steps=500)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise DDMIError(f"unknown ImageVAEConfig field {key!r}")
        setattr(cfg, key, value)
    return cfg
