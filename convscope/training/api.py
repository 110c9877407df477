"""The entry points: ``train(config)`` starts a run, ``resume(path)`` continues one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import rundir as rd
from .callbacks import Callback
from .checkpoint import load_state
from .config import TrainConfig, config_from_dict, read_config_file, recorded_config
from .lock import RunLock
from .loop import Loop
from .runtime import torch_settings
from .setup import prepare


def train(config: TrainConfig | dict[str, Any] | None = None, *, out: str | Path | None = None,
          runs_dir: str | Path = "runs", progress: bool = True, callbacks: Sequence[Callback] = ()) -> rd.Run:
    """Train a model; returns the finished :class:`Run`. ``config``: a TrainConfig or a dict of its keys;
    ``callbacks``: :class:`~convscope.training.callbacks.Callback` objects told of the run's events."""
    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config or {})
    cfg.validate()
    path, created, lock = rd.new_run_dir(Path(runs_dir), cfg.run_name, Path(out) if out is not None else None)
    with lock, torch_settings(cfg), torch.random.fork_rng(devices=[]):
        try:  # set-up (data, resolution, model): a failure here leaves no run folder behind
            cfg, data = prepare(cfg)
            loop = Loop(cfg, data, path, progress=progress, callbacks=callbacks)
        except BaseException:
            rd.discard_new_run_dir(path, created)
            raise
        rd.write_json(path / rd.CONFIG, cfg.to_dict())   # everything is settled: exactly what runs
        loop.save()
        loop.run()
        return loop.finish()


def resume(path: str | Path, *, progress: bool = True, callbacks: Sequence[Callback] = ()) -> rd.Run:
    """Continue a run from its checkpoint (after a kill, a crash or Ctrl-C); a finished run is just loaded."""
    path = Path(path)
    if (path / rd.META).exists():
        return rd.load_run(path)
    if not (path / rd.CONFIG).exists():
        raise rd.RunError(f"{path}: no {rd.CONFIG}; not a convscope run directory")
    with RunLock(path):  # held until this process ends the run, whichever way it ends
        recorded = recorded_config(read_config_file(path / rd.CONFIG), source=str(path / rd.CONFIG))
        for stale in path.glob(".*.part"):  # temp files of a write that a kill cut short
            stale.unlink()
        with torch_settings(recorded), torch.random.fork_rng(devices=[]):
            cfg, data = prepare(recorded)
            loop = Loop(cfg, data, path, progress=progress, callbacks=callbacks)
            if cfg != recorded:  # a run written before configs were resolved: record what runs from now on
                rd.write_json(path / rd.CONFIG, cfg.to_dict())
            if (path / rd.CHECKPOINT).exists():
                loop.restore(load_state(path / rd.CHECKPOINT))
            else:  # killed before the first checkpoint (written before step 1): nothing was trained yet
                (path / rd.METRICS).unlink(missing_ok=True)
                loop.save()
            loop.run()
            return loop.finish()
