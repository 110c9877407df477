"""``convscope tune --trials N [--space space.yaml]``: hyperparameter search on Optuna (convscope.tune)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._check import SAMPLER_SEED_MAX
from ._types import count, seed
from .train_cmd import add_config_flags, config_from_args


def cmd_tune(args: argparse.Namespace) -> int:
    import sys

    from ..training import TrainingInterrupted
    from ..tune import tune

    base = config_from_args(args)
    try:
        res = tune(base, trials=args.trials, space=args.space, runs_dir=args.runs_dir, study=args.study,
                   out=args.out, storage=args.storage, jobs=args.jobs, pruner=args.pruner, seed=args.sampler_seed,
                   quiet=args.quiet)
    except (TrainingInterrupted, KeyboardInterrupt) as e:
        # what the running trial kept is the trial's own message (checkpoint saved, or stopped in its set-up)
        said = isinstance(e, TrainingInterrupted)
        trial = f" (the running trial: {e.what})" if said else ""
        print(f"convscope: tune interrupted{trial}; run the same command again to continue the study, and the "
              "interrupted trial from its last checkpoint", file=sys.stderr)
        return 128 + e.signum if said else 130
    print(f"\n{res.summary}\n\n{res.table}\n")
    for note in res.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in res.files))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..training import config as C

    p = sub.add_parser(
        "tune", help="hyperparameter search on Optuna: N trials, pruned, resumable, parallel",
        description="Search training settings with Optuna: each trial is an ordinary run (STUDY/trials/trial-NNNN), "
                    "judged on the validation split (val_fraction, 0.1 unless set); poor trials are pruned after an "
                    "epoch. The study is stored in STUDY/study.db: the same command continues it after a kill, up "
                    "to N finished trials. Writes STUDY/{results.md,trials.json,best.yaml,history.png,"
                    "importance.png}; `convscope train --config STUDY/best.yaml` retrains the best trial.")
    p.add_argument("--trials", type=count(1), required=True, help="finished trials (complete or pruned) wanted")
    p.add_argument("--space", type=Path, help="search space file (YAML; see docs/tune.md); default: lr, weight "
                                              "decay, label smoothing, batch size, shift and rotation")
    p.add_argument("--study", help="study name (default tune-<model>-<dataset>)")
    p.add_argument("--out", type=Path, help="study folder (default RUNS_DIR/<study>)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the study folder goes (default runs/)")
    p.add_argument("--storage", help="database URL shared by workers on several machines, e.g. "
                                     "postgresql+psycopg://user:password@host/db (default: STUDY/study.db, SQLite)")
    p.add_argument("--jobs", type=count(1), default=1, help="trials in parallel, as processes on this machine")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="stop poor trials early: below the median of earlier trials at the same epoch (default), "
                        "asynchronous successive halving, or none")
    p.add_argument("--sampler-seed", type=seed(SAMPLER_SEED_MAX), default=0,
                   help="seed of Optuna's TPE sampler, 0 to 2**32-1 (numpy's range; default 0)")
    p.add_argument("--quiet", action="store_true", help="no per-trial lines")
    p.add_argument("--recipe", default="fast", choices=list(C.RECIPES), help="starting point (default: fast)")
    p.add_argument("--config", type=Path, help="YAML, TOML or JSON file of training options: the base config")
    add_config_flags(p)
    p.set_defaults(func=cmd_tune)
