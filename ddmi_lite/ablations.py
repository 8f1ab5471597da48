"""The ablation table of DDMI (§4.4, Tables 5–6): what the basis fields and the CFC readout buy.

Five rows, each trained with the same loop, steps, batch, data and seeds, on images (emoji 32²)
and shapes (procedural furniture, tri-planes):

==============  ==================================================================================
row             model
==============  ==================================================================================
``weightgen``   the latent generates per-layer shifts of one MLP over fixed Fourier features
                (:mod:`ddmi_lite.baselines`, Functa-style weight generation)
``single``      D2C-VAE with one basis field at the finest scale (``mode="single_scale"``)
``concat``      HDBF, every scale concatenated at the readout's input (``mode="concat_input"``)
``sum``         HDBF, the scales summed at the input (``mode="sum"``)
``cfc``         HDBF with coarse-to-fine conditioning (``mode="cfc"``, the paper's)
==============  ==================================================================================

Columns: parameters, training seconds, held-out reconstruction (PSNR of posterior means for
images, IoU for shapes; mean ± standard deviation over the seeds), and generation quality of a
latent diffusion model trained on each row's latents (seed-0 VAE): the Fréchet distance on
:class:`~ddmi_lite.metrics.FeatureNet` features for images, MMD / COV (Chamfer) for shapes.
Checkpoints live under ``<ckpt_dir>/ablations/`` and are reused; the table is written as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ddmi_lite.baselines import (
    WeightGenConfig,
    build_image_weightgen,
    build_shape_weightgen,
)
from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.configs import LDMConfig
from ddmi_lite.errors import DDMIError
from ddmi_lite.vae import count_parameters

ROWS = ("weightgen", "single", "concat", "sum", "cfc")
READOUT_MODES = {"single": "single_scale", "concat": "concat_input", "sum": "sum", "cfc": "cfc"}
ROW_LABELS = {"weightgen": "weight generation over fixed PE", "single": "single-scale field",
              "concat": "HDBF, all scales at the input", "sum": "HDBF, scales summed", "cfc": "HDBF + CFC"}
DOMAINS = ("image", "shape")


@dataclass
class AblationConfig:
    """Models, training budget and evaluation sizes of the ablation table (presets: ``configs.ablation_config``)."""

    image: object                       # ImageVAEConfig shared by every image row (mode set per row)
    shape: object                       # ShapeVAEConfig shared by every shape row
    image_ldm: LDMConfig
    shape_ldm: LDMConfig
    weightgen: WeightGenConfig = field(default_factory=WeightGenConfig)
    rows: tuple[str, ...] = ROWS
    domains: tuple[str, ...] = DOMAINS
    seeds: tuple[int, ...] = (0, 1)     # stage-1 seeds (reconstruction mean ± std); the LDM uses seeds[0]
    n_psnr: int = 466                   # held-out emoji for PSNR
    n_fd: int = 466                     # samples for the FD (scored against every held-out emoji)
    feature_steps: int = 400            # FeatureNet training steps (cached, shared with notebook 05)
    n_iou: int = 96                     # held-out shapes for IoU (spread over the categories)
    n_metric: int = 32                  # generated and reference clouds for MMD / COV
    n_metric_points: int = 256          # points per cloud there
    mesh_resolution: int = 24           # dense grid per axis for the samples' meshes
    n_ldm_train: int | None = None      # training items encoded for the LDM (None: the whole split)

    def check(self) -> AblationConfig:
        bad = [r for r in self.rows if r not in ROWS]
        if bad or not self.rows:
            raise DDMIError(f"rows={self.rows!r}: each must be one of {ROWS}")
        if not self.domains or any(d not in DOMAINS for d in self.domains):
            raise DDMIError(f"domains={self.domains!r}: each must be one of {DOMAINS}")
        if not self.seeds:
            raise DDMIError("seeds must list at least one seed")
        return self


# ----------------------------------------------------------------------------------------------- models
def image_row_config(cfg: AblationConfig, row: str):
    """The ImageVAEConfig of a row (the readout mode; ``weightgen`` keeps the shared one)."""
    return replace(cfg.image, mode=READOUT_MODES.get(row, "cfc"))


def shape_row_config(cfg: AblationConfig, row: str):
    """The ShapeVAEConfig of a row; ``single`` decodes one field (``n_scales=1``) at the finest scale."""
    shape = replace(cfg.shape, mode=READOUT_MODES.get(row, "cfc"))
    if row == "single":
        shape = replace(shape, net=replace(shape.net, n_scales=1))
    return shape


def build_row_model(domain: str, row: str, cfg: AblationConfig):
    """A fresh model of ``row`` for ``domain``: the baseline or a D2C-VAE with the row's readout."""
    from ddmi_lite.domains.image import build_image_vae
    from ddmi_lite.domains.shape import build_shape_vae

    if row not in ROWS:
        raise DDMIError(f"row={row!r} is not one of {ROWS}")
    if domain == "image":
        rc = image_row_config(cfg, row)
        return build_image_weightgen(rc, cfg.weightgen) if row == "weightgen" else build_image_vae(rc)
    if domain == "shape":
        rc = shape_row_config(cfg, row)
        return build_shape_weightgen(rc, cfg.weightgen) if row == "weightgen" else build_shape_vae(rc)
    raise DDMIError(f"domain={domain!r} is not one of {DOMAINS}")


def train_row(domain: str, row: str, seed: int, cfg: AblationConfig, data, *, ckpt_dir, device="cpu",
              progress: bool = True):
    """Train (or reuse the checkpoint of) one row and seed with the library's loop → (model in eval mode, TrainResult).

    ``data``: the emoji pyramid (``{32: images}``) for images, the training ``ShapeTensors`` for shapes.
    """
    from ddmi_lite.domains.image import train_image_vae
    from ddmi_lite.domains.shape import train_shape_vae

    model = build_row_model(domain, row, cfg).to(device)
    path = Path(ckpt_dir) / "ablations" / f"{domain}_{row}_s{seed}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if domain == "image":
        result = train_image_vae(model, image_row_config(cfg, row), data, device=device, ckpt_path=path, seed=seed,
                                 progress=progress)
    else:
        result = train_shape_vae(model, shape_row_config(cfg, row), data, device=device, ckpt_path=path, seed=seed,
                                 progress=progress)
    return model.eval(), result


# ----------------------------------------------------------------------------------------------- evaluation
@dataclass
class AblationData:
    """Everything the evaluation reads, loaded once."""

    train32: torch.Tensor | None = None    # emoji [N,3,32,32] in [0,1]
    test32: torch.Tensor | None = None
    real_feats: np.ndarray | None = None   # FeatureNet features of every held-out emoji
    feature_net: object = None
    shape_train: object = None             # ShapeTensors
    shape_test: object = None


def load_data(cfg: AblationConfig, *, ckpt_dir, device="cpu", progress: bool = True) -> AblationData:
    from ddmi_lite.data import load_emoji
    from ddmi_lite.domains.shape import load_shape_split, shape_data_root
    from ddmi_lite.metrics import image_features, train_feature_net

    data = AblationData()
    if "image" in cfg.domains:
        data.train32, data.test32 = load_emoji(32, "train"), load_emoji(32, "test")
        data.feature_net = train_feature_net(data.train32, steps=cfg.feature_steps, seed=0, device=device,
                                             cache_path=Path(ckpt_dir) / "feature_net_emoji32.safetensors")
        data.real_feats = image_features(data.feature_net, data.test32)
    if "shape" in cfg.domains:
        root = shape_data_root(cfg.shape, progress=progress)
        data.shape_train, data.shape_test = load_shape_split(root, "train"), load_shape_split(root, "test")
    return data


def image_psnr(model, data: AblationData, n: int) -> float:
    """Mean per-image PSNR (dB, [0,1] range) of posterior-mean reconstructions of ``n`` held-out emoji."""
    from ddmi_lite.domains.image import psnr, reconstruct

    x = data.test32[:n]
    return float(psnr(reconstruct(model, x), x).mean())


def shape_iou(model, cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> float:
    """Mean IoU (p > 0.5) of posterior-mean reconstructions of ``n_iou`` held-out shapes over the categories."""
    from ddmi_lite.domains.shape import reconstruction_iou, spread_index

    index = spread_index(data.shape_test.categories, min(cfg.n_iou, len(data.shape_test)))
    return float(reconstruction_iou(model, data.shape_test, index, n_surface=cfg.shape.n_surface,
                                    surface_noise=cfg.shape.surface_noise, seed=seed).mean())


def row_ldm(domain: str, row: str, model, cfg: AblationConfig, data: AblationData, *, ckpt_dir, device="cpu",
            progress: bool = True):
    """The latent diffusion model of a row, trained on its training posteriors (or reused) → (ldm, TrainResult)."""
    from ddmi_lite.domains.shape import encode_posterior_images
    from ddmi_lite.latent_diffusion import encode_posterior, load_or_train_ldm

    n = cfg.n_ldm_train
    if domain == "image":
        images = data.train32 if n is None else data.train32[:n]
        posterior, lcfg = encode_posterior(model, images, hflip=cfg.image_ldm.hflip), cfg.image_ldm
    else:
        shapes = data.shape_train if n is None else data.shape_train.subset(list(range(min(n, len(data.shape_train)))))
        posterior = encode_posterior_images(model, shapes, n_surface=cfg.shape.n_surface,
                                            surface_noise=cfg.shape.surface_noise)
        lcfg = cfg.shape_ldm
    path = Path(ckpt_dir) / "ablations" / f"{domain}_{row}_ldm"
    return load_or_train_ldm(model, posterior, lcfg, ckpt_path=path, device=device, seed=cfg.seeds[0],
                             progress=progress)


def image_generation(model, ldm, cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> dict:
    """FD (FeatureNet features) of ``n_fd`` decoded samples against every held-out emoji."""
    from ddmi_lite.latent_diffusion import decode_to_images, sample_latents
    from ddmi_lite.metrics import frechet_distance, image_features

    z = sample_latents(ldm, cfg.n_fd, sampler=cfg.image_ldm.sampler, steps=cfg.image_ldm.sample_steps,
                       batch_size=cfg.image_ldm.sample_batch, generator=torch.Generator().manual_seed(seed))
    images = decode_to_images(model, z, 32)
    return {"fd": frechet_distance(data.real_feats, image_features(data.feature_net, images)), "samples": images[:16]}


def shape_reference_clouds(cfg: AblationConfig, data: AblationData, *, seed: int = 0) -> torch.Tensor:
    from ddmi_lite.domains.shape import spread_index
    from ddmi_lite.metrics3d import normalize_to_unit_sphere

    index = spread_index(data.shape_test.categories, min(cfg.n_metric, len(data.shape_test)))
    pick = torch.randint(0, data.shape_test.surface.shape[1], (cfg.n_metric_points,),
                         generator=torch.Generator().manual_seed(seed))
    return normalize_to_unit_sphere(data.shape_test.surface[index][:, pick].float())


def shape_generation(model, ldm, cfg: AblationConfig, data: AblationData, ref: torch.Tensor, *, seed: int = 0) -> dict:
    """MMD / COV (Chamfer) of ``n_metric`` sampled shapes (meshed at ``mesh_resolution``³) against held-out clouds."""
    from ddmi_lite.domains.shape import (
        dense_occupancy,
        image_to_triplane,
        meshes_from_logits,
        surface_clouds,
    )
    from ddmi_lite.latent_diffusion import sample_latents
    from ddmi_lite.metrics3d import mmd_cov_nna, normalize_to_unit_sphere

    z = sample_latents(ldm, cfg.n_metric, sampler=cfg.shape_ldm.sampler, steps=cfg.shape_ldm.sample_steps,
                       batch_size=cfg.shape_ldm.sample_batch, generator=torch.Generator().manual_seed(seed))
    meshes = meshes_from_logits(dense_occupancy(model, image_to_triplane(z), cfg.mesh_resolution))
    clouds = normalize_to_unit_sphere(surface_clouds(meshes, cfg.n_metric_points, seed=seed))
    scores = mmd_cov_nna(clouds, ref)
    return {"mmd": scores["mmd"], "cov": scores["cov"], "empty": sum(m.is_empty for m in meshes),
            "meshes": meshes[:8]}


# ----------------------------------------------------------------------------------------------- the table
@dataclass
class AblationResult:
    table: list[dict]                                   # one dict per (domain, row): the table's cells
    metrics: dict                                       # flat snake_case numbers for metrics.json
    models: dict = field(default_factory=dict)          # (domain, row) → seed-0 model (eval mode)
    ldms: dict = field(default_factory=dict)            # (domain, row) → latent diffusion model
    samples: dict = field(default_factory=dict)         # (domain, row) → images [16,3,32,32] or meshes
    data: AblationData | None = None


def run_ablation(cfg: AblationConfig, *, ckpt_dir, out_dir=None, device="cpu", progress: bool = True,
                 log=print) -> AblationResult:
    """Train / reuse every row × seed × domain, its LDM, evaluate, and write ``ablation.json`` / ``ablation.csv``."""
    cfg.check()
    data = load_data(cfg, ckpt_dir=ckpt_dir, device=device, progress=progress)
    res = AblationResult([], {}, data=data)
    ref = shape_reference_clouds(cfg, data) if "shape" in cfg.domains else None
    for domain in cfg.domains:
        train_data = {32: data.train32} if domain == "image" else data.shape_train
        for row in cfg.rows:
            recon, secs, steps, params = [], [], [], 0
            for seed in cfg.seeds:
                model, result = train_row(domain, row, seed, cfg, train_data, ckpt_dir=ckpt_dir, device=device,
                                          progress=progress)
                recon.append(image_psnr(model, data, cfg.n_psnr) if domain == "image" else
                             shape_iou(model, cfg, data, seed=seed))
                secs.append(result.total_time_s)
                steps.append(result.steps_done)
                params = count_parameters(model)
                if seed == cfg.seeds[0]:
                    res.models[(domain, row)] = model
            model = res.models[(domain, row)]
            t0 = time.perf_counter()
            ldm, ldm_result = row_ldm(domain, row, model, cfg, data, ckpt_dir=ckpt_dir, device=device,
                                      progress=progress)
            res.ldms[(domain, row)] = ldm
            gen = image_generation(model, ldm, cfg, data) if domain == "image" else \
                shape_generation(model, ldm, cfg, data, ref)
            res.samples[(domain, row)] = gen.pop("samples", None) if domain == "image" else gen.pop("meshes")
            entry = {"domain": domain, "row": row, "label": ROW_LABELS[row], "params": params,
                     "train_s": float(np.mean(secs)), "steps": int(min(steps)),
                     "recon_metric": "psnr" if domain == "image" else "iou",
                     "recon_mean": float(np.mean(recon)), "recon_std": float(np.std(recon, ddof=1)) if len(recon) > 1
                     else 0.0, "recon_seeds": [float(v) for v in recon],
                     "ldm_train_s": ldm_result.total_time_s, "gen_eval_s": time.perf_counter() - t0, **gen}
            res.table.append(entry)
            log(f"[ablation] {domain:5s} {row:9s} params {params:>9,}  train {entry['train_s']:6.1f} s  "
                f"{entry['recon_metric']} {entry['recon_mean']:.3f} ± {entry['recon_std']:.3f}  "
                + ", ".join(f"{k} {v:.4g}" for k, v in gen.items()))
    res.metrics = flat_metrics(res.table)
    if out_dir is not None:
        write_table(res.table, out_dir, config=cfg)
    return res


def flat_metrics(table: list[dict]) -> dict:
    """The metrics.json keys: ``psnr_heldout_<row>[_std]``, ``fd_samples_<row>``, ``iou_heldout_<row>[_std]``,
    ``mmd_<row>``, ``cov_<row>``, ``params_<domain>_<row>``, ``train_s_<domain>_<row>``."""
    out: dict[str, float] = {}
    for e in table:
        row, dom = e["row"], e["domain"]
        if dom == "image":
            out[f"psnr_heldout_{row}"] = e["recon_mean"]
            out[f"psnr_heldout_{row}_std"] = e["recon_std"]
            out[f"fd_samples_{row}"] = e["fd"]
        else:
            out[f"iou_heldout_{row}"] = e["recon_mean"]
            out[f"iou_heldout_{row}_std"] = e["recon_std"]
            out[f"mmd_{row}"] = e["mmd"]
            out[f"cov_{row}"] = e["cov"]
        out[f"params_{dom}_{row}"] = e["params"]
        out[f"train_s_{dom}_{row}"] = e["train_s"]
        out[f"train_steps_{dom}_{row}"] = e["steps"]
    return out


CSV_FIELDS = ("domain", "row", "label", "params", "steps", "train_s", "recon_metric", "recon_mean", "recon_std",
              "fd", "mmd", "cov", "ldm_train_s")


def write_table(table: list[dict], out_dir, *, config: AblationConfig | None = None) -> tuple[Path, Path]:
    """``ablation.json`` (the rows and the config) and ``ablation.csv`` in ``out_dir``, written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"rows": table, "config": json.loads(json.dumps(asdict(config), default=str)) if config else {}}
    atomic_write(out_dir / "ablation.json", (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for e in table:
        writer.writerow({k: e.get(k, "") for k in CSV_FIELDS})
    atomic_write(out_dir / "ablation.csv", buf.getvalue().encode("utf-8"))
    return out_dir / "ablation.json", out_dir / "ablation.csv"


def table_markdown(table: list[dict]) -> str:
    """The table as markdown: one line per (domain, row)."""
    lines = ["| domain | row | params | train s | reconstruction (held-out) | generation |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for e in table:
        rec = f"{e['recon_metric'].upper()} {e['recon_mean']:.3f} ± {e['recon_std']:.3f}"
        gen = f"FD {e['fd']:.3f}" if e["domain"] == "image" else f"MMD {e['mmd']:.4f} / COV {e['cov']:.2f}"
        lines.append(f"| {e['domain']} | {e['label']} | {e['params']:,} | {e['train_s']:.1f} | {rec} | {gen} |")
    return "\n".join(lines)


def load_table(out_dir) -> list[dict]:
    """The rows of ``out_dir/ablation.json``."""
    path = Path(out_dir) / "ablation.json"
    if not path.is_file():
        raise DDMIError(f"{str(path)!r} does not exist; run notebooks/10_ablations.py first")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


CLAIMS = (("a", "generating adaptive positional embeddings beats generating weights over a fixed PE", "cfc", "weightgen"),
          ("b", "multi-scale basis fields beat a single scale", "cfc", "single"),
          ("c", "coarse-to-fine conditioning beats all scales at the input", "cfc", "concat"))


GENERATION_TIE = 0.05  # one LDM per row has no error bar: distances within 5% of each other count as a tie


def _generation_verdict(ours: float, other: float) -> str:
    """Lower is better (FD, MMD); a relative gap under :data:`GENERATION_TIE` is called a tie."""
    if abs(ours - other) <= GENERATION_TIE * max(abs(ours), abs(other)):
        return f"is a tie (within {GENERATION_TIE:.0%}, no error bars)"
    return "holds" if ours < other else "does not hold"


def claim_verdicts(table: list[dict]) -> list[str]:
    """One sentence per claim and domain, read off the table: does the paper's row beat its ablation?

    Reconstruction counts as a win only when the gap exceeds the seeds' spread (the larger std);
    generation (one LDM per row, no error bars) counts as a win only beyond a 5% relative gap, and
    for shapes only when COV does not drop.
    """
    by = {(e["domain"], e["row"]): e for e in table}
    out = []
    for tag, text, ours, other in CLAIMS:
        for dom in DOMAINS:
            a, b = by.get((dom, ours)), by.get((dom, other))
            if a is None or b is None:
                continue
            gap = a["recon_mean"] - b["recon_mean"]
            spread = max(a["recon_std"], b["recon_std"])
            rec = "holds" if gap > spread else ("within the seed spread" if abs(gap) <= spread else "does not hold")
            name = a["recon_metric"].upper()
            if dom == "image":
                verdict, gen = _generation_verdict(a["fd"], b["fd"]), f"FD {a['fd']:.3f} vs {b['fd']:.3f}"
            else:
                verdict = _generation_verdict(a["mmd"], b["mmd"])
                if verdict == "holds" and a["cov"] < b["cov"]:
                    verdict = "is mixed (lower MMD, lower COV)"
                gen = f"MMD {a['mmd']:.4f} vs {b['mmd']:.4f}, COV {a['cov']:.2f} vs {b['cov']:.2f}"
            out.append(f"({tag}) {dom}: {text} — reconstruction {rec} ({name} {a['recon_mean']:.3f} vs "
                       f"{b['recon_mean']:.3f}, gap {gap:+.3f}, seed spread {spread:.3f}); generation "
                       f"{verdict} ({gen}).")
    return out


@torch.no_grad()
def masked_psnr(model, images01: torch.Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """Held-out PSNR with every scale on, then with each scale's embedding zeroed at render time (no retraining).

    Keys: ``all``, then ``no_coarse`` / ``no_mid`` / ``no_fine`` (``no_field`` for one scale); {} for the baseline.
    """
    from ddmi_lite.domains.image import psnr, render, to_model_range, to_unit_range
    from ddmi_lite.viz import n_scales, scale_masks

    k = n_scales(model)
    if k == 0:
        return {}
    device = next(model.parameters()).device
    out: dict[str, list] = {}
    for start in range(0, len(images01), batch_size):
        x = images01[start:start + batch_size]
        fields = model.decode(model.encode(to_model_range(x).to(device)).mode())
        for name, mask in scale_masks(k).items():
            img = to_unit_range(render(model, fields, x.shape[-1], scale_mask=mask)).cpu()
            out.setdefault(name.replace(" scales", "").replace(" ", "_"), []).append(psnr(img, x))
    return {name: float(torch.cat(v).mean()) for name, v in out.items()}


__all__ = [
    "CLAIMS",
    "DOMAINS",
    "READOUT_MODES",
    "ROWS",
    "ROW_LABELS",
    "AblationConfig",
    "AblationData",
    "AblationResult",
    "build_row_model",
    "claim_verdicts",
    "flat_metrics",
    "image_generation",
    "image_psnr",
    "load_data",
    "load_table",
    "masked_psnr",
    "row_ldm",
    "run_ablation",
    "shape_generation",
    "shape_iou",
    "table_markdown",
    "train_row",
    "write_table",
]
