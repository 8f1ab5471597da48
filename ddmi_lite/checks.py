"""Argument checks shared by the public entry points (models, samplers, loaders).

Each check raises :class:`~ddmi_lite.errors.DDMIError` with a message that names the argument
and what was expected, so a bad input fails at the boundary with a clear message instead of deep
inside a convolution.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ddmi_lite.errors import DDMIError


def check_tensor(x, name: str, *, ndim: int | Sequence[int] | None = None, floating: bool = True,
                 finite: bool = True, nonempty: bool = True, layout: str = "") -> torch.Tensor:
    """``x`` as given, after checking type, rank, dtype, emptiness and finiteness.

    ``layout`` (e.g. ``"[B, C, H, W]"``) is only used in the messages.
    """
    what = f" {layout}" if layout else ""
    if not isinstance(x, torch.Tensor):
        raise DDMIError(f"{name} must be a torch.Tensor{what}, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            ranks = " or ".join(f"{d}-D" for d in allowed)
            raise DDMIError(f"{name} must be {ranks}{what}, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise DDMIError(f"{name} must be a floating-point tensor{what}, got dtype {x.dtype}")
    if nonempty and x.numel() == 0:
        raise DDMIError(f"{name} has an empty dimension: shape {tuple(x.shape)}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise DDMIError(f"{name} contains NaN or inf")
    return x


def check_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """A non-empty tuple of positive ints (a batch shape such as ``(B, C, H, W)``)."""
    try:
        dims = tuple(shape)
    except TypeError as err:
        raise DDMIError(f"{name}={shape!r} must be a tuple of positive ints like (4, 8, 16, 16)") from err
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise DDMIError(f"{name}={shape!r} must be a non-empty tuple of positive ints like (4, 8, 16, 16)")
    return dims


def module_call(fn, x: torch.Tensor, *, what: str, name: str):
    """``fn(x)``, turning a shape/dtype error of the network into :class:`DDMIError`.

    Out-of-memory errors pass through unchanged.
    """
    try:
        return fn(x)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, IndexError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DDMIError(f"{name} of shape {tuple(x.shape)} ({x.dtype}) does not fit the {what}: "
                        f"{first}") from err
