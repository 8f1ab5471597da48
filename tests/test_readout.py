"""CFC readout: wiring invariants and the shapes of every mode."""

import pytest
import torch

from ddmi_lite import DDMIError
from ddmi_lite.readout import MODES, CFCReadout, readout_block_inputs


def _pes(b=2, n=5, dims=(8, 8, 8)):
    return [torch.randn(b, n, c) for c in dims]


def test_cfc_fine_embedding_cannot_change_block1():
    torch.manual_seed(0)
    r = CFCReadout([8, 8, 8], hidden=16, mode="cfc", scale_cond=True)
    for p in r.parameters():  # make every block non-trivial (fc1 starts at zero)
        torch.nn.init.normal_(p, std=0.3)
    outs = []
    hook = r.blocks[0].register_forward_hook(lambda m, i, o: outs.append(o.detach().clone()))
    pes = _pes()
    y0 = r(pes, scale=1.0)
    y1 = r([pes[0], pes[1], pes[2] + 1.0], scale=1.0)
    r([pes[0] + 1.0, pes[1], pes[2]], scale=1.0)
    hook.remove()
    assert torch.equal(outs[0], outs[1])          # fine PE changed: block 1 untouched
    assert not torch.allclose(outs[0], outs[2])    # coarse PE changed: block 1 changes
    assert not torch.allclose(y0, y1)              # ... but the fine PE does reach the output


def test_cfc_block_widths_follow_the_reference():
    # reference image MLP: 66 → 256, 322 → 256, 322 → 256, 256 → 256
    r = CFCReadout([64, 64, 64], hidden=256, mode="cfc", scale_cond=True)
    assert readout_block_inputs(r) == [66, 322, 322, 256]
    r = CFCReadout([64, 64, 64], hidden=256, mode="cfc", coord_dim=3)  # shapes: 64 → 256, 320 → 256
    assert readout_block_inputs(r) == [64, 320, 320, 256]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale_cond", [False, True])
def test_every_mode_shapes(mode, scale_cond):
    dims = [8] if mode == "single_scale" else [8, 8, 8]
    r = CFCReadout(dims, hidden=16, out_dim=3, mode=mode, scale_cond=scale_cond)
    y = r(_pes(dims=dims), scale=torch.tensor([1.0, 0.5]))
    assert y.shape == (2, 5, 3)
    y.sum().backward()
    assert all(p.grad is not None for p in r.parameters())


def test_concat_input_uses_every_scale_at_block1():
    r = CFCReadout([4, 6, 8], hidden=16, mode="concat_input")
    assert readout_block_inputs(r)[0] == 18
    assert readout_block_inputs(r)[1:] == [16, 16, 16]


def test_scale_conditioning_changes_output_once_trained():
    torch.manual_seed(0)
    r = CFCReadout([8, 8, 8], hidden=16, scale_cond=True)
    for p in r.parameters():
        torch.nn.init.normal_(p, std=0.3)
    pes = _pes()
    assert not torch.allclose(r(pes, scale=1.0), r(pes, scale=0.5))


def test_coords_added_after_block1():
    r = CFCReadout([8, 8, 8], hidden=16, out_dim=1, coord_dim=3)
    with pytest.raises(DDMIError, match="coords"):
        r(_pes())
    assert r(_pes(), coords=torch.randn(2, 5, 3)).shape == (2, 5, 1)


@pytest.mark.parametrize("kwargs", [dict(mode="bogus"), dict(mode="sum", pe_dims=[4, 8]),
                                    dict(act="tanh"), dict(pe_dims=[])])
def test_bad_arguments(kwargs):
    pe_dims = kwargs.pop("pe_dims", [8, 8, 8])
    with pytest.raises(DDMIError):
        CFCReadout(pe_dims, **kwargs)


def test_readout_gives_the_same_output_on_every_device(device):
    torch.manual_seed(0)
    r = CFCReadout([8, 6, 4], hidden=16, mode="cfc", scale_cond=True, coord_dim=3)
    for p in r.parameters():
        torch.nn.init.normal_(p, std=0.3)
    pes, coords = _pes(dims=(8, 6, 4)), torch.randn(2, 5, 3)
    want = r(pes, coords=coords, scale=0.5)
    got = r.to(device)([p.to(device) for p in pes], coords=coords.to(device), scale=0.5)
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)
