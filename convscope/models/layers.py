"""Layer resolution: which modules of any ``nn.Module`` a user means by a name.

A layer is named by its ``named_modules()`` name (``conv2``, ``layer1.0.conv1``) or by a module type meaning
every module of that type (``ReLU``, ``Conv2d``); the inspection tools, the matrix reports and the experiments
resolve names here and rely on nothing else about how a model is built.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def named_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every named submodule of ``model`` by its ``named_modules()`` name, in model order (the root excluded)."""
    return {n: m for n, m in model.named_modules() if n}


def resolve_layers(model: nn.Module, names: list[str] | str | None) -> list[str]:
    """Layer names of ``model``, in the order given: each entry is a ``named_modules()`` name (``conv2``,
    ``layer1.0.conv1``) or a module type meaning every module of that type in model order (``ReLU``,
    ``Conv2d``). A single string may hold a comma-separated list. Unknown entries are an error that lists the
    valid names and types."""
    modules = named_layers(model)
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
    names = [n for n, m in named_layers(model).items() if isinstance(m, acts)]
    return names or [n for n, m in named_layers(model).items() if not list(m.children())]
