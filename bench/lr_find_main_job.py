"""The learning-rate finder on the main job's model, checked against the default's peak lr (0.1).

    python bench/lr_find_main_job.py [--epochs 2]

Runs ``convscope lr-find`` on the main job's config (fast2 on the digits, SGD with Nesterov momentum, batch 256;
100 steps from 1e-7 to 10), then trains the main job for ``--epochs`` epochs (its one-cycle schedule) at each
rule's suggestion and at the default lr 0.1, and records the test accuracy of each: does the suggestion train as
well as the tuned default? One seed (0); the figures of a short run, not of the 12-epoch main job. Writes
bench/results/lr_find_main_job.json and docs/lr-find-main-job.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

import convscope  # noqa: E402
from convscope.training.config import TrainConfig  # noqa: E402
from convscope.training.lr_find import lr_find, plot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lr_find_main_job.json")
    args = ap.parse_args()
    res = lr_find({})
    plot(res, Path(__file__).parent.parent / "docs" / "lr-find-main-job.png")
    default_lr = TrainConfig().optim.lr
    lrs = {**{f"{rule} ({v:.3g})": v for rule, v in res.suggestions.items() if v is not None},
           f"default ({default_lr:g})": default_lr}
    trained = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, lr) in enumerate(lrs.items()):
            run = convscope.train({"epochs": args.epochs, "lr": lr}, out=Path(tmp) / f"r{i}", progress=False)
            trained[name] = {"lr": lr, "test_accuracy": run.summary["test_accuracy"]}
            print(name, trained[name], flush=True)
    result = {"benchmark": "lr_find_main_job", "provenance": provenance(), "epochs": args.epochs,
              "suggestions": res.suggestions, "stopped": res.stopped, "steps": len(res.lrs),
              "default_lr": default_lr,
              "ratio_to_default": {r: v / default_lr for r, v in res.suggestions.items() if v is not None},
              "smoothed_minimum_lr": min((s, lr) for s, lr in zip(res.smoothed, res.lrs) if s is not None)[1],
              "trained": trained}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))


if __name__ == "__main__":
    main()
