"""The runs a server shows: found once at start-up, loaded on first use, expensive results cached per run.

Runs are addressed by a short id (their folder name, made unique); no request ever turns a client string
into a path except through :func:`convscope.web.security.safe_child` below a known run directory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs.rundir import META
from ..training import Run, load_run


@dataclass
class RunEntry:
    id: str
    path: Path
    _run: Run | None = None
    cache: dict[Any, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)        # guards loading and the cache
    # one forward (with hooks) at a time; re-entrant because a cached value may be computed from another cached
    # value of the same run (confusion.png from the evaluation): a plain Lock deadlocked the run for good (#28 F1)
    model_lock: threading.RLock = field(default_factory=threading.RLock)
    # live updates run here, one at a time in arrival order (FIFO: no request starves behind later ones)
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="convscope"))

    @property
    def run(self) -> Run:
        with self.lock:
            if self._run is None:
                self._run = load_run(self.path)
            return self._run

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key (computed under the model lock: it may run the model with hooks)."""
        with self.lock:
            if key in self.cache:
                return self.cache[key]
        with self.model_lock:
            value = compute()
        with self.lock:
            return self.cache.setdefault(key, value)


def _is_run(p: Path) -> bool:
    return (p / META).is_file()


def discover_runs(paths: list[Path]) -> dict[str, RunEntry]:
    """Each path is a run directory, or a folder whose sub-folders (one or two levels down) hold runs."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise ConfigError(f"{p}: no such directory; give a run directory or a folder of runs (default runs/)")
        if _is_run(p):
            found.append(p)
            continue
        kids = sorted(q for q in p.iterdir() if q.is_dir() and not q.is_symlink())
        runs = [q for q in kids if _is_run(q)]
        runs += [r for q in kids if not _is_run(q) for r in sorted(q.iterdir())
                 if r.is_dir() and not r.is_symlink() and _is_run(r)]
        if not runs:
            raise ConfigError(f"{p}: holds no convscope run (a folder with model.json); train one with "
                              "`convscope train` or name a run directory")
        found += runs
    entries: dict[str, RunEntry] = {}
    for p in found:
        rid = unique_id(p, entries)
        entries[rid] = RunEntry(rid, p.resolve())
    return entries


def unique_id(p: Path, taken: Collection[str]) -> str:
    """The id of run folder ``p`` in URLs: its name (URL-safe), made unique among ``taken`` with -2, -3, ..."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", p.name) or "run"
    rid, k = base, 2
    while rid in taken:
        rid, k = f"{base}-{k}", k + 1
    return rid
