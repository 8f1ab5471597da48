"""Feature networks for the distribution metrics of :mod:`ddmi_lite.metrics` (DDMI §4.2, §4.3).

DDMI reports FID, precision and recall on images (reference §4.2: pytorch-fid InceptionV3
pool3 features) and FVD on videos (I3D features).  Those weights cannot be downloaded here, so
the features come from small networks trained once, without labels, by instance discrimination
in its contrastive form (SimCLR, Chen et al. 2020): two random crops/flips/colour jitters of one
image must match each other among all views of the batch.  Numbers computed with these features
are comparable only with each other, not with published FIDs / FVDs.

* :class:`FeatureNet` (32² RGB images) and :class:`ClipFeatureNet` (clips ``[B, T, 3, H, W]``).
* :func:`augment` and :func:`contrastive_loss` (NT-Xent), :func:`train_feature_net` with a
  safetensors cache keyed by a fingerprint of the training images.
* :func:`image_features` / :func:`clip_features`: batched, eval-mode extraction → float64 ``[N, D]``.
* :class:`InceptionFeatures`: FID's InceptionV3 pool3 features from a local weights file
  (:mod:`ddmi_lite.nets.inception`), for numbers comparable with published FIDs.
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
from tqdm.auto import tqdm

from ddmi_lite.device import module_device, resolve_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.inception import FIDInceptionV3
from ddmi_lite.io import atomic_write


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
    device = module_device(net)
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
def image_features(net: nn.Module, images: torch.Tensor, batch_size: int = 256, *,
                   progress: bool = False) -> np.ndarray:
    """Features [N, D] (float64 numpy) of images [N, 3, H, W] in [0, 1], computed in eval mode.

    ``progress``: a tqdm bar counting the images (off by default, as for the other extractors here).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise DDMIError(f"images must be [N, 3, H, W] in [0, 1]; got shape {tuple(images.shape)}")
    return _batched_features(net, images, batch_size, progress=progress, desc="image features", unit="image")


@torch.no_grad()
def clip_features(net: nn.Module, clips: torch.Tensor, batch_size: int = 64, *, progress: bool = False) -> np.ndarray:
    """Features [N, D] (float64 numpy) of clips [N, T, 3, H, W] in [0, 1] (a :class:`ClipFeatureNet`)."""
    if clips.ndim != 5 or clips.shape[2] != 3:
        raise DDMIError(f"clips must be [N, T, 3, H, W] in [0, 1]; got shape {tuple(clips.shape)}")
    return _batched_features(net, clips, batch_size, progress=progress, desc="clip features", unit="clip")


def _batched_features(net: nn.Module, x: torch.Tensor, batch_size: int, *, progress: bool = False,
                      desc: str = "features", unit: str = "item") -> np.ndarray:
    """``net`` in eval mode over ``x`` in batches on the net's device → float64 numpy ``[N, D]``."""
    was_training = net.training
    net.eval()
    device = module_device(net)
    out = []
    with tqdm(total=x.shape[0], desc=desc, unit=unit, leave=False, disable=not progress) as bar:
        for i in range(0, x.shape[0], batch_size):
            out.append(net(x[i:i + batch_size].to(device=device, dtype=torch.float32)).double().cpu())  # [b, D]
            bar.update(len(out[-1]))
    net.train(was_training)
    return torch.cat(out).numpy()


class InceptionFeatures:
    """FID's InceptionV3 pool3 features (2048 per image) from a local weights file, never downloaded.

    ``weights_path``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict,
    read with ``torch.load(weights_only=True)``, which restores tensors and refuses any other
    object) or the same tensors saved as ``.safetensors``. The classifier (``fc.*``) is not used.
    With these weights, :func:`ddmi_lite.metrics.frechet_distance` of the features is the FID that
    papers report (given the same number of samples and reference set); the architecture is
    :class:`ddmi_lite.nets.inception.FIDInceptionV3`.
    """

    def __init__(self, weights_path: str | os.PathLike, *, device: str | torch.device = "cpu", batch_size: int = 50):
        path = Path(weights_path)
        if not path.is_file():
            raise DDMIError(
                f"weights_path={str(path)!r} does not exist: InceptionFeatures needs a local copy of the "
                "pytorch-fid weights (pt_inception-2015-12-05-6726825d.pth); ddmi_lite never downloads"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DDMIError(f"batch_size={batch_size!r} must be a positive int")
        state = _read_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the 1008-class head: unused
        self.net = FIDInceptionV3()
        expected = self.net.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
        if missing or unexpected or wrong:
            raise DDMIError(f"{path} is not the FID InceptionV3 weights: {len(missing)} tensors missing "
                            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of another "
                            f"shape {wrong[:3]}")
        self.net.load_state_dict(state)
        self.device, self.batch_size = torch.device(device), batch_size
        self.net.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, *, progress: bool = False) -> torch.Tensor:
        """``images`` [N, 3, H, W] in [0, 1] → pool3 features float64 [N, 2048]."""
        if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise DDMIError(f"images has shape {shape}; expected [N, 3, H, W] RGB in [0, 1]")
        out = [self.net(images[s:s + self.batch_size].to(self.device, torch.float32)).double().cpu()
               for s in tqdm(range(0, len(images), self.batch_size), desc="inception", disable=not progress)]
        return torch.cat(out) if out else torch.empty(0, 2048, dtype=torch.float64)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or from a ``.pth`` holding only tensors (no code is unpickled)."""
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch and safetensors raise several types for foreign or damaged files
        raise DDMIError(f"{path} cannot be read as a state dict of tensors ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise DDMIError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    return state


__all__ = [
    "FeatureNet", "ClipFeatureNet", "augment", "contrastive_loss", "train_feature_net", "image_features",
    "clip_features", "InceptionFeatures",
]
