"""``convscope doctor``: why a run trains badly, from its diagnostics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..errors import ConvscopeError
    from ..training.doctor import examine, report

    sick = failed = False
    for run in args.runs:   # every run is examined: one that cannot be read does not hide the others'
        try:
            checkup = examine(run)
        except ConvscopeError as e:
            print(f"convscope: error: {e}", file=sys.stderr, flush=True)
            failed = True
            continue
        print(checkup.to_json(indent=None) if args.json else report(checkup), flush=True)
        sick = sick or not checkup.healthy
    return 2 if failed else 1 if sick and args.strict else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="why a run trains badly: findings from its diagnostics, in words",
                       description="Read a run's diagnostics.jsonl (train with --diagnose) and metrics.jsonl and "
                                   "say what looks wrong, with the evidence: initial loss, dead units, "
                                   "update/weight ratios, activation and gradient scales, non-finite values, a "
                                   "loss that does not fall.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run directories")
    p.add_argument("--json", action="store_true", help="the findings as JSON Lines: one object per run, a line each")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when there is any finding")
    p.set_defaults(func=cmd_doctor)
