"""``convscope doctor``, ``convscope lr-find`` and ``convscope tensorboard``: why a run trains badly, which
learning rate to use, and a run's record in TensorBoard."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..training.doctor import examine, report

    sick = False
    for run in args.runs:
        checkup = examine(run)
        print(checkup.to_json() if args.json else report(checkup))
        sick = sick or not checkup.healthy
    return 1 if sick and args.strict else 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from ..training.lr_find import lr_find, lr_find_png
    from .train_cmd import config_from_args, run_config

    cfg = run_config(args.run) if args.run is not None else config_from_args(args)
    result = lr_find(cfg, start=args.start, end=args.end, steps=args.steps, weights_from=args.run)
    out = args.out or Path(f"lr-find-{cfg.model.name}.png")
    png = lr_find_png(result, out)
    if args.json:
        print(result.to_json())
    else:
        print(result.describe())
        print(f"wrote {png}")
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from ..training.tensorboard import convert_run

    for run in args.runs:
        out = convert_run(run, overwrite=args.overwrite, images=not args.no_images)
        print(f"{run}: wrote {out}  (view: tensorboard --logdir {out})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .train_cmd import add_config_flags

    p = sub.add_parser("doctor", help="why a run trains badly: findings from its diagnostics, in words",
                       description="Read a run's diagnostics.jsonl (train with --diagnose) and metrics.jsonl and "
                                   "say what looks wrong, with the evidence: initial loss, dead units, "
                                   "update/weight ratios, activation and gradient scales, non-finite values, a "
                                   "loss that does not fall. See docs/diagnose.md.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    p.add_argument("--json", action="store_true", help="the findings as JSON (one object per run)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when there is any finding")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("lr-find", help="learning-rate range test: an exponential sweep and a suggested rate",
                       description="Train from the run's initial weights while the learning rate grows "
                                   "exponentially from --start to --end (Smith 2015, fastai's lr_find); plot the "
                                   "smoothed loss and suggest a peak rate. Takes the training options of "
                                   "`convscope train`, or --run RUN to sweep from a run's config and weights "
                                   "(its folder is not changed).")
    p.add_argument("--run", type=Path, metavar="RUN", help="sweep from this run's config and weights")
    p.add_argument("--start", type=float, default=1e-5, help="first learning rate (default 1e-5)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=100, help="steps of the sweep (default 100)")
    p.add_argument("--out", type=Path, help="the plot (default lr-find-<model>.png)")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.add_argument("--recipe", default="fast", help="starting point (default: fast)")
    p.add_argument("--config", type=Path, help="YAML, TOML or JSON file of training options")
    add_config_flags(p)
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("tensorboard", help="write TensorBoard event files for runs trained without --tensorboard",
                       description="Convert runs' metrics.jsonl (and diagnostics.jsonl, final weights and test "
                                   "confusion matrix) into TensorBoard event files in RUN/tensorboard/.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    p.add_argument("--overwrite", action="store_true", help="replace event files already in RUN/tensorboard/")
    p.add_argument("--no-images", action="store_true",
                   help="scalars and histograms only (no filters, no confusion matrix: no test evaluation)")
    p.set_defaults(func=cmd_tensorboard)

