"""Small, scoped probes of any ``nn.Module``: run it in eval mode, and read the input shape of its layers.

Both restore the model as they found it (train/eval mode, no hook left), on success and on exceptions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .._check import is_int
from ..errors import ConfigError, ConvscopeError
from .hooks import observe


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; the caller's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


MAX_SIDE = 4096          # an input's largest height/width: beyond it one batch of such images alone fills memory
MAX_VALUES = 1 << 26     # C * H * W of one input (256 MiB as float32)


def check_input_shape(value, name: str = "input_shape") -> tuple[int, int, int]:
    """``value`` as a (C, H, W) tuple of positive ints, at most ``MAX_SIDE`` pixels a side and ``MAX_VALUES``
    values in all, or a ConfigError naming ``name`` and the fix."""
    ok = (isinstance(value, (tuple, list, torch.Size)) and len(value) == 3
          and all(is_int(v) and v >= 1 for v in value))
    if not ok:
        raise ConfigError(f"{name}: expected (channels, height, width), three positive integers such as (1, 28, 28), "
                          f"got {value!r}")
    c, h, w = (int(v) for v in value)
    if max(h, w) > MAX_SIDE or c * h * w > MAX_VALUES:
        raise ConfigError(f"{name}: {(c, h, w)} is refused: sides above {MAX_SIDE} pixels or more than "
                          f"{MAX_VALUES:,} values per image do not fit in memory a batch at a time; give the "
                          "(C, H, W) the model was built for")
    return c, h, w


def _raised_in_user_code(e: BaseException) -> bool:
    """Whether the innermost Python frame of ``e`` lies outside torch and convscope (the user's model code)."""
    import os

    tb = e.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename)
    ours = [os.path.dirname(os.path.abspath(m.__file__)) for m in (torch, __import__("convscope"))]
    return not any(where.startswith(d + os.sep) for d in ours)


def model_device(model: nn.Module | None) -> torch.device:
    """The device a model's inputs go to: that of its first parameter (or buffer); CPU without either."""
    if model is None:
        return torch.device("cpu")
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return t.device if t is not None else torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype a model computes in: the one most of its floating parameters' elements have (buffers'
    when it has no floating parameter; ties go to the first registered); float32 without either. Not the first
    parameter's: a float32 model with one small fp16 ``nn.Parameter`` registered before its layers computes in
    float32, and giving it fp16 input was refused as a wrong input shape."""
    for group in (list(model.parameters()), list(model.buffers())):
        count: dict[torch.dtype, int] = {}
        for t in group:
            if t.is_floating_point():
                count[t.dtype] = count.get(t.dtype, 0) + t.numel()
        if count:
            return max(count, key=count.__getitem__)      # dicts keep insertion order: a tie keeps the first
    return torch.float32


def zeros_forward(model: nn.Module, input_shape, name: str = "input_shape", batch: int = 1,
                  fix: str = "give the (C, H, W) the model was built for") -> torch.Tensor:
    """The model's output for ``batch`` zero images of ``input_shape`` (C, H, W), in the model's dtype and on its
    device.

    A shape the model cannot take (channels, too small for its kernels) is a ConfigError naming ``name``; the
    caller sets eval mode / no_grad / hooks as it needs."""
    shape = check_input_shape(input_shape, name)
    try:
        return model(torch.zeros(batch, *shape, dtype=model_dtype(model), device=model_device(model)))
    except ConvscopeError:               # a check in a caller's hook (a reused layer), already in words
        raise
    except (RuntimeError, ValueError, IndexError) as e:
        if _raised_in_user_code(e):      # the user's own forward raised: theirs to see, with their traceback
            raise
        raise ConfigError(f"{name}: the model cannot take an image of shape {shape} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); {fix}") from e


def layer_input_shapes(model: nn.Module, input_shape: tuple[int, ...], names: list[str] | None = None
                       ) -> dict[str, tuple[int, ...]]:
    """One example's input shape (no batch dimension) at each named module (default: every leaf module) that a
    forward pass of a zero image of ``input_shape`` reaches, in eval mode and without gradients."""
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if n and not list(m.children())]
    shapes: dict[str, tuple[int, ...]] = {}

    def make(name: str):
        def hook(module, inputs, output) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor) and name not in shapes:
                shapes[name] = tuple(inputs[0].shape[1:])
        return hook

    with observe([(modules[n], make(n)) for n in names]), eval_mode(model), torch.no_grad():
        zeros_forward(model, input_shape)
    return shapes
