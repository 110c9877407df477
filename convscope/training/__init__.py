"""Training: ``train(config, callbacks=...) -> Run``, ``resume(path)``, ``load_run(path)``.

The loop (loop.py) drives an engine (engine.py: engines/torch.py, engines/numpy.py) and tells callbacks
(:mod:`convscope.runs.callbacks`) of its events; config.py resolves every setting before a run writes anything;
the run directory it writes is :mod:`convscope.runs`' layout, and run.py reads it back as a :class:`Run`.
"""

from ..runs.callbacks import Callback
from ..runs.rundir import RunError
from .checkpoint import CheckpointError
from .config import RECIPES, TrainConfig, config_from_dict, recipe
from .api import resume, train
from .loop import Loop, TrainingDiverged, TrainingInterrupted
from .run import Run, load_run

__all__ = ["Callback", "CheckpointError", "Loop", "RECIPES", "Run", "RunError", "TrainConfig",
           "TrainingDiverged", "TrainingInterrupted", "config_from_dict", "load_run", "recipe", "resume", "train"]
