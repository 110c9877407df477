"""Run a convscope command and SIGKILL this process at a chosen point: crash tests' kill points, installed
from the test side through convscope's public seams (a training callback, an atomic-write observer).

    python tests/training/launcher.py --kill-at step:7 -- train ARGS...
    python tests/training/launcher.py --kill-at write:checkpoint.safetensors:3 -- train ARGS...

``step:N``: right after the N-th training step of this process (before that step's checkpoint, if any).
``write:NAME:N``: during the N-th atomic write of a file named NAME, with its temporary file cut to half its
bytes, as when the kill lands halfway through the write; the previous NAME is intact.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from convscope._atomic import observe_writes
from convscope.cli import build_parser
from convscope.training import Callback


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtStep(Callback):
    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def on_step_end(self, loop, result) -> None:
        self.seen += 1
        if self.seen == self.n:
            die()


def kill_at_write(name: str, n: int):
    seen = [0]

    def observe(path: Path, tmp: Path) -> None:
        if path.name != name:
            return
        seen[0] += 1
        if seen[0] == n:
            os.truncate(tmp, tmp.stat().st_size // 2)
            die()

    return observe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill-at", required=True, help="step:N or write:NAME:N")
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the convscope command line")
    opts = ap.parse_args()
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
    where, _, nth = opts.kill_at.rpartition(":")
    args = build_parser().parse_args(argv)
    if where == "step":
        args.callbacks = [KillAtStep(int(nth))]
        return args.func(args)
    if where.startswith("write:"):
        with observe_writes(kill_at_write(where.split(":", 1)[1], int(nth))):
            return args.func(args)
    raise SystemExit(f"--kill-at {opts.kill_at!r}: expected step:N or write:NAME:N")


if __name__ == "__main__":
    sys.exit(main())
