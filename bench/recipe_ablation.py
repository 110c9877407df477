"""Speed round 1: what the `fast` recipe's choices buy on Fashion-MNIST. Each variant trained for 4 epochs (and
two for 12), with every setting explicit so the comparison does not drift with the defaults.

    python bench/recipe_ablation.py [--only NAME ...]

Writes bench/results/recipe_ablation.json: per variant, test accuracy after each epoch, training seconds.
Round 2's step-count ideas: bench/recipe_ablation2.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

import convscope  # noqa: E402

# round 1's recipe, pinned where the defaults moved since (model fast2, no shifts on Fashion-MNIST)
PLAIN = {"dataset": "fashion-mnist", "model": "fast", "epochs": 4, "translate": 2, "hflip": True, "threads": 2,
         "checkpoint_every": 10**9, "ema": 0.0, "tta": False, "model_args": {"head": "max"}}
VARIANTS = {
    "max head (old default)": {},
    "flatten head": {"model_args": {"head": "flatten"}},
    "average head": {"model_args": {"head": "avg"}},
    "extra conv in last block": {"model_args": {"head": "max", "extra": 1}},
    "peak lr 0.2": {"lr": 0.2},
    "width 48": {"model_args": {"head": "max", "width": 48}},
    "flatten + EMA + TTA (default)": {"model_args": {"head": "flatten"}, "ema": 0.99, "tta": True},
    "flatten + extra + EMA + TTA": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99, "tta": True},
    "flatten + extra + EMA + TTA, batch 512, lr 0.2": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99,
                                                       "tta": True, "batch_size": 512, "lr": 0.2},
    "default, 12 epochs": {"model_args": {"head": "flatten"}, "ema": 0.99, "tta": True, "epochs": 12},
    "extra conv, 12 epochs": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99, "tta": True, "epochs": 12},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    args = ap.parse_args()
    results = []
    for name, over in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run = convscope.train({**PLAIN, **over}, out=Path(tmp) / "run", progress=False)
            epochs = [m for m in run.metrics if m["kind"] == "epoch"]
            results.append({"variant": name, "config": {**PLAIN, **over},
                            "test_accuracy_per_epoch": [m["test_accuracy"] for m in epochs],
                            "final_test_accuracy": run.summary["test_accuracy"],
                            "train_seconds": run.summary["seconds"], "wall_seconds": time.perf_counter() - t})
        print(f"{name:<50} {100 * results[-1]['final_test_accuracy']:.2f}%  {results[-1]['train_seconds']:.1f} s",
              flush=True)
    out = {"benchmark": "recipe_ablation", "provenance": provenance(), "results": results}
    (Path(__file__).parent / "results" / "recipe_ablation.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
