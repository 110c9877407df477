"""``convscope bench``: the short version of the time-to-accuracy harness, printing its table."""

from __future__ import annotations

import argparse
from ._options import add_quiet
from ._types import count, number


def cmd_bench(args: argparse.Namespace) -> int:
    from ..benchmark import main

    argv = ["--datasets", *args.datasets, "--seeds", str(args.seeds), "--max-seconds", str(args.max_seconds),
            "--recipes", *args.recipes, "--yardstick", str(args.yardstick)]
    if args.smoke:
        argv.append("--smoke")
    if args.out:
        argv += ["--out", str(args.out)]
    main(argv)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time to accuracy: our recipe beside the PyTorch and Keras example recipes",
                       description="A short run of the time-to-accuracy harness (bench/time_to_accuracy.py runs "
                                   "the full one): fresh processes, wall time from process start, evaluation "
                                   "time excluded.")
    p.add_argument("--datasets", nargs="+", default=["digits"])
    p.add_argument("--recipes", nargs="+", default=["fast", "keras-example", "pytorch-example"])
    p.add_argument("--seeds", type=count(1), default=1)
    p.add_argument("--max-seconds", type=number(positive=True), default=60.0,
                   help="training wall time per run (default 60)")
    p.add_argument("--yardstick", type=count(0), default=1,
                   help="runs of the yardstick (one epoch of pytorch-example on Fashion-MNIST) to report times "
                        "as ratios to; 0: none (default 1)")
    p.add_argument("--smoke", action="store_true", help="1 epoch on 1,024 images per run")
    p.add_argument("--out", help="also write the JSON results here")
    add_quiet(p)
    p.set_defaults(func=cmd_bench)
