"""Runs as they train: the served folders are looked at again on request, so a ``convscope train`` started after
the server (in this process or another) appears, and its ``metrics.jsonl`` / ``diagnostics.jsonl`` are read
incrementally from a byte offset (only whole lines: a line being written is left for the next poll).

A run folder is a folder with ``config.json`` (written before the first step); it is *training* while its
``.lock`` names a live process, *finished* once ``model.json`` exists (it then joins the served runs, with its
Draw and unit pages), and *stopped* otherwise (killed, resumable with ``convscope train --resume``).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._json import loads_strict
from ..errors import ConvscopeError
from ..runs.lock import LOCK
from ..runs.rundir import CONFIG, DIAGNOSTICS, META, METRICS
from .runs import RunEntry, unique_id

MAX_CHUNK = 4 << 20            # one poll reads at most this much of a file (a client catches up over polls)
RESCAN_SECONDS = 0.5           # folders are listed at most this often, however many pages poll
STEP_KEYS = ("step", "epoch", "loss", "lr", "grad_norm")
EPOCH_KEYS = ("epoch", "step", "train_loss", "train_accuracy", "test_accuracy", "test_loss", "val_accuracy",
              "seconds", "images_per_s")


def _is_folder_run(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and (p / CONFIG).is_file()


def run_folders(roots: list[Path]) -> list[Path]:
    """Run folders (``config.json``) at, or one or two levels below, each root: the places discover_runs looks."""
    found: list[Path] = []
    for root in roots:
        if _is_folder_run(root):
            found.append(root)
            continue
        try:
            kids = sorted(q for q in root.iterdir() if q.is_dir() and not q.is_symlink())
        except OSError:
            continue
        for q in kids:
            if _is_folder_run(q):
                found.append(q)
                continue
            try:
                found += [r for r in sorted(q.iterdir()) if _is_folder_run(r)]
            except OSError:
                continue
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True      # someone else's process: alive
    return True


def run_status(path: Path) -> str:
    """``finished`` (model.json), ``training`` (the lock file names a live process) or ``stopped``."""
    if (path / META).is_file():
        return "finished"
    try:
        holder = (path / LOCK).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return "stopped"
    return "training" if holder.isdigit() and _pid_alive(int(holder)) else "stopped"


@dataclass
class Chunk:
    """Records read from ``offset`` up to ``next_offset`` (whole lines only); ``reset``: the file is shorter than
    the client's offset (a resumed run cut it back), so the client must start again from 0."""
    records: list[dict[str, Any]]
    next_offset: int
    reset: bool = False


def read_lines_from(path: Path, offset: int) -> Chunk:
    """The JSON-object lines of ``path`` from byte ``offset`` (at most MAX_CHUNK bytes, whole lines only). A file
    that is missing is empty; one that is not a regular file, or a line that is not a JSON object, is a
    ConvscopeError naming the file and the line."""
    from ..runs.rundir import RunError

    if offset < 0:
        raise RunError(f"offset {offset}: must be 0 or more (a byte position in {path.name})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Chunk([], 0, reset=offset > 0)
    except OSError as e:
        raise RunError(f"{path}: cannot be read ({e.strerror}); it must be a regular file of the run") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise RunError(f"{path}: not a regular file; a run's {path.name} is one")
        if st.st_size < offset:
            return Chunk([], 0, reset=True)
        f.seek(offset)
        raw = f.read(MAX_CHUNK)
    end = raw.rfind(b"\n") + 1            # a line still being written waits for the next poll
    records, at = [], offset
    for line in raw[:end].split(b"\n"):
        start, at = at, at + len(line) + 1
        if not line.strip():
            continue
        try:
            rec = loads_strict(line)
        except ValueError as e:    # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise RunError(f"{path}: the line at byte {start} is not JSON ({getattr(e, 'msg', e)}); fix or delete "
                           "the line") from None
        if isinstance(rec, dict):
            records.append(rec)
    return Chunk(records, offset + end)


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def metrics_chunk(path: Path, offset: int) -> dict[str, Any]:
    """The step and epoch records of a run's metrics.jsonl from ``offset``, keys the charts use only."""
    c = read_lines_from(path / METRICS, offset)
    steps = [{k: _num(r.get(k)) for k in STEP_KEYS} for r in c.records
             if r.get("kind") == "step" and _num(r.get("step")) is not None]
    epochs = [{k: _num(r.get(k)) for k in EPOCH_KEYS} for r in c.records
              if r.get("kind") == "epoch" and _num(r.get("epoch")) is not None]
    return {"offset": c.next_offset, "reset": c.reset, "steps": steps, "epochs": epochs}


def diagnostics_chunk(path: Path, offset: int) -> dict[str, Any]:
    """The header and per-step layer statistics of diagnostics.jsonl (``--diagnose``) from ``offset``."""
    c = read_lines_from(path / DIAGNOSTICS, offset)
    header = next((r for r in c.records if r.get("kind") == "header"), None)
    diags = [{"step": r.get("step"), "epoch": r.get("epoch"), "loss": _num(r.get("loss")),
              "activations": r.get("activations") if isinstance(r.get("activations"), dict) else {},
              "params": r.get("params") if isinstance(r.get("params"), dict) else {}}
             for r in c.records if r.get("kind") == "diag"]
    events = [r for r in c.records if r.get("kind") == "nonfinite"]
    return {"offset": c.next_offset, "reset": c.reset, "header": header, "diags": diags, "nonfinite": events}


def planned(path: Path) -> dict[str, Any]:
    """What the run's config.json says it will do (model, dataset, epochs), read defensively."""
    from ..data.safe_io import read_regular

    try:   # regular files only, bounded: a FIFO or a huge file named config.json is skipped, never read
        raw = loads_strict(read_regular(path / CONFIG, 1 << 20, "config file"))
    except (OSError, ValueError, ConvscopeError, RecursionError):
        return {}
    if not isinstance(raw, dict):
        return {}
    model, data, sched = (raw.get(k) if isinstance(raw.get(k), dict) else {} for k in ("model", "data", "schedule"))
    return {"model": model.get("name"), "dataset": data.get("dataset"), "epochs": sched.get("epochs")}


class LiveIndex:
    """The run folders under the served roots, looked at again at most every RESCAN_SECONDS. Runs that finish
    join ``runs`` (the app's served runs), so their pages work without restarting the server; ``on_new(rid)`` is
    told of each (the unit pages' background precompute queues it). Runs whose folder is gone leave both."""

    def __init__(self, roots: list[Path], runs: dict[str, RunEntry],
                 on_new: Callable[[str], None] = lambda rid: None) -> None:
        self.roots = [Path(r) for r in roots]
        self.runs = runs
        self.on_new = on_new
        self.folders: dict[str, Path] = {r.id: r.path for r in runs.values()}
        self._seen = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Path]:
        with self._lock:
            if time.monotonic() - self._seen < RESCAN_SECONDS:
                return dict(self.folders)
            self._seen = time.monotonic()
            known = {p: rid for rid, p in self.folders.items()}
            for p in run_folders(self.roots):
                p = p.resolve()
                rid = known.get(p)
                if rid is None:
                    rid = unique_id(p, self.folders)
                    self.folders[rid] = p
                if rid not in self.runs and (p / META).is_file():
                    self.runs[rid] = RunEntry(rid, p)
                    self.on_new(rid)
            for rid, p in list(self.folders.items()):     # deleted (or moved) since: no longer listed or served
                if not p.is_dir():
                    del self.folders[rid]
                    self.runs.pop(rid, None)
            return dict(self.folders)

    def path(self, rid: str) -> Path:
        from .security import WebError

        folders = self.refresh()
        if rid not in folders:
            raise WebError(404, f"no run {rid!r} here; runs: {', '.join(folders) or 'none'}")
        return folders[rid]

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for rid, p in self.refresh().items():
            try:
                size = (p / METRICS).stat().st_size
            except OSError:
                size = 0
            out.append({"id": rid, "status": run_status(p), "metrics_bytes": size,
                        "diagnostics": (p / DIAGNOSTICS).is_file(), **planned(p)})
        return out


def doctor_findings(path: Path) -> dict[str, Any]:
    """``convscope doctor RUN --json``'s findings (from diagnostics.jsonl and metrics.jsonl)."""
    from ..training.doctor import examine

    try:
        return examine(path).to_dict()
    except ConvscopeError as e:
        return {"error": str(e), "findings": []}
