"""The worker: the loop one process runs, taking trials until the study has its finished trials, and each
trial as an ordinary convscope run that reports its validation accuracy to Optuna through a callback.

Counting. ``--trials N`` counts finished trials (COMPLETE and PRUNED). A worker starts a trial only while
finished + running + queued trials number fewer than N; when two workers ask at the same instant for the last
place, the one with the higher trial number sees the other and gives its place up (its trial is marked FAIL
with ``surplus`` and never trained). A worker then waits while others' trials run, and takes over a trial queued
again after its worker died, so the study ends with exactly N finished trials.

Dead workers. Each worker holds an exclusive ``flock`` on ``STUDY/workers/<host>-<pid>.lock`` for its lifetime
(the kernel drops it when the process dies, SIGKILL included) and records it on every trial it runs. A RUNNING
trial of this host whose lock is free has lost its worker: it is marked FAIL and queued again with the same
parameters (Optuna's RetryHeartbeatStaleTrialCallback). The retry continues the dead trial's run folder from its last
checkpoint (``convscope train --resume``), re-reporting the epochs already done, so no work is lost and no trial
is counted twice. Trials of other machines are recovered by Optuna's heartbeat after its grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._progress import counted
from ..errors import ConvscopeError, warnings_in_words
from ..runs import rundir as rd
from ..runs.callbacks import Callback
from ..training import TrainingDiverged, TrainingInterrupted, config_from_dict, resume, train
from .space import Param
from .storage import open_storage, optuna_module, retry_callback

WAIT_S = 1.0   # how often a worker with nothing to start looks again (others' trials running)


@dataclass
class WorkerSpec:
    """What a worker process needs (picklable: workers are started with the spawn method)."""

    study_name: str
    storage_url: str
    study_dir: str
    trials: int
    base: dict[str, Any]           # the training config every trial starts from (sections)
    params: tuple[Param, ...]
    pruner: str
    seed: int
    index: int = 0                 # 0: the process that started the study
    parent_pid: int | None = None  # a spawned worker stops taking trials when this process is gone
    quiet: bool = False
    started: float = 0.0           # time.time() when the command started, and the finished trials then: the ETA
    finished_before: int = 0
    log: list[str] = field(default_factory=list)


class Surplus(Exception):
    """Another worker took the last place in the study at the same instant."""


class ReportToTrial(Callback):
    """Reports each epoch's validation accuracy to the Optuna trial and stops the run when the pruner says so
    (the run then finishes as a run that stopped early: an ordinary, loadable run folder)."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.reported, self.pruned_at = trial, set(), None

    def _report(self, epoch: int, value: float | None) -> None:
        if value is not None and epoch not in self.reported:
            self.trial.report(value, epoch)
            self.reported.add(epoch)

    def on_train_start(self, loop: Any) -> None:   # a resumed run: the epochs done before the kill
        for r in rd.read_metrics(loop.path / rd.METRICS):
            if r.get("kind") == "epoch":
                self._report(r["epoch"], r.get("val_accuracy"))

    def on_epoch_end(self, loop: Any, record: dict[str, Any]) -> None:
        self._report(record["epoch"], record.get("val_accuracy"))
        if record["epoch"] < loop.cfg.schedule.epochs and self.trial.should_prune():
            self.pruned_at = record["epoch"]
            record["pruned"] = True
            loop.request_stop()


def make_pruner(name: str) -> Any:
    optuna = optuna_module()
    if name == "median":   # prune below the median of earlier trials at the same epoch, once 4 have finished
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "halving":  # asynchronous successive halving: keep the top third at epochs 1, 3, 9, ...
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def counted_states() -> tuple[Any, ...]:
    ts = optuna_module().trial.TrialState
    return ts.COMPLETE, ts.PRUNED


def _active_states() -> tuple[Any, ...]:
    ts = optuna_module().trial.TrialState
    return ts.COMPLETE, ts.PRUNED, ts.RUNNING, ts.WAITING


class WorkerLock:
    """This process's lock file in ``STUDY/workers/``, held while the process lives."""

    def __init__(self, study_dir: Path) -> None:
        folder = Path(study_dir) / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()
        self.path = (folder / f"{self.host}-{os.getpid()}.lock").resolve()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        os.close(self.fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


def worker_alive(worker: Any) -> bool | None:
    """Whether the worker recorded on a trial still runs: True/False on this host, None for another host (its
    heartbeat decides). A lock file that cannot be locked is held by a live process."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return None
    try:
        fd = os.open(worker["lock"], os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False    # removed: its worker ended (a live worker keeps its file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def recover_dead_trials(study: Any, *, interrupted_too: bool = False) -> list[int]:
    """Mark RUNNING trials whose worker on this host is dead as failed and queue their parameters again; with
    ``interrupted_too``, also queue failed trials that were interrupted (Ctrl-C) and not queued yet. Returns the
    numbers of the trials queued again."""
    optuna = optuna_module()
    ts = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    again = []
    for t in trials:
        worker = t.user_attrs.get("worker")
        # a queued-again trial carries its dead predecessor's attributes until its new worker records itself
        own = isinstance(worker, dict) and worker.get("trial") == t.number
        if t.state == ts.RUNNING and own and worker_alive(worker) is False:
            try:
                study._storage.set_trial_state_values(t._trial_id, state=ts.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue   # another worker recovered it first
            frozen = study._storage.get_trial(t._trial_id)
        elif (interrupted_too and t.state == ts.FAIL and t.user_attrs.get("interrupted") == t.number
              and t.number not in retried):
            frozen = t
        else:
            continue
        retry_callback()(study, frozen)
        again.append(t.number)
    return again


def _count(study: Any, states: tuple[Any, ...], below: int | None = None) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if below is None or t.number < below)


def _say(spec: WorkerSpec, text: str) -> None:
    if not spec.quiet:
        print(text, flush=True)


def run_trial(trial: Any, spec: WorkerSpec, lock: WorkerLock) -> float:
    """The objective: one ordinary training run of the base config with the trial's values; the last epoch's
    validation accuracy (selection never looks at the test set)."""
    optuna = optuna_module()
    trial.set_user_attr("worker", {"host": lock.host, "lock": str(lock.path), "pid": os.getpid(),
                                   "trial": trial.number})
    if _count(trial.study, _active_states(), below=trial.number) >= spec.trials:
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number}: the study already has {spec.trials} trials")
    values = {p.key: p.suggest(trial) for p in spec.params}
    cfg = config_from_dict(values, config_from_dict(spec.base, source="the study's base config"),
                           source=f"trial {trial.number}")
    run_dir = Path(trial.user_attrs.get("run_dir") or Path(spec.study_dir) / "trials" / f"trial-{trial.number:04d}")
    trial.set_user_attr("run_dir", str(run_dir))
    system = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    if "failed_trial" in system:
        _say(spec, f"trial {trial.number}: continues trial {system['failed_trial']} (its worker "
                   f"died) from {run_dir}")
    reporter = ReportToTrial(trial)
    t0 = time.perf_counter()
    try:
        if (run_dir / rd.CONFIG).exists():   # a retry: the dead trial's run, from its last checkpoint
            run = resume(run_dir, progress=False, callbacks=[reporter])
        else:
            run = train(cfg, out=run_dir, progress=False, callbacks=[reporter])
    except TrainingDiverged as e:   # a setting that blows up is a poor trial, stopped early
        trial.set_user_attr("outcome", "diverged")
        _say(spec, f"trial {trial.number}: diverged ({values})")
        raise optuna.TrialPruned(str(e)) from None
    except (TrainingInterrupted, KeyboardInterrupt):
        trial.set_user_attr("interrupted", trial.number)   # queued again by the next `convscope tune` of this study
        raise
    if run.summary.get("non_finite_test_scores"):   # finished, but its scores are NaN: its accuracy means nothing
        trial.set_user_attr("outcome", "diverged")
        _say(spec, f"trial {trial.number}: diverged, scores NaN or infinite on the test images ({values})")
        raise optuna.TrialPruned("the trained model's scores are NaN or infinite")
    epochs = [r for r in rd.read_metrics(run_dir / rd.METRICS) if r.get("kind") == "epoch"]
    for r in epochs:   # a run that was already finished when its trial was retried reports here
        reporter._report(r["epoch"], r.get("val_accuracy"))
    val = epochs[-1].get("val_accuracy") if epochs else None
    trial.set_user_attr("test_accuracy", run.summary["test_accuracy"])
    trial.set_user_attr("epochs", len(epochs))
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    finished = _count(trial.study, counted_states()) + 1 - spec.finished_before   # this one is not recorded yet
    shown += f"; {counted(finished, spec.trials - spec.finished_before, time.time() - spec.started, 'trial')}"
    if reporter.pruned_at is not None:
        trial.set_user_attr("outcome", "pruned")
        _say(spec, f"trial {trial.number}: pruned after epoch {reporter.pruned_at} (val {100 * val:.2f}%; {shown})")
        raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_at}")
    if val is None:
        raise ConvscopeError(f"{run_dir}: the run recorded no validation accuracy; is val_fraction > 0?")
    _say(spec, f"trial {trial.number}: val {100 * val:.2f}% in {len(epochs)} epochs ({shown})")
    return float(val)


class _DropSurplusLog:
    """Optuna logs every failed trial with its traceback, then "failed with value None"; a surplus trial is not an
    error worth either, and an interrupted one is said once, by the command (what was kept, how to continue)."""

    def __init__(self) -> None:
        self.dropped: set[str] = set()   # "Trial N" of the trials whose first line was dropped

    def filter(self, record: Any) -> bool:
        text = record.getMessage()
        trial = " ".join(text.split()[:2])
        if any(word in text for word in ("Surplus", "TrainingInterrupted", "KeyboardInterrupt")):
            self.dropped.add(trial)
            return False
        return not (trial in self.dropped and "failed with value None" in text)


def work(spec: WorkerSpec) -> int:
    """Take trials until the study has ``spec.trials`` finished ones; returns the number this worker finished."""
    import logging

    optuna = optuna_module()
    # on the logger that makes the record (a parent logger's filters do not see its children's records), for this
    # study only: its trial numbers are not another study's
    quiet, optimize_log = _DropSurplusLog(), logging.getLogger("optuna.study._optimize")
    optimize_log.addFilter(quiet)
    lock = WorkerLock(Path(spec.study_dir))
    try:
        storage = open_storage(spec.storage_url)
        probe = optuna.load_study(study_name=spec.study_name, storage=storage)
        # a seed per worker and per start: parallel workers, and a resumed study, do not replay one sequence
        # (reduced to numpy's [0, 2**32 - 1]: unreduced, every --sampler-seed from 4295 up failed in numpy)
        seed = (spec.seed * 1_000_003 + spec.index * 7919 + len(probe.get_trials(deepcopy=False))) % 2**32
        study = optuna.load_study(study_name=spec.study_name, storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=seed), pruner=make_pruner(spec.pruner))
        done = 0
        while True:
            if spec.parent_pid is not None and os.getppid() != spec.parent_pid:
                break   # the process that started this worker is gone (killed): take no new trial
            recover_dead_trials(study)
            finished = _count(study, counted_states())
            if finished >= spec.trials:
                break
            # a trial queued again (WAITING) is this worker's to take, even when the count is full: it holds the
            # place of the interrupted or dead trial it continues
            waiting = _count(study, (optuna.trial.TrialState.WAITING,))
            if not waiting and _count(study, _active_states()) >= spec.trials:
                with _silence_experimental(optuna):   # others' trials still run: one of them may die
                    optuna.storages.fail_stale_trials(study)
                time.sleep(WAIT_S)
                continue
            try:
                study.optimize(lambda t: run_trial(t, spec, lock), n_trials=1, catch=())
                done += 1
            except Surplus:
                continue
        return done
    finally:
        optimize_log.removeFilter(quiet)
        lock.release()


@contextlib.contextmanager
def _silence_experimental(optuna: Any) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def worker_main(spec: WorkerSpec) -> None:
    """Entry point of a spawned worker process (``--jobs``): its errors end it with status 1, said on stderr."""
    try:
        with warnings_in_words():   # as the command itself prints them
            work(spec)
    except ConvscopeError as e:
        print(f"convscope tune: worker {spec.index}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
