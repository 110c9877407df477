"""Diagnostics while training (``--diagnose [N]``): per-layer statistics every N steps, in the run's
``diagnostics.jsonl``, which ``convscope doctor`` reads.

On every N-th optimizer step (0, N, 2N, ...; step 0 always, for the initial loss) the callback observes the
training forward pass through scoped hooks (:func:`convscope.inspect.hooks.capture`, removed after the step)
and the weights before and after the update. It only reads tensors: the trained weights are bit-identical with
and without it (tests/training/test_diagnostics.py).

The file: one JSON object a line, appended and flushed as the run goes (``version`` 1). Non-finite floats are
written as null (JSON has no NaN), with the keys listed under ``non_finite``, as in metrics.jsonl.

``{"kind": "header", ...}``
    first line: ``version``, ``every`` (N), ``classes`` (C), ``expected_initial_loss`` (ln C, the
    cross-entropy of a uniform prediction, label smoothing or not), ``steps_per_epoch``, ``total_steps``,
    ``activation_layers`` and ``param_layers`` (named_modules() names).
``{"kind": "diag", ...}``
    one per observed step: ``step`` (0-based index of the step), ``epoch`` (1-based epoch it belongs to),
    ``lr``, ``loss`` (the batch's training loss, before the update; null if the step was skipped as
    non-finite), ``grad_norm`` (global, before clipping), ``seconds`` (time the diagnostics took so far),
    ``activations``: {layer: {``mean``, ``std`` (of the finite values), ``zero_fraction`` (exact zeros),
    ``dead_fraction`` (units — (channel, y, x) or features — zero on every image of the batch),
    ``dead_channel_fraction`` (channels zero at every position on every image), ``nonfinite_fraction``}}
    for each activation module (ReLU and relatives) on this process's training batch, in training mode;
    ``params``: {layer: {``weight_norm``, ``grad_norm`` (of the weight's gradient after clipping, as the
    optimizer used it), ``update_ratio`` (‖w_after − w_before‖ / ‖w_before‖ of this step: the Karpathy
    update/weight ratio, momentum and weight decay included), ``nonfinite_fraction`` (of weight and gradient)}}
    for each layer whose weight is a matrix or a filter bank (conv, linear; not norm layers).
``{"kind": "nonfinite", ...}``
    the first step of each run of non-finite (skipped) steps: ``step``, ``epoch``, and the last finite step
    before it: ``last_finite_step``, ``last_loss``, ``last_grad_norm``.

Crash safety: every line is appended whole and flushed; the checkpoint records the file's length, and a
resumed run cuts the file back to it (as metrics.jsonl), so lines are never duplicated. A reader skips a torn
last line (``convscope.runs.read_metrics(path, torn_tail=True)``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..distributed import current_world
from ..models.layers import default_activation_layers
from ..runs import rundir as rd
from ..runs.callbacks import Callback, LoopView

VERSION = 1
DEFAULT_EVERY = 10


def param_layers(model: nn.Module) -> dict[str, nn.Parameter]:
    """Each layer whose own ``weight`` is a trainable matrix or filter bank (conv, linear), by module name."""
    out = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if name and isinstance(w, nn.Parameter) and w.requires_grad and w.dim() >= 2:
            out[name] = w
    return out


def activation_stats(a: torch.Tensor) -> dict[str, float]:
    """Statistics of one layer's output ``a`` (B, C, ...) or (B, F) on one batch (reads ``a``, never writes)."""
    a = a.detach().float()
    finite = torch.isfinite(a)
    n_bad = a.numel() - int(finite.sum())
    vals = a if n_bad == 0 else a[finite]
    alive = (a != 0).any(0)                                   # (C, ...) unit non-zero on some image
    channel_alive = alive.reshape(alive.shape[0], -1).any(1)  # (C,)
    return {"mean": float(vals.mean()) if vals.numel() else math.nan,
            "std": float(vals.std()) if vals.numel() > 1 else math.nan,
            "zero_fraction": float((a == 0).float().mean()),
            "dead_fraction": 1.0 - float(alive.float().mean()),
            "dead_channel_fraction": 1.0 - float(channel_alive.float().mean()),
            "nonfinite_fraction": n_bad / max(1, a.numel())}


def header(model: nn.Module, classes: int, every: int, steps_per_epoch: int, total_steps: int) -> dict[str, Any]:
    """The header record of diagnostics.jsonl for ``model`` trained on ``classes`` classes."""
    return {"kind": "header", "version": VERSION, "every": every, "classes": classes,
            "expected_initial_loss": math.log(classes), "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps, "activation_layers": default_activation_layers(model),
            "param_layers": list(param_layers(model))}


class StepProbe:
    """Observes one training step of ``model``: made before the step (hooks on the activation layers, a copy of
    each weight), :meth:`finish` after it returns the step's ``activations`` and ``params`` statistics, as a
    diag record holds them. Used by :class:`Diagnostics` and by the sanity check (training/sanity.py)."""

    def __init__(self, model: nn.Module) -> None:
        from ..inspect.hooks import capture

        self.model = model
        self.acts: dict[str, dict[str, float]] = {}
        self.before = {n: w.detach().clone() for n, w in param_layers(model).items()}

        def observe(name: str, out: torch.Tensor) -> None:
            if model.training and name not in self.acts:   # the training forward only, not an evaluation
                self.acts[name] = activation_stats(out)

        self._stack: contextlib.ExitStack | None = contextlib.ExitStack()
        # once=False: training statistics of a reused module are its first call's (name not in self.acts), and a
        # model that reuses one must still train; only the tools that report a layer's activations refuse it
        self._stack.enter_context(capture(model, default_activation_layers(model), observe, once=False))

    def close(self) -> None:
        """Remove the hooks (idempotent)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def finish(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float | None]]]:
        """(activations, params) of the observed step; the hooks are removed."""
        self.close()
        params: dict[str, dict[str, float | None]] = {}
        for name, p in param_layers(self.model).items():
            w, g, before = p.detach(), p.grad, self.before[name]
            w_norm, b_norm = float(w.float().norm()), float(before.float().norm())
            bad = int((~torch.isfinite(w)).sum()) + (int((~torch.isfinite(g)).sum()) if g is not None else 0)
            params[name] = {"weight_norm": w_norm,
                            "grad_norm": float(g.float().norm()) if g is not None else None,
                            "update_ratio": float((w.float() - before.float()).norm()) / b_norm if b_norm > 0
                            else None,
                            "nonfinite_fraction": bad / (w.numel() * (2 if g is not None else 1))}
        return self.acts, params


class Diagnostics(Callback):
    """Writes ``diagnostics.jsonl`` (the module's docstring describes it) every ``every`` steps of a run."""

    key = "diagnostics"

    def __init__(self, every: int = DEFAULT_EVERY) -> None:
        self.every = every
        self.restored_bytes: int | None = None   # the file's length at the checkpoint a resumed run starts from
        self.last: dict[str, Any] = {"step": None, "loss": None, "grad_norm": None}   # last finite step
        self.in_bad_streak = False
        self.seconds = 0.0
        self._probe: StepProbe | None = None
        self._path: Path | None = None            # the file, once the run has started

    # ---- file ------------------------------------------------------------------------------------------
    def _file(self, loop: LoopView) -> Path:
        return loop.path / rd.DIAGNOSTICS

    def _write(self, loop: LoopView, record: dict[str, Any]) -> None:
        if not current_world().is_main:
            return
        try:
            with open(self._file(loop), "a") as f:
                f.write(json.dumps(rd.json_safe(record), allow_nan=False) + "\n")
        except OSError as e:
            raise rd.RunError(f"{self._file(loop)}: cannot write ({e.strerror or e})") from e

    def on_train_start(self, loop: LoopView) -> None:
        if not current_world().is_main:
            return
        path = self._path = self._file(loop)
        if self.restored_bytes is not None and path.exists():   # resumed: drop lines written after the checkpoint
            rd.warn_cut_log(path, rd.cut_log(path, self.restored_bytes))
        elif self.restored_bytes is None:   # a fresh run (or one killed before its first checkpoint)
            path.unlink(missing_ok=True)
        if path.exists() and path.stat().st_size > 0:
            return
        self._write(loop, header(self._model(loop), len(loop.data.train.classes), self.every,
                                 loop.total_steps // max(1, loop.cfg.schedule.epochs or 1), loop.total_steps))

    # ---- the observed step -----------------------------------------------------------------------------
    @staticmethod
    def _model(loop: LoopView) -> nn.Module:
        return loop.engine.model   # the trained module (not the weight average), whose forward the step runs

    def on_step_start(self, loop: LoopView) -> None:
        if loop.step % self.every:
            return
        t = time.perf_counter()
        self._probe = StepProbe(self._model(loop))
        self.seconds += time.perf_counter() - t

    def on_step_end(self, loop: LoopView, result: Any) -> None:
        step = loop.step - 1   # the step that just ran
        if result is None and not self.in_bad_streak:
            self._write(loop, {"kind": "nonfinite", "step": step, "epoch": self._epoch(loop, step),
                               "last_finite_step": self.last["step"], "last_loss": self.last["loss"],
                               "last_grad_norm": self.last["grad_norm"]})
        self.in_bad_streak = result is None
        if result is not None:
            self.last = {"step": step, "loss": result.loss, "grad_norm": result.grad_norm}
        if self._probe is None:
            return
        t = time.perf_counter()
        acts, params = self._probe.finish()
        self._probe = None
        self.seconds += time.perf_counter() - t
        self._write(loop, {"kind": "diag", "step": step, "epoch": self._epoch(loop, step),
                           "lr": result.lr if result is not None else None,
                           "loss": result.loss if result is not None else None,
                           "grad_norm": result.grad_norm if result is not None else None,
                           "seconds": round(self.seconds, 4), "activations": acts, "params": params})

    def on_train_end(self, loop: LoopView, run: Any) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    @staticmethod
    def _epoch(loop: LoopView, step: int) -> int:
        per_epoch = loop.total_steps // max(1, loop.cfg.schedule.epochs or 1)
        return step // max(1, per_epoch) + 1

    # ---- checkpoint ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        path = self._path
        size = path.stat().st_size if path is not None and path.exists() else 0
        return {"bytes": size, "last": dict(self.last), "in_bad_streak": self.in_bad_streak, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored_bytes = int(state["bytes"])
        self.last, self.in_bad_streak = dict(state["last"]), bool(state["in_bad_streak"])
        self.seconds = float(state["seconds"])
