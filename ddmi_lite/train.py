"""One training loop for both DDMI stages (Sec. 3.2 D2C-VAE, Sec. 3.3 latent diffusion).

The paper trains the VAE and the latent diffusion model with AdamW, a linear warm-up and a
cosine decay, and keeps an exponential moving average (EMA) of the denoiser's weights, updated
once per optimiser step (not per micro-batch), as the official code does. Every domain reuses
this loop: it supplies ``batch_fn(step, generator) -> batch`` and
``loss_fn(model, batch, step) -> (loss, logs)``.

Exact resume without storing RNG state: at every step the batch generator is seeded from
``(seed, step)`` and the global torch RNG (dropout, noise levels, ...) from
``(seed, step, micro)`` before each ``loss_fn`` call, so the random stream depends only on the
step. Together with the bit-exact optimiser state of :mod:`ddmi_lite.checkpoint`, a run
interrupted at a checkpoint and resumed ends with the same parameters as an uninterrupted one.

Data parallel under ``torchrun`` (see :mod:`ddmi_lite.distributed`): inside an initialised
process group the loop wraps the model in ``DistributedDataParallel`` (gradient all-reduce on the
last micro-batch only), each rank draws its own shard — rank 0 the batch a single process would
draw, rank r > 0 one from its own seed ``(seed, step, RANK_KEY, r)`` — so the effective batch is
world_size × the per-rank batch; logging, progress bars and checkpoints happen on rank 0 only,
and every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ddmi_lite import distributed as D
from ddmi_lite.checkpoint import (
    checkpoint_exists,
    config_differences,
    load_checkpoint,
    load_training_state,
    save_training_state,
    unwrap_model,
)
from ddmi_lite.device import resolve_device
from ddmi_lite.ema import EMA
from ddmi_lite.errors import DDMIError, NonFiniteLossError

# keys whose change does not break a resume (extend a run, change logging / budget)
RESUME_IGNORED_KEYS = ("train.steps", "train.ckpt_every", "train.log_every", "train.max_time_s",
                       "train.compile", "train.channels_last")
RANK_KEY = 7919  # seed key that separates the random streams of ranks > 0


PRECISIONS = ("fp32", "bf16", "auto")


@dataclass
class TrainConfig:
    steps: int = 1000                      # optimiser steps in total: they decide the run
    batch_size: int = 32                   # examples per micro-batch (the domain's batch_fn draws them)
    lr: float = 1e-3                       # peak learning rate (AdamW)
    weight_decay: float = 0.0              # decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0                  # linear warm-up: lr * (s + 1) / warmup_steps
    schedule: str = "cosine"               # "cosine" | "constant" after warm-up
    min_lr_ratio: float = 0.05             # cosine ends at lr * min_lr_ratio
    grad_accum: int = 1                    # micro-batches per optimiser step
    grad_clip: float | None = 1.0          # max global gradient norm; None disables
    ema_decay: float | None = None         # EMA decay per optimiser step; None disables EMA
    ema_start: int = 0                     # before this step the EMA copies the weights
    ckpt_every: int = 0                    # checkpoint period in steps; 0: only at the end
    log_every: int = 0                     # history period in steps; 0: about 100 records per run
    seed: int = 0                          # the whole random stream derives from it
    max_time_s: float | None = None        # safety stop for one call (marks the run); None: none
    precision: str = "fp32"                # "fp32" | "bf16" | "auto" (bf16 on CUDA, fp32 on CPU)
    compile: bool = False                  # torch.compile the forward + loss (opt-in)
    channels_last: bool = False            # NHWC memory format for the model and 4-D batch tensors

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        checks = [
            ("steps", isinstance(self.steps, int) and self.steps >= 0, "an int >= 0"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an int >= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
             "two numbers in [0, 1)"),
            ("warmup_steps", isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
             "an int >= 0"),
            ("schedule", self.schedule in ("cosine", "constant"), "'cosine' or 'constant'"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
            ("grad_accum", isinstance(self.grad_accum, int) and self.grad_accum >= 1,
             "an int >= 1"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "None or > 0"),
            ("ema_decay", self.ema_decay is None or 0 <= self.ema_decay < 1, "None or in [0, 1)"),
            ("ema_start", isinstance(self.ema_start, int) and self.ema_start >= 0, "an int >= 0"),
            ("ckpt_every", isinstance(self.ckpt_every, int) and self.ckpt_every >= 0,
             "an int >= 0"),
            ("log_every", isinstance(self.log_every, int) and self.log_every >= 0, "an int >= 0"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "an int >= 0"),
            ("max_time_s", self.max_time_s is None or self.max_time_s > 0, "None or > 0"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("compile", isinstance(self.compile, bool), "True or False"),
            ("channels_last", isinstance(self.channels_last, bool), "True or False"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise DDMIError(f"TrainConfig.{name}={getattr(self, name)!r} must be {allowed}")


@dataclass
class TrainResult:
    history: list[dict]            # {"step", "loss", "lr", "time_s", **logs} every log_every
    steps_done: int                # optimiser steps completed (including resumed ones)
    wall_s: float                  # wall-clock seconds of this call
    resumed_from: int | None       # step of the checkpoint this call resumed from
    stopped_by_budget: bool        # True when max_time_s ended this call before cfg.steps
    ema: EMA | None = None       # the EMA (``ema.model`` for evaluation), if enabled
    total_time_s: float = 0.0      # training seconds summed over every resumed call

    def summary(self, ckpt_path=None) -> str:
        """One line for notebooks: a reused finished checkpoint, or what this call trained."""
        if self.resumed_from == self.steps_done:
            where = f" {ckpt_path}" if ckpt_path is not None else ""
            return f"reused the finished checkpoint{where} ({self.steps_done} steps, trained in {self.total_time_s:.0f} s)"
        return (f"trained {self.steps_done} steps in {self.total_time_s:.0f} s"
                + (" (STOPPED BY THE TIME BUDGET before its last step)" if self.stopped_by_budget else ""))


# ----------------------------------------------------------------------------- helpers
def is_main_process() -> bool:
    """Rank 0 of a ``torch.distributed`` job, or the only process."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def derive_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integer keys, e.g. ``(seed, step, micro)``."""
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` for the optimiser step with 0-based index ``step``.

    warm-up:  (s + 1) / W                                        for s < W
    cosine:   r + (1 - r) * (1 + cos(pi * t)) / 2,  t = (s - W) / (S - W - 1) in [0, 1]
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps - 1))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def move_to(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested dict / list / tuple) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _no_sync(model: torch.nn.Module, last_micro: bool):
    """Skip the DDP gradient all-reduce on every micro-batch but the last."""
    model = getattr(model, "_orig_mod", model)  # under torch.compile
    if not last_micro and isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` → ``"bf16"`` on CUDA, ``"fp32"`` elsewhere; other values are returned checked."""
    if precision not in PRECISIONS:
        raise DDMIError(f"precision={precision!r} is not one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device | str, precision: str = "auto"):
    """Context for training or sampling: bf16 autocast when ``precision`` resolves to bf16."""
    return _autocast(torch.device(device), resolve_precision(precision, device))


class _LossModule(torch.nn.Module):
    """``forward(batch, step) = loss_fn(model, batch, step)``: what DDP and torch.compile wrap.

    DDP synchronises gradients only for computations that go through its ``forward``; domain
    losses call methods such as ``model.loss``, so the whole loss is the forward here.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch, step: int):
        return self.loss_fn(self.model, batch, step)


def _channels_last(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: _channels_last(v) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_channels_last(v) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_channels_last(v) for v in batch)
    return batch


def _autocast(device: torch.device, precision: str):
    """bf16 autocast around the forward pass when asked for, else nothing."""
    if precision == "auto":
        precision = resolve_precision(precision, device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _non_finite(step: int, cfg: TrainConfig, what: str, last: float | None) -> NonFiniteLossError:
    last_text = f"{last:.6g}" if last is not None else "none (first step of this call)"
    err = NonFiniteLossError(
        f"{what} at step {step} (0-based, of {cfg.steps}); last finite loss: {last_text}. "
        f"The optimiser was not stepped with it. Try a lower lr (now {cfg.lr:g}), check the "
        f"inputs for NaN/inf, or enable gradient clipping (grad_clip={cfg.grad_clip}).")
    err.step = step
    return err


# ----------------------------------------------------------------------------- the loop
def train(model: torch.nn.Module, loss_fn: Callable, batch_fn: Callable, cfg: TrainConfig, *,
          device: str | torch.device = "cpu", ckpt_path=None, resume: bool = True,
          params: Iterable | None = None, progress: bool = True, desc: str = "train",
          callback: Callable[[dict], None] | None = None,
          run_config: dict | None = None) -> TrainResult:
    """Train ``model`` for ``cfg.steps`` AdamW steps; checkpoint and resume exactly.

    ``batch_fn(step, generator)`` is called ``cfg.grad_accum`` times per step with the same
    generator (seeded from ``(seed, step)``, advancing between calls); its tensors are moved to
    ``device``. ``loss_fn(model, batch, step)`` returns ``(loss, logs)``; each micro-loss is
    scaled by ``1 / grad_accum``. ``params``: parameters or param-group dicts to optimise
    (default: every parameter with ``requires_grad``). ``callback(record)`` gets the record of
    every step. ``run_config`` (e.g. the model's config) is stored with the checkpoint and must
    match on resume, as must ``cfg`` except steps / ckpt_every / log_every / max_time_s (a
    longer ``steps`` extends the run; the lr schedule then follows the new length).
    """
    if not isinstance(cfg, TrainConfig):
        raise DDMIError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    dev = resolve_device(device)
    model = unwrap_model(model)
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    rank, world = D.get_rank(), D.get_world_size()
    precision = resolve_precision(cfg.precision, dev)
    groups = list(params) if params is not None else [
        p for p in model.parameters() if p.requires_grad]
    if not groups:
        raise DDMIError("params: nothing to optimise (no parameter requires grad)")
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    for group in optimizer.param_groups:  # per-group peak lr; the schedule scales it
        group.setdefault("peak_lr", group["lr"])
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    ema = EMA(model, decay=cfg.ema_decay, start=cfg.ema_start) if cfg.ema_decay is not None \
        else None
    config = {"train": dataclasses.asdict(cfg), "run": run_config or {}}
    main = is_main_process()

    start, history, resumed_from, total_before = 0, [], None, 0.0
    if ckpt_path is not None and resume and checkpoint_exists(ckpt_path):
        state = load_training_state(ckpt_path, model=model, optimizer=optimizer, ema=ema,
                                    device=dev, config=config, ignore_keys=RESUME_IGNORED_KEYS)
        start = resumed_from = state["step"]
        extra = state["extra"] or {}
        history = list(extra.get("history", []))
        total_before = float(extra.get("total_time_s", 0.0))
        if main:
            print(f"[{desc}] resumed from {ckpt_path} at step {start}/{cfg.steps}")
        if start >= cfg.steps:
            return TrainResult(history, start, 0.0, resumed_from, False, ema, total_before)

    runner: torch.nn.Module = _LossModule(model, loss_fn)
    if world > 1:  # after loading: DDP broadcasts rank 0's (identical) weights
        runner = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True)
    if cfg.compile:
        runner = torch.compile(runner)

    def save(step: int, t_total: float) -> None:
        if ckpt_path is not None and main:
            save_training_state(ckpt_path, model=model, optimizer=optimizer, ema=ema, step=step,
                                config=config, extra={"history": history,
                                                      "total_time_s": t_total})
        if ckpt_path is not None:
            D.barrier()  # no rank reads a checkpoint that rank 0 is still writing

    log_every = cfg.log_every or max(cfg.steps // 100, 1)
    bar = tqdm(total=cfg.steps, initial=start, desc=desc, disable=not (progress and main),
               dynamic_ncols=True)
    t0 = time.perf_counter()
    last_loss: float | None = None
    done, stopped_by_budget = start, False
    model.train()
    try:
        for step in range(start, cfg.steps):
            shard_key = () if rank == 0 else (RANK_KEY, rank)  # rank 0 = the single-process stream
            generator = torch.Generator().manual_seed(derive_seed(cfg.seed, step, *shard_key))
            lr = cfg.lr * lr_factor(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"] * lr_factor(step, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss_sum, logs_sum = 0.0, {}
            for micro in range(cfg.grad_accum):
                batch = move_to(batch_fn(step, generator), dev)
                if cfg.channels_last:
                    batch = _channels_last(batch)
                torch.manual_seed(derive_seed(cfg.seed, step, micro, *shard_key))
                with _no_sync(runner, micro == cfg.grad_accum - 1):
                    with _autocast(dev, precision):
                        out = runner(batch, step)
                    if not (isinstance(out, tuple) and len(out) == 2):
                        raise DDMIError("loss_fn must return (loss_tensor, logs_dict), got "
                                        f"{type(out).__name__}")
                    loss, logs = out
                    # mean over ranks before the check, so every rank stops together
                    value = float(D.all_reduce_mean(loss.detach().float())) if world > 1 \
                        else float(loss.detach())
                    if not math.isfinite(value):
                        raise _non_finite(step, cfg, f"non-finite loss ({value})", last_loss)
                    (loss / cfg.grad_accum).backward()
                loss_sum += value / cfg.grad_accum
                for k, v in (logs or {}).items():
                    logs_sum[k] = logs_sum.get(k, 0.0) + float(v) / cfg.grad_accum
            if cfg.grad_clip is not None:
                norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip))
                if not math.isfinite(norm):
                    raise _non_finite(step, cfg, f"non-finite gradient norm ({norm})", last_loss)
                logs_sum.setdefault("grad_norm", norm)
            optimizer.step()
            done, last_loss = step + 1, loss_sum
            if ema is not None:
                ema.update(model, step=done)

            elapsed = time.perf_counter() - t0
            record = {"step": done, "loss": loss_sum, "lr": lr,
                      "time_s": total_before + elapsed, **logs_sum}
            out_of_time = cfg.max_time_s is not None and elapsed >= cfg.max_time_s \
                and done < cfg.steps
            if world > 1 and cfg.max_time_s is not None:  # all ranks stop at the same step
                out_of_time = D.any_rank(out_of_time, dev)
            if done % log_every == 0 or done == cfg.steps or out_of_time:
                history.append(record)
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()
                                 if k not in ("step", "time_s")}, refresh=False)
            bar.update(1)
            if cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < cfg.steps:
                save(done, total_before + elapsed)
            if callback is not None:
                callback(record)
            if out_of_time:
                stopped_by_budget = True
                if main:
                    bar.write(f"[{desc}] stopped early at step {done}/{cfg.steps}: "
                              f"max_time_s={cfg.max_time_s:g} s spent")
                break
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    save(done, total_before + wall)
    return TrainResult(history, done, wall, resumed_from, stopped_by_budget, ema, total_before + wall)


def model_settings(cfg) -> dict:
    """A stage config as a dict without its ``train`` field: what defines the model and its data.

    :func:`load_or_train` stores it as ``run_config`` (the training config is stored on its own),
    so a checkpoint of another model is never resumed.
    """
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "train"}


def data_entry(data_id: str | None) -> dict:
    """``{"data": data_id}`` for a ``run_config`` when training on a user's data set (its digest,
    :func:`ddmi_lite.io.tensor_digest`), ``{}`` for the bundled data, whose runs stay keyed as before."""
    if data_id is None:
        return {}
    if not isinstance(data_id, str) or not data_id:
        raise DDMIError(f"data_id={data_id!r} must be None or a non-empty string")
    return {"data": data_id}


def load_or_train(model: torch.nn.Module, loss_fn: Callable, batch_fn: Callable, cfg: TrainConfig, *,
                  ckpt_path, run_config: dict | None = None, device: str | torch.device = "cpu",
                  params: Iterable | None = None, progress: bool = True, desc: str = "train",
                  callback: Callable[[dict], None] | None = None) -> TrainResult:
    """The one resume policy of every stage: train ``model`` to ``cfg.steps``, reusing ``ckpt_path``.

    * no checkpoint: train from step 0;
    * a checkpoint written for another model or data (its stored training config or
      ``run_config`` differ outside :data:`RESUME_IGNORED_KEYS`): train afresh, and say so;
    * otherwise: resume it up to ``cfg.steps``; a finished one is reused as is
      (``result.resumed_from == result.steps_done``).

    Steps decide the run, so the same seed gives the same weights on any machine.
    ``cfg.max_time_s`` is only a safety stop for this call: a run it ends is marked
    (``result.stopped_by_budget``) and the next call resumes it to ``cfg.steps``.
    """
    if cfg.ckpt_every == 0:  # a checkpoint every quarter, so an interrupted run loses little
        cfg = dataclasses.replace(cfg, ckpt_every=max(cfg.steps // 4, 1))
    resume = True
    if ckpt_path is not None and checkpoint_exists(ckpt_path):
        stored = load_checkpoint(ckpt_path)[1].get("config", {})
        diffs = config_differences(stored, {"train": dataclasses.asdict(cfg), "run": run_config or {}},
                                   ignore=RESUME_IGNORED_KEYS)
        if diffs:
            if is_main_process():
                more = f"; and {len(diffs) - 3} more" if len(diffs) > 3 else ""
                print(f"[{desc}] {ckpt_path} was trained with other settings ({'; '.join(diffs[:3])}{more}): "
                      f"training afresh")
            resume = False
    return train(model, loss_fn, batch_fn, cfg, device=device, ckpt_path=ckpt_path, resume=resume, params=params,
                 progress=progress, desc=desc, callback=callback, run_config=run_config)
