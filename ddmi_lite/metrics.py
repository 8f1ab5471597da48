"""Evaluation metrics for generated images and latents, and the feature network they use.

DDMI reports FID, precision and recall on images (reference §4.2: pytorch-fid InceptionV3
pool3 features).  Inception weights cannot be downloaded here, so the default features come
from :class:`FeatureNet`, a small CNN trained once, without labels, by instance discrimination
in its contrastive form (SimCLR, Chen et al. 2020): two random crops/flips/colour jitters of
one image must match each other among all views of the batch.  Numbers computed with these
features are comparable only with each other, not with published FIDs.

* PSNR = 10·log10(range² / MSE), per image; SSIM (Wang et al. 2004), per image.
* Fréchet distance (Heusel et al. 2017): ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½.
* Precision / recall (Kynkäänniemi et al. 2019): k-NN balls around each feature define a manifold.
* KID (Bińkowski et al. 2018): unbiased MMD² with the kernel k(x, y) = (xᵀy/d + 1)³.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from safetensors import safe_open
from safetensors.torch import load_file, save

from ddmi_lite.checkpoint import atomic_write
from ddmi_lite.device import resolve_device
from ddmi_lite.errors import DDMIError


# ----------------------------------------------------------------------------------------------
# pixel metric
def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Per-item PSNR [B] in dB, 10·log10(range²/MSE); MSE is floored at 1e-10·range² (100 dB cap)."""
    if a.shape != b.shape or a.ndim < 2:
        raise DDMIError(f"psnr needs two equal shapes [B, ...]; got {tuple(a.shape)} and {tuple(b.shape)}")
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)  # [B]
    mse = mse.clamp_min(1e-10 * data_range**2)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> torch.Tensor:
    """Per-item SSIM [B] of images ``[B, C, H, W]`` (Wang et al. 2004, Eq. 13) with an 11×11 Gaussian window.

    Local statistics are Gaussian-weighted (σ = 1.5, window 2·⌊3.5σ + ½⌋ + 1 = 11) over the valid
    positions only; per position and channel

        SSIM = (2 μ_a μ_b + C₁)(2 σ_ab + C₂) / ((μ_a² + μ_b² + C₁)(σ_a² + σ_b² + C₂)),
        C₁ = (k₁ L)², C₂ = (k₂ L)²,

    averaged over positions and channels (scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, use_sample_covariance=False``).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise DDMIError(f"ssim needs two equal shapes [B, C, H, W]; got {tuple(a.shape)} and {tuple(b.shape)}")
    radius = int(3.5 * sigma + 0.5)
    if min(a.shape[-2:]) < 2 * radius + 1:
        raise DDMIError(f"ssim: images of {tuple(a.shape[-2:])} are smaller than the {2 * radius + 1}² window")
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    c = a.shape[1]
    window = (g[:, None] * g[None, :]).expand(c, 1, -1, -1)  # [C, 1, k, k], one per channel

    def blur(t: torch.Tensor) -> torch.Tensor:  # Gaussian-weighted local mean, valid positions
        return F.conv2d(t, window, groups=c)

    a, b = a.double(), b.double()
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).float()


# ----------------------------------------------------------------------------------------------
# distribution metrics on features [N, D]
def _as_feats(x, name: str) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DDMIError(f"{name} must be a [N, D] array with N >= 2; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DDMIError(f"{name} contains NaN or inf")
    return arr


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of features [N, D] (float64)."""
    arr = _as_feats(feats, "feats")
    return arr.mean(0), np.cov(arr, rowvar=False).reshape(arr.shape[1], arr.shape[1])


def _sqrtm_psd(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix by eigendecomposition (negative rounding → 0)."""
    vals, vecs = np.linalg.eigh((mat + mat.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """FD of N(μ₁, Σ₁) and N(μ₂, Σ₂); tr (Σ₁Σ₂)^½ = Σ √eig(Σ₁^½ Σ₂ Σ₁^½), a symmetric PSD product."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise DDMIError(f"mismatched statistics: means {mu1.shape}/{mu2.shape}, covariances {cov1.shape}/{cov2.shape}")
    root1 = _sqrtm_psd(cov1)
    inner = root1 @ cov2 @ root1  # Σ₁^½ Σ₂ Σ₁^½, symmetric PSD
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)


def frechet_distance(feats_a, feats_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] (FID when D = Inception pool3)."""
    return frechet_distance_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖² [n, m] in float64, clamped at 0."""
    return (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def _knn_radii(feats: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Squared distance from each point to its k-th nearest other point [N]."""
    out = [_sq_dists(feats[i:i + batch_size], feats).kthvalue(k + 1, dim=1).values  # +1: itself at 0
           for i in range(0, feats.shape[0], batch_size)]
    return torch.cat(out)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> float:
    """Fraction of points inside at least one ball (centre_j, radius_j)."""
    hits = [(_sq_dists(points[i:i + batch_size], centres) <= radii[None, :]).any(1)
            for i in range(0, points.shape[0], batch_size)]
    return float(torch.cat(hits).double().mean())


def precision_recall(real_feats, fake_feats, *, k: int = 3, batch_size: int = 1024) -> tuple[float, float]:
    """Improved precision/recall, Kynkäänniemi et al. 2019 Eq. 1–3: fake in real k-NN manifold, and vice versa."""
    real = torch.from_numpy(_as_feats(real_feats, "real_feats"))
    fake = torch.from_numpy(_as_feats(fake_feats, "fake_feats"))
    if real.shape[1] != fake.shape[1]:
        raise DDMIError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise DDMIError(f"k={k} must be in 1..{min(real.shape[0], fake.shape[0]) - 1} (smaller than both set sizes)")
    precision = _inside(fake, real, _knn_radii(real, k, batch_size), batch_size)
    recall = _inside(real, fake, _knn_radii(fake, k, batch_size), batch_size)
    return precision, recall


def kid(feats_a, feats_b, *, subsets: int = 10, subset_size: int = 1000, seed: int = 0,
        return_std: bool = False):
    """KID, Bińkowski et al. 2018: mean over random subsets of the unbiased MMD² with k(x,y) = (xᵀy/d + 1)³."""
    a, b = _as_feats(feats_a, "feats_a"), _as_feats(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise DDMIError(f"feature sizes differ: {a.shape[1]} and {b.shape[1]}")
    if subsets < 1:
        raise DDMIError(f"subsets={subsets} must be >= 1")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise DDMIError(f"subset_size={subset_size} must be >= 2")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        # MMD²_u = Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i,y_j)/m²
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    mean = float(np.mean(values))
    return (mean, float(np.std(values))) if return_std else mean


# ----------------------------------------------------------------------------------------------
# feature networks
class FeatureNet(nn.Module):
    """Small CNN for 32² RGB in [0, 1]: five 3×3 convs (three stride 2) → global average → 128-d features.

    ``forward`` returns the features (the layer before the projection head); ``project`` adds
    the head used only by the contrastive objective.  Any input size works (global average
    pooling); 32² is what it is sized for.
    """

    def __init__(self, *, feature_dim: int = 128, width: int = 32):
        super().__init__()
        w = width

        def conv(cin, cout, stride=1):
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]

        self.body = nn.Sequential(
            *conv(3, w),  # [B, w, 32, 32]
            *conv(w, 2 * w, 2),  # [B, 2w, 16, 16]
            *conv(2 * w, 4 * w, 2),  # [B, 4w, 8, 8]
            *conv(4 * w, 4 * w),
            *conv(4 * w, 4 * w, 2),  # [B, 4w, 4, 4]
        )
        self.fc = nn.Linear(4 * w, feature_dim)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(feature_dim, feature_dim))  # projection head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.body(images * 2.0 - 1.0)  # [B, 4w, H/8, W/8]
        return self.fc(h.mean(dim=(2, 3)))  # [B, feature_dim]

    def project(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self(images)), dim=1)  # [B, feature_dim], unit norm


class ClipFeatureNet(nn.Module):
    """Small 3D CNN for clips ``[B, T, 3, H, W]`` in [0, 1] (16 × 32² by default): a 1×3×3 conv of
    stride (1, 2, 2), three 3×3×3 convs (strides 2, 2, 1) → global average over (t, y, x) → 128-d features.

    The video counterpart of :class:`FeatureNet` (same ``forward`` / ``project`` API), trained the
    same way; a Fréchet distance on its features is a small-network stand-in for FVD (not I3D).
    """

    def __init__(self, *, feature_dim: int = 128, width: int = 16):
        super().__init__()
        w = width

        def conv(cin, cout, stride=1):
            return [nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]

        self.body = nn.Sequential(
            nn.Conv3d(3, w, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)), nn.GroupNorm(8, w), nn.SiLU(),
            # [B, w, T, 16, 16]
            *conv(w, 2 * w, 2),  # [B, 2w, T/2, 8, 8]
            *conv(2 * w, 4 * w, 2),  # [B, 4w, T/4, 4, 4]
            *conv(4 * w, 4 * w),
        )
        self.fc = nn.Linear(4 * w, feature_dim)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(feature_dim, feature_dim))  # projection head

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        h = self.body(rearrange(clips * 2.0 - 1.0, "b t c h w -> b c t h w"))  # [B, 4w, T', H', W']
        return self.fc(h.mean(dim=(2, 3, 4)))  # [B, feature_dim]

    def project(self, clips: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self(clips)), dim=1)  # [B, feature_dim], unit norm


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop-and-resize (side 0.7–1), horizontal flip, brightness/contrast/saturation jitter.

    Images ``[B, 3, H, W]``, or clips ``[B, T, 3, H, W]``: one draw per clip, applied to all its frames.
    """
    b = images.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    side = u(0.7, 1.0)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, 0, 2], theta[:, 1, 2] = (1 - side) * u(-1, 1), (1 - side) * u(-1, 1)
    clip = images.ndim == 5
    flat = rearrange(images, "b t c h w -> b (t c) h w") if clip else images  # frames share the warp
    grid = F.affine_grid(theta.to(flat), list(flat.shape), align_corners=False)
    x = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if clip:
        x = rearrange(x, "b (t c) h w -> b t c h w", c=images.shape[2])
    per = (slice(None),) + (None,) * (x.ndim - 1)  # one value per item, broadcast over the rest
    x = x + u(-0.15, 0.15).to(x)[per]  # brightness
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    x = mean + (x - mean) * u(0.7, 1.3).to(x)[per]  # contrast
    grey = x.mean(dim=-3, keepdim=True)  # over the colour channels
    x = grey + (x - grey) * u(0.5, 1.5).to(x)[per]  # saturation
    return x.clamp(0.0, 1.0)


def contrastive_loss(net: FeatureNet | ClipFeatureNet, images: torch.Tensor, gen: torch.Generator, *,
                     temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (Chen et al. 2020, SimCLR Eq. 1): each view must pick its partner among the 2B − 1 others."""
    b = images.shape[0]
    device = next(net.parameters()).device
    views = torch.cat([augment(images, gen), augment(images, gen)]).to(device)  # [2B, 3, H, W]
    z = net.project(views)  # [2B, D]
    sim = (z @ z.T / temperature).fill_diagonal_(float("-inf"))  # no self-matches
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(device)
    return F.cross_entropy(sim, partner)


def _fingerprint(images: torch.Tensor) -> str:
    quantised = (images.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return hashlib.sha256(quantised.numpy().tobytes()).hexdigest()[:16]


def train_feature_net(images: torch.Tensor, *, steps: int = 400, seed: int = 0, batch_size: int = 64,
                      lr: float = 2e-3, cache_path: str | os.PathLike | None = None, device: str = "cpu",
                      progress: bool = False, width: int | None = None) -> FeatureNet | ClipFeatureNet:
    """Train :class:`FeatureNet` without labels by instance discrimination (:func:`contrastive_loss`).

    Clips ``[N, T, 3, H, W]`` train a :class:`ClipFeatureNet` instead (``width`` default 16;
    images: 32), with one augmentation draw per clip.

    ``batch_size`` images give 2·``batch_size`` augmented views per step; 400 steps on the
    3,862 emoji of 32² take about a minute on one CPU core.  With ``cache_path`` the weights
    are loaded when the file holds a net trained with the same images (sha256 of the 8-bit
    pixels), steps, batch size and seed; otherwise they are trained and saved there
    (safetensors, atomic write).  Returns the net in eval mode.
    """
    clips = images.ndim == 5
    if images.ndim not in (4, 5) or images.shape[-3] != 3:
        raise DDMIError(f"images must be [N, 3, H, W] (or clips [N, T, 3, H, W]) in [0, 1]; got shape {tuple(images.shape)}")
    if steps < 1 or images.shape[0] < 2 or batch_size < 2:
        raise DDMIError(f"need steps >= 1 (got {steps}), batch_size >= 2 (got {batch_size}) and >= 2 images")
    dev = resolve_device(device)
    n = images.shape[0]
    width = width or (16 if clips else 32)
    meta = dict(objective="nt_xent", feature_dim="128", width=str(width), steps=str(steps), seed=str(seed),
                batch_size=str(batch_size), lr=repr(lr), images_sha256=_fingerprint(images))
    if clips:
        meta["arch"] = "clip3d"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClipFeatureNet(width=width) if clips else FeatureNet(width=width)
    if cache_path is not None and Path(cache_path).is_file():
        with safe_open(str(cache_path), framework="pt") as f:
            stored = f.metadata() or {}
        if stored == meta:
            net.load_state_dict(load_file(str(cache_path)))
            return net.to(dev).eval()

    net.to(dev).train()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = images.detach().float().cpu()
    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="feature net")
    for _ in iterator:
        idx = torch.randperm(n, generator=gen)[: min(batch_size, n)]  # distinct images: no false negatives
        loss = contrastive_loss(net, data[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    if cache_path is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        atomic_write(Path(cache_path), save(state, metadata=meta))
    return net


@torch.no_grad()
def image_features(net: nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Features [N, D] (float64 numpy) of images [N, 3, H, W] in [0, 1], computed in eval mode."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise DDMIError(f"images must be [N, 3, H, W] in [0, 1]; got shape {tuple(images.shape)}")
    return _batched_features(net, images, batch_size)


@torch.no_grad()
def clip_features(net: nn.Module, clips: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Features [N, D] (float64 numpy) of clips [N, T, 3, H, W] in [0, 1] (a :class:`ClipFeatureNet`)."""
    if clips.ndim != 5 or clips.shape[2] != 3:
        raise DDMIError(f"clips must be [N, T, 3, H, W] in [0, 1]; got shape {tuple(clips.shape)}")
    return _batched_features(net, clips, batch_size)


def _batched_features(net: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    """``net`` in eval mode over ``x`` in batches on the net's device → float64 numpy ``[N, D]``."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = [net(x[i:i + batch_size].to(device=device, dtype=torch.float32)).double().cpu()
           for i in range(0, x.shape[0], batch_size)]
    net.train(was_training)
    return torch.cat(out).numpy()


class InceptionFeatures:
    """pytorch-fid InceptionV3 pool3 features from a local weights file (never downloaded).

    Only the file check exists: the InceptionV3 architecture is not implemented in ddmi_lite,
    so a present file raises as well.  Use :class:`FeatureNet` for comparisons within this project.
    """

    def __init__(self, weights_path: str | os.PathLike):
        path = Path(weights_path)
        if not path.is_file():
            raise DDMIError(
                f"weights_path={str(path)!r} does not exist: InceptionFeatures needs a local copy of the "
                "pytorch-fid weights (pt_inception-2015-12-05-6726825d.pth); ddmi_lite never downloads"
            )
        raise DDMIError(
            f"InceptionFeatures({str(path)!r}): the InceptionV3 architecture is not yet supported in "
            "ddmi_lite; use FeatureNet / train_feature_net features instead"
        )


__all__ = [
    "psnr", "ssim", "feature_stats", "frechet_distance", "frechet_distance_from_stats", "precision_recall", "kid",
    "FeatureNet", "ClipFeatureNet", "clip_features", "augment", "contrastive_loss", "train_feature_net", "image_features", "InceptionFeatures",
]
