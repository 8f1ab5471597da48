"""Ablation rows: every readout mode and the baseline train through the one loop; scale masks at render time;
the table's bookkeeping (flat metrics, JSON / CSV, verdicts) and checkpoint reuse."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from test_weightgen import synthetic_shapes

from ddmi_lite import ablation_table as T
from ddmi_lite import ablations as A
from ddmi_lite.ablations import ablation_config
from ddmi_lite.domains.shape import occupancy_logits
from ddmi_lite.errors import DDMIError
from ddmi_lite.viz import render_image, scale_masks

PYRAMID = {32: torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


@pytest.fixture(scope="module")
def shapes():
    return synthetic_shapes()


@pytest.mark.parametrize("domain", T.DOMAINS)
@pytest.mark.parametrize("row", T.ROWS)
def test_every_row_trains_through_the_same_loop(row, domain, shapes, tmp_path):
    cfg = ablation_config("smoke")
    torch.manual_seed(0)
    data = PYRAMID if domain == "image" else shapes
    fresh = A.build_row_model(domain, row, cfg)
    model, result = A.train_row(domain, row, 0, cfg, data, ckpt_dir=tmp_path, progress=False)
    assert result.steps_done == (cfg.image if domain == "image" else cfg.shape).train.steps
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert (tmp_path / "ablations" / f"{domain}_{row}_s0.json").is_file()
    changed = [not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values())]
    assert any(changed), "training did not change the parameters"
    # the checkpoint is reused as is on a second call
    _, again = A.train_row(domain, row, 0, cfg, data, ckpt_dir=tmp_path, progress=False)
    assert again.resumed_from == again.steps_done == result.steps_done


def test_rows_differ_in_the_readout_only():
    cfg = ablation_config("smoke")
    modes = {row: A.build_row_model("image", row, cfg).readout for row in T.ROWS if row != "weightgen"}
    assert {r: m.mode for r, m in modes.items()} == {r: T.READOUT_MODES[r] for r in modes}
    assert len(modes["single"].pe_dims) == 1 and len(modes["cfc"].pe_dims) == 3
    assert len(A.build_row_model("shape", "single", cfg).decoder.heads) == 0  # one field, no coarse heads
    with pytest.raises(DDMIError, match="row"):
        A.build_row_model("image", "cfc_plus", cfg)


@pytest.mark.parametrize("row", ["cfc", "concat", "sum"])
def test_zeroing_a_scale_at_render_time(row):
    torch.manual_seed(1)
    cfg = ablation_config("smoke")
    model = A.build_row_model("image", row, cfg).eval()
    for p in model.readout.parameters():  # leave the zero-initialised identity start
        p.data.add_(0.05 * torch.randn_like(p))
    z = torch.randn(cfg.image.net.z_channels, 8, 8)
    full = render_image(model, z)
    assert torch.equal(torch.from_numpy(render_image(model, z, scale_mask=(1.0, 1.0, 1.0))), torch.from_numpy(full))
    masks = [m for m in scale_masks(3).values() if m is not None]
    assert len(masks) == 3
    for mask in masks:
        assert not torch.allclose(torch.from_numpy(render_image(model, z, scale_mask=mask)), torch.from_numpy(full))


def test_zeroing_a_scale_of_a_shape_model():
    torch.manual_seed(2)
    cfg = ablation_config("smoke")
    model = A.build_row_model("shape", "cfc", cfg).eval()
    for p in model.readout.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    z = torch.randn(1, *cfg.shape.net.latent_shape)
    pts = (torch.rand(1, 64, 3) - 0.5)
    full = occupancy_logits(model, z, pts)
    assert torch.equal(occupancy_logits(model, z, pts, scale_mask=(1, 1, 1)), full)
    for k in range(3):
        mask = [1, 1, 1]
        mask[k] = 0
        assert not torch.allclose(occupancy_logits(model, z, pts, scale_mask=mask), full)


def _table():
    rows = []
    for i, row in enumerate(T.ROWS):
        rows.append({"domain": "image", "row": row, "label": T.ROW_LABELS[row], "params": 100 + i, "steps": 10,
                     "train_s": 1.0 + i, "recon_metric": "psnr", "recon_mean": 20.0 + i, "recon_std": 0.1,
                     "recon_seeds": [19.9 + i, 20.1 + i], "fd": 10.0 - i, "ldm_train_s": 2.0})
        rows.append({"domain": "shape", "row": row, "label": T.ROW_LABELS[row], "params": 200 + i, "steps": 10,
                     "train_s": 3.0, "recon_metric": "iou", "recon_mean": 0.5 + 0.01 * (i == 1), "recon_std": 0.05,
                     "recon_seeds": [0.45, 0.55], "mmd": 0.01, "cov": 0.5, "ldm_train_s": 2.0})
    return rows


def test_flat_metrics_keys_and_files(tmp_path):
    table = _table()
    metrics = T.flat_metrics(table)
    for row in T.ROWS:
        for key in (f"psnr_heldout_{row}", f"psnr_heldout_{row}_std", f"fd_samples_{row}", f"iou_heldout_{row}",
                    f"iou_heldout_{row}_std", f"mmd_{row}", f"cov_{row}", f"params_image_{row}",
                    f"train_s_shape_{row}"):
            assert key in metrics, key
    assert metrics["psnr_heldout_cfc"] == 24.0 and metrics["fd_samples_weightgen"] == 10.0
    json_path, csv_path = T.write_table(table, tmp_path, config=ablation_config("smoke"))
    assert T.load_table(tmp_path) == table
    assert json.loads(json_path.read_text())["config"]["image"]["train"]["steps"] == ablation_config("smoke").image.train.steps
    with open(csv_path) as f:
        read = list(csv.DictReader(f))
    assert [(r["domain"], r["row"]) for r in read] == [(e["domain"], e["row"]) for e in table]
    with pytest.raises(DDMIError, match="ablation.json"):
        T.load_table(tmp_path / "nowhere")


def test_claim_verdicts_read_the_numbers():
    verdicts = T.claim_verdicts(_table())
    assert len(verdicts) == 6
    image_a = next(v for v in verdicts if v.startswith("(a) image"))
    assert "reconstruction holds" in image_a and "generation holds" in image_a  # cfc 24 dB vs 20, FD 6 vs 10
    shape_b = next(v for v in verdicts if v.startswith("(b) shape"))
    assert "within the seed spread" in shape_b  # 0.50 vs 0.51 with std 0.05
    shape_a = next(v for v in verdicts if v.startswith("(a) shape"))
    assert "generation is a tie" in shape_a  # equal MMD: no win


def test_generation_verdict_needs_a_margin_and_cov():
    assert T._generation_verdict(0.0654, 0.0656).startswith("is a tie")  # 0.3% apart
    assert T._generation_verdict(6.0, 10.0) == "holds"
    assert T._generation_verdict(10.0, 6.0) == "does not hold"
    rows = [{"domain": "shape", "row": r, "recon_metric": "iou", "recon_mean": 0.5, "recon_std": 0.0,
             "mmd": mmd, "cov": cov} for r, mmd, cov in (("cfc", 0.05, 0.4), ("concat", 0.07, 0.5))]
    (verdict,) = [v for v in T.claim_verdicts(rows) if v.startswith("(c) shape")]
    assert "generation is mixed" in verdict
