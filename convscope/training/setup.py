"""Before a loop starts: the config resolved against the data and the machine, and the seeded model."""

from __future__ import annotations

import torch

from ..distributed import current_world
from ..errors import ConfigError
from ..models import create_model, model_kwargs
from .batches import TrainData, load_data
from .config import TrainConfig, resolve
from .distributed import check_processes
from .optim import init_weights
from .runtime import native_bf16, resolve_device


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, TrainData]:
    """Load the data and resolve ``cfg`` against it and this machine: the config that will run."""
    data = load_data(cfg.validate())
    device = resolve_device("cpu" if cfg.runtime.engine == "numpy" else cfg.runtime.device)
    world = current_world()
    if world.distributed and device.type == "cuda":   # several processes: each rank on its own GPU
        device = torch.device("cuda", world.local_rank)
    check_processes(cfg.runtime.engine, world.size)
    return resolve(cfg, hflip_ok=data.train.hflip_ok, device=str(device), native_bf16=native_bf16(device)), data


def build_model(cfg: TrainConfig, data: TrainData) -> torch.nn.Module:
    """The seeded, initialised model, on the CPU (global RNG: seeded here, then used by dropout)."""
    torch.manual_seed(cfg.runtime.seed)
    kwargs = dict(cfg.model.args)
    if cfg.model.dropout is not None:
        if "dropout" not in model_kwargs(cfg.model.name):
            raise ConfigError(f"dropout: model {cfg.model.name!r} has a fixed dropout; its arguments: "
                              f"{', '.join(model_kwargs(cfg.model.name)) or 'none'}")
        kwargs["dropout"] = cfg.model.dropout
    c, h, w = data.train.shape
    try:
        model = create_model(cfg.model.name, c, (h, w), len(data.train.classes), **kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:  # arguments the model cannot take
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model_args: model {cfg.model.name!r} cannot be built with {kwargs} for {c}x{h}x{w} images "
                          f"({type(e).__name__}: {e}); see `convscope models`") from e
    init_weights(model, cfg.model.init)
    return model
