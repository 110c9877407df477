"""Argument checks shared by the public inspection functions: each error names the argument and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError, ConvscopeError
from ..models.forward import iter_batches


def check_model(model) -> torch.device:
    """``model`` must be an nn.Module; returns the device its inputs go to (CPU for a model without tensors)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    if t is not None and t.is_meta:
        raise ConfigError("model: its weights are on the meta device (shapes without values); load real weights, "
                          "e.g. model.to_empty(device='cpu') then load_state_dict(...)")
    return t.device if t is not None else torch.device("cpu")


def check_dataset(dataset) -> ImageDataset:
    """``dataset`` must be a non-empty ImageDataset (uint8 images): plain tensors and arrays are refused, since
    their scale (0..255 or 0..1) and labels cannot be known and a wrong guess gives silently wrong numbers."""
    if not isinstance(dataset, ImageDataset):
        kind = type(dataset).__module__.split(".")[0] + "." + type(dataset).__name__
        raise ConfigError(
            f"dataset: expected a convscope.data.ImageDataset (uint8 images (N, C, H, W) 0..255 with labels), got "
            f"{kind}; load one with convscope.data.load(...) or wrap uint8 images with ImageDataset(images, labels, "
            "classes, name, split, source) — convert float images in [0, 1] with (x * 255).round().to(torch.uint8)")
    if len(dataset) == 0:
        raise ConfigError(f"dataset: {dataset.name!r} split {dataset.split!r} holds no images")
    return dataset


NORM_FIX = ("pass norm=run.normalization (the normalization the model was trained with), or pass the run itself "
            "(convscope.load_run(...) or convscope.inspect.from_run(...)) as the model; for a model trained on raw "
            "[0, 1] pixels say so with norm=convscope.data.Normalization.identity(channels)")


def model_and_norm(model, norm) -> tuple[nn.Module, Normalization | None]:
    """The one rule for inspection functions that turn stored images into model input: ``model`` may be a run
    (anything with ``.model`` and ``.normalization``: a convscope Run or inspect Target), which carries its
    normalization; a bare nn.Module needs ``norm`` given (checked by :func:`check_norm`), never a silent
    identity. Returns the module and the norm (the run's unless ``norm`` overrides it)."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and isinstance(getattr(model, "normalization", None), Normalization):
        return inner, norm if norm is not None else model.normalization
    return model, norm


def check_norm(norm, dataset: ImageDataset | None = None, required: bool = True, channels: int | None = None
               ) -> Normalization | None:
    """``norm`` must be a Normalization for the images' channels (``dataset``'s or ``channels``); None is an
    error naming the fix (:data:`NORM_FIX`) unless ``required`` is False."""
    if norm is None:
        if required:
            raise ConfigError("norm: required for a bare model: the tool cannot know how the model's inputs were "
                              f"normalized, and a wrong guess gives silently wrong numbers; {NORM_FIX}")
        return None
    if not isinstance(norm, Normalization):
        raise ConfigError(f"norm: expected a convscope.data.Normalization, got {type(norm).__name__}; {NORM_FIX}")
    c = dataset.shape[0] if dataset is not None else channels
    if c is not None and (len(norm.mean) not in (1, c) or len(norm.std) not in (1, c)):
        raise ConfigError(f"norm: {len(norm.mean)} means and {len(norm.std)} stds for images with {c} channel(s)")
    if any(not math.isfinite(s) or s <= 0 for s in norm.std) or any(not math.isfinite(m) for m in norm.mean):
        raise ConfigError(f"norm: means must be finite and stds finite and positive, got {norm}")
    return norm


def stream(model: nn.Module, dataset: ImageDataset, norm: Normalization, batch_size: int, start: int = 0,
           stop: int | None = None, after: Callable[[int], None] | None = None, progress: str | None = None) -> None:
    """Every batch of ``dataset[start:stop]`` through the model, for the hooks the caller holds (eval mode, no
    gradients); ``after(n)`` follows each batch of ``n`` images. An input the model cannot take (shape,
    channels) is a ConfigError naming the dataset. ``progress``: the stage's name in the command's progress."""
    def forward(x: torch.Tensor) -> None:
        try:
            model(x)
        except ConvscopeError:       # a check in a caller's hook, already in words
            raise
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            raise ConfigError(f"dataset: the model cannot take {dataset.name!r} images of shape {dataset.shape} "
                              f"({type(e).__name__}: {e}); use a dataset of the model's input shape") from e
        if after is not None:
            after(len(x))

    for _ in iter_batches(model, dataset.images, norm, batch_size, forward=forward, start=start, stop=stop,
                          progress=progress):
        pass
