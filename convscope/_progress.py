"""Progress of a long command, the one helper every command uses (issue 26: "visualize ran 155 s for 16 channels
with no output").

Library loops wrap what they iterate in :func:`track` and announce one-off stages with :func:`stage`; both do
nothing unless a caller switched progress on with :func:`shown` -- the CLI does, for the command it runs (off with
``--quiet``), so the Python API stays silent unless asked. Progress goes to standard error, so that standard
output stays what a command prints (``--json`` stays parseable). On a terminal it is a tqdm bar with an ETA; to a
pipe or file (where a bar's carriage returns would leave a line per redraw) it is one line per stage with the
count done, elapsed time and an ETA, at most one every :data:`MIN_INTERVAL` seconds besides the first and last::

    visualize conv3: optimizing 3/16 units, 38 s, ETA 2 min 45 s

A stage may carry a postfix of running figures (:meth:`Bar.set_postfix`: training's loss, accuracy and images
per second, convscope.training.progress), appended to its line after ``; `` and shown beside the bar, and may
print lines of the command's own output on standard output without tearing the bar (:meth:`Bar.write`:
training's per-epoch lines).
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


def counted(done: int, total: int | None, elapsed: float, unit: str, initial: int = 0) -> str:
    """``3/16 steps, 38 s, ETA 2 min 45 s``: the ETA assumes the rest goes at the pace so far, the pace of the
    units done since ``initial`` (those of a resumed run's earlier process took none of ``elapsed``)."""
    count = f"{done}/{total}" if total is not None else f"{done}"
    eta = ""
    if total and initial < done < total:
        eta = f", ETA {duration(elapsed / (done - initial) * (total - done))}"
    return f"{count} {unit}{'es' if unit.endswith(('s', 'sh', 'ch')) else 's'}, {duration(elapsed)}{eta}"


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:   # a closed stream
        return False


class Bar:
    """One stage of ``total`` units: a tqdm bar on a terminal, else lines. Use :func:`track` or :func:`bar`.
    ``initial``: units done before this process started (a resumed run); the ETA counts only those done since."""

    def __init__(self, desc: str, total: int | None, unit: str, stream: IO[str] | None = None,
                 initial: int = 0) -> None:
        self.desc, self.total, self.unit, self.done, self.initial = desc, total, unit, initial, initial
        self.postfix = ""
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.tqdm: Any = None
        if _is_tty(self.stream):
            from tqdm.auto import tqdm   # here: only a terminal pays for it

            try:   # a terminal that reports 0 columns (a pseudo-terminal nobody sized): tqdm would draw nothing
                sized = os.get_terminal_size(self.stream.fileno()).columns > 0
            except (OSError, ValueError, AttributeError):
                sized = False
            self.tqdm = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, leave=False,
                             dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24)
        else:
            self._line(force=True)

    def _line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < MIN_INTERVAL:
            return
        self.last = now
        text = counted(self.done, self.total, now - self.t0, self.unit, self.initial)
        print(f"{self.desc}: {text}{'; ' + self.postfix if self.postfix else ''}", file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.tqdm is not None:
            self.tqdm.update(n)
        else:
            self._line(force=self.total is not None and self.done >= self.total)

    def set_description(self, desc: str) -> None:
        """A new name for the stage from the next line or redraw on (``epoch 2/10``)."""
        self.desc = desc
        if self.tqdm is not None:
            self.tqdm.set_description(desc, refresh=False)

    def set_postfix(self, **figures: str) -> None:
        """Running figures shown after the count (``loss=0.312, acc=0.905``), from the next line or redraw on."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in figures.items())
        if self.tqdm is not None:
            self.tqdm.set_postfix(figures, refresh=False)

    def write(self, line: str) -> None:
        """``line`` on standard output: the command's own output (training's epoch lines), never progress; on a
        terminal the bar is cleared first and redrawn after, so neither tears the other."""
        if self.tqdm is not None:
            self.tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


class _Silent:
    done = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def set_postfix(self, **figures: str) -> None:
        pass

    def write(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


Stage = Bar | _Silent   # what :func:`bar` yields


@contextlib.contextmanager
def bar(desc: str, total: int | None, unit: str = "step", *, initial: int = 0,
        show: bool | None = None) -> Iterator[Stage]:
    """A stage whose caller counts itself (``b.update(n)``), ``initial`` units done already; silent unless
    progress is :func:`shown` (``show``: the caller decides instead, as ``train(progress=...)`` does)."""
    b: Stage = Bar(desc, total, unit, initial=initial) if (_ON.get() if show is None else show) \
        else _Silent()
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
