"""The yardstick of issue 15: the wall time of ONE epoch of PyTorch's MNIST example recipe on Fashion-MNIST
(its network, Adadelta, batch 64; ~25-30 s on a quiet 2-core machine), so that a speed goal can be stated as
a ratio measured in the same run as the figure it judges.

    python bench/epoch_yardstick.py [--repeats 2] [--threads 2 1]

Each repeat is a fresh process (bench/speed_worker.py with the `yardstick` knob): the epoch's steps
(batch creation + optimizer step) are timed, imports and data loading are not, nothing is evaluated.
Writes bench/results/epoch_yardstick_speed.json with the wall and CPU seconds of every repeat.
bench/recipe_ablation.py interleaves the same measurement with its runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine
from recipe_ablation import YARDSTICK, run_worker


def yardstick(threads: int) -> dict:
    """One yardstick epoch in a fresh process: {"epoch_wall", "epoch_cpu", "load_avg", ...}."""
    return run_worker(YARDSTICK, "fashion-mnist", 0, threads, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeats):
        for t in args.threads:
            r = yardstick(t)
            runs.append({k: r[k] for k in ("threads", "epoch_wall", "epoch_cpu", "setup_wall", "load_avg")})
            print(f"threads {t}: epoch {r['epoch_wall']:.1f} s wall, {r['epoch_cpu']:.1f} s CPU "
                  f"(load average {r['load_avg']:.1f})", flush=True)
    summary = {t: {"median_epoch_wall": statistics.median(r["epoch_wall"] for r in runs if r["threads"] == t),
                   "median_epoch_cpu": statistics.median(r["epoch_cpu"] for r in runs if r["threads"] == t)}
               for t in args.threads}
    out = {"benchmark": "epoch_yardstick", "machine": machine(), "recipe": YARDSTICK, "summary": summary,
           "runs": runs}
    (Path(__file__).parent / "results" / "epoch_yardstick_speed.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
