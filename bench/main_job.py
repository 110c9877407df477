"""The main job, `convscope train` with no arguments, timed as a user runs it (a fresh process each time).

    python bench/main_job.py --seeds 3

Writes bench/results/main_job.json: per seed, wall seconds of the whole command (import, data, training,
evaluation, writing the run) and the test accuracy from summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "main_job.json")
    args = ap.parse_args()
    runs = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "convscope", "train", "--seed", str(seed), "--quiet"], cwd=tmp,
                           check=True, capture_output=True)
            wall = time.perf_counter() - t0
            summary = json.loads((Path(tmp) / "runs/fast2-digits/summary.json").read_text())
        runs.append({"seed": seed, "wall_seconds": round(wall, 2), "train_seconds": summary["seconds"],
                     "test_accuracy": summary["test_accuracy"]})
        print(runs[-1], flush=True)
    result = {"benchmark": "main_job", "provenance": provenance(), "timed_command": "convscope train --seed S --quiet",
              "runs": runs,
              "mean_test_accuracy": statistics.mean(r["test_accuracy"] for r in runs),
              "mean_wall_seconds": statistics.mean(r["wall_seconds"] for r in runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mean test accuracy {100 * result['mean_test_accuracy']:.2f}%, "
          f"mean wall {result['mean_wall_seconds']:.1f} s")


if __name__ == "__main__":
    main()
