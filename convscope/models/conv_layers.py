"""The one answer to "which are this model's conv layers": by ``named_modules()`` name, in model order,
relying on nothing else about how the model is built (no ``.features`` guessing)."""

from __future__ import annotations

from torch import nn


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The model's ``nn.Conv2d`` modules by name, in ``named_modules()`` order."""
    return {n: m for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)}


def last_conv(model: nn.Module, upto: str | None = None) -> str | None:
    """The name of the model's last conv layer; with ``upto``, of the last one at or before the module
    ``upto`` in ``named_modules()`` order (the conv whose output channels that layer shows). None when there
    is no such conv (or no module ``upto``)."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and name:
            last = name
        if upto is not None and name == upto:
            return last
    return None if upto is not None else last
