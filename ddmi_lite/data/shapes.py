"""Procedural furniture as the default 3D shape data, in the Occupancy-Networks layout (paper Sec. 4.1).

The paper trains its shape model on ShapeNet as preprocessed by Occupancy Networks (ONet) and
its text-to-shape model on Text2Shape captions (reference §4.1, §1.9). Neither can be shipped,
so the default data is a collection of furniture (chair, table, lamp, shelf, sofa) built from
analytic solids — boxes, cylinders, cone frustums, spheres, tori, capsules — written in the
layout ONet uses, so that one loader reads both:

    <root>/<category>/<object_id>/points.npz      points f16 [N,3] in [-0.55,0.55]³, occupancies
                                                  (np.packbits), loc [3], scale [1], n_uniform [1]
    <root>/<category>/<object_id>/pointcloud.npz  points f16 [M,3] on the surface, normals, loc, scale
    <root>/<category>/{train,val,test}.lst        object ids, one per line
    <root>/captions.tablechair.csv                Text2Shape columns (every category here)
    <root>/attributes.json                        object id → the attributes its captions state
    <root>/manifest.json                          settings and the sha256 of every file

Normalisation as in ONet: ``loc`` = centre of the raw bounding box, ``scale`` = its largest
side, normalised = (raw − loc) / scale, so an object fits [-0.5, 0.5]³ with max extent 1. y is
up and the front faces +z.

Occupancy is exact: a point is inside iff it is inside one of the parts (each test analytic).
Surface points are uniform on the boundary of the union: points drawn on every part's surface
in proportion to its area, minus those covered by another part (a small step along the outward
normal lands inside it); where faces of two parts coincide, only the first part's copy is kept.

Query points (§1.9): ONet's sampler draws a fraction ``points_uniform_ratio`` uniformly in the
padded box and the rest on the surface plus N(0, σ²) noise, σ = 0.01; ONet's released ShapeNet
uses ratio 1 (all uniform). Thin parts (legs, slats, poles) fill little volume, so the default
here is a 50/50 mix. The uniform points come first and ``n_uniform`` says how many (ONet readers
ignore the extra key), so uniform-only IoU can still be measured. Labels are computed on the
float16-rounded points that are stored.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddmi_lite.data.emoji import _npz_bytes, _sha256, _write_atomic, default_data_dir
from ddmi_lite.errors import DDMIError

CATEGORIES = ("chair", "table", "lamp", "shelf", "sofa")
SYNSETS = {"chair": "03001627", "table": "04379243", "lamp": "03636649",  # ShapeNet synset ids
           "shelf": "02871439", "sofa": "04256520"}
BOX = 0.55                     # half side of the padded ONet cube: [-0.5, 0.5]³ plus padding 0.1
KINDS = ("box", "cylinder", "frustum", "sphere", "torus", "capsule")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
CAPTIONS_CSV = "captions.tablechair.csv"
CAPTION_COLUMNS = ("id", "modelId", "description", "category", "topLevelSynsetId", "subSynsetId")
# aspect = height / max(width, depth) → "short" below lo, "tall" above hi (about tertiles)
HEIGHT_BANDS = {"chair": (1.55, 1.8), "table": (0.5, 0.75), "shelf": (0.7, 1.05)}
HEIGHT_WORDS = {"chair": ("short", "tall"), "table": ("low", "tall"), "shelf": ("short", "tall")}
FORMAT_VERSION = 1
_STRICT = 1e-9                 # tolerance of "on the surface of another part"
_STEP = 1e-7                   # outward step that tells boundary points from covered ones


# ----------------------------------------------------------------------------- analytic solids

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
        trimesh = _trimesh()
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


def _trimesh():
    try:
        import trimesh
    except ImportError as err:  # pragma: no cover - declared in the notebooks extra
        raise DDMIError("meshes need the PyPI package 'trimesh' (pip install trimesh)") from err
    return trimesh


def _as_points(points, name: str = "points") -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise DDMIError(f"{name} has shape {p.shape}; expected [N, 3]")
    return p


# ----------------------------------------------------------------------------- shapes

@dataclass
class Shape:
    """One object: its parts (normalised coordinates), attributes, captions and ONet loc/scale."""

    category: str
    index: int
    parts: list[Primitive]
    attributes: dict
    captions: list[str]
    loc: np.ndarray      # centre of the raw bounding box
    scale: float         # largest side of the raw bounding box

    @property
    def id(self) -> str:
        return shape_id(self.category, self.index)

    @property
    def caption(self) -> str:
        return self.captions[0]

    def contains(self, points) -> np.ndarray:
        """Exact occupancy of [N,3] points: inside any part → bool [N]."""
        p = _as_points(points)
        inside = np.zeros(len(p), dtype=bool)
        for part in self.parts:
            inside |= part.contains(p)
        return inside

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        boxes = [part.bounds() for part in self.parts]
        return np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)

    def sample_surface(self, n: int, *, seed: int | np.random.Generator = 0, return_normals: bool = False):
        """``n`` points uniform on the boundary of the union (and outward normals): [n,3] (, [n,3])."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise DDMIError(f"n={n!r} must be a non-negative int")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if n == 0:
            return (np.zeros((0, 3)), np.zeros((0, 3))) if return_normals else np.zeros((0, 3))
        areas = np.array([p.area() for p in self.parts])
        pts, nrm, have, drawn, rate = [], [], 0, 0, 0.5
        while have < n:
            m = math.ceil((n - have) / rate * 1.2) + 16
            counts = rng.multinomial(m, areas / areas.sum())
            drawn_parts = [part.sample_surface(int(k), rng) for part, k in zip(self.parts, counts)]
            q = np.concatenate([d[0] for d in drawn_parts])              # [m,3]
            qn = np.concatenate([d[1] for d in drawn_parts])
            source = np.repeat(np.arange(len(self.parts)), counts)       # part each point lies on
            # hidden: a step outwards stays inside another part (interior, or a face touching
            # another part), or the point lies on an earlier part too (coplanar faces count once)
            hidden = np.zeros(m, dtype=bool)
            step = q + _STEP * qn
            for j, other in enumerate(self.parts):
                hidden |= (source != j) & other.contains(step)
                later = source > j
                hidden[later] |= other.contains(q[later], margin=-_STRICT)
            pts.append(q[~hidden])
            nrm.append(qn[~hidden])
            have, drawn = have + int((~hidden).sum()), drawn + m
            rate = max(have / drawn, 0.02)  # fraction of the parts' surface that is exposed
        order = rng.permutation(have)[:n]  # random subset: no bias towards the first parts
        pts, nrm = np.concatenate(pts)[order], np.concatenate(nrm)[order]
        return (pts, nrm) if return_normals else pts

    def part_meshes(self, *, sections: int = 32) -> list:
        return [part.to_trimesh(sections=sections) for part in self.parts]

    def to_trimesh(self, *, sections: int = 32):
        """The parts' closed meshes concatenated (overlapping, not merged).

        Use :func:`ddmi_lite.domains.shape_geometry.mesh_contains` (generalised winding number:
        the sum over parts = number of parts containing the point, so > ½ ⇔ inside the union)
        for inside tests; ray parity (``trimesh.Trimesh.contains``) miscounts where parts overlap.
        For one watertight surface, run marching cubes on :meth:`contains` over a dense grid.
        """
        return _trimesh().util.concatenate(self.part_meshes(sections=sections))


# ----------------------------------------------------------------------------- furniture grammar
# Raw units are metres; every builder returns (parts, attributes) and the captions state every
# attribute (a value with no word — "medium" height, a straight sofa — is the unmarked default).

def _box(name, center, half, rot=None) -> Primitive:
    return Primitive("box", center, half, np.eye(3) if rot is None else rot, name)


def _rod(name, a, b, r, kind="cylinder") -> Primitive:
    """A cylinder (or box / capsule) of radius (half width) r whose axis runs from a to b."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    half = float(np.linalg.norm(b - a)) / 2
    rot = axis_to(b - a)
    if kind == "box":
        return Primitive("box", (a + b) / 2, (r, half, r), rot, name)
    return Primitive(kind, (a + b) / 2, (r, half), rot, name)


def _chair(rng: np.random.Generator):
    u = rng.uniform
    w, d, hs, t = u(0.42, 0.62), u(0.40, 0.56), u(0.38, 0.50), u(0.04, 0.08)  # seat size, top height, thickness
    base = str(rng.choice(["four_legs", "three_legs", "pedestal"], p=[0.5, 0.2, 0.3]))
    back, arms = str(rng.choice(["solid", "slatted"])), bool(rng.random() < 0.45)
    parts = [_box("seat", (0, hs - t / 2, 0), (w / 2, t / 2, d / 2))]
    mid = hs - t / 2  # parts attach at mid-seat height, so they overlap the seat
    if base == "pedestal":  # column, five feet and casters
        cr, fh, fw, reach = u(0.02, 0.03), u(0.012, 0.02), u(0.015, 0.025), u(0.22, 0.3)
        fy, phase = 2 * cr + 0.3 * fh, u(0, 2 * math.pi / 5)
        parts.append(_rod("column", (0, fy, 0), (0, mid, 0), u(0.025, 0.045)))
        for k in range(5):
            a = phase + 2 * math.pi * k / 5
            parts.append(_box("foot", (reach / 2 * math.cos(a), fy, reach / 2 * math.sin(a)),
                              (reach / 2, fh, fw), rot_y(-a)))  # rot_y(−a) turns local x to (cos a, 0, sin a)
            parts.append(Primitive("sphere", ((reach - cr) * math.cos(a), cr, (reach - cr) * math.sin(a)),
                                   (cr,), name="caster"))
    else:
        lw = u(0.015, 0.03)
        xs, zs = w / 2 - lw - u(0, 0.03), d / 2 - lw - u(0, 0.03)
        spots = [(-xs, zs), (xs, zs)] + ([(-xs, -zs), (xs, -zs)] if base == "four_legs" else [(0, -zs)])
        kind = "cylinder" if rng.random() < 0.5 else "box"
        parts += [_rod("leg", (x, 0, z), (x, mid, z), lw, kind) for x, z in spots]
    # back: leans backwards by `tilt`; frame (across, up the back, through it) = (e_x, R e_y, R e_z)
    hb, tilt, bt = u(0.25, 0.75), u(0.0, 0.25), u(0.012, 0.03)
    rot = rot_x(-tilt)
    pivot = np.array([0, mid, -d / 2 + bt])
    span = hb + t / 2

    def at(across, up):
        return pivot + np.array([across, 0, 0]) + up * rot[:, 1]

    if back == "solid":
        parts.append(_box("back", at(0, span / 2), (w / 2 * u(0.85, 1.0), span / 2, bt), rot))
    else:
        pw, rail = u(0.015, 0.03), u(0.03, 0.07)
        xw = w / 2 - pw
        parts += [_box("back_post", at(sx * xw, span / 2), (pw, span / 2, bt), rot) for sx in (-1, 1)]
        parts.append(_box("back_rail", at(0, span - rail), (xw, rail, bt), rot))
        n_slats = int(rng.integers(2, 6))
        gap = 2 * xw / (n_slats + 1)
        sw, lo, hi = min(u(0.012, 0.03), 0.3 * gap), t / 2, span - rail
        parts += [_box("slat", at(-xw + (k + 1) * gap, (lo + hi) / 2), (sw, (hi - lo) / 2 + rail / 2, 0.7 * bt), rot)
                  for k in range(n_slats)]
    if arms:
        ah, aw, ath = u(0.16, 0.28), u(0.02, 0.04), u(0.012, 0.022)
        z0, z1 = -d / 2 + 2 * bt, d / 2 - u(0, 0.06)
        for sx in (-1, 1):
            x = sx * (w / 2 - aw)
            parts.append(_box("armrest", (x, hs + ah, (z0 + z1) / 2), (aw, ath, (z1 - z0) / 2)))
            parts.append(_box("arm_support", (x, (mid + hs + ah) / 2, z1 - aw), (0.7 * aw, (hs + ah - mid) / 2, 0.7 * aw)))
    n_legs = {"four_legs": 4, "three_legs": 3, "pedestal": 1}[base]
    return parts, {"base": base, "n_legs": n_legs, "back": back, "has_armrests": arms}


def _table(rng: np.random.Generator):
    u = rng.uniform
    top = str(rng.choice(["round", "rectangular", "square"], p=[0.35, 0.45, 0.2]))
    h = u(*[(0.38, 0.5), (0.68, 0.8), (0.92, 1.1)][int(rng.integers(3))])  # coffee, dining or bar height
    tt = u(0.03, 0.07)
    if top == "round":
        radius = u(0.35, 0.65)
        w = d = 2 * radius
        parts = [Primitive("cylinder", (0, h - tt / 2, 0), (radius, tt / 2), name="top")]
        n_legs = int(rng.choice([1, 3, 4], p=[0.45, 0.3, 0.25]))
    else:
        w = u(0.9, 1.8) if top == "rectangular" else u(0.6, 1.1)
        d = min(u(0.5, 0.95), 0.8 * w) if top == "rectangular" else w
        parts = [_box("top", (0, h - tt / 2, 0), (w / 2, tt / 2, d / 2))]
        n_legs = 4 if top == "rectangular" and (w > 1.2 or rng.random() < 0.85) else int(rng.choice([1, 4], p=[0.4, 0.6]))
    mid = h - tt / 2
    if n_legs == 1:  # pedestal: column on a disc or on crossed feet
        col = u(0.04, 0.09)
        foot = u(0.35, 0.7) * min(w, d) / 2 + col
        parts.append(_rod("column", (0, 0, 0), (0, mid, 0), col))
        if rng.random() < 0.5:
            parts.append(Primitive("cylinder", (0, 0.02, 0), (foot, 0.02), name="foot"))
        else:
            fh = u(0.02, 0.035)
            parts += [_box("foot", (0, fh, 0), (foot, fh, 0.6 * col), rot_y(a)) for a in (math.pi / 4, -math.pi / 4)]
    else:
        lw, splay = u(0.02, 0.045), u(0.0, 0.2) if n_legs == 3 or rng.random() < 0.3 else 0.0
        kind = "box" if top != "round" and rng.random() < 0.5 else "cylinder"
        if top == "round":
            reach = u(0.5, 0.75) * w / 2
            angles = [2 * math.pi * k / n_legs + math.pi / 4 for k in range(n_legs)]
            spots = [(reach * math.cos(a), reach * math.sin(a)) for a in angles]
        else:
            xs, zs = w / 2 - lw - u(0, 0.1), d / 2 - lw - u(0, 0.08)
            spots = [(sx * xs, sz * zs) for sx in (-1, 1) for sz in (-1, 1)]
        for x, z in spots:
            out = 1 + splay * h / max(math.hypot(x, z), 1e-6)  # feet pushed outwards by splay·height
            parts.append(_rod("leg", (x * out, 0, z * out), (x, mid, z), lw, kind))
    return parts, {"top": top, "n_legs": n_legs}


def _lamp(rng: np.random.Generator):
    u = rng.uniform
    kind = str(rng.choice(["floor", "desk"]))
    k = 1.0 if kind == "floor" else 0.5  # size of base and shade
    base = str(rng.choice(["round", "square", "tripod"] if kind == "floor" else ["round", "square"]))
    shade, arm = str(rng.choice(["conical", "cylindrical", "spherical"])), str(rng.choice(["straight", "angled"]))
    pole_h = u(1.1, 1.6) if kind == "floor" else u(0.28, 0.45)
    pr = u(0.022, 0.035) if kind == "floor" else u(0.012, 0.02)
    bh = u(0.015, 0.04)
    parts, start = [], 0.0
    if base == "round":
        parts.append(Primitive("cylinder", (0, bh, 0), (u(0.14, 0.24) * k, bh), name="base"))
    elif base == "square":
        half = u(0.12, 0.2) * k
        parts.append(_box("base", (0, bh, 0), (half, bh, half)))
    else:  # three splayed legs meeting the pole at a hub
        start, reach = u(0.35, 0.55), u(0.2, 0.32)
        phase = u(0, 2 * math.pi / 3)
        for j in range(3):
            a = phase + 2 * math.pi * j / 3
            parts.append(_rod("tripod_leg", (reach * math.cos(a), pr, reach * math.sin(a)), (0, start + pr, 0), pr, "capsule"))
    parts.append(_rod("pole", (0, start, 0), (0, pole_h, 0), pr, "capsule"))
    top = np.array([0.0, pole_h, 0.0])
    if arm == "angled":  # an arm leaning sideways; the shade hangs at its tip
        a, length = u(0.5, 1.1), u(0.35, 0.6) * (pole_h if kind == "desk" else 0.5)
        tip = top + length * np.array([math.sin(a), math.cos(a), 0.0])
        parts.append(_rod("arm", top, tip, pr, "capsule"))
        top = tip
    sr, sh = u(0.12, 0.22) * k, u(0.14, 0.26) * k  # shade radius and height
    hang = arm == "angled"
    cy = top[1] - sh / 2 + pr if hang else top[1] + sh / 2 - 0.3 * sh  # the pole/arm enters the shade
    centre = (top[0], cy, top[2])
    if shade == "conical":
        parts.append(Primitive("frustum", centre, (sr, sr * u(0.35, 0.7), sh / 2), name="shade"))
    elif shade == "cylindrical":
        parts.append(Primitive("cylinder", centre, (0.8 * sr, sh / 2), name="shade"))
    else:  # a globe the pole or arm enters by 40 % of its radius
        rs = 0.7 * sr
        parts.append(Primitive("sphere", top + np.array([0, -0.6 * rs if hang else 0.6 * rs, 0]), (rs,), name="shade"))
    return parts, {"lamp_type": kind, "base": base, "shade": shade, "arm": arm}


def _shelf(rng: np.random.Generator):
    u = rng.uniform
    n, w, d = int(rng.integers(2, 6)), u(0.6, 1.4), u(0.25, 0.42)
    gap, bt, plinth = u(0.22, 0.38), u(0.012, 0.02), u(0.0, 0.08)
    sides = bool(rng.random() < 0.6)
    back = bool(rng.random() < (0.5 if sides else 0.25))
    h = plinth + (n - 1) * gap + 2 * bt
    st = u(0.012, 0.022)
    parts = [_box("shelf", (0, plinth + bt + i * gap, 0), (w / 2 - st, bt, d / 2)) for i in range(n)]
    if sides:
        parts += [_box("side_panel", (sx * (w / 2 - st), h / 2, 0), (st, h / 2, d / 2)) for sx in (-1, 1)]
    else:
        pw, kind = u(0.012, 0.025), "box" if rng.random() < 0.5 else "cylinder"
        parts += [_rod("post", (sx * (w / 2 - pw), 0, sz * (d / 2 - pw)), (sx * (w / 2 - pw), h, sz * (d / 2 - pw)), pw, kind)
                  for sx in (-1, 1) for sz in (-1, 1)]
    if back:
        bk = u(0.01, 0.018)
        parts.append(_box("back_panel", (0, h / 2, -d / 2 + bk), (w / 2 - st, h / 2, bk)))
    return parts, {"n_shelves": n, "has_side_panels": sides, "has_back": back}


def _sofa(rng: np.random.Generator):
    u = rng.uniform
    seats, arms, legs = int(rng.choice([2, 3])), bool(rng.random() < 0.7), bool(rng.random() < 0.6)
    shape = str(rng.choice(["straight", "L-shaped"], p=[0.7, 0.3]))
    aw = u(0.1, 0.22) if arms else 0.0
    wi, d, hs = seats * u(0.55, 0.7), u(0.8, 1.0), u(0.38, 0.48)
    w, lh = wi + 2 * aw, u(0.06, 0.14) if legs else 0.0
    bh, bt, ah = u(0.3, 0.5), u(0.14, 0.25), u(0.1, 0.25)
    chaise = u(0.5, 0.8) if shape == "L-shaped" else 0.0
    parts = [_box("seat_base", (0, (lh + hs) / 2, 0), (w / 2, (hs - lh) / 2, d / 2)),
             _box("back", (0, (lh + hs + bh) / 2, -d / 2 + bt / 2), (w / 2, (hs + bh - lh) / 2, bt / 2))]
    if chaise:
        cw = u(0.6, 0.8)
        parts.append(_box("chaise", (w / 2 - cw / 2, (lh + hs) / 2, d / 2 + chaise / 2 - 0.02),
                          (cw / 2, (hs - lh) / 2, chaise / 2 + 0.02)))
    if arms:
        for sx in (-1, 1):
            z1 = d / 2 + (chaise if sx > 0 else 0.0)
            parts.append(_box("armrest", (sx * (w / 2 - aw / 2), (lh + hs + ah) / 2, (z1 - d / 2) / 2),
                              (aw / 2, (hs + ah - lh) / 2, (z1 + d / 2) / 2)))
    if legs:
        lr, depth = u(0.02, 0.035), d / 2 + chaise
        spots = [(sx * (w / 2 - 0.06), sz * (d / 2 - 0.06)) for sx in (-1, 1) for sz in (-1, 1)]
        if chaise:
            spots[3] = (w / 2 - 0.06, depth - 0.06)
        parts += [_rod("leg", (x, 0, z), (x, lh + 0.02, z), lr) for x, z in spots]
    return parts, {"n_seats": seats, "has_armrests": arms, "has_legs": legs, "shape": shape}


_BUILDERS = {"chair": _chair, "table": _table, "lamp": _lamp, "shelf": _shelf, "sofa": _sofa}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" or phrase.startswith("L-") else "a ") + phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _caption_parts(attrs: dict) -> tuple[list[str], str, list[str]]:
    """(adjectives, noun, features) stating every attribute of one object."""
    cat = attrs["category"]
    adjs = []
    if attrs.get("height_class") in ("short", "tall"):
        adjs.append(HEIGHT_WORDS[cat][attrs["height_class"] == "tall"])
    if cat == "chair":
        base = {"four_legs": "four legs", "three_legs": "three legs", "pedestal": "a swivel pedestal base"}
        feats = [f"a {attrs['back']} back", base[attrs["base"]]]
        return (adjs + ([] if attrs["has_armrests"] else ["armless"]), "chair",
                feats + (["armrests"] if attrs["has_armrests"] else []))
    if cat == "table":
        legs = "a single pedestal leg" if attrs["n_legs"] == 1 else f"{_NUMBERS[attrs['n_legs']]} legs"
        return adjs + [attrs["top"]], "table", [legs]
    if cat == "lamp":
        base = "a tripod base" if attrs["base"] == "tripod" else f"a {attrs['base']} base"
        arm = "an angled arm" if attrs["arm"] == "angled" else "a straight stem"
        return adjs, f"{attrs['lamp_type']} lamp", [f"a {attrs['shade']} shade", base, arm]
    if cat == "shelf":
        feats = [f"{_NUMBERS[attrs['n_shelves']]} shelves",
                 "side panels" if attrs["has_side_panels"] else "four corner posts",
                 "a back panel" if attrs["has_back"] else "an open back"]
        return adjs, "bookshelf", feats
    adjs += (["L-shaped"] if attrs["shape"] == "L-shaped" else []) + [f"{_NUMBERS[attrs['n_seats']]}-seater"]
    adjs += [] if attrs["has_armrests"] else ["armless"]
    feats = (["armrests"] if attrs["has_armrests"] else []) + ["short legs" if attrs["has_legs"] else "a skirted base"]
    return adjs, "sofa", feats


def make_captions(attrs: dict, rng: np.random.Generator) -> list[str]:
    """Two Text2Shape-style paraphrases that state the same attributes in different orders."""
    adjs, noun, feats = _caption_parts(attrs)
    first = _article(" ".join([*adjs, noun])) + f" with {_join(feats)}"
    shuffled = [feats[i] for i in rng.permutation(len(feats))]
    second = _article(" ".join([*adjs, noun])) + f" that has {_join(shuffled)}"
    return [first, second]


def shape_id(category: str, index: int) -> str:
    return f"{category}_{index:05d}"


def height_class(category: str, aspect: float) -> str | None:
    """"short" / "medium" / "tall" from aspect = height / max(width, depth); None when unused."""
    if category not in HEIGHT_BANDS:
        return None
    lo, hi = HEIGHT_BANDS[category]
    return "short" if aspect < lo else "tall" if aspect > hi else "medium"


def generate_shape(category: str, index: int, *, seed: int = 0) -> Shape:
    """Object ``index`` of ``category``: deterministic in (seed, category, index) only."""
    if category not in CATEGORIES:
        raise DDMIError(f"category={category!r} must be one of {CATEGORIES}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise DDMIError(f"index={index!r} must be a non-negative int")
    rng = np.random.default_rng([int(seed), CATEGORIES.index(category), int(index)])
    parts, attrs = _BUILDERS[category](rng)
    boxes = [p.bounds() for p in parts]
    lo, hi = np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)
    loc, extent = (lo + hi) / 2, hi - lo
    scale = float(extent.max())
    aspect = float(extent[1] / max(extent[0], extent[2]))
    attrs = {"category": category, **attrs, "aspect": round(aspect, 4)}
    if category in HEIGHT_BANDS:
        attrs["height_class"] = height_class(category, aspect)
    parts = [p.normalized(loc, scale) for p in parts]
    return Shape(category, int(index), parts, attrs, make_captions(attrs, rng), loc, scale)


def generate_collection(n_objects: int, *, seed: int = 0, categories=CATEGORIES) -> list[Shape]:
    """``n_objects`` shapes spread evenly over ``categories`` (the first ones get the remainder)."""
    cats = _check_categories(categories)
    counts = _category_counts(n_objects, cats)
    return [generate_shape(c, i, seed=seed) for c in cats for i in range(counts[c])]


def _check_categories(categories) -> tuple[str, ...]:
    cats = (categories,) if isinstance(categories, str) else tuple(categories)
    bad = [c for c in cats if c not in CATEGORIES]
    if not cats or bad or len(set(cats)) != len(cats):
        raise DDMIError(f"categories={categories!r}: each must be one of {CATEGORIES}, without repeats")
    return cats


def _category_counts(n_objects: int, cats: tuple[str, ...]) -> dict[str, int]:
    if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < len(cats):
        raise DDMIError(f"n_objects={n_objects!r} must be an int ≥ the number of categories ({len(cats)})")
    return {c: n_objects // len(cats) + (i < n_objects % len(cats)) for i, c in enumerate(cats)}


# ----------------------------------------------------------------------------- ONet files

@dataclass(frozen=True)
class SampleConfig:
    """What is written per object (ONet writes 100,000 of each)."""

    n_points: int = 20_000         # points.npz: query points with occupancies
    n_surface: int = 4_000         # pointcloud.npz: surface points with normals
    uniform_ratio: float = 0.5     # fraction of query points uniform in the box (ONet ShapeNet: 1.0)
    surface_sigma: float = 0.01    # std of the noise added to the near-surface query points (ONet: 0.01)


def object_arrays(shape: Shape, cfg: SampleConfig, *, seed: int = 0) -> tuple[dict, dict]:
    """The arrays of ``points.npz`` and ``pointcloud.npz`` for one shape (deterministic in seed)."""
    rng = np.random.default_rng([int(seed), CATEGORIES.index(shape.category), shape.index, 1])
    n_uniform = round(cfg.n_points * cfg.uniform_ratio)
    uniform = rng.uniform(-BOX, BOX, (n_uniform, 3))
    near = shape.sample_surface(cfg.n_points - n_uniform, seed=rng)
    near = np.clip(near + cfg.surface_sigma * rng.standard_normal(near.shape), -BOX, BOX)
    points = np.concatenate([uniform, near]).astype(np.float16)  # [N,3], uniform first as in ONet
    occupancies = shape.contains(points.astype(np.float64))  # labels of the stored (rounded) points
    surface, normals = shape.sample_surface(cfg.n_surface, seed=rng, return_normals=True)
    loc, scale = shape.loc.astype(np.float32), np.array([shape.scale], dtype=np.float32)
    points_npz = {"points": points, "occupancies": np.packbits(occupancies), "loc": loc, "scale": scale,
                  "n_uniform": np.array([n_uniform], dtype=np.int64)}  # scalars are stored as [1] arrays
    cloud_npz = {"points": surface.astype(np.float16), "normals": normals.astype(np.float16), "loc": loc, "scale": scale}
    return points_npz, cloud_npz


def _npz_error(path: Path, what: str) -> DDMIError:
    return DDMIError(f"{path}: {what}; re-create it (prepare_shapes(force=True) for the default data)")


def _read_npz(path: str | os.PathLike, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in required if k not in archive.files]
            if missing:
                raise _npz_error(path, f"missing arrays {missing} (found {sorted(archive.files)})")
            return {k: archive[k] for k in archive.files}
    except DDMIError:
        raise
    except FileNotFoundError as err:
        raise DDMIError(f"{path} does not exist") from err
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise _npz_error(path, f"not a readable .npz archive ({type(err).__name__}: {err})") from err


def _check_xyz(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise _npz_error(path, f"'{name}' has shape {array.shape} dtype {array.dtype}; expected float [N, 3]")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise _npz_error(path, f"'{name}' contains NaN or inf")
    return array


def _loc_scale(path: Path, arrays: dict) -> tuple[np.ndarray, float]:
    try:
        loc = np.asarray(arrays.get("loc", np.zeros(3)), dtype=np.float32).reshape(-1)
        scale = np.asarray(arrays.get("scale", 1.0), dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise _npz_error(path, f"'loc' / 'scale' are not numbers ({err})") from err
    if loc.shape != (3,) or scale.size != 1:
        raise _npz_error(path, f"'loc' has shape {loc.shape} and 'scale' {scale.shape}; expected [3] and a scalar")
    if not (np.isfinite(loc).all() and np.isfinite(scale).all() and float(scale.reshape(())) > 0):
        raise _npz_error(path, f"'loc' = {loc.tolist()} and 'scale' = {scale.reshape(-1).tolist()} must be "
                               f"finite, with scale > 0")
    return loc, float(scale.reshape(()))


def load_points_npz(path: str | os.PathLike) -> dict:
    """ONet ``points.npz`` → dict(points f32 [N,3], occupancies bool [N], loc [3], scale, n_uniform).

    ``occupancies`` may be bit-packed (``np.packbits``, ceil(N/8) bytes, as ONet writes them) or
    one value per point. ``n_uniform`` (how many leading points are uniform) defaults to N, as in
    ONet's own files. A truncated or malformed file raises :class:`DDMIError` naming it.
    """
    path = Path(path)
    arrays = _read_npz(path, ("points", "occupancies"))
    points = _check_xyz(path, "points", arrays["points"])
    n, occ = len(points), arrays["occupancies"].reshape(-1)
    if occ.dtype.kind not in "biuf" or (occ.dtype.kind == "f" and not np.isfinite(occ).all()):
        raise _npz_error(path, f"'occupancies' has dtype {occ.dtype} or NaN; expected 0/1 values or packed bits")
    if occ.dtype == np.uint8 and occ.size == (n + 7) // 8 and n > 1:
        occupancies = np.unpackbits(occ, count=n).astype(bool)
    elif occ.size == n:
        occupancies = occ != 0
    else:
        raise _npz_error(path, f"'occupancies' has {occ.size} entries ({occ.dtype}) for {n} points; expected "
                               f"{n} values or {(n + 7) // 8} bytes of np.packbits")
    n_uniform = n
    if "n_uniform" in arrays:
        stored = np.asarray(arrays["n_uniform"]).reshape(-1)
        if stored.size != 1 or not np.issubdtype(stored.dtype, np.integer):
            raise _npz_error(path, f"'n_uniform' is {stored.dtype} of {stored.size} values; expected one int")
        n_uniform = int(stored[0])
    if not 0 <= n_uniform <= n:
        raise _npz_error(path, f"'n_uniform' = {n_uniform} is not in [0, {n}]")
    loc, scale = _loc_scale(path, arrays)
    return {"points": points, "occupancies": occupancies, "loc": loc, "scale": scale, "n_uniform": n_uniform}


def load_pointcloud_npz(path: str | os.PathLike) -> dict:
    """ONet ``pointcloud.npz`` → dict(points f32 [M,3], normals f32 [M,3] or None, loc [3], scale)."""
    path = Path(path)
    arrays = _read_npz(path, ("points",))
    points = _check_xyz(path, "points", arrays["points"])
    normals = None
    if "normals" in arrays:
        normals = _check_xyz(path, "normals", arrays["normals"])
        if len(normals) != len(points):
            raise _npz_error(path, f"'normals' has {len(normals)} rows for {len(points)} points")
    loc, scale = _loc_scale(path, arrays)
    return {"points": points, "normals": normals, "loc": loc, "scale": scale}


def load_captions(csv_path: str | os.PathLike) -> dict[str, list[str]]:
    """Text2Shape-style CSV → {modelId: [descriptions in file order]} (empty descriptions skipped)."""
    path = Path(csv_path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"modelId", "description"} - set(reader.fieldnames or ())
            if missing:
                raise DDMIError(f"captions file {path} lacks the columns {sorted(missing)} "
                                f"(found {reader.fieldnames}); expected Text2Shape's {CAPTION_COLUMNS}")
            captions: dict[str, list[str]] = {}
            for row in reader:
                text = (row.get("description") or "").strip()
                if row.get("modelId") and text:
                    captions.setdefault(row["modelId"], []).append(text)
    except OSError as err:
        raise DDMIError(f"captions file {path} cannot be read ({err})") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise DDMIError(f"captions file {path} is not a UTF-8 CSV ({err})") from err
    return captions


# ----------------------------------------------------------------------------- prepare

def _shapes_root(root) -> Path:
    return Path(root) if root is not None else default_data_dir() / "shapes"


def split_ids(ids: list[str], *, seed: int = 0) -> dict[str, list[str]]:
    """Seeded ~80/10/10 split of one category's ids (val and test get ≥ 1 each from 3 ids up)."""
    n = len(ids)
    n_val = max(1, round(SPLIT_FRACTIONS[1] * n)) if n >= 3 else 0
    n_test = max(1, round(SPLIT_FRACTIONS[2] * n)) if n >= 3 else 0
    order = np.random.default_rng([int(seed), 7, n]).permutation(n)
    picked = [ids[i] for i in order]
    return {"train": sorted(picked[n_val + n_test:]), "val": sorted(picked[:n_val]),
            "test": sorted(picked[n_val:n_val + n_test])}


def _captions_csv(shapes: list[Shape]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CAPTION_COLUMNS)
    row = 0
    for shape in shapes:
        for text in shape.captions:
            synset = SYNSETS[shape.category]
            writer.writerow([row, shape.id, text, shape.category.capitalize(), synset, synset])
            row += 1
    return buffer.getvalue().encode()


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _valid(root: Path, rel: str, digest: str | None) -> bool:
    path = root / rel
    return digest is not None and path.is_file() and _sha256(path) == digest


def prepare_shapes(root: str | os.PathLike | None = None, n_objects: int = 2400, *, seed: int = 0,
                   force: bool = False, progress: bool = True, n_points: int = 20_000, n_surface: int = 4_000,
                   uniform_ratio: float = 0.5, surface_sigma: float = 0.01, categories=CATEGORIES) -> Path:
    """Generate, sample and write the procedural furniture in the ONet layout; return ``root``.

    Idempotent: an object whose two files still match the sha256 in ``manifest.json`` (written
    with the same settings) is not rewritten; a missing or corrupted one is rebuilt. Two prepares
    with the same arguments give byte-identical files (fixed zip timestamps, atomic writes).
    """
    root = _shapes_root(root)
    cats = _check_categories(categories)
    counts = _category_counts(n_objects, cats)
    for name, value in (("n_points", n_points), ("n_surface", n_surface)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DDMIError(f"{name}={value!r} must be a positive int")
    if not 0.0 <= uniform_ratio <= 1.0 or not surface_sigma >= 0.0:
        raise DDMIError(f"uniform_ratio={uniform_ratio!r} must be in [0, 1] and surface_sigma={surface_sigma!r} ≥ 0")
    cfg = SampleConfig(n_points, n_surface, float(uniform_ratio), float(surface_sigma))
    settings = json.loads(json.dumps(  # as read back from manifest.json (tuples → lists)
        {"format": FORMAT_VERSION, "seed": int(seed), "n_objects": int(n_objects), "categories": list(cats),
         "sample": cfg.__dict__, "splits": dict(zip(SPLITS, SPLIT_FRACTIONS)), "height_bands": HEIGHT_BANDS}))
    old = _read_manifest(root)
    same = old is not None and old.get("settings") == settings and not force
    old_files = old.get("files", {}) if same else {}
    ids = [shape_id(c, i) for c in cats for i in range(counts[c])]
    if same and all(_valid(root, rel, old_files.get(rel)) for rel in old_files) and \
            all(f"{i.rsplit('_', 1)[0]}/{i}/points.npz" in old_files for i in ids):
        return root
    keep = set(ids)
    if old is not None:  # objects of an earlier, different collection
        for rel in old.get("files", {}):
            parts = Path(rel).parts
            if len(parts) == 3 and parts[1] not in keep and parts[0] in CATEGORIES:
                shutil.rmtree(root / parts[0] / parts[1], ignore_errors=True)
    files: dict[str, str] = {}
    shapes = []
    iterator = ids
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(ids, desc="procedural shapes", unit="obj")
    for oid in iterator:
        category, index = oid.rsplit("_", 1)
        shape = generate_shape(category, int(index), seed=seed)
        shapes.append(shape)
        rels = (f"{category}/{oid}/points.npz", f"{category}/{oid}/pointcloud.npz")
        if all(_valid(root, rel, old_files.get(rel)) for rel in rels):
            files.update({rel: old_files[rel] for rel in rels})
            continue
        for rel, arrays in zip(rels, object_arrays(shape, cfg, seed=seed)):
            data = _npz_bytes(arrays)
            _write_atomic(root / rel, data)
            files[rel] = _sha256(root / rel)
    extra = {CAPTIONS_CSV: _captions_csv(shapes),
             "attributes.json": (json.dumps({s.id: s.attributes for s in shapes}, indent=1, sort_keys=True) + "\n").encode()}
    split_counts = {}
    for category in cats:
        splits = split_ids([i for i in ids if i.rsplit("_", 1)[0] == category], seed=seed)
        split_counts[category] = {k: len(v) for k, v in splits.items()}
        for split, members in splits.items():
            extra[f"{category}/{split}.lst"] = "".join(f"{m}\n" for m in members).encode()
    for rel, data in extra.items():
        _write_atomic(root / rel, data)
        files[rel] = _sha256(root / rel)
    manifest = {"settings": settings, "objects": len(ids), "splits": split_counts, "files": dict(sorted(files.items()))}
    _write_atomic(root / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return root


# ----------------------------------------------------------------------------- dataset

class ShapeNetOccupancy(torch.utils.data.Dataset):
    """Objects in the ONet layout (this collection or ShapeNet): one training example per object.

    Item (reference §1.9): ``surface`` [n_surface,3] — points of ``pointcloud.npz`` plus
    N(0, surface_noise²); ``query`` [n_query,3] and ``occ`` [n_query] (0/1 float) — points of
    ``points.npz`` (only its leading uniform part when ``query="uniform"``); ``id``,
    ``category`` (folder name) and ``caption`` (one of the object's captions, "" if it has none;
    only when a captions CSV is found). Subsets are drawn without replacement when there are
    enough points, from a generator seeded by (seed, epoch, index): call :meth:`set_epoch`.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", categories=None, *,
                 n_query: int = 2048, n_surface: int = 3000, surface_noise: float = 0.005, query: str = "all",
                 captions: bool | str | os.PathLike = True, seed: int = 0):
        self.root = _shapes_root(root)
        if split not in SPLITS:
            raise DDMIError(f"split={split!r} must be one of {SPLITS}")
        if query not in ("all", "uniform"):
            raise DDMIError(f"query={query!r} must be 'all' or 'uniform'")
        for name, value in (("n_query", n_query), ("n_surface", n_surface)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DDMIError(f"{name}={value!r} must be a positive int")
        if not surface_noise >= 0:
            raise DDMIError(f"surface_noise={surface_noise!r} must be ≥ 0")
        if not self.root.is_dir():
            raise DDMIError(f"shape folder {self.root} does not exist; run prepare_shapes() (or `make data`) "
                            "or point root at ShapeNet in the Occupancy-Networks layout")
        if categories is None:
            categories = sorted(d.name for d in self.root.iterdir() if (d / f"{split}.lst").is_file())
            if not categories:
                raise DDMIError(f"no <category>/{split}.lst under {self.root}; expected the Occupancy-Networks layout")
        self.categories = [categories] if isinstance(categories, str) else list(categories)
        self.items: list[tuple[str, str]] = []
        for category in self.categories:
            lst = self.root / category / f"{split}.lst"
            if not lst.is_file():
                raise DDMIError(f"split list {lst} does not exist (category {category!r})")
            try:
                lines = lst.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise DDMIError(f"split list {lst} cannot be read as UTF-8 text ({err})") from err
            self.items += [(category, line.strip()) for line in lines if line.strip()]
        if not self.items:
            raise DDMIError(f"split {split!r} of {self.categories} under {self.root} lists no objects")
        # captions: True → <root>/captions.tablechair.csv when present; a path → that file; False → none
        self.captions = None
        if captions is True and (self.root / CAPTIONS_CSV).is_file():
            self.captions = load_captions(self.root / CAPTIONS_CSV)
        elif captions not in (True, False, None):
            self.captions = load_captions(captions)
        attributes = self.root / "attributes.json"
        try:
            self.attributes = json.loads(attributes.read_text(encoding="utf-8")) if attributes.is_file() else None
        except (OSError, ValueError) as err:
            raise DDMIError(f"{attributes} is not a readable JSON object ({err}); re-create it "
                            "(prepare_shapes(force=True)) or remove it") from err
        self.split, self.n_query, self.n_surface, self.surface_noise = split, n_query, n_surface, float(surface_noise)
        self.query, self.seed, self.epoch = query, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        category, oid = self.items[index]
        folder = self.root / category / oid
        pts, cloud = load_points_npz(folder / "points.npz"), load_pointcloud_npz(folder / "pointcloud.npz")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        pool = pts["n_uniform"] if self.query == "uniform" else len(pts["points"])
        if pool == 0:
            raise DDMIError(f"{folder / 'points.npz'} has no {'uniform ' if self.query == 'uniform' else ''}"
                            f"query points (expected at least one)")
        if len(cloud["points"]) == 0:
            raise DDMIError(f"{folder / 'pointcloud.npz'} has no surface points (expected at least one)")
        q = rng.choice(pool, self.n_query, replace=pool < self.n_query)
        s = rng.choice(len(cloud["points"]), self.n_surface, replace=len(cloud["points"]) < self.n_surface)
        surface = cloud["points"][s] + self.surface_noise * rng.standard_normal((self.n_surface, 3))
        item = {"surface": torch.from_numpy(surface.astype(np.float32)),              # [n_surface,3]
                "query": torch.from_numpy(pts["points"][q]),                           # [n_query,3]
                "occ": torch.from_numpy(pts["occupancies"][q].astype(np.float32)),     # [n_query]
                "id": oid, "category": category}
        if self.captions is not None:
            texts = self.captions.get(oid, [])
            item["caption"] = texts[int(rng.integers(len(texts)))] if texts else ""
        return item
