"""Did reshaping the training loop (Engine protocol + callbacks, issue 10) change the speed of the `fast`
recipe? Runs the time-to-accuracy worker (convscope/benchmark.py: a fresh process per run, wall time from
process start, evaluation excluded, no checkpoints) on the embedded digits with the old code and the new one,
interleaved (old, new, old, new, ...) so both see the same machine load.

    python bench/loop_reshape_speed.py --old /tmp/oldcode --repeats 3

Writes bench/results/loop_reshape_speed.json: each run, and the ratios new / old of the mean time to 98%
and of the mean training images per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(code: Path, seed: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "convscope.benchmark", "--worker", "fast", "digits", str(seed), "--threads",
           str(threads), "--max-seconds", "900", "--eval-images", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{code}: worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the code before the reshape")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="one seed for all runs: the accuracy path is the same, "
                    "so differences are speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loop_reshape_speed.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for i in range(args.repeats):
        for name, code in (("old", args.old), ("new", ROOT)):
            r = worker(code, args.seed, args.threads)
            keep = {k: r[k] for k in ("final_accuracy", "wall_seconds", "setup_seconds", "images_per_s",
                                      "time_to_0.98", "time_to_0.99", "eval_seconds", "epochs_run")}
            runs[name].append(keep)
            print(f"{i} {name}: to 98% {keep['time_to_0.98']} s, {keep['images_per_s']:.0f} img/s, "
                  f"final {100 * keep['final_accuracy']:.2f}%", flush=True)

    def mean(name: str, key: str) -> float:
        return statistics.mean(r[key] for r in runs[name])

    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import machine

    result = {"benchmark": "loop_reshape_speed", "recipe": "fast", "dataset": "digits", "seed": args.seed,
              "machine": machine(), "note": "machine shared with other jobs; old and new interleaved", "runs": runs,
              "ratio_time_to_98": mean("new", "time_to_0.98") / mean("old", "time_to_0.98"),
              "ratio_images_per_s": mean("new", "images_per_s") / mean("old", "images_per_s")}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"new / old: time to 98% {result['ratio_time_to_98']:.3f}, img/s {result['ratio_images_per_s']:.3f}")


if __name__ == "__main__":
    main()
