"""The benchmark's measuring pieces, the opt-in speed paths of training, and the sweep helpers."""

from __future__ import annotations

import json

import pytest
import torch

from ddmi_lite import DDMIError
from ddmi_lite.bench import bench_config, count_flops, peak_memory_bytes, time_interleaved
from ddmi_lite.bench_stages import occupancy_stage
from ddmi_lite.io import write_json
from ddmi_lite.latent_diffusion import nfe_to_match
from ddmi_lite.metrics import latent_mmd
from ddmi_lite.train import TrainConfig, autocast, resolve_precision, train
from ddmi_lite.viz import plot_bench


def test_flop_counter_counts_a_linear_layer_forward_and_backward():
    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(10, 64)
    assert count_flops(lambda: lin(x)) == 2 * 10 * 64 * 32
    # backward: grad of the weight only (x needs no grad): one more matmul of the same size
    assert count_flops(lambda: lin(x).sum().backward()) == 2 * (2 * 10 * 64 * 32)


def test_peak_memory_counts_live_tensor_bytes(device):
    def fn():
        a = torch.ones(1_000_000, device=device)  # 4 MB
        b = torch.ones(2_000_000, device=device)  # 8 MB, both alive: 12 MB
        del a
        c = torch.ones(500_000, device=device)  # 2 MB, after a was freed: 10 MB
        return b.sum() + c.sum()

    peak = peak_memory_bytes(fn, torch.device(device))
    assert 12_000_000 <= peak < 12_000_000 + 64 * 1024  # allocator rounding on CUDA


def test_time_interleaved_medians_are_positive():
    calls = []
    step_s, peak_s = time_interleaved(lambda: calls.append("s"), lambda: calls.append("p"), torch.device("cpu"),
                                      rounds=3, warmup=1)
    assert step_s > 0 and peak_s > 0
    assert calls == ["s", "s", "p", "s", "p", "s", "p"]  # warm-up, then alternating


def test_chunked_occupancy_equals_one_query():
    from ddmi_lite.domains.shape import build_shape_vae, shape_vae_config
    from ddmi_lite.geometry import evaluate_occupancy
    from ddmi_lite.fields import grid_coords

    torch.manual_seed(0)
    vae = build_shape_vae(shape_vae_config("smoke")).eval()
    with torch.no_grad():
        fields = vae.decode(torch.randn(1, *vae.decoder.cfg.latent_shape))
        want = vae.query(fields, grid_coords(9, 9, 9)[None])[0, :, 0].reshape(9, 9, 9)
    for chunk in (50, 81, 100, 10_000):  # inside a plane, one plane, several, everything
        got = evaluate_occupancy(lambda c: vae.query(fields, c[None])[0, :, 0], 9, padding=1.0, chunk=chunk)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    stage = occupancy_stage(vae, torch.device("cpu"), 8)  # the benchmark's grid: the same path
    assert stage.step().shape == (8, 8, 8) and stage.samples == 8 ** 3 and stage.count_factor == 64.0


def test_nfe_to_match_picks_the_cheapest_setting():
    rows = [{"sampler": "ddim", "steps": s, "nfe": s, "fd": fd} for s, fd in ((10, 5.0), (50, 3.0))]
    rows += [{"sampler": "dpmpp_2m", "steps": s, "nfe": s, "fd": fd} for s, fd in ((3, 4.0), (5, 2.9), (8, 2.8))]
    rows += [{"sampler": "heun", "steps": 3, "nfe": 5, "fd": 3.5}]
    m = nfe_to_match(rows)
    assert m["reference"] == 3.0 and m["best_sampler"] == "dpmpp_2m" and m["best_nfe"] == 5
    assert m["per_sampler"] == {"dpmpp_2m": 5, "ddim": 50, "heun": None}
    loose = nfe_to_match(rows, rtol=0.2)  # within 20% of 3.0: heun's 3.5 at 5 NFE ties dpmpp's 5 NFE
    assert loose["best_nfe"] == 5 and loose["per_sampler"]["heun"] == 5
    assert nfe_to_match(rows, rtol=0.4)["best_nfe"] == 3  # 4.0 <= 4.2
    with pytest.raises(DDMIError, match="ddim-50"):
        nfe_to_match(rows[2:])


def test_latent_mmd_separates_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 4, 2, 2, generator=g), torch.randn(200, 4, 2, 2, generator=g)
    same, shifted = latent_mmd(a, b), latent_mmd(a, b + 1.0)
    assert abs(same) < 0.02 and shifted > 10 * abs(same)


def test_bench_config_and_outputs(tmp_path):
    assert bench_config("smoke").rounds == 1 and bench_config("cpu").render_res == 1024
    with pytest.raises(DDMIError):
        bench_config("laptop")
    with pytest.raises(DDMIError, match="unknown"):
        bench_config("cpu", rounds_per_stage=3)
    result = {"device": "cpu", "threads": 1,
              "stages": {"a": {"ratio": 0.5, "step_s": 0.1, "peak_mb": 3.0}, "b": {"ratio": 1.1, "step_s": 0.2}},
              "comparisons": {"x_y": {"before_s": 0.2, "after_s": 0.1}}}
    path = write_json(tmp_path / "sub" / "bench.json", result)
    assert json.loads(path.read_text()) == result and not list(path.parent.glob("*.tmp"))
    assert plot_bench(result, tmp_path / "bench.png").stat().st_size > 0


# ------------------------------------------------------------------------- opt-in training paths
def _tiny_train(device, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 3, 3, padding=1))
    target = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def batch_fn(step, gen):
        return {"x": torch.rand(4, 3, 8, 8, generator=gen)}

    def loss_fn(m, batch, step):
        return (m(batch["x"]) - target.to(batch["x"].device)).pow(2).mean(), {}

    res = train(model, loss_fn, batch_fn, TrainConfig(steps=30, lr=3e-3, log_every=1, **kw), device=device,
                progress=False)
    return model, res


def test_channels_last_training_gives_the_same_result(device):
    a, ra = _tiny_train(device)
    b, _ = _tiny_train(device, channels_last=True)
    assert b[0].weight.is_contiguous(memory_format=torch.channels_last)
    tol = 1e-5 if device == "cpu" else 2e-4  # CUDA convolutions may pick other (TF32) algorithms per layout
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=tol, rtol=10 * tol)
    assert ra.history[-1]["loss"] < 0.5 * ra.history[0]["loss"]  # it learns


def test_precision_auto_is_bf16_on_cuda_only(device):
    assert resolve_precision("auto", "cpu") == "fp32" and resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(DDMIError):
        resolve_precision("fp16", "cpu")
    with pytest.raises(DDMIError, match="compile"):
        TrainConfig(compile="yes")
    x = torch.randn(8, 8, device=device)
    with autocast(device, "auto"):
        y = x @ x
    assert y.dtype == (torch.bfloat16 if device == "cuda" else torch.float32)
    with autocast(device, "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    _, res = _tiny_train(device, precision="auto")
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]


def test_compile_flag_trains_like_eager(device):
    if device == "cpu":
        pytest.skip("torch.compile on CPU builds C++ kernels for minutes; checked on CUDA")
    a, _ = _tiny_train(device)
    b, rb = _tiny_train(device, compile=True)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-3)
    assert rb.history[-1]["loss"] < 0.5 * rb.history[0]["loss"]


@pytest.mark.parametrize("name, fragment", [("result.png", "must end in .json"), ("folder", "is a folder")])
def test_bench_out_is_checked_before_the_bench_runs(tmp_path, monkeypatch, name, fragment):
    """--out result.png would have the figure overwrite the JSON: refused before any stage runs."""
    import ddmi_lite.bench as B

    (tmp_path / "folder").mkdir()
    monkeypatch.setattr(B, "run_bench", lambda *a, **k: pytest.fail("the bench ran before --out was checked"))
    with pytest.raises(DDMIError, match=fragment):
        B.bench_main("smoke", "cpu", tmp_path / name, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
