"""The furniture grammar: chairs, tables, lamps, shelves and sofas built from analytic solids.

:func:`generate_shape` draws object ``index`` of a category from a generator seeded by
(seed, category, index) only — so a collection is the same whatever its size — and returns a
:class:`Shape`: its parts (:class:`~ddmi_lite.data.primitives.Primitive`), the attributes the
grammar chose, two captions stating them (:mod:`ddmi_lite.data.captions`), and ONet's
normalisation: ``loc`` = centre of the raw bounding box, ``scale`` = its largest side,
normalised = (raw − loc) / scale, so an object fits [-0.5, 0.5]³ with max extent 1. Raw units
are metres; y is up and the front faces +z.

Occupancy is exact: a point is inside iff it is inside one of the parts (each test analytic).
Surface points are uniform on the boundary of the union: points drawn on every part's surface
in proportion to its area, minus those covered by another part (a small step along the outward
normal lands inside it); where faces of two parts coincide, only the first part's copy is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh

from ddmi_lite.data.captions import make_captions
from ddmi_lite.data.primitives import Primitive, axis_to, rot_x, rot_y
from ddmi_lite.errors import DDMIError

CATEGORIES = ("chair", "table", "lamp", "shelf", "sofa")
# aspect = height / max(width, depth) → "short" below lo, "tall" above hi (about tertiles)
HEIGHT_BANDS = {"chair": (1.55, 1.8), "table": (0.5, 0.75), "shelf": (0.7, 1.05)}
_STRICT = 1e-9                 # tolerance of "on the surface of another part"
_STEP = 1e-7                   # outward step that tells boundary points from covered ones


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

        Use :func:`ddmi_lite.geometry.mesh_contains` (generalised winding number:
        the sum over parts = number of parts containing the point, so > ½ ⇔ inside the union)
        for inside tests; ray parity (``trimesh.Trimesh.contains``) miscounts where parts overlap.
        For one watertight surface, run marching cubes on :meth:`contains` over a dense grid.
        """
        return trimesh.util.concatenate(self.part_meshes(sections=sections))


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


# ----------------------------------------------------------------------------- generation

def shape_id(category: str, index: int) -> str:
    """``"chair_00012"``: the object id (folder name) of object ``index`` of ``category``."""
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
    cats = check_categories(categories)
    counts = category_counts(n_objects, cats)
    return [generate_shape(c, i, seed=seed) for c in cats for i in range(counts[c])]


def check_categories(categories) -> tuple[str, ...]:
    """A category name or sequence → a tuple of known categories without repeats (else :class:`DDMIError`)."""
    cats = (categories,) if isinstance(categories, str) else tuple(categories)
    bad = [c for c in cats if c not in CATEGORIES]
    if not cats or bad or len(set(cats)) != len(cats):
        raise DDMIError(f"categories={categories!r}: each must be one of {CATEGORIES}, without repeats")
    return cats


def category_counts(n_objects: int, cats: tuple[str, ...]) -> dict[str, int]:
    """Objects per category when ``n_objects`` are spread evenly over ``cats`` (the first get the remainder)."""
    if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < len(cats):
        raise DDMIError(f"n_objects={n_objects!r} must be an int ≥ the number of categories ({len(cats)})")
    return {c: n_objects // len(cats) + (i < n_objects % len(cats)) for i, c in enumerate(cats)}
