"""Point-cloud encoder: PointNet with local pooling, scatter-mean onto the three planes (DDMI §3.1,
ddmi_method.md §1.3 "Shape: LocalPoolPointnet", after ConvONet, Peng et al. 2020).

A noisy surface point cloud ``p [B, N, 3]`` (coordinates in [-1, 1]) becomes three feature planes
``[B, P=3, C, R, R]`` in the canonical tri-plane order (xy, yz, xz) of :mod:`ddmi_lite.fields`:

    h⁰ = W_pos p                                            per-point embedding
    hᵏ = RB_k([hᵏ⁻¹, Σ_planes maxpool_cell(hᵏ⁻¹)])          local pooling between blocks
    Π_ab[cell] = mean_{i : cell_ab(pᵢ) = cell} W_c hᴷᵢ      scatter-mean onto plane ab

The cell of a point on plane ``ab`` is the texel nearest to its projection (c_a, c_b) under the
``align_corners=True`` convention the tri-plane fields are queried with, so the planes the
encoder sees and the fields the decoder emits share one geometry: row = height axis b,
column = width axis a, ``index = round((c + 1)/2 · (R − 1))`` and flat cell = row·R + column.
(ConvONet bins ``p/1.1 + 0.5`` into R cells instead, the align_corners=False geometry.)
Empty cells are 0. Pure PyTorch (``index_add_`` / ``scatter_reduce``), no compiled extension.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from ddmi_lite import fields as F_fields
from ddmi_lite.errors import DDMIError
from ddmi_lite.readout import ResBlockFC


def plane_cell_index(points: torch.Tensor, resolution: int, *, layout: str = "triplane") -> torch.Tensor:
    """Flat cell index of every point on every plane: ``[B, N, D]`` → long ``[B, P, N]`` in [0, R²).

    index = round((c_b + 1)/2 · (R − 1))·R + round((c_a + 1)/2 · (R − 1)) for plane ``ab``
    (row from the height axis b, column from the width axis a); coordinates are clamped to [-1, 1].
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise DDMIError(f"resolution={resolution!r} must be a positive int")
    uv = F_fields.project(points, layout).clamp(-1.0, 1.0)  # [B, P, N, 2] (width, height)
    ij = torch.round((uv + 1.0) * 0.5 * (resolution - 1)).long()  # [B, P, N, 2] texel (column, row)
    return ij[..., 1] * resolution + ij[..., 0]  # [B, P, N]


def _flat_index(index: torch.Tensor, resolution: int) -> torch.Tensor:
    """Offset each (batch, plane) block so all cells of all planes share one axis: [B·P·N]."""
    b, p, _ = index.shape
    offset = torch.arange(b * p, device=index.device).reshape(b, p, 1) * resolution * resolution
    return (index + offset).reshape(-1)  # [B*P*N]


def scatter_mean_planes(feats: torch.Tensor, index: torch.Tensor, resolution: int) -> torch.Tensor:
    """Mean of the point features falling in each cell: ``[B, N, C]``, ``[B, P, N]`` → ``[B, P, C, R, R]``.

    Π[b, p, :, cell] = Σ_{i: index[b,p,i] = cell} feats[b, i] / |{i}|, and 0 for empty cells.
    """
    b, n, c = feats.shape
    if index.ndim != 3 or index.shape[0] != b or index.shape[2] != n:
        raise DDMIError(f"index must be [B={b}, P, N={n}], got {tuple(index.shape)}")
    p, cells = index.shape[1], resolution * resolution
    flat = _flat_index(index, resolution)  # [B*P*N]
    src = rearrange(feats[:, None].expand(b, p, n, c), "b p n c -> (b p n) c")  # [B*P*N, C]
    sums = feats.new_zeros(b * p * cells, c).index_add_(0, flat, src)  # [B*P*R², C]
    counts = feats.new_zeros(b * p * cells).index_add_(0, flat, feats.new_ones(flat.shape[0]))  # [B*P*R²]
    mean = sums / counts.clamp_min(1.0)[:, None]
    return rearrange(mean, "(b p h w) c -> b p c h w", b=b, p=p, h=resolution, w=resolution)


def local_max_pool(feats: torch.Tensor, index: torch.Tensor, resolution: int) -> torch.Tensor:
    """Max of the features in each point's cell, summed over the planes: ``[B, N, C]`` → ``[B, N, C]``.

    pooledᵢ = Σ_planes max_{j: cell(pⱼ) = cell(pᵢ)} feats_j (ConvONet's ``pool_local``).
    """
    b, n, c = feats.shape
    p, cells = index.shape[1], resolution * resolution
    flat = _flat_index(index, resolution)  # [B*P*N]
    src = rearrange(feats[:, None].expand(b, p, n, c), "b p n c -> (b p n) c")  # [B*P*N, C]
    table = feats.new_zeros(b * p * cells, c).scatter_reduce(
        0, flat[:, None].expand(-1, c), src, reduce="amax", include_self=False)  # [B*P*R², C]
    gathered = rearrange(table[flat], "(b p n) c -> b p n c", b=b, p=p)  # every point's cell maximum
    return gathered.sum(dim=1)  # [B, N, C]


class LocalPoolPointNet(nn.Module):
    """Surface points ``[B, N, 3]`` in [-1, 1] → feature planes ``[B, 3, c_dim, R, R]`` (xy, yz, xz).

    ``features > 0``: each point also carries that many per-point values after its coordinates,
    ``[B, N, 3 + features]`` (NeRF: xyz + rgb, reference ``dim: 6``); they enter ``fc_pos`` only,
    the cells come from the coordinates.

    Reference: fc_pos dim→2·hidden, ``n_blocks`` ResnetBlockFC(2·hidden→hidden) with local max
    pooling concatenated between blocks, fc_c hidden→c_dim, scatter-mean onto 64² planes
    (hidden 256, 7 blocks, c_dim 32).
    """

    def __init__(self, *, dim: int = 3, hidden: int = 64, c_dim: int = 32, n_blocks: int = 4,
                 resolution: int = 32, layout: str = "triplane", features: int = 0):
        super().__init__()
        if n_blocks < 1:
            raise DDMIError(f"n_blocks={n_blocks} must be >= 1")
        if F_fields.coord_dim(layout) != dim:
            raise DDMIError(f"dim={dim} does not match layout={layout!r} ({F_fields.coord_dim(layout)} coordinates)")
        if isinstance(features, bool) or not isinstance(features, int) or features < 0:
            raise DDMIError(f"features={features!r} must be an int >= 0 (extra values per point)")
        self.dim, self.resolution, self.layout, self.c_dim = dim, int(resolution), layout, c_dim
        self.features = features
        self.fc_pos = nn.Linear(dim + features, 2 * hidden)
        self.blocks = nn.ModuleList(ResBlockFC(2 * hidden, hidden, act="relu") for _ in range(n_blocks))
        self.fc_c = nn.Linear(hidden, c_dim)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        width = self.dim + self.features
        if points.ndim != 3 or points.shape[-1] != width:
            raise DDMIError(f"points must be [B, N, {width}] (coordinates in [-1, 1] first), got {tuple(points.shape)}")
        index = plane_cell_index(points[..., :self.dim], self.resolution, layout=self.layout)  # [B, P, N]
        h = self.blocks[0](self.fc_pos(points))  # [B, N, hidden]
        for block in self.blocks[1:]:
            pooled = local_max_pool(h, index, self.resolution)  # [B, N, hidden]
            h = block(torch.cat([h, pooled], dim=-1))  # [B, N, 2·hidden] → [B, N, hidden]
        return scatter_mean_planes(self.fc_c(h), index, self.resolution)  # [B, P, c_dim, R, R]


__all__ = ["LocalPoolPointNet", "plane_cell_index", "scatter_mean_planes", "local_max_pool"]
