"""The main job, `convscope train` with no arguments, timed as a user runs it (a fresh process each time), beside
the yardstick in the same invocation (issue 26: the whole main job within 0.4x the yardstick).

    python bench/main_job.py --seeds 3 [--yardstick 2]

The yardstick is one epoch of PyTorch's MNIST example recipe on Fashion-MNIST (convscope.benchmark's, timed by the
same clock: process start to the end of the epoch), run once before and once after the main jobs so that drift in
the machine's speed hits both alike. Writes bench/results/main_job.json: per seed, wall seconds of the whole
command (import, data, training, evaluation, writing the run), the test accuracy from summary.json and the wall
time as a ratio to the yardstick's mean.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.4   # issue 26: the main job within 0.4x the yardstick


def yardstick() -> dict:
    """One yardstick epoch in a fresh process (convscope.benchmark's worker, no evaluation counted)."""
    from convscope.benchmark import YARDSTICK

    spec, dataset = YARDSTICK
    r = subprocess.run([sys.executable, "-m", "convscope.benchmark", "--worker", spec, dataset, "0"],
                       capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {"wall_seconds": out["wall_seconds"], "load_average_at_start": out["load_average_at_start"]}


def main_job(seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "convscope", "train", "--seed", str(seed), "--quiet"], cwd=tmp,
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - t0
        summary = json.loads((Path(tmp) / "runs/fast2-digits/summary.json").read_text())
    return {"seed": seed, "wall_seconds": round(wall, 2), "train_seconds": summary["seconds"],
            "threads": summary.get("threads"), "test_accuracy": summary["test_accuracy"],
            "load_average_at_start": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--yardstick", type=int, default=2, help="yardstick runs, split before and after (0: none)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "main_job.json")
    args = ap.parse_args()
    yard = []
    for _ in range((args.yardstick + 1) // 2):
        yard.append(yardstick())
        print("yardstick", yard[-1], flush=True)
    runs = []
    for seed in range(args.seeds):
        runs.append(main_job(seed))
        print(runs[-1], flush=True)
    for _ in range(args.yardstick // 2):
        yard.append(yardstick())
        print("yardstick", yard[-1], flush=True)
    ys = statistics.mean(r["wall_seconds"] for r in yard) if yard else None
    for r in runs:
        r["ratio_to_yardstick"] = round(r["wall_seconds"] / ys, 3) if ys else None
    result = {"benchmark": "main_job", "provenance": provenance(), "timed_command": "convscope train --seed S --quiet",
              "goal": f"wall time within {GOAL}x the yardstick, test accuracy >= 99.3% (issue 26)",
              "yardstick_seconds": ys, "yardstick_runs": yard, "runs": runs,
              "mean_test_accuracy": statistics.mean(r["test_accuracy"] for r in runs),
              "min_test_accuracy": min(r["test_accuracy"] for r in runs),
              "mean_wall_seconds": statistics.mean(r["wall_seconds"] for r in runs),
              "worst_ratio_to_yardstick": max(r["ratio_to_yardstick"] for r in runs) if ys else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from convscope._atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"mean test accuracy {100 * result['mean_test_accuracy']:.2f}%, mean wall {result['mean_wall_seconds']:.1f} s"
          + (f", yardstick {ys:.1f} s, worst ratio {result['worst_ratio_to_yardstick']:.2f}x" if ys else ""))


if __name__ == "__main__":
    main()
