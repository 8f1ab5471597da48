"""Multi-process data-parallel training under ``torchrun`` (DDMI §3.2–3.3 at scale).

Both stages of DDMI are trained with mini-batch AdamW; data parallelism splits each batch over
``W`` processes. Every rank holds a full copy of the model, computes the gradient of its shard,
and ``DistributedDataParallel`` averages the gradients with an all-reduce before the optimiser
step:

    g = (1/W) Σ_r ∇ L_r(θ),     L_r = mean loss over rank r's shard of B samples

which, for losses that are means over samples, is the gradient of the mean loss over the
concatenated batch of ``W·B`` samples (the effective batch). Every rank then applies the same
AdamW update to the same parameters, so the replicas stay identical.

Launch (one node, N GPUs; NCCL on GPU, gloo on CPU)::

    torchrun --standalone --nproc_per_node=N your_script.py

``your_script.py`` calls :func:`init_distributed` once, then :func:`ddmi_lite.train.train` as
usual: the loop wraps the model in DDP, draws a different shard on every rank, and logs,
shows progress and checkpoints on rank 0 only. Without ``torchrun`` everything here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ddmi_lite.errors import DDMIError

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class DistInfo:
    rank: int                # global rank of this process
    world_size: int          # number of processes
    local_rank: int          # rank on this node (the GPU index)
    device: torch.device     # the device this rank trains on
    backend: str | None      # "nccl" / "gloo", or None for a single process


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_distributed(*, backend: str = "auto", timeout_s: float = 600.0) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, once.

    ``backend="auto"`` uses NCCL when CUDA is available, else gloo. Each rank pins
    ``cuda:LOCAL_RANK``. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing is initialised
    and the single-process info is returned.
    """
    if backend not in BACKENDS:
        raise DDMIError(f"backend={backend!r} is not one of {BACKENDS}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if backend == "nccl" and not cuda:
        raise DDMIError("backend='nccl' needs CUDA GPUs; use 'gloo' (or 'auto') on CPU")
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if world <= 1:
        return DistInfo(0, 1, 0, device, None)
    chosen = ("nccl" if cuda else "gloo") if backend == "auto" else backend
    if not dist.is_initialized():
        kw = {"device_id": device} if chosen == "nccl" else {}
        dist.init_process_group(backend=chosen, timeout=datetime.timedelta(seconds=timeout_s), **kw)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, chosen)


def cleanup() -> None:
    """Leave the process group (call at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (a copy); the value itself without a process group."""
    if not is_distributed():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true on at least one rank (so every rank takes the same branch)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def shard(tensor: torch.Tensor, *, rank: int | None = None, world_size: int | None = None) -> torch.Tensor:
    """Rank ``rank``'s contiguous part of ``tensor`` along dim 0 (equal parts; dim 0 divisible by W)."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    n = tensor.shape[0]
    if n % world_size:
        raise DDMIError(f"cannot shard {n} rows over world_size={world_size}: not divisible")
    per = n // world_size
    return tensor[rank * per:(rank + 1) * per]


__all__ = [
    "BACKENDS",
    "DistInfo",
    "all_reduce_mean",
    "any_rank",
    "barrier",
    "cleanup",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "shard",
]
