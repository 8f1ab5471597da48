"""Attribute classifier on occupancy grids: the yardstick of text-to-shape (DDMI teaser, Text2Shape).

Text-to-shape is scored by asking whether a generated shape has the attributes its caption states.
A small 3D CNN, trained on **ground-truth** occupancy grids of the training objects, predicts
several attribute heads at once; every head is a softmax over its classes and applies only to
some categories (label −1 elsewhere, ignored by the loss and by the accuracy):

    head        classes                     applies to
    category    chair table lamp shelf sofa every object
    armrests    no yes                      chair, sofa
    legs        1 3 4                       chair (pedestal = 1), table
    height      short medium tall           chair, table, shelf
    lamp_type   desk floor                  lamp
    sofa_shape  straight L-shaped           sofa

Loss: L = Σ_heads CE(logits_h, y_h) over the objects where y_h ≠ −1. Accuracy of a set of
predictions: correct / applicable over every (object, head) pair whose target applies.
Grids are the occupancy of :func:`ddmi_lite.geometry.dense_grid` points (index
[x, y, z]), 1 inside; a generated shape enters as its occupancy probabilities σ(logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ddmi_lite.data.furniture import CATEGORIES, generate_shape
from ddmi_lite.device import module_device
from ddmi_lite import geometry as geo
from ddmi_lite.errors import DDMIError
from ddmi_lite.train import TrainConfig, load_or_train, model_settings

HEADS: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "armrests": ("no", "yes"),
    "legs": ("1", "3", "4"),
    "height": ("short", "medium", "tall"),
    "lamp_type": ("desk", "floor"),
    "sofa_shape": ("straight", "L-shaped"),
}


def attribute_labels(attrs: dict) -> list[int]:
    """One object's attributes (``attributes.json`` entry) → a class index per head, −1 where it does not apply."""
    if "category" not in attrs:
        raise DDMIError(f"attributes need a 'category' entry, got keys {sorted(attrs)}")
    cat = attrs["category"]
    value = {"category": cat}
    if "has_armrests" in attrs:
        value["armrests"] = "yes" if attrs["has_armrests"] else "no"
    if cat in ("chair", "table") and "n_legs" in attrs:
        value["legs"] = str(attrs["n_legs"])
    if attrs.get("height_class") is not None:
        value["height"] = attrs["height_class"]
    if "lamp_type" in attrs:
        value["lamp_type"] = attrs["lamp_type"]
    if cat == "sofa" and "shape" in attrs:
        value["sofa_shape"] = attrs["shape"]
    return [HEADS[h].index(value[h]) if value.get(h) in HEADS[h] else -1 for h in HEADS]


def label_matrix(attributes: list[dict]) -> torch.Tensor:
    """Attributes of many objects → long ``[N, H]`` (H = len(HEADS)), −1 where a head does not apply."""
    return torch.tensor([attribute_labels(a) for a in attributes], dtype=torch.long).reshape(-1, len(HEADS))


def procedural_shape(oid: str, *, seed: int = 0):
    """The procedural object behind an id ``<category>_<index>`` (exact parts, attributes, captions)."""
    category, _, index = str(oid).rpartition("_")
    if category not in CATEGORIES or not index.isdigit():
        raise DDMIError(f"id {oid!r} is not a procedural object id '<category>_<index>'")
    return generate_shape(category, int(index), seed=seed)


def gt_occupancy_grids(ids: list[str], resolution: int = 32, *, seed: int = 0) -> torch.Tensor:
    """Exact occupancy of procedural objects (ids ``<category>_<index>``) on the dense grid → bool [N, R, R, R]."""
    grid = geo.dense_grid(resolution).numpy().astype(np.float64)  # [R³, 3], x slowest
    out = torch.empty(len(ids), resolution, resolution, resolution, dtype=torch.bool)
    for i, oid in enumerate(ids):
        inside = procedural_shape(oid, seed=seed).contains(grid)
        out[i] = torch.from_numpy(inside.reshape(resolution, resolution, resolution))
    return out


@dataclass
class AttributeClassifierConfig:
    """The 3D CNN that scores generated shapes' attributes (notebook 07); the defaults are ``cpu``."""

    resolution: int = 32            # occupancy grid size R (R³ inputs)
    width: int = 16                 # channels of the first conv
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=300, batch_size=32, lr=2e-3, warmup_steps=20, weight_decay=1e-4, max_time_s=180.0))


class AttributeClassifier(nn.Module):
    """3D CNN: occupancy ``[B, R, R, R]`` in [0, 1] → concatenated logits of every head ``[B, Σ classes]``."""

    def __init__(self, *, resolution: int = 32, width: int = 16):
        super().__init__()
        if resolution % 8:
            raise DDMIError(f"resolution={resolution} must be divisible by 8")
        w = width
        self.resolution = resolution
        self.body = nn.Sequential(  # R → R/2 → R/4 → R/8
            nn.Conv3d(1, w, 3, stride=2, padding=1), nn.GroupNorm(4, w), nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Conv3d(2 * w, 4 * w, 3, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.Conv3d(4 * w, 4 * w, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * w), nn.SiLU(),
        )
        r = resolution // 8
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * r ** 3, 128), nn.SiLU(),
                                  nn.Linear(128, sum(len(c) for c in HEADS.values())))

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if grids.ndim != 4 or tuple(grids.shape[1:]) != (r, r, r):
            raise DDMIError(f"grids must be [B, {r}, {r}, {r}], got {tuple(grids.shape)}")
        return self.head(self.body(grids.float()[:, None]))  # [B, Σ classes]


def split_logits(logits: torch.Tensor) -> list[torch.Tensor]:
    """Concatenated logits → one ``[B, classes_h]`` tensor per head, in the order of :data:`HEADS`."""
    return list(logits.split([len(c) for c in HEADS.values()], dim=-1))


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ_heads mean CE over the objects where the head applies (label ≠ −1)."""
    total = logits.new_zeros(())
    for h, part in enumerate(split_logits(logits)):
        if (labels[:, h] >= 0).any():
            total = total + F.cross_entropy(part, labels[:, h], ignore_index=-1)
    return total


def train_attribute_classifier(grids: torch.Tensor, labels: torch.Tensor, cfg: AttributeClassifierConfig, *,
                               device="cpu", ckpt_path=None, seed: int = 0, progress: bool = True):
    """Fit the classifier on ground-truth grids (augmented by mirroring x ↦ −x); returns (model, TrainResult)."""
    if len(grids) != len(labels):
        raise DDMIError(f"{len(grids)} grids but {len(labels)} label rows")
    model = AttributeClassifier(resolution=cfg.resolution, width=cfg.width)
    tcfg = replace(cfg.train, seed=seed)

    def batch_fn(step: int, generator: torch.Generator):
        index = torch.randint(0, len(grids), (tcfg.batch_size,), generator=generator)
        x = grids[index].float()
        flip = torch.rand(len(index), generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(1), x)  # mirror in x: attributes unchanged
        return {"x": x, "y": labels[index]}

    def loss_fn(m, batch, step):
        loss = classifier_loss(m(batch["x"]), batch["y"])
        return loss, {}

    result = load_or_train(model, loss_fn, batch_fn, tcfg, ckpt_path=ckpt_path, device=device, progress=progress,
                           desc="attribute classifier", run_config={"classifier": model_settings(cfg),
                                                                    "n_train": len(grids)})
    return model.eval(), result


@torch.no_grad()
def predict_attributes(model: AttributeClassifier, grids: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """Class index per head ``[N, H]`` for occupancy grids [N, R, R, R] in [0, 1]."""
    device, out = module_device(model), []
    for start in range(0, len(grids), batch_size):
        logits = model(grids[start:start + batch_size].to(device).float())
        out.append(torch.stack([p.argmax(-1) for p in split_logits(logits)], dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(HEADS), dtype=torch.long)


def attribute_accuracy(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Accuracy over applicable (object, head) pairs: ``all`` and one entry per head (NaN-free: 0 when none apply)."""
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] != len(HEADS):
        raise DDMIError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be [N, {len(HEADS)}]")
    valid = target >= 0
    correct = (pred == target) & valid
    out = {"all": float(correct.sum()) / max(int(valid.sum()), 1)}
    for h, name in enumerate(HEADS):
        out[name] = float(correct[:, h].sum()) / max(int(valid[:, h].sum()), 1)
    return out


__all__ = ["HEADS", "attribute_labels", "label_matrix", "procedural_shape", "gt_occupancy_grids", "AttributeClassifierConfig",
           "AttributeClassifier", "split_logits", "classifier_loss", "train_attribute_classifier",
           "predict_attributes", "attribute_accuracy"]
