"""A tiny sequential engine over the NumPy layers, and conversion to and from PyTorch modules."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from . import layers as L


class Sequential:
    """Runs layers in order; ``backward`` runs them in reverse. ``names[i]`` is layer i's PyTorch name."""

    def __init__(self, layers: list[L.Layer], names: list[str] | None = None) -> None:
        self.layers = layers
        self.names = names or [str(i) for i in range(len(layers))]

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def parameters(self) -> list[tuple[dict, str]]:
        """(owner dict, key) pairs, so optimizers can replace arrays in place."""
        return [(layer.params, k) for layer in self.layers for k in layer.params]

    def gradients(self) -> list[np.ndarray]:
        return [layer.grads[k] for layer in self.layers for k in layer.params]

    def state_dict(self) -> dict[str, np.ndarray]:
        """PyTorch-named parameters and buffers (``"0.weight"``, ``"1.running_mean"``, ...)."""
        out = {}
        for name, layer in zip(self.names, self.layers):
            for k, v in {**layer.params, **layer.buffers}.items():
                out[f"{name}.{k}"] = v
            if isinstance(layer, L.BatchNorm2d):
                out[f"{name}.num_batches_tracked"] = np.asarray(getattr(layer, "batches", 0), dtype=np.int64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name, layer in zip(self.names, self.layers):
            for store in (layer.params, layer.buffers):
                for k in store:
                    store[k] = np.asarray(state[f"{name}.{k}"], dtype=store[k].dtype).copy()


def _np(t: torch.Tensor | None, dtype) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().astype(dtype, copy=True)


def from_torch(model: nn.Module, dtype=np.float64, algorithm: str = "im2col",
               rng: np.random.Generator | None = None) -> Sequential:
    """The NumPy twin of a PyTorch ``nn.Sequential`` of supported layers, with copied weights."""
    if not isinstance(model, nn.Sequential):
        raise ConfigError(f"model: the NumPy engine runs nn.Sequential models; got {type(model).__name__}")
    rng = rng or np.random.default_rng(0)
    out, names = [], []
    for name, m in model.named_children():
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise ConfigError(f"layer {name}: padding_mode {m.padding_mode!r}; the NumPy engine pads with zeros")
            layer = L.Conv2d(_np(m.weight, dtype), _np(m.bias, dtype), m.stride, m.padding, m.dilation, m.groups,
                             algorithm)
        elif isinstance(m, nn.Linear):
            layer = L.Linear(_np(m.weight, dtype), _np(m.bias, dtype))
        elif isinstance(m, nn.MaxPool2d):
            if m.dilation not in (1, (1, 1)) or m.ceil_mode:
                raise ConfigError(f"layer {name}: MaxPool2d with dilation or ceil_mode is not supported")
            layer = L.MaxPool2d(m.kernel_size, m.stride, m.padding)
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or not m.count_include_pad or m.divisor_override:
                raise ConfigError(f"layer {name}: AvgPool2d needs ceil_mode=False, count_include_pad=True")
            layer = L.AvgPool2d(m.kernel_size, m.stride, m.padding)
        elif isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)) and m.output_size in (1, (1, 1)):
            layer = L.GlobalMaxPool2d() if isinstance(m, nn.AdaptiveMaxPool2d) else L.GlobalAvgPool2d()
        elif isinstance(m, nn.ReLU):
            layer = L.ReLU()
        elif isinstance(m, nn.Flatten):
            layer = L.Flatten()
        elif isinstance(m, nn.Dropout):
            layer = L.Dropout(m.p, rng)
        elif isinstance(m, nn.BatchNorm2d):
            layer = L.BatchNorm2d(_np(m.weight, dtype), _np(m.bias, dtype), _np(m.running_mean, dtype),
                                  _np(m.running_var, dtype), m.eps, m.momentum)
        else:
            raise ConfigError(f"layer {name}: {type(m).__name__} has no NumPy twin; supported: Conv2d, Linear, "
                              "MaxPool2d, AvgPool2d, global max/avg pooling, ReLU, Flatten, Dropout, BatchNorm2d")
        out.append(layer)
        names.append(name)
    return Sequential(out, names)


def to_torch_state(engine: Sequential, model: nn.Module) -> dict[str, torch.Tensor]:
    """The engine's weights as a state dict for ``model`` (same names; dtype of the model's tensors)."""
    ref = model.state_dict()
    state = engine.state_dict()
    return {k: torch.from_numpy(np.asarray(state[k])).to(ref[k].dtype) if k in state else ref[k] for k in ref}
