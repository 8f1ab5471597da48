"""Scoring the ablation rows (DDMI §4.4): held-out reconstruction, 2× renders, generation, scale masks.

:mod:`ddmi_lite.ablations` trains the rows; this module loads what the evaluation reads once
(:class:`AblationData`) and scores a trained row: held-out PSNR of posterior means at the training
resolution and at twice it (against the exact area averages of the emoji at that size), IoU for
shapes, the latent diffusion model of a row and the quality of its samples (FD on
:class:`~ddmi_lite.features.FeatureNet` features with a training-vs-held-out floor for images,
MMD / COV with the Chamfer distance for shapes), and PSNR with one scale switched off at render time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddmi_lite.data import load_emoji
from ddmi_lite.device import module_device
from ddmi_lite.domains.image import reconstruct, render, to_model_range, to_unit_range
from ddmi_lite.domains.shape import (
    dense_occupancy,
    encode_posterior_images,
    image_to_triplane,
    load_shape_split,
    meshes_from_logits,
    reconstruction_iou,
    shape_data_root,
    spread_index,
    surface_clouds,
)
from ddmi_lite.features import image_features, train_feature_net
from ddmi_lite.latent_diffusion import decode_to_images, encode_posterior
from ddmi_lite.ldm import load_or_train_ldm, sample_latents
from ddmi_lite.metrics import frechet_distance, psnr
from ddmi_lite.metrics3d import mmd_cov_nna, normalize_to_unit_sphere
from ddmi_lite.viz import n_scales, scale_masks


@dataclass
class AblationData:
    """Everything the evaluation reads, loaded once."""

    train32: torch.Tensor | None = None    # emoji [N,3,R,R] in [0,1] at the training resolution R
    test32: torch.Tensor | None = None
    test2x: torch.Tensor | None = None     # the held-out emoji at 2R (exact area averages of the same drawings)
    real_feats: np.ndarray | None = None   # FeatureNet features of every held-out emoji
    fd_floor: float = float("nan")         # FD of n_fd training emoji against the held-out ones
    feature_net: object = None
    shape_train: object = None             # ShapeTensors
    shape_test: object = None


def load_data(cfg, *, ckpt_dir, device="cpu", progress: bool = True) -> AblationData:
    """The emoji (training resolution and 2×), the feature net and FD floor, and the shape splits of ``cfg``."""
    data = AblationData()
    if "image" in cfg.domains:
        r = cfg.image.resolution
        data.train32, data.test32 = load_emoji(r, "train"), load_emoji(r, "test")
        data.test2x = load_emoji(2 * r, "test")
        data.feature_net = train_feature_net(data.train32, steps=cfg.feature_steps, seed=0, device=device,
                                             cache_path=Path(ckpt_dir) / f"feature_net_emoji{r}.safetensors")
        data.real_feats = image_features(data.feature_net, data.test32)
        pick = torch.randperm(len(data.train32), generator=torch.Generator().manual_seed(0))[:cfg.n_fd]
        data.fd_floor = frechet_distance(data.real_feats, image_features(data.feature_net, data.train32[pick]))
    if "shape" in cfg.domains:
        root = shape_data_root(cfg.shape, progress=progress)
        data.shape_train, data.shape_test = load_shape_split(root, "train"), load_shape_split(root, "test")
    return data


@torch.no_grad()
def image_psnr(model, images01: torch.Tensor) -> float:
    """Mean per-image PSNR (dB, [0,1] range) of posterior-mean reconstructions of ``images01``."""
    was_training = model.training
    model.eval()
    value = float(psnr(reconstruct(model, images01), images01).mean())
    model.train(was_training)
    return value


@torch.no_grad()
def image_psnr_2x(model, images01: torch.Tensor, truth2x: torch.Tensor, *, batch_size: int = 64) -> float:
    """Mean PSNR of posterior means rendered at twice the input's size against the true 2× emoji.

    The encoder sees the ``R²`` image; the fields (or the baseline's network) are queried on the
    ``2R²`` pixel centres. ``truth2x`` holds the exact area averages of the same drawings at ``2R``.
    """
    device, out = module_device(model), []
    for start in range(0, len(images01), batch_size):
        x = to_model_range(images01[start:start + batch_size].to(device))
        fields = model.decode(model.encode(x).mode())
        out.append(to_unit_range(render(model, fields, truth2x.shape[-1], train_resolution=x.shape[-1])).cpu())
    return float(psnr(torch.cat(out), truth2x[:len(images01)]).mean())


def shape_iou(model, cfg, data: AblationData, *, seed: int = 0, progress: bool = True) -> float:
    """Mean IoU (p > 0.5) of posterior-mean reconstructions of ``n_iou`` held-out shapes over the categories."""
    index = spread_index(data.shape_test.categories, min(cfg.n_iou, len(data.shape_test)))
    return float(reconstruction_iou(model, data.shape_test, index, n_surface=cfg.shape.n_surface,
                                    surface_noise=cfg.shape.surface_noise, seed=seed, progress=progress).mean())


def row_ldm(domain: str, row: str, model, cfg, data: AblationData, *, ckpt_dir, device="cpu",
            progress: bool = True):
    """The latent diffusion model of a row, trained on its training posteriors (or reused) → (ldm, TrainResult)."""
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


def image_generation(model, ldm, cfg, data: AblationData, *, seed: int = 0, progress: bool = True) -> dict:
    """FD (FeatureNet features) of ``n_fd`` decoded samples against every held-out emoji."""
    z = sample_latents(ldm, cfg.n_fd, sampler=cfg.image_ldm.sampler, steps=cfg.image_ldm.sample_steps,
                       batch_size=cfg.image_ldm.sample_batch, generator=torch.Generator().manual_seed(seed),
                       progress=progress)
    images = decode_to_images(model, z, cfg.image.resolution, progress=progress)
    return {"fd": frechet_distance(data.real_feats, image_features(data.feature_net, images)), "samples": images[:16]}


def shape_reference_clouds(cfg, data: AblationData, *, seed: int = 0) -> torch.Tensor:
    index = spread_index(data.shape_test.categories, min(cfg.n_metric, len(data.shape_test)))
    pick = torch.randint(0, data.shape_test.surface.shape[1], (cfg.n_metric_points,),
                         generator=torch.Generator().manual_seed(seed))
    return normalize_to_unit_sphere(data.shape_test.surface[index][:, pick].float())


def shape_generation(model, ldm, cfg, data: AblationData, ref: torch.Tensor, *, seed: int = 0,
                     progress: bool = True) -> dict:
    """MMD / COV (Chamfer) of ``n_metric`` sampled shapes (meshed at ``mesh_resolution``³) against held-out clouds."""
    z = sample_latents(ldm, cfg.n_metric, sampler=cfg.shape_ldm.sampler, steps=cfg.shape_ldm.sample_steps,
                       batch_size=cfg.shape_ldm.sample_batch, generator=torch.Generator().manual_seed(seed),
                       progress=progress)
    logits = dense_occupancy(model, image_to_triplane(z), cfg.mesh_resolution, progress=progress)
    meshes = meshes_from_logits(logits, progress=progress)
    clouds = normalize_to_unit_sphere(surface_clouds(meshes, cfg.n_metric_points, seed=seed))
    scores = mmd_cov_nna(clouds, ref)
    return {"mmd": scores["mmd"], "cov": scores["cov"], "empty": sum(m.is_empty for m in meshes),
            "meshes": meshes[:8]}


@torch.no_grad()
def masked_psnr(model, images01: torch.Tensor, *, batch_size: int = 64) -> dict[str, float]:
    """Held-out PSNR with every scale on, then with each scale's embedding zeroed at render time (no retraining).

    Keys: ``all``, then ``no_coarse`` / ``no_mid`` / ``no_fine`` (``no_field`` for one scale); {} for the baseline.
    """
    k = n_scales(model)
    if k == 0:
        return {}
    device = module_device(model)
    out: dict[str, list] = {}
    for start in range(0, len(images01), batch_size):
        x = images01[start:start + batch_size]
        fields = model.decode(model.encode(to_model_range(x).to(device)).mode())
        for name, mask in scale_masks(k).items():
            img = to_unit_range(render(model, fields, x.shape[-1], scale_mask=mask)).cpu()
            out.setdefault(name.replace(" scales", "").replace(" ", "_"), []).append(psnr(img, x))
    return {name: float(torch.cat(v).mean()) for name, v in out.items()}


__all__ = [
    "AblationData",
    "image_generation",
    "image_psnr",
    "image_psnr_2x",
    "load_data",
    "masked_psnr",
    "row_ldm",
    "shape_generation",
    "shape_iou",
    "shape_reference_clouds",
]
