"""Speed round 3 (issue 26): the cost of one training step per variant, on Fashion-MNIST batches, in one run.

    python bench/step_cost.py [--rounds 3] [--steps 60] [--threads 2]

Each variant (batch size, width) trains ``--steps`` steps after 10 warm-up steps in its own fresh process, on
the default recipe's engine (bf16 autocast, channels-last, EMA, flips); the variants take turns, round by round,
so that drift in the machine's speed hits them alike. The figure is training images per second (augmentation
included), the median over rounds, and each variant's ratio to the default's in the same round. Writes
bench/results/step_cost.json. Only ratios within one run compare; the machine is named in the file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# name -> overrides of the Fashion-MNIST default recipe (round 2's batch of 256 at lr 0.1 is the reference)
VARIANTS: dict[str, dict] = {
    "batch 256 (round 2)": {"batch_size": 256},
    "batch 128": {"batch_size": 128},
    "batch 512": {"batch_size": 512},
    "width 40, batch 256": {"batch_size": 256, "model_args": {"width": 40}},
    "width 48, batch 256": {"batch_size": 256, "model_args": {"width": 48}},
    "widths 32-64-192, batch 256": {"batch_size": 256, "model_args": {"widths": [32, 64, 192]}},
}


def worker(overrides: dict, steps: int, threads: int) -> dict:
    import torch

    from convscope.training.batches import BatchFeeder
    from convscope.training.config import config_from_dict
    from convscope.training.engines.torch import TorchEngine
    from convscope.training.setup import build_model, prepare

    cfg = config_from_dict({"dataset": "fashion-mnist", "threads": threads, "checkpoint_every": 10**9,
                            **overrides})
    cfg, data = prepare(cfg)
    torch.set_num_threads(threads)
    feeder = BatchFeeder(cfg, data)
    engine = TorchEngine(cfg, build_model(cfg, data), data.norm, feeder.steps_per_epoch)
    bs = cfg.optim.batch_size
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    n = len(data.train) // bs

    def step(i: int) -> None:
        i %= n
        x, y = feeder.take(order[i * bs:(i + 1) * bs])
        engine.train_step(x, y, i)

    for i in range(10):
        step(i)
    t = time.perf_counter()
    for i in range(10, 10 + steps):
        step(i)
    dt = (time.perf_counter() - t) / steps
    return {"batch_size": bs, "ms_per_step": 1e3 * dt, "images_per_s": bs / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "step_cost.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker), a.steps, a.threads)))
        return
    import os

    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    loads = []
    for _ in range(a.rounds):
        loads.append(os.getloadavg()[0])
        for name, over in VARIANTS.items():
            r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(over), "--steps", str(a.steps),
                                "--threads", str(a.threads)], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
            runs[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(f"{name:<30} {runs[name][-1]['images_per_s']:7.0f} img/s", flush=True)
    ref = next(iter(VARIANTS))
    table = {}
    for name, rs in runs.items():
        ratios = [r["images_per_s"] / q["images_per_s"] for r, q in zip(rs, runs[ref])]
        table[name] = {"images_per_s": round(statistics.median(r["images_per_s"] for r in rs)),
                       "ratio_to_reference": round(statistics.median(ratios), 3),
                       "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    out = {"benchmark": "step_cost", "provenance": provenance(), "reference": ref, "threads": a.threads,
           "steps": a.steps, "rounds": a.rounds, "load_average_per_round": loads, "variants": VARIANTS,
           "table": table, "runs": runs}
    from convscope._atomic import atomic_write_text

    atomic_write_text(a.out, json.dumps(out, indent=2) + "\n")
    for name, row in table.items():
        print(f"{name:<30} {row['images_per_s']:7d} img/s  {row['ratio_to_reference']:.2f}x")


if __name__ == "__main__":
    main()
