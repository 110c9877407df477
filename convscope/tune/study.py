"""``tune(base, trials=N)``: an Optuna study over training-config keys, resumable, pruned, parallel.

    result = tune({"model": "lenet5", "epochs": 4}, trials=20, jobs=2)
    print(result.table)          # also in runs/tune-lenet5-digits/results.md; best.yaml beside it

The study lives in ``STUDY/`` (default ``runs/tune-<model>-<dataset>``): ``study.db`` (Optuna's SQLite storage,
unless ``storage`` names another database), ``trials/trial-NNNN/`` (one ordinary run folder per trial),
``results.md``, ``trials.json``, ``best.yaml``, ``history.png``, ``importance.png``. Running the same command
again continues the study (after a kill too) up to ``trials`` finished trials; see :mod:`.workers`.

Trials are compared on the validation split (``val_fraction`` of the training images, 0.1 unless the base
config sets one), never on the test set; the test accuracy is recorded for reference only.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import writable_folder
from .._check import SAMPLER_SEED_MAX, choice, integer
from .._check import seed as check_seed
from .._check import threads as check_threads
from .._cpus import cpu_limit
from ..errors import ConfigError, ConvscopeError
from ..runs.rundir import check_run_name
from ..training.config import TrainConfig, config_from_dict
from .report import write_results
from .space import Param, check_space_fits, check_space_on_data, load_space, parse_space, space_as_dict
from .storage import default_url, open_storage, optuna_module
from .workers import WorkerSpec, recover_dead_trials, work, worker_main

DEFAULT_VAL_FRACTION = 0.1
PRUNERS = ("median", "halving", "none")
# Each trial trains at least one epoch: 10,000 trials of the smallest (a few seconds) already take days, and TPE's
# proposals stop improving after a few hundred; more is a typo (--trials 1000000000), not a study.
MAX_TRIALS = 10_000
# What a study folder holds (so an existing folder holding any of them is a study to continue) and what a training
# run folder holds (a study there would mix its files with the run's and overwrite none of them honestly).
STUDY_FILES = ("study.db", "workers", "trials", "results.md", "trials.json", "best.yaml")
RUN_FILES = ("config.json", "model.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl")


@dataclass
class TuneResult:
    """What :func:`tune` leaves: the study folder, the printed summary and table, the files written."""

    study_dir: Path
    study_name: str
    summary: str
    table: str
    files: list[Path]
    notes: list[str]
    best_trial: int | None


def _space(space: Any) -> tuple[tuple[Param, ...], str]:
    if space is None or isinstance(space, (str, os.PathLike)):
        return load_space(space), str(space) if space is not None else "the default space"
    if isinstance(space, dict):
        return parse_space(space, "space"), "space"
    raise ConfigError(f"space: expected a space file path or a mapping of config keys to specs, got "
                      f"{type(space).__name__}")


def check_study_folder(folder: Path) -> Path:
    """``folder`` (``--out``) must be new, empty, or an earlier study's folder: never a training run's folder
    (whose files the study's would mix with) or a folder of other files (``results.md``, ``best.yaml``... would
    land among them, and replace any of the same name)."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return folder
    run = [n for n in RUN_FILES if (folder / n).exists()]
    if run:
        raise ConfigError(f"out: {folder} is a training run's folder (it holds {', '.join(run)}); a study writes "
                          f"its own files ({', '.join(STUDY_FILES[:3])}, ...) and would mix them with the run's; "
                          "give a new folder, e.g. --out runs/my-study", arg="out")
    if not any((folder / n).exists() for n in STUDY_FILES):
        shown = sorted(p.name for p in folder.iterdir())
        raise ConfigError(f"out: {folder} is not empty ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}) "
                          "and holds no convscope study; give a new or empty folder, e.g. --out runs/my-study "
                          "(an earlier study's folder is continued)", arg="out")
    return folder


def _setting(value: Any) -> str:
    """A base setting as the message shows it: None is a key left to its (dataset's) default."""
    return "the default" if value is None else repr(value)


def _check_same_study(study: Any, record: dict[str, Any], where: str) -> None:
    """A study is continued only with the settings it was started with (else its trials would not compare)."""
    old = study.user_attrs.get("convscope")
    if old is None:
        study.set_user_attr("convscope", record)
        return
    if old == record:
        return
    diffs = []
    for part in ("base", "space", "pruner"):
        if old.get(part) != record[part]:
            if part == "base":
                flat_old = config_from_dict(old["base"], source="recorded").flat()
                flat_new = config_from_dict(record["base"], source="given").flat()
                diffs += [f"{k}: {_setting(flat_old[k])} then, {_setting(flat_new[k])} now" for k in flat_new
                          if flat_old[k] != flat_new[k]]
            else:
                diffs.append(f"{part}: {old.get(part)!r} then, {record[part]!r} now")
    raise ConfigError(f"study {study.study_name!r} ({where}) was started with other settings ({'; '.join(diffs)}); "
                      "continue it with the same options, or start a new study (--study NAME)")


def tune(base: TrainConfig | dict[str, Any] | None = None, *, trials: int, space: Any = None,
         runs_dir: str | os.PathLike[str] = "runs", study: str | None = None, out: str | os.PathLike[str] | None = None,
         storage: str | None = None, jobs: int = 1, pruner: str = "median", seed: int = 0,
         quiet: bool = False) -> TuneResult:
    """Run (or continue) a study of ``trials`` finished trials; see the module docstring.

    ``base``: the training config every trial starts from; ``space``: a space file, a mapping in its format, or
    None for :data:`~.space.DEFAULT_SPACE`; ``study``: the study's name (default ``tune-<model>-<dataset>``);
    ``out``: its folder (default ``runs_dir/<study>``); ``storage``: a database URL shared by the workers (default
    SQLite in the folder); ``jobs``: worker processes on this machine; ``pruner``: median, halving or none;
    ``seed``: the sampler's seed, 0 to 2**32 - 1 (numpy's RandomState, behind Optuna's samplers)."""
    optuna = optuna_module()
    trials = integer(trials, "trials", 1, MAX_TRIALS, fix=f"a study of more than {MAX_TRIALS:,} trials (each at "
                     "least one epoch) runs for weeks; run a smaller study and continue it later")
    jobs = integer(jobs, "jobs", 1, 256)
    pruner = choice(pruner, "pruner", PRUNERS)
    seed = check_seed(seed, "seed", SAMPLER_SEED_MAX)   # before the study folder is made: numpy's range
    cfg = base if isinstance(base, TrainConfig) else config_from_dict(base or {}, source="base config")
    cfg.validate()
    # as `train` checks them, before the study folder exists: a trial that fails on them leaves a study that refuses
    # the corrected settings as "other settings" although no trial ever ran
    check_threads(cfg.runtime.threads)
    if cfg.runtime.threads is not None and jobs * cfg.runtime.threads > (cpus := cpu_limit()):
        share = max(1, cpus // jobs)
        raise ConfigError(f"threads: {jobs} workers (jobs) x {cfg.runtime.threads} threads each is more threads than "
                          f"the {cpus} CPUs this process may use, which only slows the trials down; give each worker "
                          f"{share}, or leave threads out (each worker then takes {share})", arg="threads")
    if cfg.data.val_fraction == 0.0:
        cfg = cfg.replace(val_fraction=DEFAULT_VAL_FRACTION).validate()
    params, source = _space(space)
    check_space_fits(params, cfg, source)
    check_space_on_data(params, cfg, source)
    name = study or f"tune-{cfg.run_name}"
    try:
        check_run_name(name)
    except ConfigError:
        raise ConfigError(f"study: {name!r} is not a plain name; a study name is one folder name (letters, digits, "
                          "'-', '_', '.'); use --out PATH to put the study folder elsewhere", arg="study") from None
    study_dir = check_study_folder(Path(out) if out is not None else Path(runs_dir) / name)
    study_dir = writable_folder(study_dir, "the study folder (--out)")
    url = storage or default_url(study_dir)
    st = open_storage(url)
    s = optuna.create_study(study_name=name, storage=st, direction="maximize", load_if_exists=True)
    base_dict = cfg.to_dict()
    _check_same_study(s, {"base": base_dict, "space": space_as_dict(params), "pruner": pruner},
                      storage or str(study_dir))
    requeued = recover_dead_trials(s, interrupted_too=True)
    val_note = (f"the validation split: val_fraction {cfg.data.val_fraction:g} of the training images "
                f"(stratified, seed {cfg.runtime.seed})")
    done = sum(1 for t in s.get_trials(deepcopy=False) if t.state.is_finished() and t.state.name != "FAIL")
    if not quiet:
        print(f"study {name!r} in {study_dir} ({'new' if not s.get_trials(deepcopy=False) else f'{done} finished'}"
              f"; {trials} wanted); selecting on {val_note}; the test set is never used for selection", flush=True)
        if requeued:
            print(f"trials {', '.join(map(str, requeued))}: interrupted or their worker died; queued again, to "
                  "continue from their checkpoints", flush=True)
    if jobs > 1 and cfg.runtime.threads is None:   # one process per job: share the cores, not oversubscribe them
        base_dict = cfg.replace(threads=max(1, cpu_limit() // jobs)).to_dict()   # affinity and cgroup quota
    spec = WorkerSpec(study_name=name, storage_url=url, study_dir=str(study_dir), trials=trials, base=base_dict,
                      params=params, pruner=pruner, seed=seed, quiet=quiet, started=time.time(),
                      finished_before=min(done, trials))
    ctx = multiprocessing.get_context("spawn")   # a fresh interpreter: no torch state forked mid-use
    procs = [ctx.Process(target=worker_main, args=(dataclasses.replace(spec, index=i, parent_pid=os.getpid()),),
                         name=f"convscope-tune-worker-{i}") for i in range(1, jobs)]
    for p in procs:
        p.start()
    try:
        work(spec)
    finally:
        for p in procs:
            p.join()
    failed = [p.name for p in procs if p.exitcode != 0]
    res = write_results(s, study_dir, params, val_note)
    if failed:
        raise ConvscopeError(f"{', '.join(failed)} ended with an error (see above); the study's results so far are "
                             f"in {study_dir}; run the same command again to continue")
    return TuneResult(study_dir, name, res["summary"], res["table"], res["files"], res["notes"], res["best"])
