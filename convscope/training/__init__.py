"""Training: ``train(config) -> Run``, ``resume(path)``, ``load_run(path)``."""

from .checkpoint import CheckpointError
from .config import RECIPES, TrainConfig, config_from_dict, recipe
from .loop import TrainingDiverged, TrainingInterrupted, resume, train
from .rundir import Run, RunError, load_run

__all__ = ["CheckpointError", "RECIPES", "Run", "RunError", "TrainConfig", "TrainingDiverged", "TrainingInterrupted",
           "config_from_dict", "load_run", "recipe", "resume", "train"]
