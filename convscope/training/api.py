"""The entry points: ``train(config)`` starts a run, ``resume(path)`` continues one."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .._check import path as check_path
from .._check import threads as check_threads
from .._cpus import cpu_limit
from .._signals import stop_signals
from ..distributed import World, broadcast_text, is_comm_failure, lost_peer, process_group
from ..errors import ConvscopeError, SettingWarning
from ..runs import rundir as rd
from ..runs.callbacks import Callback
from ..runs.lock import RunLock
from .run import Run, load_run
from .checkpoint import load_state
from .config import TrainConfig, config_from_dict, read_config_file, recorded_config, retired_settings
from .loop import Loop, TrainingInterrupted, check_callbacks
from .runtime import resolve_device, torch_settings
from .setup import prepare


def train(config: TrainConfig | dict[str, Any] | None = None, *, out: str | Path | None = None,
          runs_dir: str | Path = "runs", progress: bool = True, callbacks: Sequence[Callback] = ()) -> Run:
    """Train a model; returns the finished :class:`Run`. ``config``: a TrainConfig or a dict of its keys;
    ``callbacks``: :class:`~convscope.runs.callbacks.Callback` objects told of the run's events.

    Under ``torchrun`` (WORLD_SIZE > 1) every process calls this; they train one model with
    DistributedDataParallel and rank 0 writes the run directory (see training/distributed.py)."""
    out = check_path(out, "out") if out is not None else None
    runs_dir = check_path(runs_dir, "runs_dir", "runs")
    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config or {})
    cfg.validate()
    check_threads(cfg.runtime.threads)   # before torch starts them: 1000 threads can abort the process (libgomp)
    callbacks = check_callbacks(callbacks)
    with process_group(_backend(cfg)) as world, _lost_peers(world):
        path, created, lock = None, False, contextlib.nullcontext()
        if world.is_main:   # rank 0 chooses, creates and locks the run directory; the others write nothing
            path, created, lock = rd.new_run_dir(Path(runs_dir), cfg.run_name,
                                                 Path(out) if out is not None else None)
        # until config.json is written (the set-up: threads, data, resolution, model), a failure or a Ctrl-C
        # leaves no run folder behind: an empty one could not be resumed, only deleted
        settled = False
        try:
            with contextlib.ExitStack() as scope:
                with stop_signals(term=world.size == 1) as stop:
                    path = Path(broadcast_text(str(path), world))
                    scope.enter_context(lock)
                    share = scope.enter_context(torch_settings(cfg))
                    scope.enter_context(torch.random.fork_rng(devices=[]))
                    cfg, data = prepare(cfg)
                    loop = Loop(cfg, data, path, progress=progress, callbacks=[*callbacks, *share])
                _stop_if_signalled(stop, "stopped before the first step; nothing was kept")
                if world.is_main:
                    rd.write_json(path / rd.CONFIG, cfg.to_dict())   # everything is settled: exactly what runs
                settled = True
                loop.save()
                loop.run()
                return loop.finish()
        except BaseException:
            if not settled and world.is_main:
                rd.discard_new_run_dir(path, created)
            raise


def resume(path: str | Path, *, progress: bool = True, callbacks: Sequence[Callback] = (),
           threads: int | None = None) -> Run:
    """Continue a run from its checkpoint (after a kill, a crash or Ctrl-C); a finished run is just loaded.
    The data position in the checkpoint is global: a run saved with N processes resumes with M.
    ``threads``: torch threads for the rest of the run (how it uses this machine, not what it trains); by default
    the recorded count, capped by the CPUs this process may use now."""
    path = check_path(path, "path")
    threads = check_threads(threads)
    callbacks = check_callbacks(callbacks)
    if (path / rd.META).exists():
        return load_run(path)
    if not (path / rd.CONFIG).exists():
        raise rd.RunError(f"{path}: no {rd.CONFIG}; not a convscope run directory")
    raw = read_config_file(path / rd.CONFIG)
    on_file = recorded_config(raw, source=str(path / rd.CONFIG))
    recorded = _threads_here(on_file, threads, path)
    changed = {k: v for k, v in retired_settings(raw).items() if k != "tta_shift"}   # shifts were for evaluation only
    if changed:
        raise rd.RunError(f"{path}: this run trains with {', '.join(f'{k}={v!r}' for k, v in changed.items())}, which "
                          "convscope removed (our ablations found no gain); it cannot continue as the same run. "
                          "Start a new run without it")
    with process_group(_backend(recorded)) as world, _lost_peers(world), \
            (RunLock(path) if world.is_main else contextlib.nullcontext()):  # held until the run ends
        if world.is_main:
            for stale in path.glob(".*.part"):  # temp files of a write that a kill cut short
                if stale.is_dir() and not stale.is_symlink():   # a killed `convscope tensorboard RUN`'s folder
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        with contextlib.ExitStack() as scope:
            with stop_signals(term=world.size == 1) as stop:
                share = scope.enter_context(torch_settings(recorded))
                scope.enter_context(torch.random.fork_rng(devices=[]))
                cfg, data = prepare(recorded, check=False)   # checked when it started
                loop = Loop(cfg, data, path, progress=progress, callbacks=[*callbacks, *share])
            _stop_if_signalled(stop, "stopped before training; the run is as it was",
                               f": continue with convscope train --resume {path}")
            if cfg != on_file and world.is_main:  # resolved here, or threads changed: record what runs now
                rd.write_json(path / rd.CONFIG, cfg.to_dict())
            if (path / rd.CHECKPOINT).exists():
                loop.restore(load_state(path / rd.CHECKPOINT))
            else:  # killed before the first checkpoint (written before step 1): nothing was trained yet
                if world.is_main and (steps := rd.logged_steps(path / rd.METRICS)):
                    raise rd.RunError(f"{path}: {rd.CHECKPOINT} is missing, but {rd.METRICS} records training "
                                      f"up to step {steps}: the checkpoint was deleted or lost, and the run cannot "
                                      f"continue where it stopped. Delete {path / rd.METRICS} to train it again "
                                      "from the start, or start a new run")
                if world.is_main:
                    (path / rd.METRICS).unlink(missing_ok=True)
                loop.save()
            loop.run()
            return loop.finish()


def _stop_if_signalled(flag: list[int], what: str, hint: str = "") -> None:
    """After a run's set-up, which runs with Ctrl-C and SIGTERM held (``stop_signals``; single process: SIGTERM
    too): stop here, saying ``what`` that means for the run, when one came. The set-up imports torch's compiler
    modules lazily (under the optimizer, under --deterministic), and an interrupt inside an import left them
    half-loaded, so that the clean-up failed with a traceback; a SIGTERM killed the process outright and left a
    run folder holding only its lock. The training loop then holds them step by step."""
    if flag[0]:
        raise TrainingInterrupted.signalled(flag[0], f"during the set-up; {what}", hint)


def _threads_here(cfg: TrainConfig, threads: int | None, path: Path) -> TrainConfig:
    """The resumed run's thread count: ``threads`` when given; else the recorded one, unless this process may now
    use fewer CPUs (another machine, ``taskset``, a smaller container): then those CPUs, with a warning. More
    threads than CPUs made a resumed run 33x slower (2 spinning threads on 1 CPU)."""
    recorded = cfg.runtime.threads
    if threads is None and recorded is not None and recorded > (cpus := cpu_limit()):
        warnings.warn(f"{path}: recorded threads={recorded}, but this process may use {cpus} CPU"
                      f"{'s' if cpus > 1 else ''} (affinity mask / cgroup quota); resuming with {cpus}. Give "
                      "--threads N (resume(threads=N)) to choose", SettingWarning, stacklevel=3)
        threads = cpus
    if threads is None or threads == recorded:
        return cfg
    return dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, threads=threads))


def _backend(cfg: TrainConfig) -> str:
    """NCCL when the ranks train on GPUs, gloo on CPUs."""
    return "nccl" if cfg.runtime.engine == "torch" and resolve_device(cfg.runtime.device).type == "cuda" else "gloo"


@contextlib.contextmanager
def _lost_peers(world: World) -> Iterator[None]:
    """A collective that fails inside DDP or a barrier (a peer died) becomes one clear error on every rank."""
    try:
        yield
    except RuntimeError as e:
        if world.distributed and not isinstance(e, ConvscopeError) and is_comm_failure(e):
            raise lost_peer(world, e) from e
        raise
