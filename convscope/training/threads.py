"""torch's intra-op threads for one piece of work (issue 26): the one place that decides the count and sets it.

Training (convscope.training.runtime, which then keeps re-counting with cpu_share.CpuShare), the inspection
commands (the CLI wraps them), ``serve``, ``experiment refine`` and the benchmark all run inside
:func:`cpu_threads`. The count, in order: an explicit ``threads`` (``--threads N``); else the user's
OMP_NUM_THREADS / MKL_NUM_THREADS, which torch already follows, so torch is left alone; else every CPU the process
may use when the caller asks for a count that does not depend on the load (``whole``: ``--deterministic``
training); else the CPUs it may use less those other programs keep busy right now (convscope._cpus.free_cpus),
counted once at the start. Why not torch's default: one thread per CPU of the affinity mask, so one busy program
beside a 2-core job makes every operator wait for the thread the kernel has just descheduled (docs/speed.md,
"A busy machine").
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence

import torch

from .. import _cpus
from .._check import integer
from ..errors import SettingWarning

START_SAMPLES, START_GAP_S = 5, 0.01   # 40 ms of looking before the work starts: a steady program is seen


def look(samples: int = START_SAMPLES, gap_s: float = START_GAP_S) -> list[int]:
    """``samples`` counts of other programs' running threads (convscope._cpus.others_runnable), ``gap_s`` apart;
    empty where /proc/stat cannot be read (then every CPU the process may use is taken)."""
    out = []
    for i in range(samples):
        if i:
            time.sleep(gap_s)
        n = _cpus.others_runnable()
        if n is not None:
            out.append(n)
    return out


def start_count(threads: int | None = None, *, whole: bool = False, others: Sequence[float] | None = None,
                environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count to start with, None to leave torch's (the user's OMP_NUM_THREADS / MKL_NUM_THREADS in
    ``environ``, default ``os.environ``). ``others``: samples of other programs' running threads, default
    :func:`look`'s 5 over 40 ms (not taken when only one CPU may be used: there is nothing to choose)."""
    if threads:
        return threads
    if _cpus.env_threads(os.environ if environ is None else environ):
        return None
    limit = _cpus.cpu_limit()
    if whole or limit == 1:
        return limit
    return _cpus.free_cpus(limit, look() if others is None else others)


@contextlib.contextmanager
def cpu_threads(threads: int | None = None, *, whole: bool = False, others: Sequence[float] | None = None,
                environ: Mapping[str, str] | None = None) -> Iterator[int]:
    """Inside the block, torch runs :func:`start_count`'s threads; yields the count in effect (what a result
    records). The caller's count comes back afterwards, on an exception too. ``threads``: a whole number of at
    least 1, or None; anything else is a ConfigError before torch is touched (0 is not "automatic": that is None).
    The bound by the CPUs this process may use is the boundary's (convscope._check.threads: every ``--threads``,
    a config's ``threads``, a resume's recorded count)."""
    if threads is not None:
        threads = integer(threads, "threads", 1)
    before = torch.get_num_threads()
    try:
        n = start_count(threads, whole=whole, others=others, environ=environ)
        if n is not None and n != before:
            torch.set_num_threads(n)
        elif n is None:
            _warn_oversubscribed(before, os.environ if environ is None else environ)
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:   # CpuShare may have moved it inside the block
            torch.set_num_threads(before)


def _warn_oversubscribed(count: int, environ: Mapping[str, str]) -> None:
    """A SettingWarning when the user's OMP_NUM_THREADS / MKL_NUM_THREADS gives torch more threads than the CPUs
    this process may use: they are honoured (the user chose them), but such threads wait for each other at every
    operator; 2 threads on 1 CPU made a run 33x slower (docs/speed.md, "A busy machine")."""
    limit = _cpus.cpu_limit()
    if count > limit:
        chosen = ", ".join(f"{v}={environ[v]}" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
                           if _cpus.env_threads({v: environ.get(v, "")}))   # the ones that count, not "0"
        warnings.warn(f"{chosen}: {count} threads on {limit} CPU{'s' if limit > 1 else ''} this process may use "
                      "(affinity mask / cgroup quota): the threads will wait for each other, which can make every "
                      "step many times slower; unset it (convscope then counts the free CPUs) or give "
                      f"--threads {limit}", SettingWarning, stacklevel=4)
