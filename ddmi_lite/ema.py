"""Exponential moving average of a model's weights (DDMI §3.3 keeps one of the denoiser's).

The official code updates it once per optimiser step, not per micro-batch; so does
:func:`ddmi_lite.train.train`.
"""

from __future__ import annotations

import copy

import torch

from ddmi_lite.checkpoint import unwrap_model
from ddmi_lite.errors import DDMIError


class EMA:
    """Exponential moving average of a model's parameters; buffers are copied.

    shadow <- decay * shadow + (1 - decay) * param, once per optimiser step; before
    ``start`` optimiser steps the shadow equals the weights. ``ema.model`` is an eval-mode copy.
    """

    def __init__(self, model: torch.nn.Module, *, decay: float = 0.999, start: int = 0):
        if not 0 <= decay < 1:
            raise DDMIError(f"EMA decay={decay!r} must be in [0, 1)")
        self.decay, self.start, self.num_updates = float(decay), int(start), 0
        self.model = copy.deepcopy(unwrap_model(model)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
            p.grad = None

    @torch.no_grad()
    def update(self, model: torch.nn.Module, *, step: int | None = None) -> None:
        """Fold the current weights of ``model`` in; ``step`` = optimiser steps done so far."""
        self.num_updates += 1
        step = self.num_updates if step is None else step
        w = 1.0 if step <= self.start else 1.0 - self.decay
        source = unwrap_model(model)
        for s, p in zip(self.model.parameters(), source.parameters()):
            s.lerp_(p.detach().to(s.dtype), w)  # s + w (p - s) = decay * s + (1 - decay) * p
        for s, b in zip(self.model.buffers(), source.buffers()):
            s.copy_(b)

    def state_dict(self) -> dict:
        return {"shadow": self.model.state_dict(), "decay": self.decay, "start": self.start,
                "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        own = self.model.state_dict()
        shadow = state["shadow"]
        bad = sorted(set(own) ^ set(shadow)) + sorted(
            k for k in set(own) & set(shadow) if own[k].shape != shadow[k].shape)
        if bad:
            raise DDMIError(f"EMA state does not match the model: {bad[:10]}")
        self.model.load_state_dict(shadow)
        self.decay, self.start = float(state["decay"]), int(state["start"])
        self.num_updates = int(state["num_updates"])
