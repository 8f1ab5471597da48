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
    assert len(modes["single"].pe_dims) == 1 and len(modes["cfc"].pe_dims) == cfg.image.net.n_scales
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
    k = cfg.image.net.n_scales
    full = render_image(model, z)
    assert torch.equal(torch.from_numpy(render_image(model, z, scale_mask=(1.0,) * k)), torch.from_numpy(full))
    masks = [m for m in scale_masks(k).values() if m is not None]
    assert len(masks) == k
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
                     "recon_seeds": [19.9 + i, 20.1 + i], "psnr_2x_mean": 18.0 + 0.01 * i, "psnr_2x_std": 0.2,
                     "gain_last20": 0.1, "fd": 10.0 - i, "fd_floor": 1.0, "ldm_train_s": 2.0})
        rows.append({"domain": "shape", "row": row, "label": T.ROW_LABELS[row], "params": 200 + i, "steps": 10,
                     "train_s": 3.0, "recon_metric": "iou", "recon_mean": 0.5 + 0.01 * (i == 1), "recon_std": 0.05,
                     "recon_seeds": [0.45, 0.55], "mmd": 0.01, "cov": 0.5, "ldm_train_s": 2.0})
    return rows


def test_flat_metrics_keys_and_files(tmp_path):
    table = _table()
    metrics = T.flat_metrics(table)
    for row in T.ROWS:
        for key in (f"abl_{row}_psnr", f"abl_{row}_psnr_std", f"abl_{row}_psnr_2x", f"abl_{row}_fd",
                    f"abl_{row}_params", f"abl_{row}_train_s", f"abl_{row}_gain_last20", f"abl_{row}_iou",
                    f"abl_{row}_iou_std", f"abl_{row}_mmd", f"abl_{row}_cov", f"abl_shape_{row}_params"):
            assert key in metrics, key
    assert metrics["abl_cfc_psnr"] == 24.0 and metrics["abl_weightgen_fd"] == 10.0 and metrics["abl_seeds"] == 2
    assert metrics["abl_fd_floor"] == 1.0
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
    assert "2× render within the seed spread" in image_a  # 18.04 vs 18.00 with std 0.2
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


def test_gain_last_reads_the_curve():
    curve = [(100, 10.0), (200, 12.0), (300, 13.0), (400, 13.5), (500, 13.6)]
    assert A.gain_last(curve) == pytest.approx(0.1)  # 500 vs 400 (80% of 500)
    assert A.gain_last(curve, 0.4) == pytest.approx(0.6)  # 500 vs 300
    assert math.isnan(A.gain_last([]))


def test_image_rows_share_the_latent_and_fields_are_coarser_than_the_image():
    cfg = ablation_config("cpu")
    x = torch.zeros(1, 3, cfg.image.resolution, cfg.image.resolution)
    latents, counts = set(), {}
    for row in T.ROWS:
        model = A.build_row_model("image", row, cfg).eval()
        with torch.no_grad():
            z = model.encode(x).mode()
            fields = model.decode(z)
        latents.add(tuple(z.shape))
        counts[row] = sum(p.numel() for p in model.parameters())
        if row != "weightgen":
            assert max(f.shape[-1] for f in fields) * 2 ** cfg.extra_down == cfg.image.resolution
    assert len(latents) == 1
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts
    shape_counts = [sum(p.numel() for p in A.build_row_model("shape", r, cfg).parameters()) for r in T.ROWS]
    assert max(shape_counts) <= 1.1 * min(shape_counts)


def test_heldout_curve_is_kept_in_the_history(tmp_path):
    cfg = ablation_config("smoke")
    held = PYRAMID[32][:2]
    _, result = A.train_row("image", "cfc", 0, cfg, PYRAMID, ckpt_dir=tmp_path, progress=False, curve_images=held)
    curve = A.heldout_curve(result)
    every = cfg.image.train.steps // cfg.curve_points
    assert [s for s, _ in curve] == list(range(every, cfg.image.train.steps + 1, every))
    assert all(math.isfinite(v) for _, v in curve)
    _, again = A.train_row("image", "cfc", 0, cfg, PYRAMID, ckpt_dir=tmp_path, progress=False, curve_images=held)
    assert A.heldout_curve(again) == curve  # a reused checkpoint keeps its curve


def test_weightgen_sweep_picks_the_lowest_training_loss(tmp_path):
    cfg = ablation_config("smoke")
    sweep = A.sweep_weightgen("image", cfg, PYRAMID, ckpt_dir=tmp_path, progress=False)
    assert sweep["lrs"] == list(cfg.weightgen_lrs) and len(sweep["losses"]) == len(cfg.weightgen_lrs)
    assert sweep["best_lr"] == cfg.weightgen_lrs[int(min(range(len(sweep["losses"])), key=sweep["losses"].__getitem__))]
    for lr in cfg.weightgen_lrs:
        assert (tmp_path / "ablations" / f"image_weightgen_lr{lr:g}_s0.json").is_file()


def test_a_row_starts_from_weights_set_by_its_seed(tmp_path):
    cfg = ablation_config("smoke")
    torch.manual_seed(123)
    a, _ = A.train_row("image", "sum", 3, cfg, PYRAMID, ckpt_dir=tmp_path / "a", progress=False)
    torch.rand(7)  # another global random state before the second run
    b, _ = A.train_row("image", "sum", 3, cfg, PYRAMID, ckpt_dir=tmp_path / "b", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
