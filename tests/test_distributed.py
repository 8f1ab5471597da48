"""Data-parallel training: 2 CPU processes (gloo) equal one process on the concatenated batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ddmi_lite import distributed as D
from ddmi_lite.errors import DDMIError
from ddmi_lite.train import RANK_KEY, TrainConfig, derive_seed, train

PER_RANK = 4
WORLD = 2


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(4, 8), torch.nn.SiLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 5))


def _batch(generator: torch.Generator, n: int = PER_RANK) -> dict:
    return {"x": torch.randn(n, 3, 6, 6, generator=generator), "y": torch.randn(n, 5, generator=generator)}


def _loss(model, batch, step):
    loss = (model(batch["x"]) - batch["y"]).pow(2).sum(1).mean()  # a mean over samples
    return loss, {}


def _cfg(steps: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, lr=1e-2, warmup_steps=0, grad_clip=1.0, log_every=1, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed(backend="gloo")
    assert info.world_size == WORLD and info.rank == rank
    try:
        batch_fn = lambda step, gen: _batch(gen)
        model = _model()
        train(model, _loss, batch_fn, _cfg(1), progress=False)
        one = {k: v.clone() for k, v in model.state_dict().items()}
        # resume: 1 step with a checkpoint, then extend to 3 — against 3 steps straight
        model = _model()
        res = train(model, _loss, batch_fn, _cfg(3), progress=False)
        straight = {k: v.clone() for k, v in model.state_dict().items()}
        ckpt = os.path.join(out_dir, "ddp_ckpt")
        train(_model(), _loss, batch_fn, _cfg(1), ckpt_path=ckpt, progress=False)
        model = _model()
        resumed = train(model, _loss, batch_fn, _cfg(3), ckpt_path=ckpt, progress=False)
        torch.save({"one": one, "straight": straight, "resumed": model.state_dict(),
                    "resumed_from": resumed.resumed_from, "history": res.history},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        D.cleanup()


def _concatenated_batch_fn(step: int, generator: torch.Generator) -> dict:
    """What the two ranks draw together at ``step``: rank 0's stream, then rank 1's."""
    parts = [_batch(generator)]
    for r in range(1, WORLD):
        parts.append(_batch(torch.Generator().manual_seed(derive_seed(0, step, RANK_KEY, r))))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_two_processes_equal_one_process_on_the_concatenated_batch(ddp_results):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, _loss, _concatenated_batch_fn, _cfg(1), progress=False)
    for r in range(WORLD):
        for k, v in model.state_dict().items():
            torch.testing.assert_close(ddp_results[r]["one"][k], v, atol=1e-6, rtol=1e-5)
    moved = max(float((model.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-4  # the step did something, so the comparison means something


def test_replicas_stay_identical_and_resume_is_exact(ddp_results):
    a, b = ddp_results
    for k in a["straight"]:
        assert torch.equal(a["straight"][k], b["straight"][k]), k
        assert torch.equal(a["resumed"][k], a["straight"][k]), k
        assert torch.equal(b["resumed"][k], b["straight"][k]), k
    assert a["resumed_from"] == b["resumed_from"] == 1


def test_logged_loss_is_the_mean_over_ranks(ddp_results):
    a, b = ddp_results
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_shard_and_single_process_helpers():
    x = torch.arange(12)
    assert torch.equal(D.shard(x, rank=1, world_size=3), torch.tensor([4, 5, 6, 7]))
    with pytest.raises(DDMIError, match="world_size"):
        D.shard(torch.arange(5), rank=0, world_size=2)
    assert D.get_world_size() == 1 and D.get_rank() == 0 and not D.is_distributed()
    assert D.any_rank(True) and not D.any_rank(False)
    with pytest.raises(DDMIError, match="backend"):
        D.init_distributed(backend="mpi")
