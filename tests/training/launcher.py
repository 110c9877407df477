"""Run a convscope command and SIGKILL this process (or send it SIGINT or SIGTERM) at a chosen point: crash
tests' kill points, installed from the test side through convscope's public seams (a training callback, an
atomic-write observer, an import hook).

    python tests/training/launcher.py --kill-at step:7 -- train ARGS...
    python tests/training/launcher.py --kill-at write:checkpoint.safetensors:3 -- train ARGS...
    python tests/training/launcher.py --kill-at import:numpy --signal INT -- train ARGS...

``step:N``: right after the N-th training step of this process (before that step's checkpoint, if any).
``write:NAME:N``: during the N-th atomic write of a file named NAME; with SIGKILL its temporary file is cut to
half its bytes first, as when the kill lands halfway through the write (the previous NAME is intact).
``import:MODULE``: when MODULE is first imported, before its code runs (with SIGINT: Ctrl-C inside an import).
With ``--signal INT`` or ``TERM`` the command runs through ``convscope.cli.main``, so that its handlers and exit
status are what is tested; ``step:`` points need SIGKILL (their callback is handed to the command directly).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from convscope._atomic import observe_writes
from convscope.cli import build_parser, main as cli_main
from convscope.training import Callback

SIGNAL = [signal.SIGKILL, 1]   # what die() sends (--signal), and how many times (--times)


def _handled() -> None:
    """A call: Python runs a pending signal's handler at such a point, before the next signal is sent."""


def die() -> None:
    for _ in range(SIGNAL[1]):
        os.kill(os.getpid(), SIGNAL[0])
        _handled()


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
            if SIGNAL[0] == signal.SIGKILL:
                os.truncate(tmp, tmp.stat().st_size // 2)
            die()

    return observe


class SignalOnImport:
    """A meta-path finder that signals once, when ``module`` is first looked for, and finds nothing itself."""

    def __init__(self, module: str) -> None:
        self.module, self.fired = module, False

    def find_spec(self, name, path, target=None):
        if name == self.module and not self.fired:
            self.fired = True
            die()
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill-at", required=True, help="step:N, write:NAME:N or import:MODULE")
    ap.add_argument("--signal", choices=["KILL", "INT", "TERM"], default="KILL")
    ap.add_argument("--times", type=int, default=1, help="send it N times, each handled first")
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the convscope command line")
    opts = ap.parse_args()
    argv = opts.argv[1:] if opts.argv[:1] == ["--"] else opts.argv
    SIGNAL[:] = [getattr(signal, f"SIG{opts.signal}"), opts.times]
    # as a command started from a terminal has it: a background job of a non-interactive shell (CI) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if opts.kill_at.startswith("import:"):
        sys.meta_path.insert(0, SignalOnImport(opts.kill_at.split(":", 1)[1]))
        return cli_main(argv)
    where, _, nth = opts.kill_at.rpartition(":")
    if opts.signal != "KILL":
        if not where.startswith("write:"):
            raise SystemExit(f"--signal {opts.signal}: goes with write: and import: points")
        with observe_writes(kill_at_write(where.split(":", 1)[1], int(nth))):
            return cli_main(argv)
    args = build_parser().parse_args(argv)
    if where == "step":
        args.callbacks = [KillAtStep(int(nth))]
        return args.func(args)
    if where.startswith("write:"):
        with observe_writes(kill_at_write(where.split(":", 1)[1], int(nth))):
            return args.func(args)
    raise SystemExit(f"--kill-at {opts.kill_at!r}: expected step:N, write:NAME:N or import:MODULE")


if __name__ == "__main__":
    sys.exit(main())
