"""Procedural furniture as the default 3D shape data, in the Occupancy-Networks layout (paper Sec. 4.1).

The paper trains its shape model on ShapeNet as preprocessed by Occupancy Networks (ONet) and
its text-to-shape model on Text2Shape captions (reference §4.1, §1.9). Neither can be shipped,
so the default data is a collection of furniture (chair, table, lamp, shelf, sofa; the grammar
is :mod:`ddmi_lite.data.furniture`) written in the layout ONet uses
(:mod:`ddmi_lite.data.onet`), so that one loader, :class:`ShapeNetOccupancy`, reads both:

    <root>/<category>/<object_id>/points.npz      query points and occupancies
    <root>/<category>/<object_id>/pointcloud.npz  surface points and normals
    <root>/<category>/{train,val,test}.lst        object ids, one per line
    <root>/captions.tablechair.csv                Text2Shape columns (every category here)
    <root>/attributes.json                        object id → the attributes its captions state
    <root>/manifest.json                          settings and the sha256 of every file

:func:`prepare_shapes` writes the collection; files are byte-for-byte reproducible and written
atomically, and an unchanged object is not rewritten.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ddmi_lite.data.captions import CAPTIONS_CSV, captions_csv, load_captions
from ddmi_lite.data.emoji import default_data_dir
from ddmi_lite.data.furniture import (
    CATEGORIES,
    HEIGHT_BANDS,
    category_counts,
    check_categories,
    generate_shape,
    shape_id,
)
from ddmi_lite.data.onet import (
    SPLIT_FRACTIONS,
    SPLITS,
    SampleConfig,
    load_pointcloud_npz,
    load_points_npz,
    object_arrays,
    split_ids,
)
from ddmi_lite.errors import DDMIError
from ddmi_lite.io import atomic_write, claim_folder, npz_bytes, read_json_or_none, sha256_file, write_json

FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- prepare

def _shapes_root(root) -> Path:
    return Path(root) if root is not None else default_data_dir() / "shapes"


def _valid(root: Path, rel: str, digest: str | None) -> bool:
    path = root / rel
    return digest is not None and path.is_file() and sha256_file(path) == digest


def prepare_shapes(root: str | os.PathLike | None = None, n_objects: int = 2400, *, seed: int = 0,
                   force: bool = False, progress: bool = True, n_points: int = 20_000, n_surface: int = 4_000,
                   uniform_ratio: float = 0.5, surface_sigma: float = 0.01, categories=CATEGORIES) -> Path:
    """Generate, sample and write the procedural furniture in the ONet layout; return ``root``.

    Idempotent: an object whose two files still match the sha256 in ``manifest.json`` (written
    with the same settings) is not rewritten; a missing or corrupted one is rebuilt. Two prepares
    with the same arguments give byte-identical files (fixed zip timestamps, atomic writes).
    """
    root = _shapes_root(root)
    cats = check_categories(categories)
    counts = category_counts(n_objects, cats)
    for name, value in (("n_points", n_points), ("n_surface", n_surface)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DDMIError(f"{name}={value!r} must be a positive int")
    if not 0.0 <= uniform_ratio <= 1.0 or not surface_sigma >= 0.0:
        raise DDMIError(f"uniform_ratio={uniform_ratio!r} must be in [0, 1] and surface_sigma={surface_sigma!r} ≥ 0")
    cfg = SampleConfig(n_points, n_surface, float(uniform_ratio), float(surface_sigma))
    settings = json.loads(json.dumps(  # as read back from manifest.json (tuples → lists)
        {"format": FORMAT_VERSION, "seed": int(seed), "n_objects": int(n_objects), "categories": list(cats),
         "sample": cfg.__dict__, "splits": dict(zip(SPLITS, SPLIT_FRACTIONS)), "height_bands": HEIGHT_BANDS}))
    claim_folder(root, what="shapes")
    old = read_json_or_none(root / "manifest.json")
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
            atomic_write(root / rel, npz_bytes(arrays), durable=False)
            files[rel] = sha256_file(root / rel)
    extra = {CAPTIONS_CSV: captions_csv(shapes),
             "attributes.json": (json.dumps({s.id: s.attributes for s in shapes}, indent=1, sort_keys=True) + "\n").encode()}
    split_counts = {}
    for category in cats:
        splits = split_ids([i for i in ids if i.rsplit("_", 1)[0] == category], seed=seed)
        split_counts[category] = {k: len(v) for k, v in splits.items()}
        for split, members in splits.items():
            extra[f"{category}/{split}.lst"] = "".join(f"{m}\n" for m in members).encode()
    for rel, data in extra.items():
        atomic_write(root / rel, data, durable=False)
        files[rel] = sha256_file(root / rel)
    manifest = {"settings": settings, "objects": len(ids), "splits": split_counts, "files": dict(sorted(files.items()))}
    write_json(root / "manifest.json", manifest, indent=1, sort_keys=True, durable=False)
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
