"""Where a training step of the `fast` recipe spends its time (torch.profiler, CPU), on Fashion-MNIST batches.

    python bench/profile_fast.py

Profiles the Fashion-MNIST default recipe's step (its batch size, 2 threads). Writes
bench/results/profile_fast.json: the top operators by self CPU time over 30 steps after 5 warm-up steps, with
their share of the total, once per operator and once per operator and input shapes (which tells the layers
apart: the first pool's input is 28x28, the last conv's 3x3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope.training.batches import BatchFeeder  # noqa: E402
from convscope.training.config import config_from_dict  # noqa: E402
from convscope.training.engines.torch import TorchEngine  # noqa: E402
from convscope.training.setup import build_model, prepare  # noqa: E402


def main() -> None:
    cfg = config_from_dict({"dataset": "fashion-mnist", "hflip": True, "threads": 2, "checkpoint_every": 10**9})
    cfg, data = prepare(cfg)
    feeder = BatchFeeder(cfg, data)
    engine = TorchEngine(cfg, build_model(cfg, data), data.norm, feeder.steps_per_epoch)
    torch.set_num_threads(2)
    order = torch.randperm(len(data.train))
    batch = cfg.batch_size

    def step(i):
        x, y = feeder.take(order[i * batch:(i + 1) * batch])
        engine.train_step(x, y, i)

    for i in range(5):
        step(i)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(5, 35):
            step(i)

    def table(events, n: int) -> list[dict]:
        total = sum(e.self_cpu_time_total for e in events)
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
        return [{"op": e.key, "input_shapes": str(e.input_shapes) if e.input_shapes else None,
                 "self_ms_per_step": e.self_cpu_time_total / 1e3 / 30, "share": e.self_cpu_time_total / total,
                 "calls_per_step": e.count / 30} for e in top]

    by_op = table(prof.key_averages(), 20)
    by_shape = table(prof.key_averages(group_by_input_shape=True), 30)
    for r in by_shape:
        print(f"{r['op']:<40} {100 * r['share']:5.1f}%  {r['self_ms_per_step']:7.2f} ms/step  "
              f"{(r['input_shapes'] or '')[:70]}")
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3 / 30
    out = {"benchmark": "profile_fast", "provenance": provenance(), "steps": 30, "batch": batch,
           "dataset": cfg.dataset, "threads": 2, "total_self_ms_per_step": total, "top": by_op,
           "top_by_input_shape": by_shape}
    (Path(__file__).parent / "results" / "profile_fast.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
