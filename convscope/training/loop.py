"""The training loop: epochs, steps, evaluation and checkpoint cadence, progress, stop rules and the run
directory. It drives an engine (engine.py) and tells callbacks (callbacks.py) what happens.

Randomness has four sources, all restored on resume: the per-epoch data order (a pure function of seed and
epoch), the augmentation generator and torch's global RNG used by dropout (both in the checkpoint), and
whatever the engine keeps (its state). The learning rate is a pure function of the step. A checkpoint is
written before step 1, every ``checkpoint_every`` steps and at each epoch end; a SIGKILL at any instant
leaves the last one intact, and a resumed deterministic run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .._atomic import os_error_hint
from ..data.dataset import ImageDataset
from ..distributed import World, barrier, current_world
from .._signals import stop_signals
from ..errors import ConvscopeError
from ..models import upgrade_state_dict
from ..runs import rundir as rd
from .run import Run, model_metadata
from .batches import BatchFeeder, TrainData, fingerprint
from ..runs.callbacks import Callback
from .checkpoint import STATE_VERSION, save_state, save_weights, upgrade_state
from .config import TrainConfig
from .early_stopping import BestWeights, EarlyStopping
from .engine import Engine, StepResult
from .engines import create_engine
from .distributed import sharded_evaluate
from .evaluate import EvalResult
from .progress import LoopState, Progress, epoch_line
from .setup import build_model


class TrainingInterrupted(ConvscopeError):
    """Ctrl-C or SIGTERM: the run stopped where it could and says what it kept (a checkpoint: ``--resume``
    continues). ``signum``: the signal's number; ``what``: the message without how to continue (a tune study
    says it for its trial, and continues the trial itself)."""

    def __init__(self, message: str, signum: int = signal.SIGINT, what: str | None = None) -> None:
        super().__init__(message)
        self.signum, self.what = int(signum), what or message

    @classmethod
    def signalled(cls, signum: int, what: str, hint: str = "") -> TrainingInterrupted:
        """``SIGNAME what``, then ``hint``: how to continue."""
        what = f"{signal.Signals(signum).name} {what}"
        return cls(what + hint, signum, what)


class TrainingDiverged(ConvscopeError):
    """Too many non-finite steps in a row; the last good checkpoint is intact."""


def check_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """``callbacks`` as a list, each a :class:`Callback` (a TypeError names the argument and the culprit)."""
    if isinstance(callbacks, (Callback, str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of convscope.training.Callback objects, got "
                        f"{type(callbacks).__name__}; pass callbacks=[MyCallback()]")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}]: {type(cb).__name__} is not a convscope.training.Callback; subclass "
                            "Callback and override the events it needs (on_step_end, on_epoch_end, ...)")
    return list(callbacks)


class Loop:
    """One run of a resolved config in ``path``: :meth:`run` trains (resumable), :meth:`finish` writes the
    final weights, summary, curve and manifest."""

    def __init__(self, cfg: TrainConfig, data: TrainData, path: Path, *, progress: bool = True,
                 callbacks: Sequence[Callback] = (), checkpoints: bool = True) -> None:
        self.cfg, self.data, self.path, self.checkpoints = cfg, data, path, checkpoints
        self.world: World = current_world()   # rank 0 of several (torchrun) writes every file and shows progress
        # with a validation split: the best epoch (and its weights, to end with them, under early stopping)
        self.best = BestWeights(keep_weights=bool(cfg.eval.early_stopping)) if data.val is not None else None
        patience = cfg.eval.early_stopping
        stopping = [EarlyStopping(patience, self.best)] if self.best is not None and patience else []
        self.callbacks = [*([self.best] if self.best is not None else []), *stopping, *check_callbacks(callbacks)]
        if cfg.runtime.track_sparsity:  # imported here: a run that tracks nothing never loads the inspection tools
            from ..inspect.sparsity import SparsityTracker

            self.callbacks.append(SparsityTracker())
        if cfg.runtime.diagnose:
            from .diagnostics import Diagnostics

            self.callbacks.append(Diagnostics(cfg.runtime.diagnose))
        if cfg.runtime.tensorboard:   # after Diagnostics: it reads the epoch's diagnostics when the epoch ends
            from .tensorboard import TensorBoardLog

            self.callbacks.append(TensorBoardLog())
        self.model = build_model(cfg, data)
        self.feeder = BatchFeeder(cfg, data, self.world)
        self.steps_per_epoch = self.feeder.steps_per_epoch
        self.total_steps = cfg.schedule.epochs * self.steps_per_epoch
        self.engine: Engine = create_engine(cfg, self.model, data.norm, self.steps_per_epoch, self.world)
        self.progress = Progress(progress and self.world.is_main, self.total_steps)
        self.state = LoopState()
        self.data_sha256 = fingerprint(data)

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def request_stop(self) -> None:
        """End the run after the current step: the epoch closes as usual, then :meth:`run` returns."""
        self.state.stopped_early = True

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # ---- checkpoints -----------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        metrics = self.path / rd.METRICS
        return {"version": STATE_VERSION, "engine": self.engine.state_dict(), "loop": self.state.to_dict(),
                "rng": {**self.feeder.state_dict(), "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if self.feeder.device.type == "cuda" else []},
                "metrics_bytes": metrics.stat().st_size if metrics.exists() else 0, "data_sha256": self.data_sha256,
                "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks if cb.key}}

    def save(self) -> None:
        if not self.checkpoints:
            return
        barrier(self.world)            # every rank has finished the same step: the state is the job's
        if not self.world.is_main:
            self._emit("on_checkpoint", self.path / rd.CHECKPOINT)
            return
        try:
            save_state(self.path / rd.CHECKPOINT, self.checkpoint_state())
        except OSError as e:
            raise rd.RunError(f"{self.path / rd.CHECKPOINT}: cannot save the checkpoint ({e.strerror or e}; "
                              f"{os_error_hint(e)}); then continue with --resume {self.path}") from e
        self._emit("on_checkpoint", self.path / rd.CHECKPOINT)

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's state (of any version up to today's)."""
        st = upgrade_state(state, str(self.path / rd.CHECKPOINT))
        if st["data_sha256"] is not None and st["data_sha256"] != self.data_sha256:
            raise rd.RunError(f"{self.path}: the training data differ from the data this run was trained on "
                              f"(dataset {self.cfg.data.dataset!r} changed since the checkpoint); resuming would mix "
                              "two datasets. Restore the data, or start a new run")
        self.engine.load_state_dict(st["engine"])
        self.state = LoopState.from_dict(st["loop"])
        best = st["callbacks"].get(BestWeights.key)
        if best is not None and best["weights"] is not None:   # weights saved before layers were named
            best["weights"] = upgrade_state_dict(self.model, best["weights"], "checkpoint best")
        self.feeder.load_state_dict(st["rng"])
        torch.set_rng_state(st["rng"]["torch"])
        if st["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(st["rng"]["cuda"])
        for cb in self.callbacks:
            if cb.key in st["callbacks"]:
                cb.load_state_dict(st["callbacks"][cb.key])
        metrics = self.path / rd.METRICS
        if metrics.exists() and self.world.is_main:  # drop lines written after the checkpoint: written again
            rd.warn_cut_log(metrics, rd.cut_log(metrics, st["metrics_bytes"]))

    def _metric(self, record: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        try:
            with open(self.path / rd.METRICS, "a") as f:
                # a diverged run's NaN loss is written as null (JSON has no NaN; strict parsers refuse it)
                f.write(json.dumps(rd.json_safe(record), allow_nan=False) + "\n")
        except OSError as e:
            raise rd.RunError(f"{self.path / rd.METRICS}: cannot write ({e.strerror or e}; {os_error_hint(e)}); "
                              f"then continue with --resume {self.path}") from e

    # ---- the loop --------------------------------------------------------------------------------------
    def _step(self, order: torch.Tensor) -> tuple[int, StepResult | None]:
        """One batch through the engine, its bookkeeping and metrics line: (images, the engine's result)."""
        cfg, st = self.cfg, self.state
        x, y = self.feeder.batch(order, st.batch)
        result = self.engine.train_step(x, y, st.step)
        if result is None:
            st.skipped += 1
            st.bad_streak += 1
            if st.bad_streak >= cfg.runtime.max_bad_steps:
                raise TrainingDiverged(
                    f"{st.bad_streak} non-finite steps in a row at step {st.step} (loss or gradients are inf/NaN); "
                    f"lower --lr or set --grad-clip. The last good checkpoint is intact in {self.path / rd.CHECKPOINT}")
        else:
            st.bad_streak = 0
            n = len(y) * self.world.size   # result holds the global batch's loss and correct count
            st.acc["loss"] += result.loss * n
            st.acc["correct"] += result.correct
            st.acc["seen"] += n
            if st.step % cfg.runtime.log_every == 0:
                self._metric({"kind": "step", "step": st.step, "epoch": st.epoch, "loss": result.loss,
                              "lr": result.lr, "grad_norm": result.grad_norm})
        st.step += 1
        st.batch += 1
        return len(y) * self.world.size, result   # the global batch (equal parts on every rank)

    def _evaluate(self, split: str, dataset: ImageDataset) -> EvalResult:
        t = time.perf_counter()
        res = self.engine.evaluate(dataset)
        self._emit("on_eval", split, res, time.perf_counter() - t)
        return res

    def _end_epoch(self, seconds: float, images: int) -> None:
        st = self.state
        test = self._evaluate("test", self.data.test)
        record = {"kind": "epoch", "epoch": st.epoch + 1, "step": st.step,
                  "train_loss": st.acc["loss"] / max(1, st.acc["seen"]),
                  "train_accuracy": st.acc["correct"] / max(1, st.acc["seen"]),
                  "test_accuracy": test.accuracy, "test_loss": test.loss, "seconds": round(st.elapsed, 3),
                  "images_per_s": round(images / max(seconds, 1e-9), 1), "skipped_steps": st.skipped}
        if self.data.val is not None:
            record["val_accuracy"] = self._evaluate("val", self.data.val).accuracy
        self._emit("on_epoch_end", record)   # BestWeights and EarlyStopping first: they may end the run
        st.history.append(record)
        self._metric(record)
        st.acc = {"loss": 0.0, "correct": 0, "seen": 0}
        st.epoch += 1
        st.batch = 0

    def run(self) -> None:
        cfg, st = self.cfg, self.state
        self._emit("on_train_start")
        def epoch() -> str:   # the bar's name: the epoch running (a run resumed after its last epoch: that one)
            return f"epoch {min(st.epoch + 1, cfg.schedule.epochs)}/{cfg.schedule.epochs}"

        with stop_signals(term=self.world.size == 1) as interrupted, self.progress.bar(st.step, epoch()) as bar:
            try:
                self._epochs(interrupted, bar, epoch)
            except KeyboardInterrupt as e:   # a second signal (stop_signals): out at once, mid-step
                if type(e) is not KeyboardInterrupt or not interrupted[0]:
                    raise
                raise TrainingInterrupted.signalled(
                    interrupted[0], "twice: stopped at once, without saving the step it was in",
                    f"; continue from the last checkpoint with: convscope train --resume {self.path}") from None

    def _epochs(self, interrupted: list[int], bar: Any, epoch: Callable[[], str]) -> None:
        cfg, st = self.cfg, self.state
        while st.epoch < cfg.schedule.epochs and not st.stopped_early:
            order = self.feeder.order(st.epoch)
            bar.set_description(epoch())
            t_epoch, images = time.perf_counter(), 0
            while st.batch < self.steps_per_epoch and not st.stopped_early:
                self._emit("on_step_start")
                t0 = time.perf_counter()
                n, result = self._step(order)
                images += n
                st.elapsed += time.perf_counter() - t0
                self._emit("on_step_end", result)
                self.progress.step(bar, st.acc, images, t_epoch)
                if interrupted[0]:
                    self.save()
                    raise self._interrupted(interrupted[0])
                if st.step % cfg.runtime.checkpoint_every == 0 and st.batch < self.steps_per_epoch:
                    self.save()
            self._end_epoch(time.perf_counter() - t_epoch, images)
            self.save()
            self.progress.write(bar, epoch_line(st.history[-1], cfg.schedule.epochs))
            if interrupted[0]:   # it came during the epoch's evaluation or save (the last epoch's too): saved
                raise self._interrupted(interrupted[0])

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        return TrainingInterrupted.signalled(signum, f"at step {self.state.step}; checkpoint saved",
                                             f". Continue with: convscope train --resume {self.path}")

    def finish(self) -> Run:
        """Final weights (the best validation epoch's, with early stopping), summary, curve, manifest."""
        # Ctrl-C or SIGTERM while the results are written waits for them (a second one stops at once): a run
        # stopped here would be left without its weights or summary, and a kill would leave its lock behind
        with stop_signals(term=self.world.size == 1) as interrupted:
            run = self._results()
        if interrupted[0]:
            raise TrainingInterrupted.signalled(interrupted[0], f"while the run wrote its results; they were written "
                                                f"first: {self.path} is complete")
        self._emit("on_train_end", run)
        return run

    def _results(self) -> Run:
        from .curves import plot_curves

        cfg, st, data = self.cfg, self.state, self.data
        self.model.load_state_dict(self.engine.export_weights())
        if self.best is not None and self.best.weights is not None:   # early stopping: the best epoch's weights
            self.model.load_state_dict(self.best.weights)
        # the final figure in fp32, as `convscope eval` and inference compute it (epochs may evaluate in bf16)
        test = sharded_evaluate(self.model, data.test, data.norm, self.world, tta=cfg.eval.tta)
        shape = data.train.shape
        meta = model_metadata(self.model, cfg, data.norm, data.train.classes, shape)
        meta["tta"] = cfg.eval.tta  # predictions average the mirror too (resolved: trained with flips, flips allowed)
        summary = {
            "test_accuracy": test.accuracy, "test_loss": test.loss, "non_finite_test_scores": test.non_finite,
            "epochs": st.epoch, "steps": st.step,
            "seconds": round(st.elapsed, 3), "skipped_steps": st.skipped, "stopped_early": st.stopped_early,
            "best_val_accuracy": self.best.val_accuracy if self.best is not None else None,
            "best_val_epoch": self.best.epoch if self.best is not None else None,
            "train_images": len(data.train), "test_images": len(data.test),
            "device": cfg.runtime.device, "bf16": cfg.runtime.precision == "bf16", "threads": torch.get_num_threads(),
            "per_class_accuracy": dict(zip(data.train.classes, test.per_class)),
        }
        try:
            if self.world.is_main:
                save_weights(self.path / rd.WEIGHTS, self.model.state_dict(), {"model": meta["model"]})
                rd.write_json(self.path / rd.SUMMARY, rd.json_safe(summary))
                plot_curves(st.history, self.path / rd.CURVE, title=f"{cfg.model.name} on {cfg.data.dataset}",
                            train_label="train (label-smoothed)" if cfg.optim.label_smoothing else "train")
                meta = rd.write_manifest(self.path, meta)   # with the files' digests, as load_run gives it
        except OSError as e:
            raise rd.RunError(f"{getattr(e, 'filename', None) or self.path}: cannot write the run's results "
                              f"({e.strerror or e}; {os_error_hint(e)})") from e
        barrier(self.world)   # the run directory is complete before any rank returns
        self.model.eval()
        run = Run(self.path, self.model, cfg, data.norm, data.train.classes, shape, summary, meta)
        return run
