"""The Draw page's audit button: the trust audit of ``convscope explain RUN --audit`` (the same library function,
:func:`convscope.inspect.audit_files.write_audit`, so the same files, written the same way into ``RUN/inspect``)
run on the server in the background, one at a time per run, with its progress kept here so that a reloaded page
finds it again; when it is done the page's verdict labels come from the new ``audit.json``.

It costs minutes on two cores, so the button says how many first: the estimate is this model's time for one
forward + backward pass per image (measured here, once per run) times each method's cost in such passes
(:data:`PASSES`, measured by ``bench/audit_estimate.py``), times the images.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from typing import Any

import torch

from .._atomic import writable_folder
from .._check import integer
from ..errors import ConvscopeError
from ..inspect.audit_files import audit_rows_names, write_audit
from . import compute
from .explain import AUDIT, audit_verdicts
from .runs import RunEntry
from .security import WebError
from .units import NICE, Stopped, _refuse_when_stopping

DEFAULT_IMAGES = 500     # `convscope explain --audit`'s default --limit

# Cost of each row of the audit in forward + backward passes of the model per image (deletion/insertion,
# the randomization cascade and the method's own passes together), measured on the main job's model (fast2,
# 28 x 28 digits) by bench/audit_estimate.py (bench/results/audit_estimate_calibration.json, 40 images).
PASSES = {"saliency": 86, "smoothgrad": 224, "integrated_gradients": 310, "gradcam": 121, "occlusion": 709,
          "guided_gradcam": 56, "guided_backprop": 44, "deconvnet": 30, "control: image": 38, "control: edges": 52,
          "control: random": 24}
FALLBACK_PASSES = 100   # a row not measured by the benchmark (none today)


def pass_seconds(entry: RunEntry, batch: int = 32) -> float:
    """Seconds of one forward + backward pass per image of this run's model (a copy), on ``batch`` test images
    (or zeros without the test split); measured once per run, best of three."""
    def measure() -> float:
        run = entry.run
        model = copy.deepcopy(run.model).eval()
        try:
            images = compute.test_dataset(run).images[:batch]
        except ConvscopeError:
            images = torch.zeros(batch, *run.input_shape, dtype=torch.uint8)
        x = run.preprocess(images)
        best = float("inf")
        for _ in range(3):
            xi = x.clone().requires_grad_(True)
            t0 = time.perf_counter()
            model(xi).max(1).values.sum().backward()
            best = min(best, time.perf_counter() - t0)
        return best / len(x)
    with entry.lock:
        if "pass_seconds" in entry.cache:
            return entry.cache["pass_seconds"]
    value = measure()
    with entry.lock:
        return entry.cache.setdefault("pass_seconds", value)


def row_seconds(entry: RunEntry, images: int) -> dict[str, float]:
    """The estimated seconds of each row of the audit of ``images`` images."""
    t = pass_seconds(entry)
    return {name: images * t * PASSES.get(name, FALLBACK_PASSES) for name in audit_rows_names()}


def writable(entry: RunEntry) -> str | None:
    """None when ``RUN/inspect`` takes a write now (or, before it exists, the run folder: looking creates
    nothing); else why not."""
    folder = entry.path / AUDIT.parent
    try:
        writable_folder(folder if folder.exists() else entry.path, f"the run folder {entry.path}")
    except ConvscopeError as e:
        return f"{e}. The audit writes {AUDIT} into the run folder: make it writable, or copy the run somewhere " \
               "writable and serve the copy"
    return None


class AuditJobs:
    """At most one audit per run, each in its own thread (below the requests' priority); their progress."""

    def __init__(self, runs: dict[str, RunEntry]) -> None:
        self.runs = runs
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []

    def status(self, entry: RunEntry) -> dict[str, Any]:
        """``state``: idle (no audit started by this server), running, done or failed; progress and estimate;
        whether the run folder takes the audit's files; the verdicts of the audit.json now in the run."""
        with self._lock:
            job = dict(self._jobs.get(entry.id, {"state": "idle"}))
        n_test = _test_images(entry)
        out: dict[str, Any] = {**job, "default_images": min(DEFAULT_IMAGES, n_test), "test_images": n_test,
                               "readonly": writable(entry),
                               "seconds_per_image": round(sum(row_seconds(entry, 1).values()), 4) if n_test else None}
        if job["state"] == "running":
            done = sum(job["row_estimates"][r] for r in job["rows_done"])
            now = time.monotonic()
            elapsed = now - job["t0"]
            current = job["row_estimates"].get(job["current"], 0.0)
            in_row = min(now - job["row_t0"], 0.95 * current)            # this row's estimate, not beyond it
            out["elapsed"] = round(elapsed, 1)
            out["fraction"] = round(min(0.99, (done + in_row) / job["estimate"]), 4)
            # what is left, at the pace of the finished rows (the estimate before the first one)
            pace = (job["row_t0"] - job["t0"]) / done if done else 1.0
            out["left"] = round(max(0.0, (job["estimate"] - done - in_row) * pace), 1)
        for k in ("t0", "row_t0", "row_estimates"):
            out.pop(k, None)
        out["verdicts"] = audit_verdicts(entry.path)
        return out

    def start(self, entry: RunEntry, images: Any) -> dict[str, Any]:
        """Start the audit of the first ``images`` test images: refused while one runs for this run (409), on a
        run folder that takes no write (403), without the test split (400)."""
        n_test = _test_images(entry)
        if not n_test:
            raise WebError(400, f"the audit needs the {entry.run.config.data.dataset!r} test split, which is not on "
                                "this machine; `convscope data download` fetches it")
        images = integer(images, "images", 1, n_test, fix=f"the audit reads the first 1 to {n_test:,} images of the "
                                                          f"test split (the CLI's default is {DEFAULT_IMAGES})")
        why = writable(entry)
        if why:
            raise WebError(403, f"cannot audit here: {why}")
        rows = row_seconds(entry, images)
        with self._lock:
            if self._jobs.get(entry.id, {}).get("state") == "running":
                raise WebError(409, f"an audit of {entry.id} is already running (started by this server); wait "
                                    "for it: one at a time per run")
            now = time.monotonic()
            names = audit_rows_names()
            self._jobs[entry.id] = {"state": "running", "images": images, "rows": names, "rows_done": [],
                                    "current": names[0], "estimate": round(sum(rows.values()), 1),
                                    "row_estimates": rows, "t0": now, "row_t0": now}
            t = threading.Thread(target=self._run, args=(entry, images), name=f"convscope-audit-{entry.id}",
                                 daemon=True)
            self._threads.append(t)
        t.start()
        return self.status(entry)

    def _set(self, rid: str, **kw: Any) -> None:
        with self._lock:
            self._jobs[rid].update(kw)

    def _run(self, entry: RunEntry, images: int) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)   # the requests come first
        except (AttributeError, OSError):
            pass
        rid = entry.id
        try:
            run = entry.run
            ds = compute.test_dataset(run)
            model = copy.deepcopy(run.model).eval()       # its own: the served model keeps serving
            model.register_forward_pre_hook(_refuse_when_stopping)   # a stopping server ends it at the next pass
            x = run.preprocess(ds.images[:images])

            def on_row(row) -> None:
                with self._lock:
                    job = self._jobs[rid]
                    job["rows_done"] = [*job["rows_done"], row.method]
                    left = [r for r in job["rows"] if r not in job["rows_done"]]
                    job["current"] = left[0] if left else ""
                    job["row_t0"] = time.monotonic()

            write_audit(model, x, entry.path / AUDIT.parent, dataset=ds.name, split=ds.split, on_row=on_row)
            with self._lock:
                self._jobs[rid].update(state="done", current="",
                                       seconds=round(time.monotonic() - self._jobs[rid]["t0"], 1))
        except Stopped:
            self._set(rid, state="failed", error="the server stopped")
        except Exception as e:      # shown on the page; the finished rows stay in audit.json (complete: false)
            self._set(rid, state="failed", error=f"{type(e).__name__}: {e}")

    def stop(self, timeout: float = 10.0) -> None:
        """Wait for the audit threads (the unit work's stop has told every background forward to end)."""
        for t in list(self._threads):
            t.join(timeout)


def _test_images(entry: RunEntry) -> int:
    """The size of the run's test split (0 without it), read once per run."""
    with entry.lock:
        if "test_images" in entry.cache:
            return entry.cache["test_images"]
    try:
        n = len(compute.test_dataset(entry.run))
    except ConvscopeError:
        n = 0
    with entry.lock:
        return entry.cache.setdefault("test_images", n)
