"""Did reshaping the training loop (Engine protocol + callbacks, issue 10) change the speed of the `fast`
recipe? Runs the time-to-accuracy worker (convscope/benchmark.py: a fresh process per run, wall time from
process start, evaluation excluded, no checkpoints) on the embedded digits with the old code and the new one,
interleaved (old, new, old, new, ...) so both see the same machine load.

    python bench/loop_reshape_speed.py --old /tmp/oldcode --repeats 3 [--recipe fast:epochs=4]

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


def worker(code: Path, recipe: str, seed: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "convscope.benchmark", "--worker", recipe, "digits", str(seed), "--threads",
           str(threads), "--max-seconds", "900", "--eval-images", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{code}: worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the code before the reshape")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--recipe", default="fast", help="recipe spec, e.g. fast:epochs=4 for a shorter run")
    ap.add_argument("--seed", type=int, default=0, help="one seed for all runs: the accuracy path is the same, "
                    "so differences are speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loop_reshape_speed.json")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for i in range(args.repeats):
        for name, code in (("old", args.old), ("new", ROOT)):
            r = worker(code, args.recipe, args.seed, args.threads)
            keep = {k: r[k] for k in ("final_accuracy", "wall_seconds", "setup_seconds", "images_per_s",
                                      "time_to_0.97", "time_to_0.98", "eval_seconds", "epochs_run")}
            runs[name].append(keep)
            print(f"{i} {name}: to 97% {keep['time_to_0.97']} s, to 98% {keep['time_to_0.98']} s, "
                  f"{keep['images_per_s']:.0f} img/s, final {100 * keep['final_accuracy']:.2f}%", flush=True)
        write(args, runs)   # after each pair, so a cut-short run still leaves its figures


def write(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    def ratio(key: str) -> float | None:
        pairs = list(zip(runs["old"], runs["new"]))
        if not pairs or any(o[key] is None or n[key] is None for o, n in pairs):
            return None
        return statistics.mean(n[key] for _, n in pairs) / statistics.mean(o[key] for o, _ in pairs)

    sys.path.insert(0, str(ROOT / "bench"))
    from _machine import provenance

    result = {"benchmark": "loop_reshape_speed", "recipe": args.recipe, "dataset": "digits", "seed": args.seed,
              "provenance": provenance(), "note": "machine shared with other jobs; old and new interleaved",
              "runs": runs,
              "ratio_time_to_97": ratio("time_to_0.97"), "ratio_time_to_98": ratio("time_to_0.98"),
              "ratio_wall_seconds": ratio("wall_seconds"), "ratio_images_per_s": ratio("images_per_s")}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("new / old: " + ", ".join(f"{k[6:]} {v:.3f}" for k, v in result.items()
                                    if k.startswith("ratio_") and v is not None), flush=True)


if __name__ == "__main__":
    main()
