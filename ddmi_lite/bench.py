"""Speed and scale of every DDMI stage (§3.2 VAE, §3.3 latent diffusion, rendering, sampling).

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

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.configs import check_profile
from ddmi_lite.device import resolve_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.train import autocast


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
    from torch.utils.flop_counter import FlopCounterMode

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
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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
# stages
@dataclass
class Stage:
    name: str
    step: Callable[[], object]          # one step (a training step, a render, a sampling call)
    samples: int                        # samples per step (images, shapes, latents, pixels/points)
    kind: str = "train"                 # train | render | sample | query
    memory: bool = False                # measure its peak memory
    info: dict = field(default_factory=dict)
    count: Callable[[], object] | None = None  # a smaller step with the same FLOPs per sample
    count_factor: float = 1.0           # FLOPs of ``step`` = factor × FLOPs of ``count``
    single: bool = False                # too long to repeat: one run, timed with the memory profiler on


def _train_step(model, loss_fn, params, device, precision: str) -> Callable:
    """The optimiser step of :func:`ddmi_lite.train.train`: zero grad, loss, backward, clip, AdamW."""
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step


def image_vae_stage(profile, device, precision="fp32", *, batch=None, channels_last=False) -> Stage:
    from ddmi_lite.configs import image_vae_config
    from ddmi_lite.domains.image import build_image_vae, make_batch

    cfg = image_vae_config(profile)
    b = batch or cfg.batch_size
    torch.manual_seed(0)
    vae = build_image_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    r = cfg.resolution
    pyramid = {s: torch.rand(b, 3, s, s, generator=g) for s in (r, r * 3 // 2, 2 * r)}  # synthetic images
    batch_ = make_batch(pyramid, torch.arange(b), g, resolution=r)
    x, coords, target, scale = (t.to(device) for t in batch_)
    if channels_last:
        vae.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(x, coords, target, beta=1e-3, scale=scale)[0], params, device, precision)
    return Stage("vae_train_image", step, b, memory=True, info={"batch": b, "model": vae})


def shape_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    from ddmi_lite.configs import shape_vae_config
    from ddmi_lite.domains.shape import build_shape_vae

    cfg = shape_vae_config(profile)
    b = batch or cfg.batch_size
    torch.manual_seed(0)
    vae = build_shape_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(b, cfg.n_surface, 3, generator=g) * 2 - 1).to(device)  # synthetic points
    coords = (torch.rand(b, cfg.n_query, 3, generator=g) * 2 - 1).to(device)
    target = (torch.rand(b, cfg.n_query, 1, generator=g) < 0.3).float().to(device)
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(x, coords, target, beta=1e-2)[0], params, device, precision)
    return Stage("vae_train_shape", step, b, memory=True, info={"batch": b, "model": vae})


def video_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    """Video D2C-VAE step on random clips (the ``xyt`` planes, concatenated plane samples)."""
    from ddmi_lite.configs import video_vae_config
    from ddmi_lite.domains.video import build_video_vae, make_batch

    cfg = video_vae_config(profile)
    b, net = batch or cfg.batch_size, cfg.net
    torch.manual_seed(0)
    vae = build_video_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(b, net.frames, net.in_channels, net.resolution, net.resolution, generator=g)
    bt = {k: v.to(device) for k, v in make_batch(clips, torch.arange(b), g, n_query=cfg.n_query).items()}
    params = list(vae.parameters())
    step = _train_step(vae, lambda: vae.loss(bt["x"], bt["coords"], bt["target"], beta=1e-3)[0], params, device,
                       precision)
    return Stage("vae_train_video", step, b, memory=True, info={"batch": b})


def nerf_vae_stage(profile, device, precision="fp32", *, batch=None) -> Stage:
    """NeRF D2C-VAE step on random coloured points and rays (volume rendering of the tri-plane readout)."""
    from ddmi_lite.configs import nerf_vae_config
    from ddmi_lite.domains.nerf import build_nerf_vae, nerf_loss

    cfg = nerf_vae_config(profile)
    b = batch or cfg.batch_size
    torch.manual_seed(0)
    vae = build_nerf_vae(cfg).to(device)
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(b, cfg.n_rays, 3, generator=g), dim=-1)
    bt = {"x": torch.rand(b, cfg.n_points, 6, generator=g) - 0.5, "origins": -1.5 * dirs, "dirs": dirs,
          "target": torch.rand(b, cfg.n_rays, 3, generator=g)}
    bt = {k: v.to(device) for k, v in bt.items()}
    params = list(vae.parameters())
    step = _train_step(vae, lambda: nerf_loss(vae, bt, beta=1e-2, n_samples=cfg.n_samples, near=0.5, far=2.5)[0],
                       params, device, precision)
    return Stage("vae_train_nerf", step, b, memory=True, info={"batch": b})


def ldm_stage(profile, device, precision="fp32", *, batch=256) -> Stage:
    from ddmi_lite.configs import image_vae_config, ldm_config
    from ddmi_lite.latent_diffusion import build_ldm

    vcfg, cfg = image_vae_config(profile), ldm_config(profile)
    f = 2 ** (len(vcfg.net.ch_mult) - 1)
    shape = (vcfg.net.z_channels, vcfg.resolution // f, vcfg.resolution // f)
    torch.manual_seed(0)
    ldm = build_ldm(cfg, shape, latent_scale=1.0).to(device)
    z = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    params = list(ldm.parameters())
    step = _train_step(ldm, lambda: ldm.loss(z)[0], params, device, precision)
    return Stage("ldm_train", step, batch, memory=True, info={"batch": batch, "model": ldm, "shape": shape})


def sampling_stage(ldm, shape, device, precision="fp32", *, batch=256, steps=10, sampler="dpmpp_2m") -> Stage:
    g = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def step():
        with autocast(device, precision):
            return ldm.sample((batch, *shape), sampler=sampler, steps=steps, generator=g)
    ldm.eval()
    return Stage(f"sample_{sampler}_{steps}", step, batch, kind="sample", memory=True,
                 info={"batch": batch, "sampler": sampler, "steps": steps})


def render_stage(vae, device, res: int, precision="fp32", *, train_resolution: int = 32,
                 single: bool = False) -> Stage:
    from ddmi_lite.domains.image import render

    vae.eval()
    with torch.no_grad():
        h = train_resolution // vae.encoder.downsample_factor
        fields = vae.decode(torch.randn(1, vae.decoder.cfg.z_channels, h, h, device=device))

    def run(side):
        with autocast(device, precision):
            return render(vae, fields, side)
    small = max(res // 4, 1)  # FLOPs per pixel are constant: count a 16× smaller render
    return Stage(f"render_image_{res}", lambda: run(res), res * res, kind="render", memory=True,
                 info={"pixels": res * res}, count=lambda: run(small), count_factor=(res / small) ** 2,
                 single=single)


@torch.no_grad()
def dense_occupancy_chunked(vae, fields, resolution: int, *, chunk: int = 65536) -> torch.Tensor:
    """Logits on a corner-aligned ``R³`` grid of [−1, 1]³ → ``[R, R, R]`` (x slowest), queried in
    slabs so the working memory is O(chunk), not O(R³): coordinates are built per slab."""
    axis = torch.linspace(-1.0, 1.0, resolution, device=fields[0].device)
    out = torch.empty(resolution ** 3, device=fields[0].device)
    plane = resolution * resolution
    rows = max(1, chunk // plane) if chunk >= plane else None
    for start in range(0, resolution ** 3, chunk if rows is None else rows * plane):
        stop = min(start + (chunk if rows is None else rows * plane), resolution ** 3)
        idx = torch.arange(start, stop, device=axis.device)  # flat indices of this slab
        coords = torch.stack([axis[idx // plane], axis[(idx // resolution) % resolution], axis[idx % resolution]], -1)
        out[start:stop] = vae.query(fields, coords[None])[0, :, 0]  # [n]
    return out.reshape(resolution, resolution, resolution)


def occupancy_stage(vae, device, res: int, precision="fp32", *, single: bool = False) -> Stage:
    vae.eval()
    with torch.no_grad():
        fields = vae.decode(torch.randn(1, *vae.decoder.cfg.latent_shape, device=device))

    def run(side):
        with autocast(device, precision):
            return dense_occupancy_chunked(vae, fields, side)
    small = max(res // 4, 1)  # FLOPs per point are constant: count a 64× smaller grid
    return Stage(f"occupancy_{res}", lambda: run(res), res ** 3, kind="render", memory=True,
                 info={"points": res ** 3}, count=lambda: run(small), count_factor=(res / small) ** 3,
                 single=single)


def query_stage(fields, coords, *, fused: bool, layout="triplane") -> Stage:
    """Forward + backward of ``fields.query_fields`` (fused planes or one call per plane)."""
    from ddmi_lite.fields import query_fields

    leaf = [f.detach().requires_grad_() for f in fields]

    def step():
        out = query_fields(leaf, coords, layout, fused=fused)
        sum(o.sum() for o in out).backward()
        return out
    return Stage(f"query_{layout}_{'fused' if fused else 'per_plane'}", step, coords.shape[0] * coords.shape[1],
                 kind="query")


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


def _optional_domains() -> list[str]:
    """Domain modules of the library present in this checkout (video and NeRF are optional)."""
    import importlib.util
    return [d for d in ("video", "nerf") if importlib.util.find_spec(f"ddmi_lite.domains.{d}") is not None]


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


def _cl_check(profile, device) -> float:
    """Loss and gradients of one image-VAE step, NCHW vs channels-last: largest relative difference."""
    out = []
    for cl in (False, True):
        st = image_vae_stage(profile, device, batch=4, channels_last=cl)
        vae = st.info["model"]
        from ddmi_lite.configs import image_vae_config
        from ddmi_lite.domains.image import make_batch
        r = image_vae_config(profile).resolution
        g = torch.Generator().manual_seed(1)
        b = make_batch({s: torch.rand(4, 3, s, s, generator=g) for s in (r, r * 3 // 2, 2 * r)}, torch.arange(4), g)
        x = b.x.to(device)
        x = x.contiguous(memory_format=torch.channels_last) if cl else x
        post = vae.encode(x)
        loss = vae.query(vae.decode(post.mean), b.coords.to(device), scale=b.scale.to(device)).pow(2).mean()
        loss.backward()
        out.append(torch.cat([loss.detach().reshape(1)] + [p.grad.flatten() for p in vae.parameters()]))
    return float(((out[0] - out[1]).abs().max() / out[0].abs().max()).item())


def run_bench(profile: str = "cpu", device="auto", *, cfg: BenchConfig | None = None, progress: bool = True) -> dict:
    """Every stage × precision, the before/after comparisons, and the device's peaks → a JSON-able dict."""
    dev = resolve_device(device)
    cfg = cfg or bench_config(profile, dev)
    log = print if progress else (lambda *a, **k: None)
    result = {"profile": profile, "device": str(dev), "threads": torch.get_num_threads(),
              "config": asdict(cfg), "stages": {}, "comparisons": {}, "peaks": {},
              "domains": ["image", "shape"] + _optional_domains(),
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
        for domain, build in (("video", video_vae_stage), ("nerf", nerf_vae_stage)):
            if domain in result["domains"]:
                try:
                    stages.insert(2, build(profile, dev, precision, batch=cfg.vae_batch))
                except (ImportError, AttributeError, TypeError) as err:  # a domain module still being written
                    log(f"skipped the {domain} VAE step: {err}")
        for st in stages:
            key = st.name if precision == "fp32" else f"{st.name}_{precision}"
            result["stages"][key] = {**measure(st, dev, peak, cfg), "precision": precision}
            r = result["stages"][key]
            log(f"{key:>28}: {1e3 * r['step_s']:9.1f} ms  {r['flops_per_s'] / 1e9:8.1f} GFLOP/s  "
                f"ratio {r['ratio']:.2f}" + (f"  peak {r['peak_mb']:.0f} MB" if "peak_mb" in r else ""))
            st.info.pop("model", None) if st is not ldm else None
    # before / after: fused plane queries, channels-last convolutions (fp32)
    from ddmi_lite.configs import shape_vae_config
    from ddmi_lite.fields import query_fields
    net = shape_vae_config(profile).net
    g = torch.Generator().manual_seed(0)
    fields = [torch.randn(16, 3, net.pe_channels, r, r, generator=g).to(dev)
              for r in (net.plane_resolution // 4, net.plane_resolution // 2, net.plane_resolution)]
    coords = (torch.rand(16, 4096, 3, generator=g) * 2 - 1).to(dev)
    diff = lambda: max(float((a - b).abs().max()) for a, b in zip(
        query_fields(fields, coords, "triplane"), query_fields(fields, coords, "triplane", fused=False)))
    result["comparisons"]["fused_plane_query"] = compare(
        query_stage(fields, coords, fused=False), query_stage(fields, coords, fused=True), dev, cfg, diff)
    from ddmi_lite.fields import per_plane_queries
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
        lambda: _cl_check(profile, dev))
    for k, c in result["comparisons"].items():
        log(f"{k:>28}: before {1e3 * c['before_s']:.1f} ms  after {1e3 * c['after_s']:.1f} ms  "
            f"x{c['speedup']:.2f}  max diff {c['max_abs_diff']:.2e}")
    return result


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    path = Path(path)
    atomic_write(path, json.dumps(data, indent=2).encode("utf-8"))
    return path


def plot_bench(result: dict, path: str | os.PathLike) -> Path:
    """Left: achieved / peak FLOP/s per stage; right: before vs after of each optimisation."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    stages = result["stages"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    names = list(stages)
    a.barh(names, [stages[n]["ratio"] for n in names], color="tab:blue")
    a.axvline(1.0, color="k", lw=0.8)
    a.set_xlabel("achieved FLOP/s ÷ matmul peak of the same dtype, same run")
    for i, n in enumerate(names):
        mem = f", {stages[n]['peak_mb']:.0f} MB" if "peak_mb" in stages[n] else ""
        a.text(stages[n]["ratio"], i, f" {1e3 * stages[n]['step_s']:.0f} ms{mem}", va="center", fontsize=8)
    a.set_title(f"{result['device']}, {result['threads']} threads", fontsize=10)
    comps = result["comparisons"]
    x = range(len(comps))
    b.bar([i - 0.2 for i in x], [1e3 * c["before_s"] for c in comps.values()], 0.4, label="before")
    b.bar([i + 0.2 for i in x], [1e3 * c["after_s"] for c in comps.values()], 0.4, label="after")
    b.set_xticks(list(x), [k.replace("_", "\n", 1) for k in comps], fontsize=8)
    b.set_ylabel("ms per step (median)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def bench_main(profile: str = "cpu", device="auto", out=None, *, progress: bool = True) -> Path:
    """``python -m ddmi_lite bench``: run, write ``bench.json`` (atomic) and ``bench.png`` beside it."""
    result = run_bench(profile, device, progress=progress)
    out = Path(out) if out else Path("runs") / profile / "bench.json"
    write_json_atomic(out, result)
    plot_bench(result, out.with_suffix(".png"))
    return out


# ----------------------------------------------------------------------------------------------
# sampling speed: steps vs quality
def nfe_to_match(rows: list[dict], *, metric: str = "fd", ref: tuple[str, int] = ("ddim", 50),
                 rtol: float = 0.0) -> dict:
    """Per sampler, the fewest network evaluations whose ``metric`` is ≤ (1 + rtol) × that of ``ref``.

    ``rows``: dicts with ``sampler``, ``steps``, ``nfe`` and ``metric`` (lower is better), e.g. from
    :func:`ddmi_lite.latent_diffusion.sweep_samplers`. Returns ``{"reference": value,
    "per_sampler": {name: nfe or None}, "best_sampler": name, "best_nfe": nfe, "best_steps": steps}``.
    """
    match = [r for r in rows if (r["sampler"], int(r["steps"])) == (ref[0], int(ref[1]))]
    if not match:
        raise DDMIError(f"rows hold no {ref[0]}-{ref[1]} setting to match; add it to the sweep")
    target = match[0][metric]
    bar = target + rtol * abs(target)
    per, best = {}, None
    for r in sorted(rows, key=lambda r: r["nfe"]):
        if r[metric] <= bar and per.get(r["sampler"]) is None:
            per[r["sampler"]] = int(r["nfe"])
            if best is None:
                best = r
        per.setdefault(r["sampler"], None)
    return {"reference": float(target), "per_sampler": per, "best_sampler": best["sampler"],
            "best_nfe": int(best["nfe"]), "best_steps": int(best["steps"])}


def latent_mmd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared MMD with a Gaussian kernel (bandwidth: median pairwise distance) between latents
    ``[n, ...]`` and ``[m, ...]``, flattened: MMD² = E k(a,a') + E k(b,b') − 2 E k(a,b) (biased)."""
    x, y = a.flatten(1).double(), b.flatten(1).double()
    xy = torch.cat([x, y])
    d2 = torch.cdist(xy, xy).pow(2)
    bw = d2[d2 > 0].median()
    k = torch.exp(-d2 / bw)
    n = len(x)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


__all__ = [
    "BenchConfig",
    "Stage",
    "bench_config",
    "bench_main",
    "compare",
    "count_flops",
    "dense_occupancy_chunked",
    "latent_mmd",
    "matmul",
    "measure",
    "nfe_to_match",
    "peak_memory_bytes",
    "pick_peak",
    "plot_bench",
    "run_bench",
    "time_interleaved",
    "write_json_atomic",
]
