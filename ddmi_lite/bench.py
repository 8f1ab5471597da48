"""Speed and scale of every DDMI stage (§3.2 VAE, §3.3 latent diffusion, rendering, sampling): the harness.

The stages themselves are built by :mod:`ddmi_lite.bench_stages`; the figure is
:func:`ddmi_lite.viz.plot_bench`.

For each stage we count the floating-point operations of one step once, with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, forward and backward;
elementwise ops are not counted), and time the step separately. The achieved rate is compared
with the device's measured peak, a large matmul of the same dtype timed in the same run:

    ratio = (FLOPs per step / median step time) / (2·n³ / median matmul time)

The matmul is timed right after every step (interleaved, medians over rounds), so a machine
shared with other jobs slows both alike. Convolution FLOPs are counted as direct convolution;
oneDNN may use cheaper algorithms (e.g. Winograd), so a conv-heavy ratio can exceed 1.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory in use before the
call; on CPU the torch profiler's allocation events (``profile_memory=True``): the running sum of
the sizes of every tensor allocated and freed during the call, whose maximum is the peak of live
bytes the call added (exact for torch tensors; Python objects are not counted).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.profiler
from torch._C._profiler import _EventType  # the profiler's allocation events (no public name)
from torch.utils.flop_counter import FlopCounterMode

from ddmi_lite.bench_stages import (
    Stage,
    channels_last_difference,
    image_vae_stage,
    ldm_stage,
    nerf_vae_stage,
    occupancy_stage,
    query_stage,
    render_stage,
    sampling_stage,
    shape_vae_stage,
    video_vae_stage,
)
from ddmi_lite.device import resolve_device
from ddmi_lite.domains.shape import shape_vae_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.fields import per_plane_queries, query_fields
from ddmi_lite.features import image_features
from ddmi_lite.io import write_json
from ddmi_lite.latent_diffusion import counts_nfe, decode_to_images
from ddmi_lite.ldm import latent_shape_of
from ddmi_lite.metrics import frechet_distance
from ddmi_lite.presets import check_profile
from ddmi_lite.viz import plot_bench

DOMAINS = ("image", "shape", "video", "nerf")


@dataclass
class BenchConfig:
    rounds: int = 7                     # timed steps per stage (each followed by a timed matmul)
    warmup: int = 2                     # untimed steps first
    peak_sizes: tuple[int, ...] = (2048, 3072)  # matmul sizes tried; the fastest per FLOP is the peak
    vae_batch: int | None = None        # None: the profile's training batch
    ldm_batch: int = 256                # latents per LDM step (the cpu preset trains with 64)
    render_res: int = 1024              # image render side
    occupancy_res: int = 256            # dense occupancy grid side
    sample_batch: int = 256             # latents per sampling call
    sample_steps: int = 10              # sampler steps of the sampling stage
    precisions: tuple[str, ...] = ("fp32",)


def bench_config(profile: str = "cpu", device: torch.device | str = "cpu", **overrides) -> BenchConfig:
    """``smoke``: tiny and two rounds; ``cpu``/``gpu``: the sizes above (bf16 added on CUDA)."""
    check_profile(profile)
    cuda = torch.device(device).type == "cuda"
    if profile == "smoke":
        cfg = BenchConfig(rounds=1, warmup=0, peak_sizes=(256,), ldm_batch=8, render_res=64, occupancy_res=16,
                          sample_batch=8, sample_steps=2)
    else:
        cfg = BenchConfig(rounds=15 if cuda else 7, warmup=3 if cuda else 2, sample_batch=256 if cuda else 64,
                          peak_sizes=(4096, 8192) if cuda else (2048, 3072))
    if cuda:
        cfg.precisions = ("fp32", "bf16")
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise DDMIError(f"unknown BenchConfig field {k!r}")
        setattr(cfg, k, v)
    return cfg


# ----------------------------------------------------------------------------------------------
# measuring
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul(device: torch.device, dtype: torch.dtype, n: int) -> tuple[Callable[[], object], int]:
    """A square ``n×n @ n×n`` matmul and its 2·n³ FLOPs."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    return (lambda: a @ b), 2 * n ** 3


def _timed(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def pick_peak(device: torch.device, dtype: torch.dtype, sizes) -> tuple[Callable, int]:
    """The matmul size with the best FLOP/s (three timings each): the peak used for the ratios."""
    best = None
    for n in sizes:
        fn, flops = matmul(device, dtype, n)
        fn()
        rate = flops / min(_timed(fn, device) for _ in range(3))
        if best is None or rate > best[0]:
            best = (rate, fn, flops)
    return best[1], best[2]


def time_interleaved(step: Callable, peak: Callable, device: torch.device, *, rounds: int, warmup: int):
    """Median seconds of ``step`` and of ``peak``, alternating one of each per round."""
    for _ in range(warmup):
        step()
    steps, peaks = [], []
    for _ in range(rounds):
        steps.append(_timed(step, device))
        peaks.append(_timed(peak, device))
    return statistics.median(steps), statistics.median(peaks)


def peak_memory_bytes(fn: Callable, device: torch.device) -> int:
    """Peak bytes of tensors the call allocates above what was live before it (see module doc)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    sizes: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            sizes.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        stack.extend(node.children)
    live = peak = 0
    for _, size in sorted(sizes):
        live += size
        peak = max(peak, live)
    return peak


# ----------------------------------------------------------------------------------------------
# the run
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def measure(stage: Stage, device: torch.device, peak: tuple[Callable, int], cfg: BenchConfig) -> dict:
    """FLOPs (counted once), interleaved timing against the peak matmul, peak memory."""
    flops = int(count_flops(stage.count or stage.step) * stage.count_factor)
    mem = None
    if stage.single:  # one run: its time (profiler on, a slight overestimate) and its memory
        t0 = time.perf_counter()
        mem = peak_memory_bytes(stage.step, device)
        step_s = time.perf_counter() - t0
        peak_s = statistics.median(_timed(peak[0], device) for _ in range(3))
    else:
        rounds = cfg.rounds if stage.kind != "render" else max(1, cfg.rounds // 3)
        step_s, peak_s = time_interleaved(stage.step, peak[0], device, rounds=rounds,
                                          warmup=cfg.warmup if stage.kind != "render" else 0)
    peak_rate = peak[1] / peak_s
    row = {"step_s": step_s, "samples_per_s": stage.samples / step_s, "flops_per_step": flops,
           "flops_per_s": flops / step_s, "peak_flops_per_s": peak_rate, "ratio": flops / step_s / peak_rate,
           "samples": stage.samples, "kind": stage.kind}
    if stage.memory:
        row["peak_mb"] = (mem if mem is not None else peak_memory_bytes(stage.step, device)) / 2 ** 20
        row["timed_with_profiler"] = mem is not None
    row.update({k: v for k, v in stage.info.items() if isinstance(v, (int, float, str))})
    return row


def compare(before: Stage, after: Stage, device, cfg: BenchConfig, check: Callable[[], float]) -> dict:
    """Median time of the old and the new path, alternating, and their largest output difference."""
    for _ in range(min(cfg.warmup, 1)):
        before.step(); after.step()
    tb, ta = [], []
    for _ in range(cfg.rounds if cfg.rounds < 3 else max(3, cfg.rounds // 2 + 1)):
        tb.append(_timed(before.step, device))
        ta.append(_timed(after.step, device))
    b, a = statistics.median(tb), statistics.median(ta)
    return {"before_s": b, "after_s": a, "speedup": b / a, "max_abs_diff": float(check())}


def run_bench(profile: str = "cpu", device="auto", *, cfg: BenchConfig | None = None, progress: bool = True) -> dict:
    """Every stage × precision, the before/after comparisons, and the device's peaks → a JSON-able dict."""
    dev = resolve_device(device)
    cfg = cfg or bench_config(profile, dev)
    log = print if progress else (lambda *a, **k: None)
    result = {"profile": profile, "device": str(dev), "threads": torch.get_num_threads(),
              "config": asdict(cfg), "stages": {}, "comparisons": {}, "peaks": {},
              "domains": list(DOMAINS),
              "memory_method": "cuda max_memory_allocated" if dev.type == "cuda" else
              "torch profiler allocation events: peak running sum of tensor bytes"}
    for precision in cfg.precisions:
        peak = pick_peak(dev, _DTYPES[precision], cfg.peak_sizes)
        result["peaks"][precision] = peak[1] / min(_timed(peak[0], dev) for _ in range(3))
        img = image_vae_stage(profile, dev, precision, batch=cfg.vae_batch)
        shp = shape_vae_stage(profile, dev, precision, batch=cfg.vae_batch)
        ldm = ldm_stage(profile, dev, precision, batch=cfg.ldm_batch)
        stages = [img, shp, ldm,
                  sampling_stage(ldm.info["model"], ldm.info["shape"], dev, precision, batch=cfg.sample_batch,
                                 steps=cfg.sample_steps),
                  render_stage(img.info["model"], dev, cfg.render_res, precision,
                               single=dev.type == "cpu" and cfg.render_res >= 512),
                  occupancy_stage(shp.info["model"], dev, cfg.occupancy_res, precision,
                                  single=cfg.occupancy_res >= 128)]
        for build in (video_vae_stage, nerf_vae_stage):
            stages.insert(2, build(profile, dev, precision, batch=cfg.vae_batch))
        for st in stages:
            key = st.name if precision == "fp32" else f"{st.name}_{precision}"
            result["stages"][key] = {**measure(st, dev, peak, cfg), "precision": precision}
            r = result["stages"][key]
            log(f"{key:>28}: {1e3 * r['step_s']:9.1f} ms  {r['flops_per_s'] / 1e9:8.1f} GFLOP/s  "
                f"ratio {r['ratio']:.2f}" + (f"  peak {r['peak_mb']:.0f} MB" if "peak_mb" in r else ""))
            st.info.pop("model", None) if st is not ldm else None
    # before / after: fused plane queries, channels-last convolutions (fp32)
    net = shape_vae_config(profile).net
    g = torch.Generator().manual_seed(0)
    fields = [torch.randn(16, 3, net.pe_channels, r, r, generator=g).to(dev)
              for r in (net.plane_resolution // 4, net.plane_resolution // 2, net.plane_resolution)]
    coords = (torch.rand(16, 4096, 3, generator=g) * 2 - 1).to(dev)
    diff = lambda: max(float((a - b).abs().max()) for a, b in zip(
        query_fields(fields, coords, "triplane"), query_fields(fields, coords, "triplane", fused=False)))
    result["comparisons"]["fused_plane_query"] = compare(
        query_stage(fields, coords, fused=False), query_stage(fields, coords, fused=True), dev, cfg, diff)
    img_model = image_vae_stage(profile, dev, batch=1).info["model"]
    side = max(cfg.render_res // 4, 32)
    fused_render = render_stage(img_model, dev, side)

    def per_plane_render():
        with per_plane_queries():
            return fused_render.step()
    result["comparisons"][f"fused_query_render_{side}"] = compare(
        Stage("per_plane", per_plane_render, side * side), fused_render, dev, cfg,
        lambda: float((per_plane_render() - fused_render.step()).abs().max()))
    result["comparisons"]["channels_last_vae_train"] = compare(
        image_vae_stage(profile, dev, batch=cfg.vae_batch),
        image_vae_stage(profile, dev, batch=cfg.vae_batch, channels_last=True), dev, cfg,
        lambda: channels_last_difference(profile, dev))
    for k, c in result["comparisons"].items():
        log(f"{k:>28}: before {1e3 * c['before_s']:.1f} ms  after {1e3 * c['after_s']:.1f} ms  "
            f"x{c['speedup']:.2f}  max diff {c['max_abs_diff']:.2e}")
    return result


def bench_main(profile: str = "cpu", device="auto", out=None, *, progress: bool = True) -> Path:
    """``python -m ddmi_lite bench``: run, write ``bench.json`` (atomic) and ``bench.png`` beside it.

    ``out`` is checked before the bench runs: a ``.json`` path (the figure takes the same name with
    ``.png``, so another suffix would have the plot overwrite the numbers) in a folder that can be written.
    """
    out = Path(out) if out else Path("runs") / profile / "bench.json"
    if out.is_dir():
        raise DDMIError(f"--out {str(out)!r} is a folder; give a .json file path")
    if out.suffix.lower() != ".json":
        raise DDMIError(f"--out {str(out)!r} must end in .json (the figure is written beside it as "
                        f"{out.with_suffix('.png').name})")
    folder = next((p for p in out.absolute().parents if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DDMIError(f"--out {str(out)!r}: {str(folder)!r} is not a folder that can be written")
    result = run_bench(profile, device, progress=progress)
    write_json(out, result)
    plot_bench(result, out.with_suffix(".png"))
    return out


# ----------------------------------------------------------------------------------------------
# samplers: quality against network evaluations
def sampler_sweep(ldm, vae, feature_net, real_feats, grid: dict, *, n: int, seed: int = 0, batch_size: int = 500,
                  ref: tuple[str, int] = ("ddim", 200), n_ref: int = 64, size: int = 32) -> tuple[list[dict], dict]:
    """Every (sampler, steps) of ``grid`` from the same initial noise x_T, scored two ways.

    * ``fd``: Fréchet distance of the ``n`` rendered samples to ``real_feats`` (FeatureNet features);
    * ``rms_to_ref``: RMS pixel distance (images in [0, 1], rendered at ``size``²) between the first
      ``n_ref`` samples and those of the many-step ``ref`` sampler from the same x_T. The
      deterministic samplers (DDIM η = 0, DPM-Solver++, Heun) all integrate the same probability-flow
      ODE, so this is their discretisation error, free of the sampling noise of the FD; DDPM
      draws fresh noise at every step and does not converge to it.

    Also ``nfe`` (network evaluations per sample) and ``sec_per_image`` (latent sampling only).
    Returns ``(rows, reference)``; ``reference`` holds the ref sampler's ``nfe`` and ``sec_per_image``.
    """
    if n < 1 or n_ref < 1 or batch_size < 1:
        raise DDMIError(f"n={n}, n_ref={n_ref} and batch_size={batch_size} must be >= 1")
    n_ref = min(n_ref, n)
    x_T = torch.randn((n, *latent_shape_of(ldm)), generator=torch.Generator().manual_seed(seed))

    def draw(name: str, steps: int, count: int):
        counts: list[int] = []
        gen = torch.Generator().manual_seed(seed + 1)  # DDPM's per-step noise
        t0 = time.perf_counter()
        z = torch.cat([ldm.sample(x_T[s:s + batch_size][:count - s].shape, sampler=name, steps=int(steps),
                                  x_T=x_T[s:s + batch_size][:count - s], generator=gen,
                                  callback=counts_nfe(counts)).float().cpu()
                       for s in range(0, count, batch_size)])
        return z, (time.perf_counter() - t0) / count, max(counts)

    z_ref, sec_ref, nfe_ref = draw(ref[0], ref[1], n_ref)
    img_ref = decode_to_images(vae, z_ref, size)
    rows = []
    for name, step_list in grid.items():
        for steps in step_list:
            z, sec, nfe = draw(name, steps, n)
            images = decode_to_images(vae, z, size)
            rms = (images[:n_ref] - img_ref).pow(2).flatten(1).mean(1).sqrt().mean()
            rows.append({"sampler": name, "steps": int(steps), "nfe": nfe, "sec_per_image": sec,
                         "fd": frechet_distance(real_feats, image_features(feature_net, images)),
                         "rms_to_ref": float(rms)})
    return rows, {"sampler": ref[0], "steps": int(ref[1]), "nfe": nfe_ref, "sec_per_image": sec_ref, "n_ref": n_ref}


__all__ = [
    "BenchConfig",
    "DOMAINS",
    "bench_config",
    "bench_main",
    "compare",
    "count_flops",
    "matmul",
    "measure",
    "peak_memory_bytes",
    "pick_peak",
    "run_bench",
    "sampler_sweep",
    "time_interleaved",
]
