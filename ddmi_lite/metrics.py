"""Evaluation metrics for generated images and their features (DDMI §4.2–4.4).

DDMI reports PSNR of reconstructions and FID, precision and recall of samples (reference §4.2).
The features these distribution metrics compare come from :mod:`ddmi_lite.features`.

* PSNR = 10·log10(range² / MSE), per image; SSIM (Wang et al. 2004), per image.
* Fréchet distance (Heusel et al. 2017): ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½.
* Precision / recall (Kynkäänniemi et al. 2019): k-NN balls around each feature define a manifold;
  optionally at equal set sizes (the larger set subsampled, averaged over draws).
* KID (Bińkowski et al. 2018): unbiased MMD² with the kernel k(x, y) = (xᵀy/d + 1)³.
* Latent MMD: biased MMD² with a Gaussian kernel between two sets of latents (sampler comparisons).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

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


def precision_recall(real_feats, fake_feats, *, k: int = 3, batch_size: int = 1024, equal_sizes: bool = False,
                     repeats: int = 10, seed: int = 0, return_std: bool = False):
    """Improved precision/recall, Kynkäänniemi et al. 2019 Eq. 1–3: fake in real k-NN manifold, and vice versa.

    The k-NN balls shrink as a set grows, so sets of different sizes bias the two numbers: the larger
    set's balls are small (its manifold is tight) while the smaller set's are wide. With
    ``equal_sizes`` the larger set is subsampled (without replacement) to the smaller one's size,
    ``repeats`` times with ``seed``, and the estimates are averaged; sets of one size are scored once,
    exactly as without it. ``return_std`` adds the std over the repeats:
    ``(precision, recall, precision_std, recall_std)`` (std 0 when nothing was subsampled).
    """
    real = torch.from_numpy(_as_feats(real_feats, "real_feats"))
    fake = torch.from_numpy(_as_feats(fake_feats, "fake_feats"))
    if real.shape[1] != fake.shape[1]:
        raise DDMIError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise DDMIError(f"k={k} must be in 1..{min(real.shape[0], fake.shape[0]) - 1} (smaller than both set sizes)")
    if equal_sizes and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise DDMIError(f"repeats={repeats!r} must be a positive int")

    def plain(r: torch.Tensor, f: torch.Tensor) -> tuple[float, float]:
        return (_inside(f, r, _knn_radii(r, k, batch_size), batch_size),
                _inside(r, f, _knn_radii(f, k, batch_size), batch_size))

    n = min(real.shape[0], fake.shape[0])
    if not equal_sizes or real.shape[0] == fake.shape[0]:
        values = [plain(real, fake)]
    else:
        rng = np.random.default_rng(seed)
        pick = lambda x: x[torch.from_numpy(rng.choice(x.shape[0], n, replace=False))] if x.shape[0] > n else x
        values = [plain(pick(real), pick(fake)) for _ in range(repeats)]  # [repeats] × (precision, recall)
    arr = np.asarray(values)  # [repeats, 2]
    precision, recall = float(arr[:, 0].mean()), float(arr[:, 1].mean())
    if return_std:
        return precision, recall, float(arr[:, 0].std()), float(arr[:, 1].std())
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


def pca_projection(feats, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and the top ``dim`` principal directions [D, dim] of features [N, D] (float64).

    ``(x − mean) @ directions`` maps features to ``dim`` dimensions. Fitted on one set (say, the
    training data) and applied unchanged to every set that is compared, it lets a Fréchet distance
    use sets of n images with n well above the dimension, where D-dimensional covariances of
    n ≤ D points would be singular.
    """
    arr = _as_feats(feats, "feats")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= min(arr.shape):
        raise DDMIError(f"dim={dim!r} must be an int in 1..{min(arr.shape)} (features of shape {arr.shape})")
    mean = arr.mean(0)
    _, _, vt = np.linalg.svd(arr - mean, full_matrices=False)  # rows of vt: directions, by variance
    return mean, vt[:dim].T


def fd_vs_sample_size(feats, ref_feats, sizes, *, repeats: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """FD of random subsets of ``feats`` of each size against all of ``ref_feats``, ``repeats`` draws each.

    Returns ``{"n": sizes, "mean": [S], "std": [S]}`` (std over the draws; 0 at the full size, which
    is a single draw). FD is biased upwards at small n: the sampling error of the mean and of the
    covariance adds ≈ tr Σ / n and more (Chong & Forsyth 2020), so FDs compare only at equal n.
    """
    a = _as_feats(feats, "feats")
    _as_feats(ref_feats, "ref_feats")
    sizes = np.asarray([int(s) for s in sizes])
    if (sizes < 2).any() or (sizes > a.shape[0]).any():
        raise DDMIError(f"sizes must lie in 2..{a.shape[0]}; got {sizes.tolist()}")
    ref_stats = feature_stats(ref_feats)
    rng = np.random.default_rng(seed)
    mean, std = [], []
    for size in sizes:
        draws = 1 if size == a.shape[0] else repeats
        vals = [frechet_distance_from_stats(*feature_stats(a[rng.choice(a.shape[0], size, replace=False)]), *ref_stats)
                for _ in range(draws)]
        mean.append(np.mean(vals))
        std.append(np.std(vals))
    return {"n": sizes, "mean": np.asarray(mean), "std": np.asarray(std)}


def fd_infinity(sizes, fds) -> tuple[float, float]:
    """Least-squares fit FD(n) ≈ FD∞ + c / n (Chong & Forsyth 2020): returns ``(FD∞, c)``."""
    n, y = np.asarray(sizes, np.float64), np.asarray(fds, np.float64)
    if n.shape != y.shape or n.size < 2 or len(np.unique(n)) < 2:
        raise DDMIError("fd_infinity needs FDs at two or more different sizes")
    design = np.stack([np.ones_like(n), 1.0 / n], axis=1)
    (fd_inf, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(fd_inf), float(slope)


__all__ = [
    "psnr", "ssim", "feature_stats", "frechet_distance", "frechet_distance_from_stats", "precision_recall", "kid",
    "latent_mmd", "fd_vs_sample_size", "fd_infinity", "pca_projection",
]
