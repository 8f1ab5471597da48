"""Moving-pixel point sampling of the video VAE's training batches (``make_batch(moving_share=…)``)."""

from __future__ import annotations

import pytest
import torch

from ddmi_lite.domains import video as V
from ddmi_lite.errors import DDMIError


def _clips(n: int = 3, t: int = 2, size: int = 16) -> torch.Tensor:
    """uint8 clips on a static grey background with one moving bright pixel column per clip."""
    clips = torch.full((n, t, 3, size, size), 100, dtype=torch.uint8)
    for i in range(n):
        for k in range(t):
            clips[i, k, :, :, (i + k) % size] = 250  # a column that moves one pixel per frame
    return clips


def _moving_share_of(batch: dict, clips: torch.Tensor) -> torch.Tensor:
    """Share of each clip's drawn points that fall on its moving pixels, from the coordinates alone."""
    moving = V.moving_pixels(clips.float() / 255)[:, 0, 0]  # [B, H, W]
    size = clips.shape[-1]
    ix = ((batch["coords"][..., :2] + 1) * size / 2 - 0.5).round().long()  # [B, n, 2] (x, y) pixel index
    on = torch.stack([moving[b, ix[b, :, 1], ix[b, :, 0]] for b in range(len(clips))])  # [B, n]
    return on.float().mean(1)


def test_moving_share_draws_that_share_from_moving_pixels_and_no_point_twice():
    clips = _clips()
    index = torch.arange(len(clips))
    uniform = V.make_batch(clips, index, torch.Generator().manual_seed(0), n_query=64, hflip=False, reverse=False)
    biased = V.make_batch(clips, index, torch.Generator().manual_seed(0), n_query=64, hflip=False, reverse=False,
                          moving_share=0.75)
    truth_share = V.moving_pixels(clips.float() / 255).float().mean()  # 2 columns of 16 move: 1/8 of the pixels
    assert torch.allclose(truth_share, torch.tensor(2 / 16))
    assert (_moving_share_of(biased, clips) >= 0.75).all()
    assert (_moving_share_of(uniform, clips) < 0.5).all()
    for b in range(len(clips)):  # distinct points: no coordinate drawn twice in a clip
        assert len(torch.unique(biased["coords"][b], dim=0)) == 64
    # targets are the clip's own pixels at the drawn coordinates
    size = clips.shape[-1]
    ix = ((biased["coords"] + 1) * torch.tensor([size, size, clips.shape[1]]) / 2 - 0.5).round().long()
    x = V.to_model_range(clips)
    want = torch.stack([x[b, ix[b, :, 2], :, ix[b, :, 1], ix[b, :, 0]] for b in range(len(clips))])  # [B, n, 3]
    torch.testing.assert_close(biased["target"], want)


def test_moving_share_spills_into_static_points_when_few_pixels_move():
    clips = _clips(n=2)  # 32 moving pixels × 2 frames = 64 moving points of 512 per clip
    batch = V.make_batch(clips, torch.arange(2), torch.Generator().manual_seed(1), n_query=128, hflip=False,
                         reverse=False, moving_share=1.0)
    assert torch.allclose(_moving_share_of(batch, clips), torch.tensor(64 / 128))  # every moving point, then static
    for b in range(2):
        assert len(torch.unique(batch["coords"][b], dim=0)) == 128


def test_moving_share_outside_unit_interval_is_refused():
    with pytest.raises(DDMIError, match="moving_share"):
        V.make_batch(_clips(), torch.arange(1), torch.Generator(), n_query=8, moving_share=1.5)
