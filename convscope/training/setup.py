"""Before a loop starts: the config resolved against the data and the machine, and the seeded model."""

from __future__ import annotations

import torch

from ..distributed import current_world
from ..errors import ConfigError
from ..models import create_model, model_kwargs
from .batches import TrainData, load_data, low_res_size
from .config import TrainConfig, resolve
from .optim import init_weights
from .runtime import native_bf16, resolve_device


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, TrainData]:
    """Load the data and resolve ``cfg`` against it and this machine: the config that will run."""
    data = load_data(cfg.validate())
    device = resolve_device("cpu" if cfg.engine == "numpy" else cfg.device)
    world = current_world()
    if world.distributed and device.type == "cuda":   # several processes: each rank on its own GPU
        device = torch.device("cuda", world.local_rank)
    if world.distributed and cfg.engine != "torch":
        raise ConfigError(f"engine {cfg.engine!r}: several processes need the torch engine (--engine torch)")
    return resolve(cfg, hflip_ok=data.train.hflip_ok, device=str(device), native_bf16=native_bf16(device)), data


def build_model(cfg: TrainConfig, data: TrainData) -> torch.nn.Module:
    """The seeded, initialised model, on the CPU (global RNG: seeded here, then used by dropout)."""
    torch.manual_seed(cfg.seed)
    kwargs = dict(cfg.model_args)
    if cfg.dropout is not None:
        if "dropout" not in model_kwargs(cfg.model):
            raise ConfigError(f"dropout: model {cfg.model!r} has a fixed dropout; its arguments: "
                              f"{', '.join(model_kwargs(cfg.model)) or 'none'}")
        kwargs["dropout"] = cfg.dropout
    c, h, w = data.train.shape
    try:
        model = create_model(cfg.model, c, (h, w), len(data.train.classes), **kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:  # arguments the model cannot take
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model_args: model {cfg.model!r} cannot be built with {kwargs} for {c}x{h}x{w} images "
                          f"({type(e).__name__}: {e}); see `convscope models`") from e
    init_weights(model, cfg.init)
    return model


def check_low_res(cfg: TrainConfig, model: torch.nn.Module, shape: tuple[int, int, int]) -> None:
    """Progressive resizing trains on smaller images first: refuse, before anything runs, a size the model
    cannot take or that changes its output (a flatten head sized for the full images)."""
    if not cfg.low_res:
        return
    import copy

    c, h, w = shape
    if cfg.low_res >= h:
        raise ConfigError(f"low_res: {cfg.low_res} px is not below the images' height {h}; give a smaller "
                          f"size (e.g. {h - 4}) or 0 to train at full size")
    small = (c, *low_res_size(cfg.low_res, h, w))
    probe = copy.deepcopy(model).train()        # train mode: layers fitted on first use (whitening) may fit
    with torch.no_grad():
        outs = []
        for size in (shape, small):
            try:
                outs.append(probe(torch.zeros(2, *size)).shape)
            except (RuntimeError, ValueError, IndexError) as e:
                raise ConfigError(f"low_res: model {cfg.model!r} cannot take {size[1]} x {size[2]} images "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); choose a "
                                  "low_res the model accepts") from e
    if outs[0] != outs[1]:
        raise ConfigError(f"low_res: model {cfg.model!r} gives outputs of shape {tuple(outs[1])} for "
                          f"{small[1]} x {small[2]} images but {tuple(outs[0])} for {h} x {w}; its head is sized "
                          "for one input size: choose a low_res with the same final feature map (fast2 on 28 x 28: "
                          "24 or 26)")
