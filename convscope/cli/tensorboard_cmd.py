"""``convscope tensorboard RUN...``: TensorBoard event files for runs trained without ``--tensorboard``."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from ..training.tensorboard import convert_all

    written = convert_all(args.runs, force=args.force)   # every RUN checked before the first is written
    for out in written:
        print(f"wrote {out}")
    # TensorBoard's --logdir takes one folder and finds every run's events below it: the runs' common parent
    parents = sorted({str(p.parent.parent) for p in written})
    try:
        common = os.path.commonpath(parents) or "."
    except ValueError:   # absolute and relative paths mixed
        common = os.path.commonpath([str(Path(p).resolve()) for p in parents])
    print(f"view with: tensorboard --logdir {shlex.quote(common)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tensorboard", help="TensorBoard event files from runs trained without --tensorboard",
                       description="Write RUN/tensorboard from a run folder: per-step and per-epoch scalars "
                                   "(metrics.jsonl), the diagnostics as histograms per epoch (diagnostics.jsonl, "
                                   "runs trained with --diagnose), and the first layer's filters and the test "
                                   "confusion matrix of the final weights as images. Needs the tensorboard "
                                   "package (pip install 'convscope[tensorboard]').")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    p.add_argument("--force", action="store_true", help="replace an existing RUN/tensorboard")
    p.set_defaults(func=cmd_tensorboard)
