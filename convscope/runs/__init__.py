"""The run directory: what training writes and every other tool reads.

Its layout and reader/writer (rundir.py: file names, new/locked folders, JSON and metrics, the model of a run
checked against model.json's SHA-256), the one-process lock (lock.py), the defensive JSON readers and the
model.json structure check (manifest.py), and the callback protocol of a run's events (callbacks.py).
``convscope.training.load_run`` adds the training config to :func:`load_run_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and the API docs; at run time each name is imported on first use
    from .callbacks import Callback, LoopView
    from .lock import RunLock, RunLocked
    from .manifest import check_manifest, read_json_file
    from .rundir import RunError, RunModel, load_run_model, read_json, read_metrics

__all__ = ["Callback", "LoopView", "RunError", "RunLock", "RunLocked", "RunModel", "check_manifest", "load_run_model",
           "read_json", "read_json_file", "read_metrics"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Callback": ".callbacks", "LoopView": ".callbacks", "RunLock": ".lock", "RunLocked": ".lock",
    "check_manifest": ".manifest", "read_json_file": ".manifest", "RunError": ".rundir", "RunModel": ".rundir",
    "load_run_model": ".rundir", "read_json": ".rundir", "read_metrics": ".rundir"
})
