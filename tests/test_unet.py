"""UNet: shapes, the conditioning path, input checks, gradient flow."""

import pytest
import torch

from ddmi_lite.device import module_device
from ddmi_lite.errors import DDMIError
from ddmi_lite.readout import sinusoidal_embedding
from ddmi_lite.unet import UNet


pytestmark = pytest.mark.usefixtures("one_thread")


def _small(channels, **kw):
    return UNet(channels, **{"model_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1, **kw})


@pytest.mark.parametrize("channels,size", [(4, 8), (8, 8), (4, 16), (192, 16)])
def test_output_shape_equals_input_shape(channels, size):
    net = _small(channels)
    x = torch.randn(2, channels, size, size)
    out = net(x, torch.tensor([0, 999]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output conv
    assert net(x, 5).shape == x.shape  # a scalar timestep broadcasts
    assert net(x, torch.tensor([3.5, 10.0])).shape == x.shape  # float timesteps


def test_default_unet_on_rectangular_and_three_levels():
    net = UNet(8, channel_mult=(1, 2, 2), attention_resolutions=(4,))
    x = torch.randn(1, 8, 8, 16)
    assert net(x, torch.tensor([10])).shape == x.shape


def test_attention_levels_from_image_size():
    lazy = _small(4, attention_resolutions=(8,))
    fixed = _small(4, attention_resolutions=(8,), image_size=16)
    n_attn = lambda m: sum(b.attn is not None for b in list(m.down) + list(m.up) if hasattr(b, "attn"))
    assert n_attn(lazy) == len([b for b in lazy.down if hasattr(b, "attn")]) + len(lazy.up) - 1
    assert n_attn(fixed) == 1 + 2  # level 1 (8×8): one block down, two up
    assert fixed(torch.randn(1, 4, 16, 16), 3).shape == (1, 4, 16, 16)


def test_time_embedding_is_sinusoidal():
    t = torch.tensor([0.0, 1.0, 250.0])
    emb = sinusoidal_embedding(t, 8, formula="adm")
    freqs = 10_000.0 ** (-torch.arange(4) / 4)
    torch.testing.assert_close(emb[:, :4], torch.cos(t[:, None] * freqs))
    torch.testing.assert_close(emb[:, 4:], torch.sin(t[:, None] * freqs))
    readout = sinusoidal_embedding(t, 8)  # the readout's scale embedding: [sin, cos], last frequency 1/P
    freqs = 10_000.0 ** (-torch.arange(4) / 3)
    torch.testing.assert_close(readout, torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], 1))
    odd = sinusoidal_embedding(t, 9, formula="adm")
    assert odd.shape == (3, 9) and torch.equal(odd[:, :8], emb) and not odd[:, 8].any()
    with pytest.raises(DDMIError, match="formula"):
        sinusoidal_embedding(t, 8, formula="vaswani")


def test_module_device_is_where_the_weights_are():
    assert module_device(_small(4)) == torch.device("cpu")
    with pytest.raises(DDMIError, match="no parameters"):
        module_device(torch.nn.Identity())


def _randomise_zero_inits(net):
    """Give zero-initialised layers small random weights so every path carries signal."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def test_condition_changes_output_and_null_paths_agree():
    net = _small(4, cond_dim=6)
    _randomise_zero_inits(net)
    gen = torch.Generator().manual_seed(1)
    x, c = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 6, generator=gen)
    t = torch.tensor([1, 400, 900])
    with_c = net(x, t, c)
    null = net(x, t, None)
    assert not torch.allclose(with_c, null)
    assert not torch.allclose(with_c, net(x, t, torch.randn(3, 6, generator=gen)))
    # dropping every condition is exactly the null condition; dropping one row affects only that row
    assert torch.equal(net(x, t, c, drop_cond=torch.ones(3, dtype=torch.bool)), null)
    mixed = net(x, t, c, drop_cond=torch.tensor([False, True, False]))
    torch.testing.assert_close(mixed[1], null[1])
    torch.testing.assert_close(mixed[[0, 2]], with_c[[0, 2]])


def test_bad_inputs_raise():
    net = _small(4, channel_mult=(1, 2, 2))
    with pytest.raises(DDMIError, match="divisible"):
        net(torch.randn(1, 4, 6, 6), 0)
    with pytest.raises(DDMIError, match="expected"):
        net(torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(DDMIError, match="cond_dim=None"):
        net(torch.randn(1, 4, 8, 8), 0, torch.randn(1, 5))
    with pytest.raises(DDMIError, match="cond has shape"):
        _small(4, cond_dim=5)(torch.randn(2, 4, 8, 8), 0, torch.randn(2, 4))
    with pytest.raises(DDMIError, match="groups"):
        UNet(4, model_channels=12, groups=8)
    with pytest.raises(DDMIError, match="num_heads"):
        UNet(4, model_channels=24, groups=8, num_heads=5)


def test_gradient_reaches_every_parameter():
    net = _small(4, cond_dim=6, image_size=8)  # attention only where it runs: no unused parameters
    gen = torch.Generator().manual_seed(2)
    x, c = torch.randn(4, 4, 8, 8, generator=gen), torch.randn(4, 6, generator=gen)
    drop = torch.tensor([True, False, False, True])  # the null embedding is used by some rows
    # at initialisation only the zero-initialised output conv receives gradient
    net(x, torch.tensor([3, 50, 500, 990]), c, drop_cond=drop).pow(2).mean().backward()
    assert net.out[-1].weight.grad.abs().sum() == 0  # output is zero, so d(out²)/dW = 0 …
    net.zero_grad()
    (net(x, torch.tensor([3, 50, 500, 990]), c, drop_cond=drop) * x).mean().backward()
    assert net.out[-1].weight.grad.abs().sum() > 0  # … but a linear loss reaches it
    # with the zero-inits randomised every parameter gets a finite, non-zero gradient
    _randomise_zero_inits(net)
    net.zero_grad()
    (net(x, torch.tensor([3, 50, 500, 990]), c, drop_cond=drop) * x).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
