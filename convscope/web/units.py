"""Unit pages that answer at once: every served run's top-k images and sparsity are computed for all its
feature-map layers in one background thread when the server starts (two passes over the test split per run,
instead of two per layer on the first visit), and each unit's own feature visualization and projections are
computed there on demand.

The thread works on its own copy of each model, so its hooks never meet those of a live Draw-page forward, and
runs at a lower scheduling priority than the request threads. A unit page asked for before its run is ready
moves that run to the front of the queue.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..errors import ConvscopeError
from ..inspect import activation_sparsity, topk
from . import compute, pictures
from .runs import RunEntry

PROJECT_K = 4        # top activations projected per unit (the CLI's default)
NICE = 5             # the background thread's priority below the request threads'


class Stopped(Exception):
    """The server is stopping: background work ends at the next forward."""


_STOPPING = threading.Event()


def _refuse_when_stopping(module, args) -> None:
    if _STOPPING.is_set():
        raise Stopped("the server is stopping")


def _analysis_model(entry: RunEntry):
    """A copy of the run's model for background work (its own hooks; the served model keeps serving). Every
    forward of it checks whether the server is stopping, so a pass over the test split ends within one batch
    (a thread still inside torch when the interpreter exits aborts the process)."""
    def make():
        m = copy.deepcopy(entry.run.model).eval()
        m.register_forward_pre_hook(_refuse_when_stopping)
        return m
    return entry.cached("analysis_model", make)


def precompute(entry: RunEntry, progress: Callable[[str], None] = lambda s: None) -> int:
    """Fill ``entry``'s cache with what unit pages read (``("topk", layer)``, ``("sparsity", layer)``, fields)
    for every feature-map layer at once; returns the number of layers. A run without its test split has
    nothing to precompute (its unit pages say so)."""
    run = entry.run
    names = [li["name"] for li in compute.shown_layers(entry)]
    entry.cached("fields", lambda: compute._fields(run))
    try:
        ds = compute.test_dataset(run)
    except ConvscopeError:
        return len(names)
    model = _analysis_model(entry)
    progress(f"top-{compute.TOPK} test images of {len(names)} layers (pass 1 of 2)")
    recs = topk(model, ds, names, k=compute.TOPK, norm=run.normalization)
    progress(f"sparsity of {len(names)} layers (pass 2 of 2)")
    sparsity = {s.name: s for s in activation_sparsity(model, ds, run.normalization, names)}
    with entry.lock:
        for name in names:
            entry.cache.setdefault(("topk", name), {name: recs[name]})
            entry.cache.setdefault(("sparsity", name), [sparsity[name]])
    return len(names)


class UnitWork:
    """One background thread: on-demand jobs first, then the runs still to precompute (next one first)."""

    def __init__(self, runs: dict[str, RunEntry], log: Callable[[str], None] | None = None) -> None:
        self.runs = runs
        self.state: dict[str, dict[str, Any]] = {}
        self._cv = threading.Condition()
        self._pending: list[str] = []
        self._jobs: deque[tuple[Callable[[], Any], Future]] = deque()
        self._log = log or (lambda s: print(s, file=sys.stdout, flush=True))
        self._started = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> UnitWork:
        with self._cv:
            self._pending = list(self.runs)
            self.state = {rid: {"state": "queued", "step": "waiting for its turn"} for rid in self._pending}
        self._started = time.perf_counter()
        _STOPPING.clear()
        self._thread = threading.Thread(target=self._loop, name="convscope-units", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End the background thread (at the next batch of a pass) and wait for it: called at server shutdown."""
        _STOPPING.set()
        with self._cv:
            self._pending.clear()
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self, rid: str) -> dict[str, Any]:
        """``state``: queued, computing, ready (or ``failed`` with ``error``); ``step`` says what it does now."""
        with self._cv:
            return dict(self.state.get(rid, {"state": "ready", "step": ""}))   # not queued: computed on first use

    def add(self, rid: str) -> None:
        """A run that appeared (or finished) after the server started: precompute it too, after those queued."""
        with self._cv:
            if self._thread is None or rid in self.state:    # precompute off, or already known
                return
            self._pending.append(rid)
            self.state[rid] = {"state": "queued", "step": "waiting for its turn"}
            self._cv.notify()
        self._log(f"convscope: new run {rid}: computing its unit pages in the background")

    def prioritize(self, rid: str) -> None:
        with self._cv:
            if rid in self._pending:
                self._pending.remove(rid)
                self._pending.insert(0, rid)

    def submit(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._cv:
            self._jobs.append((fn, fut))
            self._cv.notify()
        return fut

    def _set(self, rid: str, **kw: Any) -> None:
        with self._cv:
            self.state[rid] = {**self.state.get(rid, {}), **kw}

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)   # Linux: this thread only
        except (AttributeError, OSError):
            pass
        announced = False
        while True:
            with self._cv:
                while not self._jobs and not self._pending:
                    if _STOPPING.is_set():
                        return
                    if not announced:
                        announced = True
                        self._log(f"convscope: unit pages ready for {len(self.runs)} run(s) "
                                  f"({time.perf_counter() - self._started:.1f} s)")
                    self._cv.wait()
                job = self._jobs.popleft() if self._jobs else None
                rid = None if job else self._pending.pop(0)
            if job is not None:
                fn, fut = job
                if fut.set_running_or_notify_cancel():
                    try:
                        fut.set_result(fn())
                    except BaseException as e:   # handed to the request that waits for it
                        fut.set_exception(e)
                continue
            t = time.perf_counter()
            self._set(rid, state="computing", step="loading the run")
            try:
                n = precompute(self.runs[rid], lambda s, rid=rid: self._set(rid, step=s))
            except Stopped:
                return
            except Exception as e:   # the unit page computes on demand and shows the error there
                self._set(rid, state="failed", step="", error=f"{type(e).__name__}: {e}")
                self._log(f"convscope: unit pages of {rid}: precomputing failed ({e}); they compute on first visit")
                continue
            self._set(rid, state="ready", step="", seconds=round(time.perf_counter() - t, 2))
            self._log(f"convscope: unit pages of {rid} ready ({n} layers, {time.perf_counter() - t:.1f} s)")


def _uri(img_rgb) -> str:
    return pictures.data_uri(pictures.png_bytes(pictures.enlarge(img_rgb, 140)))


def unit_visualization(entry: RunEntry, layer: str, ch: int) -> dict[str, Any]:
    """This unit's own feature visualization (activation maximization, the CLI's default settings) and the test
    image that activates it most, by the same measure."""
    from ..inspect.visualize import visualize

    run = entry.run
    try:
        ds = compute.test_dataset(run)
    except ConvscopeError:
        ds = None
    v = visualize(_analysis_model(entry), layer, [ch], ds, norm=run.normalization, input_shape=run.input_shape)
    out = {"image": _uri(pictures.gray_rgb(v.images[0])), "value": v.values[0], "measure": v.measure,
           "steps": v.settings.get("steps"), "natural": None}
    if v.natural_indices is not None:
        i = v.natural_indices[0]
        out["natural"] = {"index": i, "value": v.natural_values[0],
                          "image": _uri(pictures.gray_rgb(ds.images[i].numpy()))}
    return out


def unit_projection(entry: RunEntry, layer: str, ch: int) -> dict[str, Any]:
    """Deconvnet and guided-backprop projections of this unit's top PROJECT_K test activations, each cropped to
    the unit's receptive field beside the image patch (Zeiler and Fergus, figure 2)."""
    from ..inspect.projection import projections
    from ..inspect.viz_pictures import _crop, _signed

    run = entry.run
    ds = compute.test_dataset(run)
    p = projections(_analysis_model(entry), ds, layer, [ch], PROJECT_K, run.normalization)
    rows = []
    for j, rec in enumerate(p.records[0]):
        box = p.boxes[0][j]
        img = ds.images[rec.index].numpy()
        maps = [(_signed(_crop(m[0, j], box, 0.0)) * 255).round().astype("uint8") for m in (p.deconvnet, p.guided)]
        rows.append({"index": rec.index, "value": rec.value, "patch": _uri(pictures.patch(img, box)),
                     "deconvnet": _uri(pictures.gray_rgb(maps[0])), "guided": _uri(pictures.gray_rgb(maps[1]))})
    return {"records": rows}
