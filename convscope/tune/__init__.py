"""Hyperparameter search on Optuna: ``tune(base, trials=N)`` and ``convscope tune``.

space.py (the search space file format and the default space), storage.py (Optuna, the study database,
heartbeat and retry), workers.py (the worker loop, one ordinary training run per trial, pruning through the
training loop's callback protocol, dead-worker recovery), report.py (table, plots, best config), study.py
(:func:`tune`: the study folder, validation split, parallel workers). Optuna is imported on first use.
"""

from .space import DEFAULT_SPACE, Param, load_space, parse_space
from .study import PRUNERS, TuneResult, tune

__all__ = ["DEFAULT_SPACE", "PRUNERS", "Param", "TuneResult", "load_space", "parse_space", "tune"]
