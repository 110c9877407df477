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
from ..errors import ConfigError
from ..models.hooks import observe
from ..models.layers import named_layers, resolve_layers
from ..models.probe import eval_mode, zeros_forward


@dataclass(frozen=True)
class LayerInfo(ResultMixin):
    name: str
    kind: str
    output_shape: tuple[int, ...]   # one example's, without the batch dimension (a reused module: its first call's)
    parameters: int
    calls: int = 1                  # times it runs in one forward (0: not reached; >1: a reused module)


class LayerTable(RichDisplay, list):
    """:func:`list_layers`'s rows (a list of :class:`LayerInfo`), displayed as a table."""

    def _display(self) -> Display:
        rows = [[li.name, li.kind, (" x ".join(map(str, li.output_shape)) or "(no tensor)")
                 + (f" (first of {li.calls} calls per forward)" if li.calls > 1 else ""), f"{li.parameters:,}"]
                for li in self]
        total = sum(li.parameters for li in self)
        return Display(f"{len(self)} layers, {total:,} parameters", [],
                       [Table(["layer", "type", "output (one example)", "parameters"], rows)])


REUSED_FIX = ("give each use its own module (self.relu1 = nn.ReLU(), self.relu2 = nn.ReLU()), or pick a layer "
              "that runs once")


@contextlib.contextmanager
def capture(model: nn.Module, layers: list[str], fn: Callable[[str, torch.Tensor], None] | None = None,
            detach: bool = True, once: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward stores ``layers``' outputs (detached clones) in the yielded dict, or passes
    them to ``fn(name, output)`` instead (to reduce them on the fly; ``detach=False`` hands ``fn`` the output
    still attached to the graph). The hooks are removed on leaving the block, also when the forward raises.

    ``once``: a layer must run at most once per forward of ``model``; a module called twice (one ``self.relu``
    after two convs, one conv applied twice) is a ConfigError naming it. Its calls' outputs are different
    activations (often of different shapes): pooling them, or keeping the last, would rank, count or describe
    something that is no single layer's output. Counted between ``model``'s own pre-hook and its forward's end,
    so a forward that does not go through ``model(x)`` is never counted wrongly."""
    modules = named_layers(model)
    store: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    counting = [False]

    def start(module, inputs) -> None:       # model's own pre-hook: a new forward begins
        calls.clear()
        counting[0] = True

    def end(module, inputs, output) -> None:
        counting[0] = False

    def make(name: str):
        def hook(module, inputs, output) -> None:
            if once and counting[0]:
                calls[name] = calls.get(name, 0) + 1
                if calls[name] > 1:
                    raise ConfigError(f"layer {name!r} runs more than once in one forward pass (the model calls "
                                      "the same module again, e.g. one ReLU after two convs): its calls' outputs "
                                      f"are different activations, none of them 'the' output of {name!r}; "
                                      + REUSED_FIX, arg="layer")
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                return
            if fn is not None:
                fn(name, out.detach() if detach else out)
            else:
                store[name] = out.detach().clone()  # clone: an in-place op later in the forward must not alter it
        return hook

    hooks = [(modules[name], make(name)) for name in resolve_layers(model, layers)]
    with observe(hooks + [(model, end)], pre=[(model, start)]):
        yield store


def list_layers(model: nn.Module, input_shape: tuple[int, ...]) -> LayerTable:
    """Every named module with the shape of its output for one input of ``input_shape`` (C, H, W) and how many
    times it runs in one forward (``calls``; a reused module's shape is its first call's, and the table says so:
    the commands that read a layer's activations refuse such a layer, see :func:`capture`)."""
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}

    def seen(name: str, t: torch.Tensor) -> None:
        calls[name] = calls.get(name, 0) + 1
        shapes.setdefault(name, tuple(t.shape[1:]))

    modules = named_layers(model)
    with eval_mode(model), torch.no_grad(), capture(model, list(modules), seen, once=False):
        zeros_forward(model, input_shape)
    return LayerTable(LayerInfo(n, type(m).__name__, shapes.get(n, ()),
                                sum(q.numel() for q in m.parameters(recurse=False)), calls.get(n, 0))
                      for n, m in modules.items())
