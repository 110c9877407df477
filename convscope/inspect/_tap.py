"""Differentiable, scoped taps on layer outputs (``capture`` detaches; feature visualization and projections
need the graph). Hooks are removed on leaving the block, also on errors; the forward can stop early once
every tapped layer has been seen, which also keeps unsupported layers *after* them out of the way."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..models.layers import resolve_layers
from .hooks import capture


class _Stop(Exception):
    """Raised by the last tap to end a forward that has produced everything asked for."""


@contextlib.contextmanager
def tap(model: nn.Module, layers: list[str], stop: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, a forward fills the dict with each layer's output (a clone, attached to the graph:
    an in-place op later in the forward does not change it). The first call of a module is kept (a reused
    module's later calls are ignored). With ``stop``, use :func:`run` to end the forward at the last layer."""
    names = resolve_layers(model, layers) if layers else []
    store: dict[str, torch.Tensor] = {}

    def keep(name: str, out: torch.Tensor) -> None:
        if name in store:
            return
        store[name] = out.clone()
        if stop and len(store) == len(names):
            raise _Stop

    with capture(model, names, keep, detach=False):
        yield store


def run(model: nn.Module, x: torch.Tensor, store: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """``model(x)`` inside a :func:`tap` block (store emptied first); None when a stopping tap ended it."""
    store.clear()
    try:
        return model(x)
    except _Stop:
        return None
