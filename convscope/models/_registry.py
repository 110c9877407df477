"""A registry of model entry points and one factory (after timm's ``@register_model``/``create_model``).

An entry point takes the dataset geometry — ``in_channels``, ``image_size`` (H, W), ``num_classes`` — plus
its own keyword arguments, and returns an ``nn.Module``. Every model exposes its layers through plain
``named_modules()`` names; inspection tools rely on nothing else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError

ModelFn = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: ModelFn
    description: str
    default_input: tuple[int, int, int]  # (C, H, W) it was designed for


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, default_input: tuple[int, int, int] = (1, 28, 28)):
    """Decorator: register ``fn`` under ``name``; a duplicate name is an error."""

    def deco(fn: ModelFn) -> ModelFn:
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        _REGISTRY[name] = ModelEntry(name, fn, description, default_input)
        return fn

    return deco


def list_models() -> list[ModelEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def model_kwargs(name: str) -> list[str]:
    """The model-specific keyword arguments an entry point accepts."""
    params = inspect.signature(get_entry(name).fn).parameters
    return [p for p in params if p not in ("in_channels", "image_size", "num_classes")]


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, in_channels: int | None = None, image_size: tuple[int, int] | int | None = None,
                 num_classes: int = 10, **kwargs) -> nn.Module:
    """Build a registered model for the given input geometry (defaults: the model's design input)."""
    entry = get_entry(name)
    c, h, w = entry.default_input
    in_channels = c if in_channels is None else in_channels
    if image_size is None:
        image_size = (h, w)
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    valid = model_kwargs(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(f"model {name!r} takes no argument(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(valid) or 'none'}")
    try:
        model = entry.fn(in_channels=in_channels, image_size=tuple(image_size), num_classes=num_classes, **kwargs)
    except ConfigError as e:
        # the model's own check of one of its arguments ("fast2: width must be ..."): said as model_args', so that
        # the command line names where the value came from (--model-arg, or the --config file that gave it)
        if getattr(e, "arg", None) is not None or not kwargs or not str(e).startswith(f"{name}: "):
            raise
        raise ConfigError(f"model_args: {e}", arg="model_args") from None
    model.convscope_spec = {"name": name, "in_channels": in_channels, "image_size": list(image_size),
                            "num_classes": num_classes, "kwargs": dict(kwargs)}
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image (a multiply-add counts 2), by torch's FLOP counter; eval mode."""
    from torch.utils.flop_counter import FlopCounterMode

    from .probe import eval_mode

    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops())
