"""Ctrl-C (SIGINT) and SIGTERM turned into a flag that the code checks where stopping is safe; no torch here, so
the command line can hold them back while torch itself is being imported."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_signals(term: bool = True) -> Iterator[list[int]]:
    """Turn Ctrl-C (SIGINT) and, with ``term``, SIGTERM (what ``kill``, systemd and batch schedulers send before
    SIGKILL) into a flag checked between steps, so a step is never cut in half and the run saves before it stops.
    The flag holds the signal's number (0: none). A second signal stops at once. ``term`` is off under torchrun:
    it sends SIGTERM to every worker when one fails, and a worker that went on to the step's end would wait on a
    peer that is gone. Outside the main thread (where Python runs no signal handler) the flag stays 0.

    A signal this process inherited as ignored stays ignored: a shell starts a script's background job (``convscope
    train &``) with Ctrl-C ignored, so that the script's Ctrl-C leaves the job running, and ``nohup``-style
    launchers do the same; Python itself installs no Ctrl-C handler then."""
    flag = [0]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag[0]:  # a second signal: stop at once
            raise KeyboardInterrupt
        flag[0] = signum

    signals = [sig for sig in (signal.SIGINT, *([signal.SIGTERM] if term else []))
               if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield flag
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
