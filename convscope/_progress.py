"""Progress of a long command, the one helper every command uses (issue 26: "visualize ran 155 s for 16 channels
with no output").

Library loops wrap what they iterate in :func:`track` and announce one-off stages with :func:`stage`; both do
nothing unless a caller switched progress on with :func:`shown` -- the CLI does, for the command it runs (off with
``--quiet``), so the Python API stays silent unless asked. Progress goes to standard error, so that standard
output stays what a command prints (``--json`` stays parseable). On a terminal it is a tqdm bar with an ETA; to a
pipe or file (where a bar's carriage returns would leave a line per redraw) it is one line per stage with the
count done, elapsed time and an ETA, at most one every :data:`MIN_INTERVAL` seconds besides the first and last::

    visualize conv3: optimizing 3/16 units, 38 s, ETA 2 min 45 s

(convscope.training.progress draws the training loop's own bar with loss and accuracy on the same rules.)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import IO, Any, TypeVar

T = TypeVar("T")
MIN_INTERVAL = 2.0   # seconds between two lines to a pipe: a 10,000-batch pass writes tens of lines, not 10,000
_ON: ContextVar[bool] = ContextVar("convscope_progress", default=False)


@contextlib.contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Within this block, :func:`track` and :func:`stage` report (``enabled``) or stay silent."""
    token = _ON.set(enabled)
    try:
        yield
    finally:
        _ON.reset(token)


def enabled() -> bool:
    return _ON.get()


def duration(seconds: float) -> str:
    """``38 s``, ``2 min 45 s``, ``1 h 05 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def counted(done: int, total: int | None, elapsed: float, unit: str) -> str:
    """``3/16 steps, 38 s, ETA 2 min 45 s``: the ETA assumes the rest goes at the pace so far."""
    count = f"{done}/{total}" if total is not None else f"{done}"
    eta = ""
    if total and 0 < done < total:
        eta = f", ETA {duration(elapsed / done * (total - done))}"
    return f"{count} {unit}{'es' if unit.endswith(('s', 'sh', 'ch')) else 's'}, {duration(elapsed)}{eta}"


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:   # a closed stream
        return False


class Bar:
    """One stage of ``total`` units: a tqdm bar on a terminal, else lines. Use :func:`track` or :func:`bar`."""

    def __init__(self, desc: str, total: int | None, unit: str, stream: IO[str] | None = None) -> None:
        self.desc, self.total, self.unit, self.done = desc, total, unit, 0
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.tqdm: Any = None
        if _is_tty(self.stream):
            from tqdm.auto import tqdm   # here: only a terminal pays for it

            try:   # a terminal that reports 0 columns (a pseudo-terminal nobody sized): tqdm would draw nothing
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0
            except (OSError, ValueError, AttributeError):
                sized = False
            self.tqdm = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=sized,
                             ncols=None if sized else 100, nrows=None if sized else 24)
        else:
            self._line(force=True)

    def _line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < MIN_INTERVAL:
            return
        self.last = now
        print(f"{self.desc}: {counted(self.done, self.total, now - self.t0, self.unit)}", file=self.stream,
              flush=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.tqdm is not None:
            self.tqdm.update(n)
        else:
            self._line(force=self.total is not None and self.done >= self.total)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


class _Silent:
    done = 0

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def bar(desc: str, total: int | None, unit: str = "step") -> Iterator[Bar | _Silent]:
    """A stage whose caller counts itself (``b.update(n)``); silent unless progress is :func:`shown`."""
    b: Bar | _Silent = Bar(desc, total, unit) if _ON.get() else _Silent()
    try:
        yield b
    finally:
        b.close()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "step") -> Iterator[T]:
    """``items``, counted as each one's work is done (after the loop body ran for it); ``total`` defaults to
    ``len(items)`` where there is one."""
    if not _ON.get():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(desc, total, unit) as b:
        for item in items:
            yield item
            b.update()


def stage(line: str) -> None:
    """Announce a stage that is one piece of work (``report: reading RUN``); silent unless :func:`shown`."""
    if _ON.get():
        print(line, file=sys.stderr, flush=True)
