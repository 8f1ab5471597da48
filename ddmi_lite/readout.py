"""The shared MLP readout with coarse-to-fine conditioning (CFC) — DDMI §3.3, ddmi_method.md §1.6.

One small MLP, shared by every sample, maps the multi-scale positional embeddings
``p¹(c), p²(c), p³(c)`` (coarse → fine) of a coordinate ``c`` to the signal value ω̂(c).

CFC wiring (``mode="cfc"``, the paper's; 4 blocks and a linear head)::

    h₁ = RB₁([p¹, s])            the coarse embedding alone enters block 1
    h₂ = RB₂([h₁, p², s])        the mid embedding is *concatenated* before block 2
    h₃ = RB₃([h₂, p³, s])        the fine embedding is concatenated before block 3
    h₄ = RB₄(h₃);   ω̂ = W h₄ + b

Ablation variants behind the same ``mode=`` switch:

* ``concat_input``: ``h₁ = RB₁([p¹, p², p³, s])`` — every scale at the input.
* ``sum``: ``h₁ = RB₁([p¹ + p² + p³, s])`` — scales summed (needs equal widths).
* ``single_scale``: ``h₁ = RB₁([p_L, s])`` — only the finest embedding.

``s`` is the optional render-scale conditioning of images (reference §1.6): the scale
``si = train_res / render_res`` is appended as constant channels and, through a sinusoidal
embedding and a small MLP, modulates every block (a FiLM scale/shift), so a model trained at 32²
can be rendered at 64² or 128². For shapes the raw coordinate is added after block 1
(``coord_dim=3``, reference ``MLP3D``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddmi_lite.errors import DDMIError

MODES = ("cfc", "concat_input", "sum", "single_scale")


class ResBlockFC(nn.Module):
    """Pre-activation residual MLP block: ``x + W₁ σ(W₀ σ(x))`` (ConvONet ResnetBlockFC)."""

    def __init__(self, in_dim: int, out_dim: int, *, hidden: int | None = None, act: str = "silu"):
        super().__init__()
        hidden = hidden or min(in_dim, out_dim)
        self.fc0 = nn.Linear(in_dim, hidden)
        self.fc1 = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.fc1.weight)  # each block starts as (a projection of) the identity
        self.shortcut = nn.Linear(in_dim, out_dim, bias=False) if in_dim != out_dim else nn.Identity()
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.fc1(self.act(self.fc0(self.act(x))))


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: ``silu``, ``relu``, ``gelu`` or ``leaky_relu`` (slope 0.2)."""
    acts = {"silu": nn.SiLU(), "relu": nn.ReLU(), "gelu": nn.GELU(), "leaky_relu": nn.LeakyReLU(0.2)}
    if name not in acts:
        raise DDMIError(f"act={name!r} is not one of {tuple(acts)}")
    return acts[name]


def sinusoidal_embedding(x: torch.Tensor, dim: int, *, max_period: float = 1e4,
                         formula: str = "readout") -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017 §3.5) of ``x`` [B] → [B, dim], zero-padded when ``dim`` is odd.

    With ``half = dim // 2`` and ``P = max_period``, one of two formulas (both kept bit-exact, as
    trained weights depend on them):

    * ``"readout"`` (the render-scale conditioning of :class:`CFCReadout`):
      ``[sin(x·f_k), cos(x·f_k)]``, ``f_k = P^(−k/(half − 1))``, so the last frequency is 1/P;
    * ``"adm"`` (the UNet's timesteps, ADM's ``timestep_embedding``):
      ``[cos(x·ω_k), sin(x·ω_k)]``, ``ω_k = P^(−k/half)``.
    """
    if formula not in ("readout", "adm"):
        raise DDMIError(f"formula={formula!r} is not one of ('readout', 'adm')")
    half = dim // 2
    k = torch.arange(half, device=x.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / (half if formula == "adm" else max(half - 1, 1)))  # [half]
    args = x.float()[:, None] * freqs[None]  # [B, half]
    pair = (args.cos(), args.sin()) if formula == "adm" else (args.sin(), args.cos())
    return F.pad(torch.cat(pair, dim=-1), (0, dim % 2))  # [B, dim]


class CFCReadout(nn.Module):
    """Shared MLP mapping multi-scale embeddings ``[B,N,C_l]`` (coarse first) to ``[B,N,out_dim]``."""

    def __init__(
        self,
        pe_dims: Sequence[int],
        *,
        hidden: int = 256,        # width of every block (reference: 256)
        out_dim: int = 3,         # 3 for RGB, 1 for an occupancy logit
        mode: str = "cfc",        # one of MODES
        n_blocks: int = 4,        # reference: 4 blocks
        coord_dim: int = 0,       # >0: raw coordinates added after block 1 (shapes)
        scale_cond: bool = False, # images: condition on the render scale si
        act: str = "silu",
    ):
        super().__init__()
        if mode not in MODES:
            raise DDMIError(f"mode={mode!r} is not one of {MODES}")
        pe_dims = [int(c) for c in pe_dims]
        if not pe_dims:
            raise DDMIError("pe_dims must list at least one embedding width")
        if mode == "cfc" and n_blocks < len(pe_dims):
            raise DDMIError(f"mode='cfc' needs n_blocks >= number of scales ({len(pe_dims)}), got {n_blocks}")
        if mode == "sum" and len(set(pe_dims)) != 1:
            raise DDMIError(f"mode='sum' needs equal embedding widths, got pe_dims={pe_dims}")
        self.pe_dims, self.mode, self.hidden = pe_dims, mode, hidden
        self.coord_dim, self.scale_cond = coord_dim, scale_cond
        s = 2 if scale_cond else 0  # constant scale channels appended wherever an embedding enters

        in_dims = [hidden] * n_blocks
        if mode == "cfc":
            in_dims[0] = pe_dims[0] + s
            for l, c in enumerate(pe_dims[1:], start=1):
                in_dims[l] = hidden + c + s
        elif mode == "concat_input":
            in_dims[0] = sum(pe_dims) + s
        else:  # "sum" and "single_scale" feed one embedding of the finest width
            in_dims[0] = pe_dims[-1] + s
        self.blocks = nn.ModuleList(ResBlockFC(i, hidden, act=act) for i in in_dims)
        self.coord_proj = nn.Linear(coord_dim, hidden) if coord_dim else None
        if scale_cond:  # sinusoidal(si) → MLP → per-block (scale, shift)
            self.scale_mlp = nn.Sequential(
                nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, 2 * hidden * n_blocks)
            )
            nn.init.zeros_(self.scale_mlp[-1].weight)
            nn.init.zeros_(self.scale_mlp[-1].bias)
        self.act = activation(act)
        self.head = nn.Linear(hidden, out_dim)

    def forward(
        self,
        pes: Sequence[torch.Tensor],
        *,
        coords: torch.Tensor | None = None,
        scale: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """``pes``: list of ``[B,N,C_l]`` coarse→fine; ``coords`` ``[B,N,D]``; ``scale`` ``[B]`` or float."""
        pes = list(pes)
        if len(pes) != len(self.pe_dims) and not (self.mode == "single_scale" and len(pes) >= 1):
            raise DDMIError(f"expected {len(self.pe_dims)} embeddings (coarse→fine), got {len(pes)}")
        B, N = pes[0].shape[:2]
        extra, films = [], None
        if self.scale_cond:
            si = torch.as_tensor(1.0 if scale is None else scale, dtype=pes[0].dtype, device=pes[0].device)
            si = si.expand(B) if si.ndim == 0 else si  # [B]
            extra = [si[:, None, None].expand(B, N, 2)]  # 2 constant channels, as in the reference
            films = self.scale_mlp(sinusoidal_embedding(torch.log2(si) * 100.0, 64)).chunk(2 * len(self.blocks), -1)

        if self.mode == "cfc":
            inputs = [torch.cat([pes[0], *extra], -1)] + [None] * (len(self.blocks) - 1)
            for l in range(1, len(pes)):
                inputs[l] = pes[l]  # concatenated to the hidden state before block l+1
        elif self.mode == "concat_input":
            inputs = [torch.cat([*pes, *extra], -1)] + [None] * (len(self.blocks) - 1)
        elif self.mode == "sum":
            inputs = [torch.cat([torch.stack(pes).sum(0), *extra], -1)] + [None] * (len(self.blocks) - 1)
        else:
            inputs = [torch.cat([pes[-1], *extra], -1)] + [None] * (len(self.blocks) - 1)

        h = None
        for l, block in enumerate(self.blocks):
            if l == 0:
                h = block(inputs[0])  # [B,N,hidden]
                if self.coord_proj is not None:
                    if coords is None:
                        raise DDMIError(f"this readout adds raw coordinates (coord_dim={self.coord_dim}); pass coords=")
                    h = h + self.coord_proj(coords)
            else:
                x = h if inputs[l] is None else torch.cat([h, inputs[l], *extra], -1)  # CFC concat
                h = block(x)
            if films is not None:  # FiLM by the render scale: h·(1+γ_l) + β_l
                h = h * (1 + films[2 * l][:, None]) + films[2 * l + 1][:, None]
        return self.head(self.act(h))  # [B,N,out_dim]


def readout_block_inputs(readout: CFCReadout) -> list[int]:
    """Input width of every block (useful to display the wiring of each mode)."""
    return [b.fc0.in_features for b in readout.blocks]


__all__ = ["MODES", "CFCReadout", "ResBlockFC", "activation", "sinusoidal_embedding", "readout_block_inputs"]
