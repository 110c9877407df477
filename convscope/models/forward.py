"""The one batched forward pass: normalise a slice of stored images, run it through a model, hand back the
output. Evaluation, inspection, refine and the sharded tools all stream a dataset through this loop, so a
batch is formed (and normalised, and put on the device) the same way everywhere — which is also what makes
the sharded results equal the one-process ones bit for bit (same batches, same kernels)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .._check import tensor as check_tensor
from .._progress import track
from ..data.normalize import Normalization
from ..errors import ConfigError
from .probe import eval_mode, model_device, model_dtype  # both defined in probe.py (it cannot import this module)


def check_device(value: object, name: str = "device", hint: str = "cpu, cuda or cuda:N") -> torch.device:
    """``value`` (a name such as ``"cpu"`` or ``"cuda:0"``, or a torch.device) as a device this machine computes
    on: the CPU, or a CUDA / MPS device that is present. ``meta`` (shapes without values) and unknown names are
    refused, naming ``name``; ``hint``: the values to suggest."""
    if isinstance(value, torch.device):
        device = value
    elif isinstance(value, str) and value.strip():
        try:
            device = torch.device(value.strip())
        except (RuntimeError, ValueError):
            raise ConfigError(f"{name}: {value!r} is not a device; use {hint}", arg=name) from None
    else:
        raise ConfigError(f"{name}: expected a device name such as 'cpu' or 'cuda:0' (or a torch.device), got "
                          f"{value!r}", arg=name)
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{name}: {value!r} requested but no CUDA device is available here; use {hint}", arg=name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{name}: {value!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})", arg=name)
        return device
    if device.type == "mps" and torch.backends.mps.is_available():
        return device
    why = ("holds shapes without values, nothing can be computed there" if device.type == "meta" else
           "is not available here")
    raise ConfigError(f"{name}: {value!r}: the {device.type} device {why}; use {hint}", arg=name)


def model_input(model: nn.Module, x: object, name: str = "inputs",
                input_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """``x`` checked as a model-ready float batch (B, C, H, W) (with ``input_shape``, of that (C, H, W)) and
    given the model's dtype and device. Floating input of another precision is converted (float64 -> float32
    for a float32 model, as the model itself could not mix them); integer, bool, complex and meta tensors are
    refused: uint8 images need normalizing, which only the caller's normalization knows."""
    fix = ("give normalized float images (B, C, H, W); uint8 images go through run.preprocess(images) or "
           "Normalization.apply(images)")
    x = check_tensor(x, name, ndim=4, fix=fix)
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise ConfigError(f"{name}: expected images (B, {', '.join(map(str, input_shape))}), the model's input "
                          f"shape, got {tuple(x.shape)}", arg=name)
    return x.to(device=model_device(model), dtype=model_dtype(model))


def iter_batches(model: nn.Module | None, images: torch.Tensor, norm: Normalization | None, batch_size: int, *,
                 forward: Callable[[torch.Tensor], Any] | None = None, start: int = 0, stop: int | None = None,
                 eval: bool = True, progress: str | None = None) -> Iterator[tuple[int, Any]]:
    """For each batch ``images[i:i + batch_size]`` of the range ``[start, stop)``: ``(i, forward(x))``.

    ``x`` is the batch on the model's device, normalised by ``norm`` (uint8 (B, C, H, W) -> float input), or
    as it is when ``norm`` is None (already model input). ``forward`` defaults to ``model`` itself; give it to
    average views, map errors, or drive a model that is not an nn.Module (``model=None``). Each batch runs
    without gradients and, unless ``eval=False`` (the caller has set the modes), in eval mode with the
    caller's mode restored before the batch is handed back. Hooks the caller holds (``observe``, ``capture``)
    see every batch in order. ``progress``: the stage's name, reported batch by batch when the command shows
    progress (convscope/_progress.py); None: a pass too short to report (evaluation inside training)."""
    device = model_device(model)
    run = forward if forward is not None else model
    stop = len(images) if stop is None else stop
    starts = range(start, stop, batch_size)
    for i in track(starts, progress, unit="batch") if progress else starts:
        x = images[i:min(i + batch_size, stop)].to(device)
        if norm is not None:
            x = norm.apply(x)                                              # (B, C, H, W) float32
        with (eval_mode(model) if eval and model is not None else contextlib.nullcontext()), torch.no_grad():
            out = run(x)
        yield i, out
