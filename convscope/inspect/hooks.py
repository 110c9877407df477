"""Scoped activation capture: hooks that observe (never modify) and are always removed.

Every tool here names layers by ``named_modules()`` and relies on nothing else about how a model is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .._result import ResultMixin
from ..errors import ConfigError
from ..models.hooks import observe
from ..models.probe import eval_mode, zeros_forward


@dataclass(frozen=True)
class LayerInfo(ResultMixin):
    name: str
    kind: str
    output_shape: tuple[int, ...]   # one example's, without the batch dimension
    parameters: int


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if n}


def resolve_layers(model: nn.Module, names: list[str] | str | None) -> list[str]:
    """Layer names of ``model``, in the order given: each entry is a ``named_modules()`` name (``conv2``,
    ``layer1.0.conv1``) or a module type meaning every module of that type in model order (``ReLU``,
    ``Conv2d``). A single string may hold a comma-separated list. Unknown entries are an error that lists the
    valid names and types."""
    modules = _modules(model)
    if names is None:
        return list(modules)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"layers: expected a list of layer names (str), got {names!r}")
    out: list[str] = []
    unknown = []
    for name in names:
        if name in modules:
            matched = [name]
        else:
            matched = [n for n, m in modules.items() if type(m).__name__ == name]
        if not matched:
            unknown.append(name)
        out += [n for n in matched if n not in out]
    if unknown:
        types = sorted({type(m).__name__ for m in modules.values()})
        hint = ""
        if any(u.isdigit() for u in unknown) and not any(n.isdigit() for n in modules):
            hint = " (layers are named by role since convscope 0.2: numeric indices such as '4' became names)"
        raise ConfigError(f"unknown layer(s) {', '.join(repr(n) for n in unknown)}{hint}; valid names: "
                          f"{', '.join(modules)}; or a type for all layers of it: {', '.join(types)}")
    return out


def default_activation_layers(model: nn.Module) -> list[str]:
    """The activation modules (ReLU and relatives) if the model has any, else every leaf module."""
    acts = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardswish)
    names = [n for n, m in _modules(model).items() if isinstance(m, acts)]
    return names or [n for n, m in _modules(model).items() if not list(m.children())]


@contextlib.contextmanager
def capture(model: nn.Module, layers: list[str], fn: Callable[[str, torch.Tensor], None] | None = None,
            detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward stores ``layers``' outputs (detached clones) in the yielded dict, or passes
    them to ``fn(name, output)`` instead (to reduce them on the fly; ``detach=False`` hands ``fn`` the output
    still attached to the graph). The hooks are removed on leaving the block, also when the forward raises."""
    modules = _modules(model)
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


def list_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """Every named module with the shape of its output for one input of ``input_shape`` (C, H, W)."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = _modules(model)
    with eval_mode(model), torch.no_grad(), \
            capture(model, list(modules), lambda n, t: shapes.__setitem__(n, tuple(t.shape[1:]))):
        zeros_forward(model, input_shape)
    return [LayerInfo(n, type(m).__name__, shapes.get(n, ()), sum(q.numel() for q in m.parameters(recurse=False)))
            for n, m in modules.items()]
