"""The study shown in docs/tune.md: ``convscope tune`` with the default space on the digits, for the default model
at a reduced budget (a few epochs per trial), median pruning.

    python bench/tune_study.py --trials 12 --epochs 3

Writes bench/results/tune_study.json (provenance, the command, the table as Markdown, every trial's row) and
leaves the study folder (run folders, plots, best.yaml) in --out. Re-run it after the default model or the
default space changes, and paste the table into docs/tune.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402


def main() -> None:
    from convscope.training import TrainConfig
    from convscope.tune import tune

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/tune-docs"))
    ap.add_argument("--result", type=Path, default=Path(__file__).parent / "results" / "tune_study.json")
    args = ap.parse_args()
    base = {"epochs": args.epochs}
    model = TrainConfig().model.name
    t0 = time.perf_counter()
    res = tune(base, trials=args.trials, out=args.out, jobs=args.jobs, study=f"docs-{model}-digits")
    wall = time.perf_counter() - t0
    trials = json.loads((args.out / "trials.json").read_text())
    result = {"benchmark": "tune_study", "provenance": provenance(),
              "command": f"convscope tune --trials {args.trials} --epochs {args.epochs} --jobs {args.jobs} "
                         f"--out {args.out} --study docs-{model}-digits",
              "model": model, "wall_seconds": round(wall, 1), "summary": res.summary, "table": res.table,
              "trials": trials["trials"], "selected_on": trials["selected_on"]}
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{res.summary}\n\n{res.table}\n\n{wall:.0f} s; wrote {args.result}")


if __name__ == "__main__":
    main()
