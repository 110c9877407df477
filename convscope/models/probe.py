"""Small, scoped probes of any ``nn.Module``: run it in eval mode, and read the input shape of its layers.

Both restore the model as they found it (train/eval mode, no hook left), on success and on exceptions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; the caller's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def layer_input_shapes(model: nn.Module, input_shape: tuple[int, ...], names: list[str] | None = None
                       ) -> dict[str, tuple[int, ...]]:
    """One example's input shape (no batch dimension) at each named module (default: every leaf module) that a
    forward pass of a zero image of ``input_shape`` reaches, in eval mode and without gradients."""
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if n and not list(m.children())]
    shapes: dict[str, tuple[int, ...]] = {}

    def make(name: str):
        def hook(module, inputs, output) -> None:  # returns None: observes only
            if inputs and isinstance(inputs[0], torch.Tensor) and name not in shapes:
                shapes[name] = tuple(inputs[0].shape[1:])
        return hook

    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    handles = []
    try:
        for n in names:
            handles.append(modules[n].register_forward_hook(make(n)))
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(1, *input_shape, dtype=dtype, device=device))
    finally:
        for h in handles:
            h.remove()
    return shapes
