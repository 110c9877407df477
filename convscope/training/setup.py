"""Before a loop starts: the config resolved against the data and the machine, and the seeded model."""

from __future__ import annotations

from typing import Any

import torch

from ..distributed import World, current_world
from ..errors import ConfigError
from ..models import create_model, model_kwargs
from .batches import BatchFeeder, TrainData, load_data
from .config import TrainConfig, resolve
from .distributed import check_processes
from .optim import init_weights
from .plausibility import refuse_senseless, warn_unusual
from .runtime import native_bf16, resolve_device


def prepare(cfg: TrainConfig, *, check: bool = True) -> tuple[TrainConfig, TrainData]:
    """Load the data and resolve ``cfg`` against it and this machine: the config that will run. ``check``: refuse
    settings that cannot make sense on this data and warn about unusual ones (see :mod:`.plausibility`); off
    when a run is resumed (it continues with the config it started with, checked then or recorded before the
    checks existed)."""
    data = load_data(cfg.validate())
    device = resolve_device("cpu" if cfg.runtime.engine == "numpy" else cfg.runtime.device)
    world = current_world()
    if world.distributed and device.type == "cuda":   # several processes: each rank on its own GPU
        device = torch.device("cuda", world.local_rank)
    check_processes(cfg.runtime.engine, world.size)
    resolved = resolve(cfg, hflip_ok=data.train.hflip_ok, device=str(device), native_bf16=native_bf16(device))
    if check:
        refuse_senseless(cfg, data)
        if world.is_main:   # several processes: one copy of each warning
            warn_unusual(cfg, resolved, data)
    return resolved, data


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


def scratch_trainer(cfg: TrainConfig, data: TrainData, model: torch.nn.Module | None = None,
                    **changes: Any) -> tuple[TrainConfig, torch.nn.Module, Any, BatchFeeder]:
    """For the short trainings outside a run (the sanity check, the learning-rate finder): the resolved ``cfg``
    with the flat keys ``changes``, its seeded model (or ``model``, trained in place), an engine on one process
    and a batch feeder."""
    from .engines import create_engine

    cfg = cfg.replace(**changes).validate() if changes else cfg
    if model is None:
        model = build_model(cfg, data)
    else:   # the caller's model: one that cannot take these images is said in words before the first step
        _check_fits(model, data)
    feeder = BatchFeeder(cfg, data, World())
    engine = create_engine(cfg, model, data.norm, feeder.steps_per_epoch, World())
    return cfg, model, engine, feeder


def _check_fits(model: torch.nn.Module, data: TrainData) -> None:
    """``model`` gives one score per class of ``data`` for two of its images (zeros; eval mode, no gradients,
    its modes given back), or a ConfigError naming ``model`` and the images' shape (a raw torch shape error
    otherwise, from deep inside the first training step)."""
    from ..models.output import check_logits
    from ..models.probe import zeros_forward

    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            out = zeros_forward(model, data.train.shape, name="model", batch=2,
                                fix=f"give a model built for {data.train.name!r} images")
        check_logits(out, "model", batch=2, classes=len(data.train.classes),
                     where=f"two {data.train.name!r} images of shape {tuple(data.train.shape)}")
    finally:
        for m, training in modes.items():
            m.training = training
