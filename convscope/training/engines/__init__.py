"""Training engines (see ``convscope.training.engine`` for the protocol they follow), created by one factory."""

from __future__ import annotations

from torch import nn

from ...data.normalize import Normalization
from ...distributed import World
from ..config import TrainConfig
from ..engine import Engine


def create_engine(cfg: TrainConfig, model: nn.Module, norm: Normalization, steps_per_epoch: int,
                  world: World | None = None) -> Engine:
    """The engine ``cfg.runtime.engine`` names, for a resolved config: every engine is built from the same
    arguments (the seeded model it trains and exports into, the normalization, the steps per epoch, the world)."""
    # only the engine asked for is imported: the NumPy twin's modules cost 0.2 s that a torch run would not use
    if cfg.runtime.engine == "numpy":
        from .numpy import NumpyEngine as engine
    else:
        from .torch import TorchEngine as engine
    return engine(cfg, model, norm, steps_per_epoch, world or World())
