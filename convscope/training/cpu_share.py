"""A run's share of the CPUs (issue 26): a callback that re-counts the CPUs other programs keep busy as it trains
and sets torch's threads to match. The count it starts with is convscope.training.threads' (:func:`cpu_threads`,
the same for every command).

Why: with torch's default (a thread per CPU), one busy program beside a 2-core run makes every operator wait for
whichever of its two threads the kernel has just descheduled; one thread then runs 10x faster than two
(docs/speed.md, "A busy machine"). Changing the count between steps is safe (torch.set_num_threads); it changes
the rounding of some reductions, so a run whose thread count moved is not bit-identical to one whose did not:
``--threads N`` or ``--deterministic`` fix the count for reproducible runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from .. import _cpus
from ..runs.callbacks import Callback, LoopView
from .config import TrainConfig


def follows_load(cfg: TrainConfig, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a run's thread count keeps following the load (a :class:`CpuShare` re-counts it): not when
    ``--threads``, the user's OMP_NUM_THREADS / MKL_NUM_THREADS or ``--deterministic`` fix it, not for the numpy
    engine (torch's threads do not run it), and not when the process may use one CPU only."""
    return not (cfg.runtime.threads or cfg.runtime.deterministic or cfg.runtime.engine != "torch"
                or _cpus.env_threads(os.environ if environ is None else environ)) and _cpus.cpu_limit() > 1


class CpuShare(Callback):
    """Every ``every`` steps, one look at how many threads of other programs are running or waiting; every
    ``window`` looks, the thread count becomes the CPUs they leave free (convscope._cpus.free_cpus). Each
    epoch's metrics line gets ``threads``: the count at its end."""

    def __init__(self, limit: int, every: int = 1, window: int = 8) -> None:
        self.limit, self.every, self.window = limit, every, window
        self.samples: list[int] = []
        self.changes: list[dict[str, int]] = []   # {"step", "threads"} each time the count moved

    def on_step_end(self, loop: LoopView, result: Any) -> None:
        if loop.step % self.every:
            return
        n = _cpus.others_runnable()   # ~0.1 ms: /proc/stat and this process's few threads
        if n is not None:
            self.samples.append(n)
        if len(self.samples) >= self.window:
            threads = _cpus.free_cpus(self.limit, self.samples)
            self.samples.clear()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
                self.changes.append({"step": loop.step, "threads": threads})

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        record["threads"] = torch.get_num_threads()
