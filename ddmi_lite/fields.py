"""Hierarchically decomposed basis fields (HDBF): querying positional embeddings (DDMI §3.2).

The decoder of the D2C-VAE produces basis fields Ξ = {Ξ¹ (coarse), …, Ξᴸ (fine)}. The
positional embedding (PE) of a continuous coordinate c at scale l is the bilinear
interpolation of Ξˡ at c, after projecting c onto each plane of the layout:

    pˡ(c) = ⊕_{ab ∈ planes}  bilinear(Ξˡ_ab, (c_a, c_b))         ⊕ = sum or concatenation

and, for video only (``concat_prod``), the concatenation followed by the product of the two time
planes, pˡ(c) = [Ξ_xy(x, y) ‖ Ξ_xt(x, t) ‖ Ξ_yt(y, t) ‖ Ξ_xt(x, t) ⊙ Ξ_yt(y, t)]: each product
channel is a separable function g(x, t)·h(y, t) of position at time t, the form of a bump that
moves with t (the multiplicative plane features of K-planes), which a sum or concatenation only
reaches through the readout's non-linearities.

Conventions (the whole library relies on them):

* fields: a list over scales, coarse first, of tensors ``[B, P, C, H, W]``; P planes stacked in
  the canonical order of :data:`LAYOUTS`. Scales may differ in C, H and W.
* coordinates: ``[B, N, D]`` in ``[-1, 1]``, D = 2 for ``plane`` (x, y) and 3 for ``triplane``
  (x, y, z) and ``xyt`` (x, y, t).
* a plane named ``ab`` has its **width axis = a** (``grid[..., 0]``) and its **height axis = b**
  (``grid[..., 1]``). For the video time planes ``xt`` / ``yt`` the width is the spatial axis and
  the height is t.
* ``align_corners``: images (``plane``) use ``False`` with pixel-centre coordinates
  (:func:`pixel_centers`), so a render at the field's own resolution lands exactly on texel
  centres; ``triplane`` and ``xyt`` use ``True``, so -1 / +1 are the corner texels. This module
  is the only place that decides it (:func:`align_corners_for`).
* sampling is bilinear with ``padding_mode="border"``: outside ``[-1, 1]`` the value is the
  border value. Coordinates are clamped to ``[-1, 1]`` first, which gives the same values and
  makes that rule explicit.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from ddmi_lite.errors import DDMIError
from ddmi_lite.presets import preset

# Canonical plane order per layout (one order in both stages).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "plane": ("xy",),
    "triplane": ("xy", "yz", "xz"),
    "xyt": ("xy", "xt", "yt"),
}
# Names of the coordinate axes, in the order of the coordinates' last dimension.
AXES: dict[str, str] = {"plane": "xy", "triplane": "xyz", "xyt": "xyt"}
AGGREGATES: tuple[str, ...] = ("sum", "concat", "concat_prod")


# --------------------------------------------------------------------------- layouts


def _check_layout(layout: str) -> str:
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise DDMIError(f"layout={layout!r} is not one of {sorted(LAYOUTS)}")
    return layout


def coord_dim(layout: str) -> int:
    """Number of coordinate components D for ``layout`` (2 for ``plane``, else 3)."""
    return len(AXES[_check_layout(layout)])


def num_planes(layout: str) -> int:
    """Number of planes P for ``layout`` (1 for ``plane``, 3 for ``triplane`` and ``xyt``)."""
    return len(LAYOUTS[_check_layout(layout)])


def align_corners_for(layout: str) -> bool:
    """``False`` for images (pixel-centre coordinates), ``True`` for tri-planes and video."""
    return _check_layout(layout) != "plane"


def embedding_channels(channels: int, layout: str, *, aggregate: str = "sum") -> int:
    """Channels of one scale's PE: C for ``sum`` (and for ``plane``), P·C for ``concat``, 4·C for
    ``concat_prod`` (``xyt`` only)."""
    _check_aggregate(aggregate, layout)
    if aggregate == "sum":
        return channels
    return channels * (num_planes(layout) + (aggregate == "concat_prod"))


def _plane_axis_index(layout: str) -> list[int]:
    """Flat list [a₀, b₀, a₁, b₁, …]: coordinate index of each plane's (width, height) axes."""
    axes = AXES[layout]
    return [axes.index(letter) for plane in LAYOUTS[layout] for letter in plane]


def _check_aggregate(aggregate: str, layout: str | None = None) -> str:
    if aggregate not in AGGREGATES:
        raise DDMIError(f"aggregate={aggregate!r} is not one of {list(AGGREGATES)}")
    if aggregate == "concat_prod" and layout is not None and layout != "xyt":
        raise DDMIError(f"aggregate='concat_prod' multiplies the time planes xt and yt, so it needs layout='xyt', "
                        f"got layout={layout!r}")
    return aggregate


def _aggregate(samples: torch.Tensor, aggregate: str) -> torch.Tensor:
    """Plane samples ``[B, P, C, N]`` → one scale's embedding ``[B, N, C']`` (module docstring's ⊕)."""
    if aggregate == "sum":
        summed = samples[:, 0] if samples.shape[1] == 1 else samples.sum(dim=1)  # Σ_planes, [B, C, N]
        return summed.transpose(1, 2)  # [B, N, C], a view: no transposed copy before the readout
    if aggregate == "concat_prod":  # time planes xt ⊙ yt appended as a fourth block
        samples = torch.cat([samples, (samples[:, 1] * samples[:, 2])[:, None]], dim=1)  # [B, P+1, C, N]
    return rearrange(samples, "b p c n -> b n (p c)")  # [B, N, P*C] (or (P+1)*C)


# --------------------------------------------------------------------------- validation


def _check_coords(coords: torch.Tensor, layout: str) -> None:
    if not isinstance(coords, torch.Tensor):
        raise DDMIError(f"coords must be a torch.Tensor of shape [B, N, D], got {type(coords).__name__}")
    d = coord_dim(layout)
    if coords.dim() != 3 or coords.shape[-1] != d:
        raise DDMIError(
            f"coords must have shape [B, N, {d}] ({', '.join(AXES[layout])}) for layout={layout!r}, "
            f"got {tuple(coords.shape)}"
        )
    if not coords.is_floating_point():
        raise DDMIError(f"coords must be a floating-point tensor, got dtype {coords.dtype}")
    if not bool(torch.isfinite(coords).all()):
        raise DDMIError("coords contain NaN or inf; coordinates must be finite values in [-1, 1]")


def _check_field(field: torch.Tensor, coords: torch.Tensor, layout: str, *, name: str = "field") -> None:
    if not isinstance(field, torch.Tensor):
        raise DDMIError(f"{name} must be a torch.Tensor [B, P, C, H, W], got {type(field).__name__}")
    p = num_planes(layout)
    if field.dim() != 5:
        raise DDMIError(f"{name} must be 5-D [B, P={p}, C, H, W] for layout={layout!r}, got {tuple(field.shape)}")
    if field.shape[1] != p:
        raise DDMIError(
            f"{name} has P={field.shape[1]} planes but layout={layout!r} has {p} {LAYOUTS[layout]}; "
            f"expected [B, {p}, C, H, W], got {tuple(field.shape)}"
        )
    if not field.is_floating_point():
        raise DDMIError(f"{name} must be a floating-point tensor, got dtype {field.dtype}")
    if min(field.shape[2:]) < 1:
        raise DDMIError(f"{name} has an empty dimension: {tuple(field.shape)}")
    if coords.shape[0] not in (1, field.shape[0]):
        raise DDMIError(
            f"batch sizes differ: {name} has B={field.shape[0]}, coords has B={coords.shape[0]} "
            "(coords may also have B=1 to share one set of coordinates)"
        )
    if field.device != coords.device:
        raise DDMIError(f"{name} is on {field.device} but coords are on {coords.device}; put both on one device")


# --------------------------------------------------------------------------- querying


def project(coords: torch.Tensor, layout: str) -> torch.Tensor:
    """Project ``[B, N, D]`` coordinates onto the planes: ``[B, P, N, 2]`` (width, height) per plane.

    Plane ``ab`` receives (c_a, c_b), e.g. ``triplane`` → ((x, y), (y, z), (x, z)) and ``xyt`` →
    ((x, y), (x, t), (y, t)). No clamping happens here.
    """
    _check_coords(coords, layout)
    return _project(coords, layout)


def _project(coords: torch.Tensor, layout: str) -> torch.Tensor:
    picked = coords[..., _plane_axis_index(layout)]  # [B, N, P*2]
    return rearrange(picked, "b n (p two) -> b p n two", two=2)  # [B, P, N, 2]


def _sample(field: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """One ``grid_sample`` call with the planes folded into the batch: ``[B, P, C, N]`` (a view)."""
    b, p = field.shape[:2]
    if grid.shape[0] != b:  # coords shared by the batch (B=1)
        grid = grid.expand(b, *grid.shape[1:])
    planes = rearrange(field, "b p c h w -> (b p) c h w")  # [B*P, C, H, W]
    grid = rearrange(grid.to(field.dtype), "b p n two -> (b p) 1 n two")  # [B*P, 1, N, 2]
    out = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=align_corners)
    return rearrange(out, "(b p) c 1 n -> b p c n", b=b, p=p)  # [B, P, C, N]


def _embed_fused(field: torch.Tensor, grid: torch.Tensor, align_corners: bool, aggregate: str) -> torch.Tensor:
    """One scale's embedding from one ``grid_sample`` call over all planes: ``[B, N, C']``.

    The plane sum is taken in the ``[B, P, C, N]`` layout that ``grid_sample`` returns (a reduction
    over the outermost axis; nothing to add when P = 1), and the result is returned as a
    ``[B, N, C]`` view, so no transposed copy is made before the readout.
    """
    return _aggregate(_sample(field, grid, align_corners), aggregate)  # [B, P, C, N] → [B, N, C']


_FUSED_DEFAULT = [True]


@contextlib.contextmanager
def per_plane_queries():
    """Within the block, :func:`query_fields` defaults to ``fused=False`` (for benchmarks)."""
    _FUSED_DEFAULT[0] = False
    try:
        yield
    finally:
        _FUSED_DEFAULT[0] = True


def _sample_per_plane(field: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Reference path of :func:`_sample`: one ``grid_sample`` call per plane, ``[B, P, N, C]``.

    Same values as the fused call; kept so benchmarks can time the fused call against it.
    """
    b = field.shape[0]
    if grid.shape[0] != b:
        grid = grid.expand(b, *grid.shape[1:])
    grid = grid.to(field.dtype)
    per_plane = [F.grid_sample(field[:, k], grid[:, k, None], mode="bilinear", padding_mode="border",
                               align_corners=align_corners)  # [B, C, 1, N]
                 for k in range(field.shape[1])]
    return rearrange(torch.stack(per_plane, dim=1), "b p c 1 n -> b p n c")  # [B, P, N, C]


def query_plane_fields(field: torch.Tensor, coords: torch.Tensor, layout: str) -> torch.Tensor:
    """Bilinear samples of one scale on each plane: ``[B, P, C, H, W]`` × ``[B, N, D]`` → ``[B, P, N, C]``.

    Coordinates outside ``[-1, 1]`` are clamped (border padding: the value there is the border
    value). ``coords`` may have B=1 to share one coordinate set across the batch.
    """
    _check_coords(coords, layout)
    _check_field(field, coords, layout)
    grid = _project(coords.clamp(-1.0, 1.0), layout)  # [B, P, N, 2]
    return rearrange(_sample(field, grid, align_corners_for(layout)), "b p c n -> b p n c")  # [B, P, N, C]


def _scale_weights(scale_mask, n_scales: int) -> list[float]:
    if scale_mask is None:
        return [1.0] * n_scales
    if isinstance(scale_mask, torch.Tensor):
        scale_mask = scale_mask.detach().flatten().tolist()
    if isinstance(scale_mask, (str, bytes)) or not isinstance(scale_mask, Sequence):
        raise DDMIError(f"scale_mask must be a sequence of {n_scales} bools or floats, got {scale_mask!r}")
    if len(scale_mask) != n_scales:
        raise DDMIError(f"scale_mask has {len(scale_mask)} entries but there are {n_scales} scales")
    try:
        weights = [float(w) for w in scale_mask]
    except (TypeError, ValueError) as err:
        raise DDMIError(f"scale_mask must hold bools or floats, got {scale_mask!r}") from err
    if not all(math.isfinite(w) for w in weights):
        raise DDMIError(f"scale_mask must hold finite values, got {scale_mask!r}")
    return weights


def query_fields(
    fields: Sequence[torch.Tensor],
    coords: torch.Tensor,
    layout: str,
    *,
    aggregate: str = "sum",
    scale_mask: Sequence[bool | float] | torch.Tensor | None = None,
    fused: bool | None = None,
) -> list[torch.Tensor]:
    """Positional embeddings pˡ(c) of every scale: a list (coarse first) of ``[B, N, C']``.

    pˡ(c) = ⊕_planes bilinear(Ξˡ_plane, proj_plane(c)), with ⊕ = ``"sum"`` (C' = C, shapes),
    ``"concat"`` (C' = P·C in plane order, NeRF) or ``"concat_prod"`` (``xyt`` only: the concatenation
    and Ξ_xt ⊙ Ξ_yt, C' = 4·C, video); for ``plane`` sum and concat both give C.
    ``scale_mask`` (one bool/float per scale) multiplies each scale's embedding: 0 switches a
    scale off (exact zeros, nothing is sampled), 1 leaves it untouched.
    ``fused=True`` (the default) samples all planes of a scale in one ``grid_sample`` call (planes
    folded into the batch) and sums them in the layout it returns; ``False`` makes one call per
    plane and sums after a transpose (the slower reference path; same values up to rounding).
    """
    _check_layout(layout)
    _check_aggregate(aggregate, layout)
    if isinstance(fields, torch.Tensor) or not isinstance(fields, Sequence) or len(fields) == 0:
        raise DDMIError("fields must be a non-empty list over scales (coarse first) of [B, P, C, H, W] tensors")
    _check_coords(coords, layout)
    for i, field in enumerate(fields):
        _check_field(field, coords, layout, name=f"fields[{i}]")
    if len({f.shape[0] for f in fields}) != 1:
        raise DDMIError(f"fields disagree on the batch size: {[tuple(f.shape) for f in fields]}")
    weights = _scale_weights(scale_mask, len(fields))

    b, n = fields[0].shape[0], coords.shape[1]
    grid = _project(coords.clamp(-1.0, 1.0), layout)  # [B, P, N, 2]
    align_corners = align_corners_for(layout)
    embeddings = []
    for field, weight in zip(fields, weights):
        c_out = embedding_channels(field.shape[2], layout, aggregate=aggregate)
        if weight == 0.0:  # switched off: no sampling needed
            embeddings.append(field.new_zeros(b, n, c_out))
            continue
        if _FUSED_DEFAULT[0] if fused is None else fused:
            emb = _embed_fused(field, grid, align_corners, aggregate)  # [B, N, C']
            embeddings.append(emb if weight == 1.0 else emb * weight)
            continue
        samples = _sample_per_plane(field, grid, align_corners)  # [B, P, N, C]
        # the sum after the transpose (the slower order); concatenations as in the fused path
        emb = samples.sum(dim=1) if aggregate == "sum" else _aggregate(samples.transpose(2, 3), aggregate)
        embeddings.append(emb if weight == 1.0 else emb * weight)
    return embeddings


# --------------------------------------------------------------------------- coordinate grids


def _check_size(n, name: str) -> int:
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError as err:
        raise DDMIError(f"{name} must be a positive int, got {n!r}") from err
    if n < 1:
        raise DDMIError(f"{name} must be a positive int, got {n}")
    return n


def pixel_centers(n: int, *, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres of n pixels spanning [-1, 1]: ``linspace(-(n-1)/n, (n-1)/n, n)`` = (2i+1)/n − 1."""
    n = _check_size(n, "n")
    i = torch.arange(n, dtype=torch.float64, device=device)
    return ((2.0 * i + 1.0) / n - 1.0).to(dtype)  # computed in float64, then rounded once


def image_coords(
    height: int, width: int | None = None, *, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel-centre (x, y) coordinates of an H×W image: ``[H*W, 2]``, row-major (y outer, x inner).

    At the field's own resolution, ``query_fields`` with ``layout="plane"`` returns the texels.
    Add a batch axis with ``coords[None]``.
    """
    height = _check_size(height, "height")
    width = height if width is None else _check_size(width, "width")
    ys = pixel_centers(height, device=device, dtype=dtype)  # [H]
    xs = pixel_centers(width, device=device, dtype=dtype)  # [W]
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    return rearrange(torch.stack([xx, yy], dim=-1), "h w two -> (h w) two")  # [H*W, 2]


def grid_coords(*sizes: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Corner-aligned grid, ``linspace(-1, 1, n)`` per axis: ``[prod(sizes), len(sizes)]``.

    Columns follow the order of ``sizes`` (e.g. ``grid_coords(X, Y, Z)`` → (x, y, z)); the first
    axis varies slowest. An axis of size 1 sits at 0 (the centre).
    """
    if not sizes:
        raise DDMIError("grid_coords needs at least one size, e.g. grid_coords(32, 32, 32)")
    axes = []
    for k, n in enumerate(sizes):
        n = _check_size(n, f"sizes[{k}]")
        axes.append(torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) if n > 1
                    else torch.zeros(1, device=device, dtype=dtype))
    mesh = torch.meshgrid(*axes, indexing="ij")  # len(sizes) × [n0, n1, ...]
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)  # [prod(sizes), len(sizes)]


# --------------------------------------------------------------------------- visualisation


@torch.no_grad()
def fields_to_rgb(field: torch.Tensor) -> torch.Tensor:
    """Visualise a ``[C, H, W]`` field as ``[H, W, 3]`` in [0, 1]: its top-3 principal components.

    Features are centred over pixels, projected on the 3 leading eigenvectors of their C×C
    covariance, and each component is min–max scaled to [0, 1] (a constant one gives 0.5).
    Sign convention: each eigenvector's entry of largest magnitude is positive. With C < 3 the
    missing components are 0.5.
    """
    if not isinstance(field, torch.Tensor) or field.dim() != 3:
        shape = tuple(field.shape) if isinstance(field, torch.Tensor) else type(field).__name__
        raise DDMIError(f"field must be a [C, H, W] tensor (one plane of one scale), got {shape}")
    if not bool(torch.isfinite(field).all()):
        raise DDMIError("field contains NaN or inf")
    c, h, w = field.shape
    feats = rearrange(field.detach().to(torch.float64), "c h w -> (h w) c")  # [H*W, C]
    feats = feats - feats.mean(dim=0, keepdim=True)
    cov = feats.T @ feats / max(h * w - 1, 1)  # [C, C]
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues; columns are eigenvectors
    k = min(3, c)
    vecs = vecs[:, -k:].flip(-1)  # [C, k], leading component first
    pivot = vecs.abs().argmax(dim=0)  # [k]
    signs = torch.sign(vecs[pivot, torch.arange(k, device=vecs.device)])
    vecs = vecs * torch.where(signs == 0, torch.ones_like(signs), signs)
    comps = feats @ vecs  # [H*W, k]
    lo, hi = comps.min(dim=0).values, comps.max(dim=0).values
    span = hi - lo
    flat = span <= 1e-12 * torch.clamp(comps.abs().max(), min=1.0)
    scaled = torch.where(flat, torch.full_like(comps, 0.5), (comps - lo) / torch.where(flat, 1.0, span))
    if k < 3:
        scaled = torch.cat([scaled, scaled.new_full((h * w, 3 - k), 0.5)], dim=1)  # [H*W, 3]
    return rearrange(scaled, "(h w) k -> h w k", h=h).to(torch.float32).clamp(0.0, 1.0)  # [H, W, 3]


# --------------------------------------------------------------------------- fields vs fixed encodings


@dataclass
class FieldFitConfig:
    """One image fitted by one MLP over a fixed Fourier encoding or over a learnable grid (notebook 01).

    Both fits use the same MLP (``hidden`` wide, two hidden layers), Adam at ``lr`` for ``steps``
    steps on every pixel; the grid's side is chosen so both models have the same parameter count.
    ``cpu``: one 64² emoji, 500 steps, 3 seeds, ≈ 40 s on two busy cores.
    """

    emoji: str = "1F984"      # which training emoji (its code points): the unicorn, edges and colour gradients
    resolution: int = 64      # emoji side (an allowed emoji size: 32, 48, 64, 128)
    hidden: int = 64          # MLP width, shared by both fits
    n_freqs: int = 6          # Fourier octaves 2⁰π … 2⁵π: up to the Nyquist frequency of 64 pixels
    grid_channels: int = 4    # C of the learnable field [1, 1, C, G, G]
    steps: int = 500
    lr: float = 5e-3
    seeds: int = 3
    eval_every: int = 25      # PSNR curve resolution (steps)


FIELD_FIT_PRESETS = {
    "smoke": dict(resolution=32, steps=60, seeds=1, eval_every=10),
    "gpu": dict(steps=2000, seeds=5, eval_every=50),
}


def field_fit_config(profile: str = "cpu", **overrides) -> FieldFitConfig:
    """The preset of :class:`FieldFitConfig` for ``profile`` (:mod:`ddmi_lite.presets`), with ``overrides``."""
    return preset(FieldFitConfig, profile, FIELD_FIT_PRESETS, **overrides)
