"""Exact ray casting of the analytic solids (:mod:`ddmi_lite.data.primitives`), in numpy.

Every primitive is intersected analytically in its local frame (vectorised over rays): box —
slab method; cylinder and capsule — the quadratic of the side, the caps (planes) / end spheres;
cone frustum — the quadric x² + z² = (m + k·y)², k = (r₁ − r₀)/2h, m = r₀ + k·h, cut to
|y| ≤ h, plus the two discs; sphere — the quadratic; torus — the quartic
(|p|² + R² − r²)² = 4R²(x² + z²), whose roots are the eigenvalues of its companion matrix
(batched), polished by Newton steps. A bounding-sphere test skips the rays that miss a part.
The camera is outside every solid, so the first surface crossing along a ray is where it enters
the union: :func:`cast_rays` returns t = min over parts and candidate roots, the part hit and the
outward normal there.
"""

from __future__ import annotations

import math

import numpy as np

from ddmi_lite.data.primitives import Primitive

_EPS = 1e-9


def _bounding_radius(part: Primitive) -> float:
    s = part.size
    return {"box": lambda: math.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2),
            "cylinder": lambda: math.hypot(s[0], s[1]), "frustum": lambda: math.hypot(max(s[0], s[1]), s[2]),
            "sphere": lambda: s[0], "torus": lambda: s[0] + s[1], "capsule": lambda: s[0] + s[1]}[part.kind]()


def _quadratic(a, b, c):
    """Both real roots of a·t² + b·t + c (linear where a ≈ 0); NaN where there are none."""
    disc = b * b - 4 * a * c
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    linear = np.abs(a) < 1e-12
    a_safe = np.where(linear, 1.0, a)
    t_lin = -c / np.where(np.abs(b) < 1e-300, 1e-300, b)
    return np.where(linear, t_lin, (-b - root) / (2 * a_safe)), np.where(linear, np.nan, (-b + root) / (2 * a_safe))


def _plane_y(o, d, y0, radius):
    """Hit of the disc y = y0, ρ ≤ radius (local frame): t (NaN when missed)."""
    dy = np.where(np.abs(d[:, 1]) < 1e-300, 1e-300, d[:, 1])
    t = (y0 - o[:, 1]) / dy
    x, z = o[:, 0] + t * d[:, 0], o[:, 2] + t * d[:, 2]
    return np.where(x * x + z * z <= radius * radius, t, np.nan)


def _torus_roots(o, d, big, small):
    """Smallest positive real root of the torus quartic per ray (NaN when none)."""
    b, g0 = (o * d).sum(1), (o * o).sum(1) + big * big - small * small
    a_xz, b_xz, c_xz = d[:, 0] ** 2 + d[:, 2] ** 2, 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]), o[:, 0] ** 2 + o[:, 2] ** 2
    # t⁴ + c3 t³ + c2 t² + c1 t + c0 = (t² + 2bt + g0)² − 4R²(A t² + B t + C)
    c3, c2 = 4 * b, 4 * b * b + 2 * g0 - 4 * big * big * a_xz
    c1, c0 = 4 * b * g0 - 4 * big * big * b_xz, g0 * g0 - 4 * big * big * c_xz
    n = len(o)
    companion = np.zeros((n, 4, 4))
    companion[:, 1, 0], companion[:, 2, 1], companion[:, 3, 2] = 1.0, 1.0, 1.0
    companion[:, :, 3] = -np.stack([c0, c1, c2, c3], 1)
    roots = np.linalg.eigvals(companion)                                   # [n,4] complex
    t = np.where(np.abs(roots.imag) < 1e-4 * (big + small), roots.real, np.nan)
    for _ in range(3):  # Newton polish of the (near-)real roots
        f = (((t + c3[:, None]) * t + c2[:, None]) * t + c1[:, None]) * t + c0[:, None]
        df = ((4 * t + 3 * c3[:, None]) * t + 2 * c2[:, None]) * t + c1[:, None]
        t = t - np.where(np.abs(df) > 1e-12, f / np.where(np.abs(df) > 1e-12, df, 1.0), 0.0)
    p = o[:, None, :] + t[..., None] * d[:, None, :]                      # [n,4,3]
    on_surface = np.abs(np.hypot(np.hypot(p[..., 0], p[..., 2]) - big, p[..., 1]) - small) < 1e-6
    t = np.where(on_surface & (t > _EPS), t, np.inf)
    t = t.min(1)
    return np.where(np.isfinite(t), t, np.nan)


def _part_hits(part: Primitive, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest positive t where each ray (local frame, unit d) crosses the part's surface; inf if none."""
    s, kind = part.size, part.kind
    cands = []

    def y_of(t):
        return o[:, 1] + t * d[:, 1]

    if kind == "box":
        h = np.asarray(s)
        d_safe = np.where(np.abs(d) < 1e-300, 1e-300, d)
        t1, t2 = (-h - o) / d_safe, (h - o) / d_safe                        # [n,3]
        t_in, t_out = np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)
        cands.append(np.where(t_in <= t_out, t_in, np.nan))
    elif kind in ("cylinder", "frustum", "capsule"):
        if kind == "frustum":
            r0, r1, h = s
            k = (r1 - r0) / (2 * h)
            m = r0 + k * h                                                  # r(y) = m + k·y
        else:
            r0 = r1 = s[0]
            h, k, m = s[1], 0.0, s[0]
        w = m + k * o[:, 1]
        a = d[:, 0] ** 2 + d[:, 2] ** 2 - k * k * d[:, 1] ** 2
        b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] - k * d[:, 1] * w)
        c = o[:, 0] ** 2 + o[:, 2] ** 2 - w * w
        for t in _quadratic(a, b, c):                                       # lateral surface, |y| ≤ h
            cands.append(np.where(np.abs(y_of(t)) <= h, t, np.nan))
        if kind == "capsule":  # end hemispheres: |p − (0, ±h, 0)| = r beyond the cylinder's ends
            for sign in (-1.0, 1.0):
                oc = o - np.array([0.0, sign * h, 0.0])
                bb = (oc * d).sum(1)
                for t in _quadratic(np.ones(len(o)), 2 * bb, (oc * oc).sum(1) - s[0] ** 2):
                    cands.append(np.where(sign * y_of(t) >= h, t, np.nan))
        else:
            cands += [_plane_y(o, d, -h, r0), _plane_y(o, d, h, r1)]
    elif kind == "sphere":
        cands += list(_quadratic(np.ones(len(o)), 2 * (o * d).sum(1), (o * o).sum(1) - s[0] ** 2))
    else:
        cands.append(_torus_roots(o, d, s[0], s[1]))
    t = np.stack(cands, 1)                                                  # [n,C]
    t = np.where(np.isnan(t) | (t <= _EPS), np.inf, t)
    return t.min(1)


def _local_normals(part: Primitive, q: np.ndarray) -> np.ndarray:
    """Outward unit normals at local surface points q [n,3] (the nearest face / curved side)."""
    s, kind = part.size, part.kind
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    rho = np.maximum(np.hypot(x, z), 1e-12)
    if kind == "box":
        gap = np.abs(np.abs(q) - np.asarray(s))                             # distance to each face pair
        axis = gap.argmin(1)
        n = np.zeros_like(q)
        n[np.arange(len(q)), axis] = np.sign(q[np.arange(len(q)), axis])
        return n
    if kind == "sphere":
        return q / np.linalg.norm(q, axis=1, keepdims=True)
    if kind == "torus":
        v = np.stack([(rho - s[0]) * x / rho, y, (rho - s[0]) * z / rho], 1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    if kind == "capsule":
        axis_pt = np.stack([0 * y, np.clip(y, -s[1], s[1]), 0 * y], 1)
        v = q - axis_pt
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    r0, r1, h = (s[0], s[0], s[1]) if kind == "cylinder" else s
    k = (r1 - r0) / (2 * h)
    side = np.stack([x / rho, np.full_like(x, -k), z / rho], 1) / math.sqrt(1 + k * k)
    r_at = r0 + k * (y + h)
    on_cap = np.abs(np.abs(y) - h) < np.maximum(np.abs(rho - r_at) * math.sqrt(1 + k * k), 1e-12)
    cap = np.stack([0 * y, np.sign(y), 0 * y], 1)
    return np.where(on_cap[:, None], cap, side)


def cast_rays(parts: list[Primitive], origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of rays with the union of ``parts`` (camera outside all of them).

    origins, dirs [N,3] (dirs unit) → t [N] (inf on a miss), part index [N] (−1 on a miss),
    outward unit normals [N,3] in world coordinates (0 on a miss).
    """
    o_all, d_all = np.asarray(origins, dtype=np.float64), np.asarray(dirs, dtype=np.float64)
    n = len(o_all)
    best_t, best_part = np.full(n, np.inf), np.full(n, -1)
    od, oo = np.einsum("ij,ij->i", o_all, d_all), np.einsum("ij,ij->i", o_all, o_all)
    for j, part in enumerate(parts):
        # bounding-sphere test first: |(c − o) × d| ≤ radius and the sphere is not behind
        along = d_all @ part.center - od                                   # (c − o)·d
        miss2 = oo - 2 * (o_all @ part.center) + part.center @ part.center - along * along
        rad = _bounding_radius(part)
        idx = np.nonzero((miss2 <= rad * rad * (1 + 1e-9)) & (along + rad > 0))[0]
        if idx.size == 0:
            continue
        o = (o_all[idx] - part.center) @ part.rotation                    # local frame, row form Rᵀ(p − c)
        d = d_all[idx] @ part.rotation
        t = _part_hits(part, o, d)
        closer = t < best_t[idx]
        best_t[idx[closer]], best_part[idx[closer]] = t[closer], j
    normals = np.zeros((n, 3))
    for j, part in enumerate(parts):
        idx = np.nonzero(best_part == j)[0]
        if idx.size:
            q = (o_all[idx] + best_t[idx, None] * d_all[idx] - part.center) @ part.rotation
            normals[idx] = _local_normals(part, q) @ part.rotation.T
    return best_t, best_part, normals
