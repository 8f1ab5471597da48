"""Analytic solids, the parts of the procedural shapes: box, cylinder, cone frustum, sphere, torus, capsule.

A :class:`Primitive` is a solid in a local frame (symmetry axis along local +y) placed by a
rotation and a centre: world = R·local + centre. Each kind has an exact inside test, its area
and volume, area-uniform surface samples with outward normals, an exact axis-aligned bounding
box, and a closed triangle mesh (trimesh, optional). :func:`rot_x`, :func:`rot_y` and
:func:`axis_to` build the rotations the furniture grammar (:mod:`ddmi_lite.data.furniture`) uses.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import trimesh

from ddmi_lite.errors import DDMIError

KINDS = ("box", "cylinder", "frustum", "sphere", "torus", "capsule")


# ----------------------------------------------------------------------------- rotations

def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def axis_to(direction) -> np.ndarray:
    """Rotation taking the local axis +y to ``direction`` (Rodrigues: R = I + [v]× + [v]×²/(1+c))."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    v, c = np.cross([0.0, 1.0, 0.0], d), d[1]
    if c < -1 + 1e-12:
        return rot_x(math.pi)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


@dataclass

# ----------------------------------------------------------------------------- solids

class Primitive:
    """A solid in a local frame: world = R·local + center, with the symmetry axis along local +y.

    ``size`` (h = half height): box (hx, hy, hz) half extents; cylinder (r, h); frustum
    (r_bottom, r_top, h); sphere (r,); torus (R, r) ring in the local xz-plane; capsule (r, h)
    around the segment y ∈ [−h, h].
    """

    kind: str
    center: np.ndarray
    size: tuple
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    name: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DDMIError(f"primitive kind={self.kind!r} must be one of {KINDS}")
        self.center = np.asarray(self.center, dtype=np.float64)
        self.rotation = np.asarray(self.rotation, dtype=np.float64)
        self.size = tuple(float(s) for s in self.size)

    def local(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) @ self.rotation  # q = Rᵀ(p − c), row form

    def contains(self, points: np.ndarray, *, margin: float = 0.0) -> np.ndarray:
        """Inside test on [N,3] world points; ``margin`` > 0 shrinks the solid (strict interior)."""
        q, s, m = self.local(points), self.size, margin
        x, y, z = q[:, 0], q[:, 1], q[:, 2]
        rho = np.sqrt(x * x + z * z)  # distance to the local y axis
        if self.kind == "box":
            return np.all(np.abs(q) <= np.asarray(s) - m, axis=1)
        if self.kind == "cylinder":
            return (rho <= s[0] - m) & (np.abs(y) <= s[1] - m)
        if self.kind == "frustum":  # radius r(y) = r0 + (r1 − r0)(y + h)/(2h)
            r0, r1, h = s
            return (np.abs(y) <= h - m) & (rho <= r0 + (r1 - r0) * (y + h) / (2 * h) - m)
        if self.kind == "sphere":
            return np.sqrt(rho * rho + y * y) <= s[0] - m
        if self.kind == "torus":  # (ρ − R)² + y² ≤ r²
            return np.hypot(rho - s[0], y) <= s[1] - m
        return np.hypot(rho, y - np.clip(y, -s[1], s[1])) <= s[0] - m  # capsule

    def _pieces(self) -> list[tuple[str, float]]:
        """Surface pieces and their areas."""
        s = self.size
        if self.kind == "box":
            hx, hy, hz = s
            return [("x", 4 * hy * hz)] * 2 + [("y", 4 * hx * hz)] * 2 + [("z", 4 * hx * hy)] * 2
        if self.kind == "cylinder":
            return [("side", 4 * math.pi * s[0] * s[1]), ("cap", 2 * math.pi * s[0] ** 2)]
        if self.kind == "frustum":  # lateral area π(r0 + r1)·slant
            r0, r1, h = s
            return [("side", math.pi * (r0 + r1) * math.hypot(r1 - r0, 2 * h)),
                    ("bottom", math.pi * r0 * r0), ("top", math.pi * r1 * r1)]
        if self.kind == "sphere":
            return [("all", 4 * math.pi * s[0] ** 2)]
        if self.kind == "torus":
            return [("all", 4 * math.pi ** 2 * s[0] * s[1])]
        return [("side", 4 * math.pi * s[0] * s[1]), ("ends", 4 * math.pi * s[0] ** 2)]

    def area(self) -> float:
        return float(sum(a for _, a in self._pieces()))

    def volume(self) -> float:
        s = self.size
        return float({"box": lambda: 8 * s[0] * s[1] * s[2],
                      "cylinder": lambda: 2 * math.pi * s[0] ** 2 * s[1],
                      "frustum": lambda: 2 * math.pi * s[2] / 3 * (s[0] ** 2 + s[0] * s[1] + s[1] ** 2),
                      "sphere": lambda: 4 / 3 * math.pi * s[0] ** 3,
                      "torus": lambda: 2 * math.pi ** 2 * s[0] * s[1] ** 2,
                      "capsule": lambda: 2 * math.pi * s[0] ** 2 * s[1] + 4 / 3 * math.pi * s[0] ** 3}[self.kind]())

    def sample_surface(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points uniform (by area) on the surface and their outward unit normals, world frame."""
        pieces = self._pieces()
        areas = np.array([a for _, a in pieces])
        which = rng.choice(len(pieces), size=n, p=areas / areas.sum())
        q, nrm = np.zeros((n, 3)), np.zeros((n, 3))
        theta = rng.uniform(0, 2 * math.pi, n)
        cos, sin, u, w = np.cos(theta), np.sin(theta), rng.random(n), rng.random(n)
        s = self.size
        if self.kind == "box":
            axis, sign = which // 2, np.where(which % 2 == 0, -1.0, 1.0)  # pieces: −x, +x, −y, +y, −z, +z
            q = rng.uniform(-1, 1, (n, 3)) * np.asarray(s)
            q[np.arange(n), axis] = sign * np.asarray(s)[axis]
            nrm[np.arange(n), axis] = sign
        elif self.kind in ("cylinder", "capsule"):
            r, h = s
            side = which == 0
            q[:, 0], q[:, 1], q[:, 2] = r * cos, rng.uniform(-h, h, n), r * sin
            nrm[:, 0], nrm[:, 2] = cos, sin
            if self.kind == "cylinder":  # caps: ρ = r√u is uniform on the disc
                sign = np.where(w < 0.5, -1.0, 1.0)
                rr = r * np.sqrt(u)
                cap = np.stack([rr * cos, sign * h, rr * sin], 1)
                cap_n = np.stack([0 * sign, sign, 0 * sign], 1)
            else:  # two hemispheres = one sphere split at y = 0 and pushed to ±h
                d = _unit(rng.standard_normal((n, 3)))
                cap, cap_n = r * d + np.outer(np.sign(d[:, 1]) * h, [0, 1, 0]), d
            q, nrm = np.where(side[:, None], q, cap), np.where(side[:, None], nrm, cap_n)
        elif self.kind == "frustum":
            r0, r1, h = s
            # lateral: density ∝ r(t), r(t) = r0 + (r1 − r0)t → inverse CDF of r0·t + (r1 − r0)t²/2
            t = u if abs(r1 - r0) < 1e-12 else (np.sqrt(r0 * r0 + (r1 * r1 - r0 * r0) * u) - r0) / (r1 - r0)
            rr, slant = r0 + (r1 - r0) * t, math.hypot(r1 - r0, 2 * h)
            q = np.stack([rr * cos, -h + 2 * h * t, rr * sin], 1)
            nrm = np.stack([2 * h * cos, np.full(n, r0 - r1), 2 * h * sin], 1) / slant  # ∇(ρ − r(y))
            for piece, y_end, r_end in ((1, -h, r0), (2, h, r1)):
                sel = which == piece
                rd = r_end * np.sqrt(w[sel])
                q[sel] = np.stack([rd * cos[sel], np.full(sel.sum(), y_end), rd * sin[sel]], 1)
                nrm[sel] = [0.0, math.copysign(1.0, y_end), 0.0]
        elif self.kind == "sphere":
            nrm = _unit(rng.standard_normal((n, 3)))
            q = s[0] * nrm
        else:  # torus: tube angle φ has density ∝ R + r cos φ (rejection), ring angle θ uniform
            big, r = s
            phi = np.empty(0)
            while phi.size < n:
                cand = rng.uniform(0, 2 * math.pi, 2 * n)
                phi = np.concatenate([phi, cand[rng.random(2 * n) * (big + r) <= big + r * np.cos(cand)]])
            phi = phi[:n]
            rr = big + r * np.cos(phi)
            q = np.stack([rr * cos, r * np.sin(phi), rr * sin], 1)
            nrm = np.stack([np.cos(phi) * cos, np.sin(phi), np.cos(phi) * sin], 1)
        return q @ self.rotation.T + self.center, nrm @ self.rotation.T

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact axis-aligned bounding box (lo, hi) in world coordinates."""
        s, c, a = self.size, self.center, self.rotation[:, 1]  # a: world direction of local y

        def disc(m, r):  # a disc of radius r around axis a spans r·√(1 − a_i²) along world axis i
            e = r * np.sqrt(np.clip(1 - a * a, 0, None))
            return m - e, m + e

        if self.kind == "box":
            corners = np.array(list(itertools.product((-1, 1), repeat=3))) * np.asarray(s)
            pts = corners @ self.rotation.T + c
            return pts.min(0), pts.max(0)
        if self.kind == "sphere":
            return c - s[0], c + s[0]
        if self.kind == "torus":
            lo, hi = disc(c, s[0])
            return lo - s[1], hi + s[1]
        if self.kind == "capsule":
            ends = np.stack([c - s[1] * a, c + s[1] * a])
            return ends.min(0) - s[0], ends.max(0) + s[0]
        r_lo, r_hi, h = (s[0], s[0], s[1]) if self.kind == "cylinder" else s
        (l0, h0), (l1, h1) = disc(c - h * a, r_lo), disc(c + h * a, r_hi)
        return np.minimum(l0, l1), np.maximum(h0, h1)

    def normalized(self, loc: np.ndarray, scale: float) -> Primitive:
        return Primitive(self.kind, (self.center - loc) / scale, tuple(v / scale for v in self.size),
                         self.rotation.copy(), self.name)

    def to_trimesh(self, *, sections: int = 32):
        """A closed triangle mesh of the solid (curved surfaces inscribed, ``sections`` per turn)."""
        s = self.size
        if self.kind == "box":
            mesh = trimesh.creation.box(extents=2 * np.asarray(s))
        elif self.kind == "sphere":
            mesh = trimesh.creation.icosphere(subdivisions=3, radius=s[0])
        else:  # trimesh builds these around z; rotate z → y
            if self.kind == "cylinder":
                mesh = trimesh.creation.cylinder(radius=s[0], height=2 * s[1], sections=sections)
            elif self.kind == "capsule":
                mesh = trimesh.creation.capsule(height=2 * s[1], radius=s[0], count=[sections, sections])
            elif self.kind == "torus":
                mesh = trimesh.creation.torus(major_radius=s[0], minor_radius=s[1],
                                              major_sections=sections, minor_sections=max(8, sections // 2))
            else:
                r0, r1, h = s
                profile = [[0, -h], [r0, -h]] + ([[r1, h]] if r1 > 0 else []) + [[0, h]]
                mesh = trimesh.creation.revolve(profile, sections=sections)
            mesh.apply_transform(_homogeneous(rot_x(-math.pi / 2), np.zeros(3)))  # (x, y, z) → (x, z, −y)
        mesh.apply_transform(_homogeneous(self.rotation, self.center))
        return mesh


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rotation, translation
    return t
