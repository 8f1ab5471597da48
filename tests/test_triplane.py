"""Tri-plane encoder / decoder: shapes, weight sharing across planes, cross-plane mixing, channel stacking."""

from __future__ import annotations

import pytest
import torch

from ddmi_lite import fields as F_fields
from ddmi_lite.domains.shape import PLANE_ORDER, image_to_triplane, triplane_to_image
from ddmi_lite.errors import DDMIError
from ddmi_lite.nets.triplane import CrossPlaneBlock, TriplaneConfig, TriplaneDecoder, TriplaneEncoder

TINY = TriplaneConfig(point_hidden=8, point_blocks=2, plane_channels=8, plane_resolution=16, ch=8, ch_mult=(1, 2, 2),
                      z_channels=4, pe_channels=8, cross_resolutions=(8, 4), attention_resolutions=(4,))


def test_encoder_and_decoder_shapes():
    torch.manual_seed(0)
    enc, dec = TriplaneEncoder(TINY), TriplaneDecoder(TINY)
    moments = enc(torch.rand(2, 100, 3) * 2 - 1)
    assert TINY.latent_shape == (3, 4, 4, 4)
    assert moments.shape == (2, 3, 8, 4, 4)  # (mean, logvar) of 4 channels per plane
    fields = dec(moments[:, :, :4])
    assert [tuple(f.shape) for f in fields] == [(2, 3, 8, 4, 4), (2, 3, 8, 8, 8), (2, 3, 8, 16, 16)]
    emb = F_fields.query_fields(fields, torch.rand(2, 30, 3) * 2 - 1, "triplane", aggregate="sum")
    assert [tuple(e.shape) for e in emb] == [(2, 30, 8)] * 3


def test_single_scale_decoder():
    cfg = TriplaneConfig(**{**TINY.__dict__, "n_scales": 1})
    fields = TriplaneDecoder(cfg)(torch.randn(1, 3, 4, 4, 4))
    assert [tuple(f.shape) for f in fields] == [(1, 3, 8, 16, 16)]


def test_decoder_rejects_wrong_latent():
    with pytest.raises(DDMIError):
        TriplaneDecoder(TINY)(torch.randn(1, 12, 4, 4))
    with pytest.raises(DDMIError):
        TriplaneConfig(plane_resolution=30, ch_mult=(1, 2, 2)).check()


def test_planes_share_weights_without_cross_blocks():
    """Without cross-plane blocks, permuting the input planes permutes the output planes (shared convs);
    the per-plane 1×1 heads are set equal so only weight sharing is tested."""
    torch.manual_seed(1)
    cfg = TriplaneConfig(**{**TINY.__dict__, "cross_resolutions": ()})
    dec = TriplaneDecoder(cfg)
    dec.mid_cross = torch.nn.Identity()
    with torch.no_grad():  # same post-quant weights for the three planes (grouped 1×1 conv)
        w = dec.post_quant.weight.view(3, -1, *dec.post_quant.weight.shape[1:])
        w[1:] = w[0]
        bias = dec.post_quant.bias.view(3, -1)
        bias[1:] = bias[0]
    z = torch.randn(1, 3, 4, 4, 4)
    perm = torch.tensor([2, 0, 1])
    a, b = dec(z), dec(z[:, perm])
    for fa, fb in zip(a, b):
        assert torch.allclose(fa[:, perm], fb, atol=1e-5)


def test_cross_plane_block_mixes_planes():
    torch.manual_seed(2)
    block = CrossPlaneBlock(4, attention=True)
    torch.nn.init.normal_(block.body[-1].body[-1].weight)  # make the last conv non-trivial
    x = torch.randn(3, 4, 8, 8)  # one sample, planes folded into the batch
    y = block(x)
    x2 = x.clone()
    x2[0] += torch.randn_like(x2[0])  # change only the xy plane
    y2 = block(x2)
    assert y.shape == x.shape
    assert (y2[1] - y[1]).abs().max() > 1e-4 and (y2[2] - y[2]).abs().max() > 1e-4  # yz and xz see it


def test_channel_stacking_is_exactly_invertible_and_ordered():
    assert PLANE_ORDER == ("xy", "yz", "xz") == F_fields.LAYOUTS["triplane"]
    z = torch.randn(2, 3, 5, 4, 4)
    img = triplane_to_image(z)
    assert img.shape == (2, 15, 4, 4)
    assert torch.equal(img[:, 0:5], z[:, 0]) and torch.equal(img[:, 5:10], z[:, 1]) and torch.equal(img[:, 10:], z[:, 2])
    assert torch.equal(image_to_triplane(img), z)
    x = torch.randn(3, 12, 2, 2)
    assert torch.equal(triplane_to_image(image_to_triplane(x)), x)
    with pytest.raises(DDMIError):
        image_to_triplane(torch.randn(1, 10, 2, 2))
    with pytest.raises(DDMIError):
        triplane_to_image(torch.randn(1, 2, 5, 4, 4))


def test_triplane_projection_order():
    """The decoder's plane p is queried at the projection named LAYOUTS['triplane'][p]."""
    c = torch.tensor([[[0.3, -0.6, 0.9]]])
    proj = F_fields.project(c, "triplane")[0, :, 0]  # [3, 2]
    assert torch.allclose(proj, torch.tensor([[0.3, -0.6], [-0.6, 0.9], [0.3, 0.9]]))
