"""A tiny training run for tests/test_kill_resume.py, run as ``python tests/kill_resume_worker.py``.

Trains a small MLP with :func:`ddmi_lite.train.train` (AdamW, EMA, a checkpoint every step) on
seeded random data and prints ``step N`` after every optimiser step, so a test can SIGKILL it at
a random moment and start it again; at the end it prints ``done`` and writes the final weights
(model and EMA) to ``<ckpt>.final.safetensors``.

Arguments: ``CKPT STEPS [--die-at-json STEP]``. With ``--die-at-json STEP`` the process kills
itself (SIGKILL) while saving the checkpoint of step STEP, right after the new weights file
replaced the old one and before the JSON sidecar did: the worst moment of a checkpoint write.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch

torch.set_num_threads(1)

from ddmi_lite import checkpoint  # noqa: E402
from ddmi_lite.train import TrainConfig, train  # noqa: E402


def main(argv: list[str]) -> None:
    ckpt, steps = argv[0], int(argv[1])
    die_at_json = int(argv[argv.index("--die-at-json") + 1]) if "--die-at-json" in argv else None
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(32, 2))
    target = torch.nn.Linear(4, 2)

    def batch_fn(step: int, generator: torch.Generator) -> dict:
        x = torch.randn(16, 4, generator=generator)  # [B,4]
        return {"x": x, "y": target(x).detach()}  # [B,2]

    def loss_fn(net, batch, step):
        time.sleep(0.01)  # a kill should land anywhere in the run, writes included
        loss = (net(batch["x"]) - batch["y"]).pow(2).mean()
        return loss, {}

    if die_at_json is not None:
        real_replace = os.replace

        def replace(src, dst):
            if str(dst).endswith(".json") and not str(dst).endswith(".prev.json") and \
                    not str(dst).endswith("final.json") and state["next_save"] == die_at_json:
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)

        checkpoint.os.replace = replace
    state = {"next_save": 1}  # the first save of a fresh run is of step 1

    def callback(record: dict) -> None:
        state["next_save"] = record["step"] + 1  # the save after this callback is of the next step
        print(f"step {record['step']}", flush=True)

    cfg = TrainConfig(steps=steps, lr=3e-2, warmup_steps=3, ema_decay=0.9, ckpt_every=1,
                      log_every=1, seed=7)
    result = train(model, loss_fn, batch_fn, cfg, ckpt_path=ckpt, progress=False,
                   callback=callback, run_config={"model": "mlp-4-32-2"})
    final = checkpoint.model_state(model)
    final.update(checkpoint.model_state(result.ema.model, prefix="ema."))
    checkpoint.save_checkpoint(f"{ckpt}.final", final,
                               {"history": [[r["step"], r["loss"]] for r in result.history],
                                "resumed_from": result.resumed_from})
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
