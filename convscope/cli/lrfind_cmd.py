"""``convscope lr-find``: the learning-rate range test (convscope.training.lr_find)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..errors import ConfigError, SettingWarning
from ._types import count, number
from .train_cmd import add_config_flags, config_from_args


# training options the sweep does not use: the lr is swept, the schedule is constant, and nothing is evaluated,
# averaged, checkpointed or logged
NOT_IN_SWEEP = ("lr", "epochs", "schedule", "warmup_epochs", "step_epochs", "step_gamma", "ema", "tta",
                "early_stopping", "checkpoint_every", "max_bad_steps", "log_every", "track_sparsity", "diagnose",
                "tensorboard")


def cmd_lr_find(args: argparse.Namespace) -> int:
    from .._atomic import atomic_write_text, writable_folder
    from ..training.lr_find import lr_find, plot, report

    if args.out is not None and args.out.suffix.lower() != ".png":
        # the sweep's JSON goes beside the plot (same name, .json): any other suffix would write both to one path
        raise ConfigError(f"--out {args.out}: the plot is a PNG; give a path ending in .png, e.g. "
                          f"{args.out.with_suffix('.png')} (the sweep's JSON is written beside it)", arg="--out")
    from .._check import output_file, replaceable

    given = [f"--{k.replace('_', '-')}" for k in NOT_IN_SWEEP if getattr(args, k, None) is not None]
    if given:   # the train flags lr-find accepts (one parser) but its sweep has no use for
        warnings.warn(f"{', '.join(given)}: not used by lr-find, whose sweep trains --steps batches at rising "
                      "rates (no schedule, EMA, evaluation, checkpoints or logs); ignored", SettingWarning,
                      stacklevel=2)
    cfg = config_from_args(args)
    png = args.out or Path(f"lr-find-{cfg.run_name}.png")
    # both files checked before the sweep: each is new or an earlier lr-find's (the JSON: a sweep's "lrs" list)
    output_file(png, "--out", "lr-find")
    # the folder takes files now, before a sweep of minutes (/proc, /sys, a read-only place fail here)
    writable_folder(png.parent, f"--out {png}", "lr-find.png in a folder you can write")
    replaceable(png.with_suffix(".json"), "--out", b'"lrs": [', "the JSON of an earlier lr-find sweep",
                f"give --out a new file name, or move {png.with_suffix('.json').name} away first")
    res = lr_find(cfg, start=args.start, end=args.end, steps=args.steps, rule=args.rule)
    plot(res, png, output="lr-find")
    atomic_write_text(png.with_suffix(".json"), res.to_json() + "\n")
    print(res.to_json() if args.json else report(res))
    print(f"wrote {png}, {png.with_suffix('.json')}")
    return 0 if res.suggested is not None else 1


def register(sub: argparse._SubParsersAction) -> None:
    from ..training import config as C
    from ..training.lr_rules import DEFAULT_RULE, RULE_TEXT, RULES

    p = sub.add_parser(
        "lr-find", help="learning-rate range test: sweep the lr exponentially, suggest one, plot the loss",
        description="Smith's learning-rate range test, as fastai runs it: from the config's seeded model, train "
                    "one batch per step while the lr grows exponentially from --start to --end; the smoothed "
                    "loss against the lr is plotted, with the suggestion of each rule (valley, steep, minimum). "
                    "Stops when the loss diverges; the model is not kept. Exit status 1 when the loss does not "
                    "fall at any rate. `convscope train --lr find` runs it and trains at the suggestion.")
    p.add_argument("--start", type=number(positive=True), default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end", type=number(positive=True), default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=count(5), default=100, help="optimizer steps of the sweep (default 100)")
    p.add_argument("--rule", choices=RULES, default=DEFAULT_RULE,
                   help=f"the suggestion's rule (default {DEFAULT_RULE}, the best of the three on the main job; see "
                        "docs/diagnose.md): " + "; ".join(f"{r}: {RULE_TEXT[r]}" for r in RULES))
    p.add_argument("--out", type=Path, help="the plot (PNG; the sweep as JSON beside it; default "
                                            "lr-find-<model>-<dataset>.png)")
    p.add_argument("--json", action="store_true", help="print the sweep as JSON")
    p.add_argument("--recipe", default="fast", choices=list(C.RECIPES), help="starting point (default: fast)")
    p.add_argument("--config", type=Path, help="YAML, TOML or JSON file of training options")
    add_config_flags(p)
    p.set_defaults(func=cmd_lr_find, output_set=True)
