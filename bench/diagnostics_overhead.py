"""The cost of ``--diagnose`` (training diagnostics at the default N = 10): the main job trained with and
without it, in one invocation, as a ratio of training time (the issue's goal: at most 1.05).

    python bench/diagnostics_overhead.py [--epochs 1] [--pairs 3]

Each pair trains the main job's config (`convscope train` with no arguments: fast2 on the digits) for
``--epochs`` epochs, once without and once with ``--diagnose`` at the default N, in alternating order
(plain first, then diagnose first, ...) so that a drift in the machine's load hits both alike. The figure is
the training time of summary.json (the optimizer steps only: data loading and evaluation are the same in both);
the ratio is of the medians over pairs, with each pair's own ratio listed. The diagnostics also time themselves
(``seconds`` of their last record: hooks, copies, norms, outside the forward pass). Writes
bench/results/diagnostics_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

import convscope  # noqa: E402
from convscope.training.diagnostics import DEFAULT_EVERY  # noqa: E402


def train_seconds(diagnose: int, epochs: int, folder: Path) -> tuple[float, float | None]:
    run = convscope.train({"epochs": epochs, "diagnose": diagnose}, out=folder, progress=False)
    own = None
    if diagnose:
        last = (folder / "diagnostics.jsonl").read_text().splitlines()[-1]
        own = json.loads(last)["seconds"]
    return run.summary["seconds"], own


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "diagnostics_overhead.json")
    args = ap.parse_args()
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            order = (0, DEFAULT_EVERY) if i % 2 == 0 else (DEFAULT_EVERY, 0)
            t = {n: train_seconds(n, args.epochs, Path(tmp) / f"r{i}-{n}") for n in order}
            pairs.append({"plain_seconds": t[0][0], "diagnose_seconds": t[DEFAULT_EVERY][0],
                          "diagnostics_own_seconds": t[DEFAULT_EVERY][1],
                          "ratio": t[DEFAULT_EVERY][0] / t[0][0]})
            print(json.dumps(pairs[-1]), flush=True)
    plain = statistics.median(p["plain_seconds"] for p in pairs)
    diag = statistics.median(p["diagnose_seconds"] for p in pairs)
    result = {"benchmark": "diagnostics_overhead", "provenance": provenance(),
              "config": f"main job (convscope train defaults), --epochs {args.epochs}, --diagnose {DEFAULT_EVERY}",
              "pairs": pairs, "median_plain_seconds": plain, "median_diagnose_seconds": diag, "ratio": diag / plain,
              "ratio_range": [min(p["ratio"] for p in pairs), max(p["ratio"] for p in pairs)],
              "own_share": statistics.median(p["diagnostics_own_seconds"] / p["plain_seconds"] for p in pairs)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))


if __name__ == "__main__":
    main()
