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

from ..data.normalize import Normalization
from .probe import eval_mode


def model_device(model: nn.Module | None) -> torch.device:
    """The device a model's inputs go to: that of its first parameter (or buffer); CPU without either."""
    if model is None:
        return torch.device("cpu")
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return t.device if t is not None else torch.device("cpu")


def iter_batches(model: nn.Module | None, images: torch.Tensor, norm: Normalization | None, batch_size: int, *,
                 forward: Callable[[torch.Tensor], Any] | None = None, start: int = 0, stop: int | None = None,
                 eval: bool = True) -> Iterator[tuple[int, Any]]:
    """For each batch ``images[i:i + batch_size]`` of the range ``[start, stop)``: ``(i, forward(x))``.

    ``x`` is the batch on the model's device, normalised by ``norm`` (uint8 (B, C, H, W) -> float input), or
    as it is when ``norm`` is None (already model input). ``forward`` defaults to ``model`` itself; give it to
    average views, map errors, or drive a model that is not an nn.Module (``model=None``). Each batch runs
    without gradients and, unless ``eval=False`` (the caller has set the modes), in eval mode with the
    caller's mode restored before the batch is handed back. Hooks the caller holds (``observe``, ``capture``)
    see every batch in order."""
    device = model_device(model)
    run = forward if forward is not None else model
    stop = len(images) if stop is None else stop
    for i in range(start, stop, batch_size):
        x = images[i:min(i + batch_size, stop)].to(device)
        if norm is not None:
            x = norm.apply(x)                                              # (B, C, H, W) float32
        with (eval_mode(model) if eval and model is not None else contextlib.nullcontext()), torch.no_grad():
            out = run(x)
        yield i, out
