"""The training loop: it learns, resumes bit-exactly, averages, accumulates, and stops on NaN."""

import dataclasses
import math

import pytest
import torch

from ddmi_lite.checkpoint import checkpoint_files, load_checkpoint
from ddmi_lite.ema import EMA
from ddmi_lite.errors import DDMIError, NonFiniteLossError
from ddmi_lite.train import TrainConfig, load_or_train, lr_factor, train


def _regression(n=64, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, 1, generator=g)
    return x, x @ w + 0.01 * torch.randn(n, 1, generator=g)


X, Y = _regression()


def _batch_fn(batch=16, dtype=torch.float32):
    def fn(step, generator):
        idx = torch.randint(0, X.shape[0], (batch,), generator=generator)
        return X[idx].to(dtype), Y[idx].to(dtype)
    return fn


def _mse(model, batch, step):
    x, y = batch
    loss = (model(x) - y).square().mean()
    return loss, {"mse": loss.item()}


def _full_loss(model):
    with torch.no_grad():
        return (model(X) - Y).square().mean().item()


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    before = _full_loss(model)
    cfg = TrainConfig(steps=150, lr=0.05, warmup_steps=10, log_every=10)
    res = train(model, _mse, _batch_fn(), cfg, progress=False)
    assert _full_loss(model) < 0.01 * before
    assert res.steps_done == 150 and res.resumed_from is None and not res.stopped_by_budget
    assert [h["step"] for h in res.history] == list(range(10, 151, 10))
    assert {"step", "loss", "lr", "time_s", "mse", "grad_norm"} <= set(res.history[-1])


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=20, warmup_steps=4, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    mid = 4 + 15 / 2  # cosine midpoint -> (1 + r) / 2
    assert lr_factor(mid, cfg) == pytest.approx(0.55)
    assert lr_factor(7, TrainConfig(steps=20, schedule="constant")) == 1.0


class _Noisy(torch.nn.Module):
    """A model whose training depends on both RNG streams: dropout and loss noise."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                                       torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def _noisy_loss(model, batch, step):
    x, y = batch
    x = x + 0.1 * torch.randn_like(x)  # global RNG, seeded per (seed, step, micro)
    loss = (model(x) - y).square().mean()
    return loss, {}


def test_resume_is_bit_exact(tmp_path):
    cfg = TrainConfig(steps=20, lr=0.02, warmup_steps=3, grad_accum=2, ema_decay=0.9,
                      ckpt_every=10, log_every=1, seed=3)

    def fresh():
        torch.manual_seed(1)
        return _Noisy()

    straight = fresh()
    ref = train(straight, _noisy_loss, _batch_fn(), cfg, progress=False)

    class Crash(Exception):
        pass

    def crash_at_13(record):
        if record["step"] == 13:
            raise Crash

    first = fresh()
    with pytest.raises(Crash):
        train(first, _noisy_loss, _batch_fn(), cfg, ckpt_path=tmp_path / "run", progress=False,
              callback=crash_at_13)
    _, meta = load_checkpoint(tmp_path / "run")
    assert meta["step"] == 10

    resumed_model = fresh()  # new model, new optimiser, new EMA: all state from the checkpoint
    torch.manual_seed(12345)  # the global RNG state at resume time must not matter
    res = train(resumed_model, _noisy_loss, _batch_fn(), cfg, ckpt_path=tmp_path / "run",
                progress=False)
    assert res.resumed_from == 10 and res.steps_done == 20
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]
    assert [h["step"] for h in res.history] == list(range(1, 21))
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.ema.model.state_dict().values(), res.ema.model.state_dict().values()):
        assert torch.equal(a, b)
    # the seeded stream really matters: another seed gives other losses
    other = train(fresh(), _noisy_loss, _batch_fn(), TrainConfig(**{**cfg.__dict__, "seed": 4}),
                  progress=False)
    assert [h["loss"] for h in other.history] != [h["loss"] for h in ref.history]

    # a finished run is returned as is; a different config on keys that matter is refused
    again = train(fresh(), _noisy_loss, _batch_fn(), cfg, ckpt_path=tmp_path / "run",
                  progress=False)
    assert again.resumed_from == 20 and again.history == res.history
    with pytest.raises(DDMIError, match=r"train\.lr"):
        train(fresh(), _noisy_loss, _batch_fn(), TrainConfig(**{**cfg.__dict__, "lr": 0.1}),
              ckpt_path=tmp_path / "run", progress=False)


def test_ema_closed_form():
    decay = 0.8
    model = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(-2.0)
    ema = EMA(model, decay=decay)
    with torch.no_grad():  # the weights jump to a constant value b and stay there
        model.weight.fill_(5.0)
        model.bias.fill_(4.0)
    for n in range(1, 8):
        ema.update(model)
        # s_n = d^n s_0 + (1 - d^n) b
        weight = decay**n * 1.0 + (1 - decay**n) * 5.0
        bias = decay**n * -2.0 + (1 - decay**n) * 4.0
        assert torch.allclose(ema.model.weight, torch.full_like(ema.model.weight, weight),
                              atol=1e-12, rtol=0)
        assert torch.allclose(ema.model.bias, torch.full_like(ema.model.bias, bias),
                              atol=1e-12, rtol=0)
    # before `start` updates the shadow copies the weights
    late = EMA(model, decay=decay, start=2)
    with torch.no_grad():
        model.weight.fill_(7.0)
    late.update(model)
    late.update(model)
    assert torch.all(late.model.weight == 7.0)
    with torch.no_grad():
        model.weight.fill_(9.0)
    late.update(model)
    assert torch.allclose(late.model.weight, torch.full((2, 3), decay * 7 + (1 - decay) * 9,
                                                        dtype=torch.float64))


def test_nan_loss_raises_and_does_not_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 1)
    seen = {}

    def loss_fn(model, batch, step):
        loss, logs = _mse(model, batch, step)
        if step == 4:
            seen["params"] = [p.detach().clone() for p in model.parameters()]
            return loss * float("nan"), logs
        return loss, logs

    with pytest.raises(NonFiniteLossError, match=r"step 4\b.*last finite loss: \d") as info:
        train(model, loss_fn, _batch_fn(), TrainConfig(steps=10, lr=0.01), progress=False)
    assert info.value.step == 4
    for before, after in zip(seen["params"], model.parameters()):
        assert torch.equal(before, after)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_grad_accum_matches_full_batch(clip):
    half = 8

    def halves(step, generator):  # two half batches drawn in sequence from the step generator
        return _batch_fn(half, torch.float64)(step, generator)

    def full(step, generator):  # the same two draws, concatenated into one batch
        (x1, y1), (x2, y2) = halves(step, generator), halves(step, generator)
        return torch.cat([x1, x2]), torch.cat([y1, y2])

    models = []
    for accum, batch_fn in ((1, full), (2, halves)):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 1).double()  # float64: only the summation order differs
        cfg = TrainConfig(steps=15, lr=0.05, grad_accum=accum, grad_clip=clip, log_every=1)
        res = train(model, _mse, batch_fn, cfg, progress=False)
        models.append((model, [h["loss"] for h in res.history]))
    (m1, l1), (m2, l2) = models
    assert max(abs(a - b) for a, b in zip(l1, l2)) < 1e-6
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_max_time_stops_early_and_says_so(tmp_path, capsys):
    cfg = TrainConfig(steps=10_000, lr=0.01, max_time_s=1e-9, log_every=1000)
    res = train(torch.nn.Linear(6, 1), _mse, _batch_fn(), cfg, progress=False,
                ckpt_path=tmp_path / "t")
    assert res.stopped_by_budget and res.steps_done == 1 and res.history[-1]["step"] == 1
    assert load_checkpoint(tmp_path / "t")[1]["step"] == 1


def test_invalid_config_names_the_field():
    with pytest.raises(DDMIError, match=r"schedule.*'cosine' or 'constant'"):
        TrainConfig(schedule="linear")
    with pytest.raises(DDMIError, match="grad_accum"):
        TrainConfig(grad_accum=0)
    assert math.isclose(TrainConfig(betas=[0.5, 0.9]).betas[0], 0.5)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_load_or_train_is_the_one_resume_policy(tmp_path, capsys):
    """No checkpoint: train; same config: reuse; more steps: resume; other settings: afresh."""
    # constant lr after warm-up: a run extended from 8 to 14 steps follows the same schedule as
    # a 14-step run, so "resume then extend" must equal "train 14 steps straight" bit for bit
    cfg = TrainConfig(steps=8, lr=0.02, warmup_steps=2, schedule="constant", ema_decay=0.9,
                      log_every=1, seed=5)

    def fresh():
        torch.manual_seed(1)
        return _Noisy()

    def run(config, path, *, run_config=None, calls=None):
        run_config = {"width": 8} if run_config is None else run_config
        model = fresh()
        callback = (lambda record: calls.append(record["step"])) if calls is not None else None
        res = load_or_train(model, _noisy_loss, _batch_fn(), config, ckpt_path=path,
                            run_config=run_config, progress=False, callback=callback)
        return model, res

    ckpt = tmp_path / "run"
    # (a) no checkpoint: trains cfg.steps from step 0 and leaves a finished checkpoint
    first, res = run(cfg, ckpt)
    assert res.resumed_from is None and res.steps_done == 8 and not res.stopped_by_budget
    assert load_checkpoint(ckpt)[1]["step"] == 8
    trained = _state(first)

    # (b) the same config again: the finished checkpoint is reused as is, without one step
    calls = []
    again, res = run(cfg, ckpt, calls=calls)
    assert res.resumed_from == res.steps_done == 8 and calls == []
    _assert_same_weights(_state(again), trained)

    # (c) a larger `steps` resumes from the stored step and ends where a straight run ends
    longer = dataclasses.replace(cfg, steps=14)
    calls = []
    extended, res = run(longer, ckpt, calls=calls)
    assert res.resumed_from == 8 and res.steps_done == 14 and calls == list(range(9, 15))
    straight, ref = run(longer, tmp_path / "straight")
    assert ref.resumed_from is None and ref.steps_done == 14
    _assert_same_weights(_state(extended), _state(straight))
    _assert_same_weights(_state(res.ema.model), _state(ref.ema.model))
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]

    # (d) another run_config, or another lr: the checkpoint is of another model, train afresh
    capsys.readouterr()
    other, res = run(longer, ckpt, run_config={"width": 16})
    assert res.resumed_from is None and res.steps_done == 14
    out = capsys.readouterr().out
    assert "training afresh" in out and "run.width: stored 8, given 16" in out and str(ckpt) in out
    _assert_same_weights(_state(other), _state(straight))  # from step 0: the straight run again
    faster = dataclasses.replace(longer, lr=0.05)
    _, res = run(faster, ckpt, run_config={"width": 16})
    assert res.resumed_from is None and res.steps_done == 14
    out = capsys.readouterr().out
    assert "training afresh" in out and "train.lr" in out
    # ... and the checkpoint now holds the new settings: the same call resumes it
    _, res = run(faster, ckpt, run_config={"width": 16})
    assert res.resumed_from == res.steps_done == 14
    assert "training afresh" not in capsys.readouterr().out


def test_load_or_train_budget_is_a_safety_stop_that_resumes(tmp_path, capsys):
    """max_time_s ends one call early (marked); the next call resumes to cfg.steps bit-exactly."""
    cfg = TrainConfig(steps=10, lr=0.02, warmup_steps=2, ema_decay=0.9, log_every=1, seed=2)

    def fresh():
        torch.manual_seed(3)
        return _Noisy()

    straight = fresh()
    ref = load_or_train(straight, _noisy_loss, _batch_fn(), cfg, ckpt_path=tmp_path / "straight",
                        progress=False)
    assert ref.steps_done == 10 and not ref.stopped_by_budget

    ckpt = tmp_path / "budgeted"
    cut = load_or_train(fresh(), _noisy_loss, _batch_fn(), dataclasses.replace(cfg, max_time_s=1e-9),
                        ckpt_path=ckpt, progress=False)
    assert cut.stopped_by_budget and cut.resumed_from is None and 1 <= cut.steps_done < cfg.steps
    assert load_checkpoint(ckpt)[1]["step"] == cut.steps_done
    assert "STOPPED BY THE TIME BUDGET" in cut.summary()

    capsys.readouterr()
    torch.manual_seed(999)  # the global RNG state at resume time must not matter
    resumed = fresh()
    res = load_or_train(resumed, _noisy_loss, _batch_fn(), cfg, ckpt_path=ckpt, progress=False)
    assert "training afresh" not in capsys.readouterr().out  # max_time_s is not a setting of the run
    assert res.resumed_from == cut.steps_done and res.steps_done == cfg.steps
    assert not res.stopped_by_budget
    _assert_same_weights(_state(resumed), _state(straight))
    _assert_same_weights(_state(res.ema.model), _state(ref.ema.model))
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]


def test_load_or_train_names_a_corrupt_sidecar(tmp_path):
    path = tmp_path / "run"
    cfg = TrainConfig(steps=3, lr=0.01)
    load_or_train(torch.nn.Linear(6, 1), _mse, _batch_fn(), cfg, ckpt_path=path, progress=False)
    sidecar = checkpoint_files(path)[1]
    assert sidecar.name == "run.json"
    sidecar.write_text("{not json", encoding="utf-8")
    with pytest.raises(DDMIError, match=r"run\.json"):
        load_or_train(torch.nn.Linear(6, 1), _mse, _batch_fn(), cfg, ckpt_path=path, progress=False)
