"""Shape metrics: IoU, Chamfer distance and PointFlow's MMD / COV / 1-NNA (reference §4.2).

The reference evaluation samples 2,048 surface points per generated mesh, normalises each cloud
to the unit sphere (bounding-box centre, largest radius 1: :func:`normalize_to_unit_sphere`) and
calls PointFlow's ``compute_all_metrics`` with the Chamfer distance only. The definitions below
follow PointFlow (``metrics/evaluation_metrics.py``):

* Chamfer distance (PointFlow's ``distChamfer``): the sum of the two mean *squared* nearest-
  neighbour distances, CD(A, B) = mean_a min_b ‖a − b‖² + mean_b min_a ‖a − b‖².
* D = CD(ref_i, gen_j) for every pair → [N_ref, N_gen].
* MMD-CD = mean over reference clouds of the distance to their nearest generated cloud,
  mean_i min_j D_ij (lower is better).
* COV-CD = fraction of reference clouds that are the nearest reference of at least one
  generated cloud, |{argmin_i D_ij : j}| / N_ref (higher is better).
* 1-NNA-CD = accuracy of the leave-one-out 1-nearest-neighbour classifier that labels every
  cloud of gen ∪ ref by the set of its nearest other cloud. 0.5 is ideal (the sets cannot be
  told apart); 1 means they are fully separated. A generated set that *copies* the reference
  gives 0: each cloud's nearest other cloud is its copy, from the other set. Ties: the first
  index in the order [ref, gen] wins (``torch.argmin``).

IoU (ONet): |pred ∧ true| / |pred ∨ true| per item; defined as 1 when both are empty.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from ddmi_lite.errors import DDMIError


def _as_tensor(x, name: str, *, dtype=None) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    return t.to(dtype) if dtype is not None else t


def _clouds(x, name: str) -> torch.Tensor:
    t = _as_tensor(x, name)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[-1] != 3 or t.shape[1] == 0:
        raise DDMIError(f"{name} has shape {tuple(t.shape)}; expected [B, N, 3] (or [N, 3]) with N ≥ 1")
    if not t.is_floating_point():
        t = t.float()
    return t


def iou(occ_pred, occ_true) -> torch.Tensor:
    """Per-item IoU of boolean occupancies [B, ...] → [B] (a single [N] item → a 0-d tensor)."""
    pred, true = _as_tensor(occ_pred, "occ_pred"), _as_tensor(occ_true, "occ_true")
    for name, t in (("occ_pred", pred), ("occ_true", true)):
        if t.dtype != torch.bool:
            raise DDMIError(f"{name} has dtype {t.dtype}; expected bool (threshold probabilities first)")
    if pred.shape != true.shape or pred.ndim == 0:
        raise DDMIError(f"occ_pred {tuple(pred.shape)} and occ_true {tuple(true.shape)} must have one shape [B, ...]")
    single = pred.ndim == 1
    pred, true = pred.reshape(1 if single else len(pred), -1), true.reshape(1 if single else len(true), -1)
    inter = (pred & true).sum(1).double()
    union = (pred | true).sum(1).double()
    out = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))  # both empty → 1
    return out[0] if single else out


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, clamped at 0: [B,N,3], [B,M,3] → [B,N,M]."""
    d = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)
    return d.clamp_min_(0)


def chamfer_distance(a, b, *, chunk: int = 2048) -> torch.Tensor:
    """CD(a_k, b_k) = mean_i min_j ‖a_i − b_j‖² + mean_j min_i ‖a_i − b_j‖² → [B].

    ``a`` [B,N,3] and ``b`` [B,M,3] (or [N,3] / [M,3] → [1]); the points of ``a`` are processed
    ``chunk`` at a time, so memory is B·chunk·M, on the inputs' device.
    """
    a, b = _clouds(a, "a"), _clouds(b, "b")
    if len(a) != len(b):
        raise DDMIError(f"a has {len(a)} clouds and b has {len(b)}; expected the same batch size")
    b = b.to(a.device, a.dtype)
    a_to_b = []
    b_to_a = torch.full(b.shape[:2], float("inf"), device=a.device, dtype=a.dtype)  # [B,M]
    for start in range(0, a.shape[1], chunk):
        d = _sq_dists(a[:, start:start + chunk], b)  # [B,n,M]
        a_to_b.append(d.min(dim=2).values)
        b_to_a = torch.minimum(b_to_a, d.min(dim=1).values)
    return torch.cat(a_to_b, dim=1).mean(1) + b_to_a.mean(1)


def pairwise_chamfer(set_a, set_b, *, batch: int | None = None, device=None, method: str = "auto",
                     progress: bool = False) -> torch.Tensor:
    """CD between every cloud of ``set_a`` [Na,N,3] and of ``set_b`` [Nb,M,3] → [Na, Nb] (float64, CPU).

    ``method``: ``"kdtree"`` builds one k-d tree per cloud (:class:`scipy.spatial.cKDTree`) and
    answers each nearest-neighbour query in O(log M) — the default on CPU, where it is many times
    faster than the dense distances; ``"dense"`` computes all N·M squared distances
    (:func:`chamfer_distance`, ``batch`` clouds of ``set_b`` at a time, default as many as fit ~2²⁶
    distances) — the default on GPU. Both give CD up to float rounding (``tests/test_metrics3d.py``).
    ``device`` defaults to the device of ``set_a``; ``progress`` shows a bar over the rows.
    """
    a, b = _clouds(set_a, "set_a"), _clouds(set_b, "set_b")
    device = a.device if device is None else torch.device(device)
    if method not in ("auto", "kdtree", "dense"):
        raise DDMIError(f"method={method!r} must be 'auto', 'kdtree' or 'dense'")
    if method == "kdtree" or (method == "auto" and device.type == "cpu"):
        a_np = a.double().cpu().numpy()
        same = set_a is set_b  # CD is symmetric: one set against itself needs each pair once
        return _pairwise_chamfer_kdtree(a_np, a_np if same else b.double().cpu().numpy(), symmetric=same,
                                        progress=progress)
    a, b = a.to(device), b.to(device, a.dtype)
    if batch is None:
        batch = max(1, (1 << 26) // (a.shape[1] * b.shape[1]))
    out = torch.empty(len(a), len(b), dtype=torch.float64)
    with torch.no_grad():
        for i in tqdm(range(len(a)), desc="chamfer", disable=not progress, leave=False):
            for start in range(0, len(b), batch):
                part = b[start:start + batch]
                out[i, start:start + len(part)] = chamfer_distance(a[i:i + 1].expand(len(part), -1, -1), part).double().cpu()
    return out


def _pairwise_chamfer_kdtree(a: np.ndarray, b: np.ndarray, *, symmetric: bool = False,
                             progress: bool = False) -> torch.Tensor:
    """[Na,N,3], [Nb,M,3] float64 → CD [Na, Nb]: one k-d tree per cloud, queried by the other cloud's points.
    ``symmetric``: ``b`` is ``a``, so only the pairs j ≥ i are computed and mirrored."""
    trees_a = [cKDTree(x) for x in a]
    trees_b = trees_a if symmetric else [cKDTree(x) for x in b]
    out = np.empty((len(a), len(b)))
    for i in tqdm(range(len(a)), desc="chamfer", disable=not progress, leave=False):
        for j in range(i if symmetric else 0, len(b)):
            d_ab, _ = trees_b[j].query(a[i], k=1)  # [N] distance of each a-point to its nearest b-point
            d_ba, _ = trees_a[i].query(b[j], k=1)  # [M]
            out[i, j] = np.mean(d_ab * d_ab) + np.mean(d_ba * d_ba)  # CD = mean min‖·‖² both ways
            if symmetric:
                out[j, i] = out[i, j]
    return torch.from_numpy(out)


def mmd_cov_nna(gen, ref, *, batch: int | None = None, device=None, method: str = "auto",
                progress: bool = False) -> dict[str, float]:
    """PointFlow's MMD-CD, COV-CD and 1-NNA-CD of generated vs reference clouds (see module doc);
    ``method``/``progress`` as in :func:`pairwise_chamfer`."""
    gen, ref = _clouds(gen, "gen"), _clouds(ref, "ref")
    if len(gen) < 1 or len(ref) < 1 or len(gen) + len(ref) < 3:
        raise DDMIError(f"gen has {len(gen)} and ref {len(ref)} clouds; 1-NNA needs at least 3 in all")
    kw = dict(batch=batch, device=device, method=method, progress=progress)
    d_rg = pairwise_chamfer(ref, gen, **kw)                         # [Nr,Ng]
    mmd = d_rg.min(dim=1).values.mean()                             # mean over ref of min over gen
    cov = torch.unique(d_rg.argmin(dim=0)).numel() / len(ref)       # refs that are some gen's nearest
    d_rr = pairwise_chamfer(ref, ref, **kw)
    d_gg = pairwise_chamfer(gen, gen, **kw)
    d = torch.cat([torch.cat([d_rr, d_rg], 1), torch.cat([d_rg.T, d_gg], 1)], 0)  # [Nr+Ng, Nr+Ng]
    d.fill_diagonal_(float("inf"))                                  # leave one out
    label = torch.cat([torch.ones(len(ref)), torch.zeros(len(gen))])
    nna = (label[d.argmin(dim=1)] == label).double().mean()
    return {"mmd": float(mmd), "cov": float(cov), "nna": float(nna)}


def normalize_to_unit_sphere(points) -> torch.Tensor:
    """Centre each cloud on its bounding-box centre and scale its farthest point to radius 1.

    [N,3] or [B,N,3] → same shape (float). A cloud of one repeated point is only centred.
    """
    p = _as_tensor(points, "points")
    single = p.ndim == 2
    p = _clouds(p, "points")
    centre = (p.amax(dim=1, keepdim=True) + p.amin(dim=1, keepdim=True)) / 2     # [B,1,3]
    radius = (p - centre).norm(dim=-1).amax(dim=1, keepdim=True)[..., None]      # [B,1,1]
    out = (p - centre) / torch.where(radius > 0, radius, torch.ones_like(radius))
    return out[0] if single else out


def pairwise_iou(occ) -> torch.Tensor:
    """IoU between every pair of boolean occupancies ``[M, ...]`` → ``[M, M]`` (float64; 1 where both are empty).

    The mean of the off-diagonal entries measures how alike M shapes drawn for one condition are:
    1 means identical shapes, lower means more diverse samples.
    """
    t = _as_tensor(occ, "occ")
    if t.dtype != torch.bool or t.ndim < 2:
        raise DDMIError(f"occ has dtype {t.dtype} and shape {tuple(t.shape)}; expected bool [M, ...]")
    flat = t.reshape(len(t), -1).double()
    inter = flat @ flat.T                                            # |a ∧ b|
    sizes = flat.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter                  # |a ∨ b|
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def mean_pairwise_iou(occ) -> float:
    """Mean IoU over the M·(M−1) ordered pairs of distinct items of ``occ`` [M, ...] (M ≥ 2)."""
    m = pairwise_iou(occ)
    if len(m) < 2:
        raise DDMIError(f"mean_pairwise_iou needs at least 2 items, got {len(m)}")
    return float((m.sum() - m.diagonal().sum()) / (len(m) * (len(m) - 1)))
