"""Weights saved before layers were named (convscope 0.1: ``0.weight``, ``4.running_mean``, ``3.conv1.weight``)
load into today's named models (``conv1.weight``, ``bn2.running_mean``, ``layer1.0.conv1.weight``).

Today's zoo models hold the same modules in the same order as 0.1's anonymous ``nn.Sequential``s; only the
names changed, and ResNet's six top-level blocks became ``layer1.0 … layer3.1``. So old top-level index ``i``
is the i-th entry of the new model's top level with nested ``nn.Sequential`` stages expanded.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def _legacy_prefixes(model: nn.Module) -> list[str]:
    """New module paths in 0.1's top-level order: ``[conv1, bn1, relu1, layer1.0, layer1.1, ...]``."""
    out: list[str] = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and name.startswith("layer"):  # a ResNet stage of blocks
            out += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            out.append(name)
    return out


def is_legacy_state(state: dict[str, torch.Tensor]) -> bool:
    return bool(state) and all(k.split(".", 1)[0].isdigit() for k in state)


def upgrade_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights"
                       ) -> dict[str, torch.Tensor]:
    """``state`` with 0.1's numeric keys renamed to ``model``'s layer names; other states are returned as they
    are. A key that has no counterpart, or a shape that differs, is a :class:`ConfigError` naming it."""
    if not is_legacy_state(state) or any(k.split(".", 1)[0].isdigit() for k in model.state_dict()):
        return state
    prefixes = _legacy_prefixes(model)
    expected = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        index, rest = key.split(".", 1)
        if int(index) >= len(prefixes):
            raise ConfigError(f"{source}: key {key!r} (saved before layers were named) has no layer {index} in "
                              f"this model; retrain the run or load it with convscope 0.1")
        new = f"{prefixes[int(index)]}.{rest}"
        if new not in expected or expected[new].shape != value.shape:
            raise ConfigError(f"{source}: key {key!r} (saved before layers were named) maps to {new!r}, which this "
                              "model does not have with that shape; retrain the run or load it with convscope 0.1")
        out[new] = value
    return out
