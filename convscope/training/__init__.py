"""Training: ``train(config, callbacks=...) -> Run``, ``resume(path)``, ``load_run(path)``.

The loop (loop.py) drives an engine (engine.py; created by engines.create_engine: engines/torch.py with the
EMA wrapper of ema.py, engines/numpy.py) and tells callbacks (the protocol in :mod:`convscope.runs.callbacks`;
best weights and early stopping in early_stopping.py) of its events; config.py (typed sections, read flat or
nested) resolves every setting before a run writes anything. The run directory it writes is
:mod:`convscope.runs`' layout; run.py reads it back as a :class:`Run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and the API docs; at run time each name is imported on first use
    from ..runs.callbacks import Callback
    from ..runs.rundir import RunError
    from .checkpoint import CheckpointError
    from .config import RECIPES, TrainConfig, config_from_dict, recipe
    from .early_stopping import BestWeights, EarlyStopping
    from .api import resume, train
    from .loop import Loop, TrainingDiverged, TrainingInterrupted
    from .run import Run, load_run
    from .split import TrainingSplit, training_split

__all__ = ["BestWeights", "Callback", "CheckpointError", "EarlyStopping", "Loop", "RECIPES", "Run", "RunError",
           "TrainConfig", "TrainingDiverged", "TrainingInterrupted", "TrainingSplit",
           "config_from_dict", "load_run", "recipe", "resume", "train", "training_split"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Callback": "..runs.callbacks", "RunError": "..runs.rundir", "CheckpointError": ".checkpoint",
    "RECIPES": ".config", "TrainConfig": ".config", "config_from_dict": ".config", "recipe": ".config",
    "BestWeights": ".early_stopping", "EarlyStopping": ".early_stopping", "resume": ".api", "train": ".api",
    "Loop": ".loop", "TrainingDiverged": ".loop", "TrainingInterrupted": ".loop", "Run": ".run", "load_run": ".run",
    "TrainingSplit": ".split", "training_split": ".split"
})
