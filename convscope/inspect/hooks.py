"""Scoped activation capture: hooks that observe (never modify) and are always removed.

Every tool here names layers by ``named_modules()`` (resolved by :mod:`convscope.models.layers`) and relies on
nothing else about how a model is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .._result import Display, ResultMixin, RichDisplay, Table
from ..models.hooks import observe
from ..models.layers import named_layers, resolve_layers
from ..models.probe import eval_mode, zeros_forward


@dataclass(frozen=True)
class LayerInfo(ResultMixin):
    name: str
    kind: str
    output_shape: tuple[int, ...]   # one example's, without the batch dimension
    parameters: int


class LayerTable(RichDisplay, list):
    """:func:`list_layers`'s rows (a list of :class:`LayerInfo`), displayed as a table."""

    def _display(self) -> Display:
        rows = [[li.name, li.kind, " x ".join(map(str, li.output_shape)) or "(no tensor)", f"{li.parameters:,}"]
                for li in self]
        total = sum(li.parameters for li in self)
        return Display(f"{len(self)} layers, {total:,} parameters", [],
                       [Table(["layer", "type", "output (one example)", "parameters"], rows)])


@contextlib.contextmanager
def capture(model: nn.Module, layers: list[str], fn: Callable[[str, torch.Tensor], None] | None = None,
            detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward stores ``layers``' outputs (detached clones) in the yielded dict, or passes
    them to ``fn(name, output)`` instead (to reduce them on the fly; ``detach=False`` hands ``fn`` the output
    still attached to the graph). The hooks are removed on leaving the block, also when the forward raises."""
    modules = named_layers(model)
    store: dict[str, torch.Tensor] = {}

    def make(name: str):
        def hook(module, inputs, output) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                return
            if fn is not None:
                fn(name, out.detach() if detach else out)
            else:
                store[name] = out.detach().clone()  # clone: an in-place op later in the forward must not alter it
        return hook

    with observe([(modules[name], make(name)) for name in resolve_layers(model, layers)]):
        yield store


def list_layers(model: nn.Module, input_shape: tuple[int, ...]) -> LayerTable:
    """Every named module with the shape of its output for one input of ``input_shape`` (C, H, W)."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = named_layers(model)
    with eval_mode(model), torch.no_grad(), \
            capture(model, list(modules), lambda n, t: shapes.__setitem__(n, tuple(t.shape[1:]))):
        zeros_forward(model, input_shape)
    return LayerTable(LayerInfo(n, type(m).__name__, shapes.get(n, ()),
                                sum(q.numel() for q in m.parameters(recurse=False))) for n, m in modules.items())
