"""One process per run directory: an exclusive ``flock`` on ``RUN/.lock``, held for the whole run.

Two ``convscope train`` processes on one ``--out`` would interleave metrics.jsonl and overwrite each other's
checkpoints while both report success. The lock is taken before anything is written and released on any
exit; the kernel drops it when its process dies (even by SIGKILL), so a killed run can always be resumed.
The lock file keeps the holder's PID so that a refused second process can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import ConvscopeError

LOCK = ".lock"


class RunLocked(ConvscopeError):
    """Another process is running in this run directory."""


class RunLock:
    """``with RunLock(path):`` holds the run directory ``path`` (which must exist) exclusively."""

    def __init__(self, path: Path) -> None:
        self.path, self.fd = Path(path), -1

    def acquire(self) -> RunLock:
        lock = self.path / LOCK
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise RunLocked(f"{self.path}: in use by another convscope process (PID {holder}); wait for it "
                                "to finish, or stop it, or choose another --out") from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder before us removes the file on release: a lock on a removed file holds nothing
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it), then drop the lock; a SIGKILLed holder leaves the
        file behind, unlocked, with its PID: the next process takes it over."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):  # the folder went away or became read-only: closing still unlocks
                os.unlink(self.path / LOCK)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self if self.fd >= 0 else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
