"""Named presets of the config dataclasses: ``smoke``, ``cpu``, ``gpu`` (DESIGN.md §6).

Every config dataclass's defaults *are* its ``cpu`` preset, so reading the dataclass tells a
reader what ``make reproduce`` trains. Beside it, a small table says what ``smoke`` (seconds, for
CI) and ``gpu`` (one CUDA GPU) change from it::

    IMAGE_VAE_PRESETS = {"smoke": dict(hidden=32, train=dict(steps=20)), "gpu": dict(...)}

    def image_vae_config(profile="cpu", **overrides):
        return preset(ImageVAEConfig, profile, IMAGE_VAE_PRESETS, **overrides)

Changes go through :func:`dataclasses.replace`: a ``dict`` given for a field that holds a
nested config updates that config's fields (``train=dict(steps=100)``), a config instance
replaces it whole, and a name the dataclass does not have is refused with the allowed ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import torch

from ddmi_lite.errors import DDMIError

PROFILES = ("smoke", "cpu", "gpu")

C = TypeVar("C")


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is a known preset name, else raise naming the allowed ones."""
    if profile not in PROFILES:
        raise DDMIError(f"profile={profile!r} is not one of {PROFILES}")
    return profile


def check_profile_device(profile: str, device: torch.device | str) -> str:
    """Refuse the ``gpu`` profile on a device that is not a CUDA GPU: its models are sized for one."""
    check_profile(profile)
    if profile == "gpu" and torch.device(device).type != "cuda":
        raise DDMIError(f"profile='gpu' trains models sized for a CUDA GPU, but the device is {str(device)!r} "
                        f"(torch.cuda.is_available() is {torch.cuda.is_available()}); use profile 'cpu' here")
    return profile


def override(cfg: C, **changes: Any) -> C:
    """``dataclasses.replace`` that reaches nested configs (a dict updates one) and refuses unknown names."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise DDMIError(f"override needs a config dataclass instance, got {type(cfg).__name__}")
    names = [f.name for f in dataclasses.fields(cfg)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise DDMIError(f"{type(cfg).__name__} has no field {unknown[0]!r}; its fields are {', '.join(names)}")
    resolved = {}
    for key, value in changes.items():
        current = getattr(cfg, key)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            value = override(current, **value)  # a nested config: update only the fields named
        resolved[key] = value
    return dataclasses.replace(cfg, **resolved)


def preset(cls: type[C], profile: str, table: Mapping[str, Mapping[str, Any]], **overrides: Any) -> C:
    """``cls()`` with ``table["cpu"]`` applied (if the table has one), then ``table[profile]``, then ``overrides``.

    A dataclass shared by several domains (:class:`ddmi_lite.ldm.LDMConfig`) has one domain's
    ``cpu`` values as defaults; the other domains' tables start with a ``cpu`` row.
    """
    check_profile(profile)
    cfg = override(cls(), **table.get("cpu", {}))
    if profile != "cpu":
        cfg = override(cfg, **table.get(profile, {}))
    return override(cfg, **overrides)
