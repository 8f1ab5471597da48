"""Device selection and seeding shared by the library, the notebooks and the CLI, and the device a
module's weights live on (:func:`module_device`)."""

from __future__ import annotations

import random

import numpy as np
import torch

from ddmi_lite.errors import DDMIError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; ``"cpu"``/``"cuda[:i]"`` are checked."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DDMIError(f"device={device!r} was requested but no CUDA GPU is available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise DDMIError(f"device={device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:<index>'")


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (where its inputs must go)."""
    try:
        return next(module.parameters()).device
    except StopIteration:
        raise DDMIError(f"{type(module).__name__} has no parameters: its device is undefined") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


__all__ = ["module_device", "resolve_device", "seed_everything"]
