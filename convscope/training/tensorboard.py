"""TensorBoard event files for a run: written live (``convscope train --tensorboard``, :class:`TensorBoardLog`)
or afterwards from the run folder (``convscope tensorboard RUN``, :func:`convert`), with the same tags:

``train/loss``, ``train/lr``, ``train/grad_norm``
    scalars per step (live: every step; converted: the steps metrics.jsonl kept, every ``log_every``).
``epoch/train_loss``, ``epoch/train_accuracy``, ``epoch/test_loss``, ``epoch/test_accuracy``, ``epoch/val_accuracy``,
``epoch/images_per_s``
    scalars per epoch, at the step that ends it.
``diagnostics/<layer>/<stat>``
    with ``--diagnose``: per epoch, a histogram of each per-layer statistic over the steps observed in that epoch
    (activation ``mean``, ``std``, ``zero_fraction``, ``dead_fraction``; weight ``weight_norm``, ``grad_norm``,
    ``update_ratio``), at the step that ends the epoch; and ``diagnostics/<layer>/update_ratio`` and
    ``.../dead_fraction`` as scalars at each observed step (``diagnostics_step/...``).
``images/first_layer_filters``, ``images/confusion``
    the first convolution's filters (each scaled by its largest absolute weight: grey 0.5 is 0) and the test
    confusion matrix: live at each epoch end (the evaluated weights); converted once, from the final weights.

The package ``tensorboard`` is optional (``pip install 'convscope[tensorboard]'``); it is imported only here.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import write_error
from ..errors import ConfigError
from ..runs import rundir as rd
from ..runs.callbacks import Callback, LoopView
from .evaluate import EvalResult

LOGDIR = "tensorboard"
STEP_KEYS = ("loss", "lr", "grad_norm")
EPOCH_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "val_accuracy", "images_per_s")
ACTIVATION_STATS = ("mean", "std", "zero_fraction", "dead_fraction")
PARAM_STATS = ("weight_norm", "grad_norm", "update_ratio")


def summary_writer(logdir: Path, purge_step: int | None = None) -> Any:
    """torch's SummaryWriter on ``logdir``, or a ConfigError saying how to install TensorBoard.
    ``purge_step``: a resumed run's step; TensorBoard drops the events at and after it from earlier files."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("TensorBoard event files need the tensorboard package, which is not installed: "
                          "pip install 'convscope[tensorboard]' (or pip install tensorboard)") from None
    if purge_step is not None:
        _sort_after_existing(logdir)
    return SummaryWriter(log_dir=str(logdir), purge_step=purge_step, flush_secs=30)


def _sort_after_existing(logdir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with its creation second
    (``events.out.tfevents.<seconds>.<host>.<pid>.<n>``). A run killed and resumed within one second (a short run)
    could write a file that sorts before the first one; TensorBoard would then read the old steps after the purge
    and show them twice or drop the new ones. Waiting for the next second (at most one) makes the new file sort last."""
    stamps = [int(part) for p in logdir.glob("events.out.tfevents.*")
              if (part := p.name.split(".")[3]).isdigit()]
    if stamps and (wait := max(stamps) + 1 - time.time()) > 0:
        time.sleep(wait)


def write_step(w: Any, rec: dict[str, Any]) -> None:
    """A step record of metrics.jsonl (``step``, ``loss``, ``lr``, ``grad_norm``) as scalars."""
    for key in STEP_KEYS:
        if rec.get(key) is not None and math.isfinite(rec[key]):
            w.add_scalar(f"train/{key}", rec[key], rec["step"])


def write_epoch(w: Any, rec: dict[str, Any]) -> None:
    """An epoch record of metrics.jsonl as scalars at the step that ends the epoch."""
    for key in EPOCH_KEYS:
        if rec.get(key) is not None and math.isfinite(rec[key]):
            w.add_scalar(f"epoch/{key}", rec[key], rec["step"])


def write_diagnostics(w: Any, diags: list[dict[str, Any]], step: int) -> None:
    """One epoch's diag records: a histogram per layer and statistic at ``step`` (the epoch's end), and the
    update/weight ratio and dead fraction as scalars at each observed step."""
    series: dict[str, list[float]] = {}
    for d in diags:
        for group, stats in (("activations", ACTIVATION_STATS), ("params", PARAM_STATS)):
            for layer, values in d.get(group, {}).items():
                for stat in stats:
                    v = values.get(stat)
                    if v is not None and math.isfinite(v):
                        series.setdefault(f"diagnostics/{layer}/{stat}", []).append(v)
                        if stat in ("update_ratio", "dead_fraction"):
                            w.add_scalar(f"diagnostics_step/{layer}/{stat}", v, d["step"])
    for tag, values in series.items():
        w.add_histogram(tag, np.asarray(values, dtype=np.float64), step)


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def filter_grid(weight: torch.Tensor, zoom: int = 8) -> torch.Tensor:
    """A conv weight (O, I, kh, kw) as one image (C, H, W) in [0, 1]: the O filters in a near-square grid, each
    scaled by its own largest |w| around grey 0.5, enlarged ``zoom`` times, 1 px apart. RGB filters of 3 input
    channels in colour; otherwise the mean over the input channels, in grey."""
    w = weight.detach().float().cpu()
    o, i, kh, kw = w.shape
    w = w if i == 3 else w.mean(1, keepdim=True)                      # (O, 1 or 3, kh, kw)
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    w = (0.5 + 0.5 * w / scale).repeat_interleave(zoom, 2).repeat_interleave(zoom, 3)
    cols = math.ceil(math.sqrt(o))
    rows = math.ceil(o / cols)
    c, h, wd = w.shape[1], kh * zoom, kw * zoom
    grid = torch.ones(c, rows * (h + 1) + 1, cols * (wd + 1) + 1)
    for k in range(o):
        r, q = divmod(k, cols)
        grid[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (wd + 1):1 + q * (wd + 1) + wd] = w[k]
    return grid


def figure_image(fig: Any) -> np.ndarray:
    """A matplotlib figure rendered to an RGB array (H, W, 3), uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def write_images(w: Any, model: nn.Module, res: EvalResult | None, classes: tuple[str, ...], step: int) -> None:
    """The first convolution's filters and the confusion matrix of ``res`` as images at ``step``."""
    conv = first_conv(model)
    if conv is not None:
        w.add_image("images/first_layer_filters", filter_grid(conv.weight), step, dataformats="CHW")
    if res is not None:
        from .report import confusion_figure

        w.add_image("images/confusion", figure_image(confusion_figure(res, classes)), step, dataformats="HWC")


class TensorBoardLog(Callback):
    """``--tensorboard``: the event files of this module's docstring, in RUN/tensorboard, as the run trains."""

    def __init__(self) -> None:
        self.writer: Any = None
        self.test: EvalResult | None = None

    def on_train_start(self, loop: LoopView) -> None:
        from ..distributed import current_world

        if current_world().is_main:
            self.writer = summary_writer(loop.path / LOGDIR, purge_step=loop.step or None)

    def on_step_end(self, loop: LoopView, result: Any) -> None:
        if self.writer is not None and result is not None:
            write_step(self.writer, {"step": loop.step - 1, "loss": result.loss, "lr": result.lr,
                                     "grad_norm": result.grad_norm})

    def on_eval(self, loop: LoopView, split: str, result: EvalResult, seconds: float) -> None:
        if split == "test":
            self.test = result

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        write_epoch(self.writer, record)
        if loop.cfg.runtime.diagnose and (loop.path / rd.DIAGNOSTICS).exists():
            diags = [d for d in rd.read_metrics(loop.path / rd.DIAGNOSTICS, torn_tail=True)
                     if d.get("kind") == "diag" and d.get("epoch") == record["epoch"]]
            write_diagnostics(self.writer, diags, record["step"])
        write_images(self.writer, loop.engine.eval_module(), self.test, loop.data.train.classes, record["step"])
        self.writer.flush()

    def on_checkpoint(self, loop: LoopView, path: Path) -> None:
        if self.writer is not None:
            self.writer.flush()

    def on_train_end(self, loop: LoopView, run: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def convert(run: str | Path, force: bool = False) -> Path:
    """Write RUN/tensorboard from a run folder trained without ``--tensorboard``: metrics.jsonl (steps, epochs),
    diagnostics.jsonl where present, and the filters and test confusion of the final weights (finished runs).
    The events go to a temporary folder renamed into place at the end. ``force``: replace an existing one."""
    return _write(_read_source(run, force))


def convert_all(runs: list[str | Path], force: bool = False) -> list[Path]:
    """:func:`convert` for several runs, every run read and checked before the first is written: a bad path
    among them (`tensorboard --force GOOD BAD`) leaves the good runs as they were, not half the set replaced."""
    return [_write(src) for src in [_read_source(r, force) for r in runs]]


def _read_source(run: str | Path, force: bool) -> tuple[Path, list[dict], list[dict], Any]:
    """The run's folder, its metrics and diagnostics and its loaded run (finished runs; else None), checked."""
    from .._check import path as check_path

    path = check_path(run, "run")
    if not (path / rd.CONFIG).exists():
        raise rd.RunError(f"{path}: no {rd.CONFIG}; not a convscope run directory")
    out = path / LOGDIR
    if os.path.lexists(out) and not force:
        raise rd.RunError(f"{out}: exists (the run was trained with --tensorboard or converted before); use --force "
                          "to write it again")
    if os.path.lexists(out):   # --force replaces event files, never a user's own files that stand there
        theirs = ([out] if not out.is_dir() or out.is_symlink() else
                  [p for p in out.rglob("*") if not p.is_dir() and not p.name.startswith("events.out.tfevents.")])
        if theirs == [out]:
            raise rd.RunError(f"{out}: is a file (or a link), not the folder of event files convscope writes; "
                              "--force replaces only that folder: move the file away first")
        if theirs:
            raise rd.RunError(f"{out}: holds {theirs[0].name!r}, which convscope did not write (it writes only "
                              "TensorBoard event files there); --force replaces only those: move it away first")
    metrics = rd.read_metrics(path / rd.METRICS, torn_tail=True) if (path / rd.METRICS).exists() else []
    rd.check_numbers(path / rd.METRICS, metrics, {"step": STEP_KEYS, "epoch": EPOCH_KEYS})   # scalars, or refused
    diags = [d for d in rd.read_metrics(path / rd.DIAGNOSTICS, torn_tail=True)
             if d.get("kind") == "diag"] if (path / rd.DIAGNOSTICS).exists() else []
    loaded = None
    if (path / rd.META).exists():
        from .run import load_run

        loaded = load_run(path)
    return path, metrics, diags, loaded


def _write(source: tuple[Path, list[dict], list[dict], Any]) -> Path:
    path, metrics, diags, loaded = source
    out = path / LOGDIR
    tmp = path / f".{LOGDIR}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    try:   # written whole or not at all: on any failure or Ctrl-C the half-written folder goes (TensorBoard
        # would list it as a run of its own)
        try:
            with _writer_thread_errors_quiet():
                _fill(tmp, metrics, diags, loaded)
        except OSError as e:   # a full disk, a size limit: the writer's error names no file
            raise write_error(out, e) from e
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        elif os.path.lexists(out):
            out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@contextlib.contextmanager
def _writer_thread_errors_quiet() -> Iterator[None]:
    """TensorBoard's writer thread prints its own traceback when a write fails (a full disk, a size limit) before
    the writer raises the same error in this thread, which says it in words: that thread's OSError is not printed
    again. Other threads' errors, and other errors, print as before."""
    before = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not issubclass(args.exc_type, OSError):
            before(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = before


def _fill(tmp: Path, metrics: list[dict], diags: list[dict], loaded: Any) -> None:
    w = summary_writer(tmp)
    try:
        last_step = 0
        for rec in metrics:
            if rec.get("kind") == "step":
                write_step(w, rec)
            elif rec.get("kind") == "epoch":
                write_epoch(w, rec)
                write_diagnostics(w, [d for d in diags if d.get("epoch") == rec["epoch"]], rec["step"])
                last_step = rec["step"]
        if loaded is not None:
            from .evaluate import evaluate
            from ..data import load

            test = load(loaded.config.data.dataset, "test", loaded.config.data.data_dir)
            res = evaluate(loaded.model, test, loaded.normalization, tta=loaded.tta, classes=loaded.classes)
            write_images(w, loaded.model, res, loaded.classes, last_step)
    finally:
        w.close()
