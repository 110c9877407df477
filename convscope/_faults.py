"""Fault injection for crash tests: ``CONVSCOPE_FAULT="POINT:N"`` sends SIGKILL to this process the N-th
time execution passes ``POINT`` (e.g. ``step:7`` after the 7th training step, or
``write:checkpoint.safetensors:3`` halfway through the 3rd atomic write of that file). Unset: a no-op."""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def maybe_kill(point: str) -> None:
    spec = os.environ.get("CONVSCOPE_FAULT")
    if not spec:
        return
    where, _, nth = spec.rpartition(":")
    if where != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
