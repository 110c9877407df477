"""The one scoped hook helper: every forward hook convscope registers goes through :func:`observe`.

Hooks observe, never modify: a hook's return value is discarded, so it cannot replace a module's input or
output. They are removed in ``finally`` on leaving the block, on success and on exceptions alike (Captum's
rule); :func:`hook_count` is what the tests check afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import nn

ForwardHook = Callable[[nn.Module, tuple, Any], None]   # (module, inputs, output)
PreHook = Callable[[nn.Module, tuple], None]            # (module, inputs)


@contextlib.contextmanager
def observe(forward: Iterable[tuple[nn.Module, ForwardHook]] = (),
            pre: Iterable[tuple[nn.Module, PreHook]] = ()) -> Iterator[None]:
    """Within the block, each ``(module, fn)`` of ``forward`` is called after that module's forward as
    ``fn(module, inputs, output)``, and each of ``pre`` before it as ``fn(module, inputs)``. Whatever ``fn``
    returns is ignored; an exception it raises propagates (that is how a tap ends a forward early)."""
    handles = []
    try:
        for module, fn in pre:
            handles.append(module.register_forward_pre_hook(_discard_pre(fn)))
        for module, fn in forward:
            handles.append(module.register_forward_hook(_discard(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


def _discard(fn: ForwardHook):
    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:    # None: the output stays as it is
        fn(module, inputs, output)
    return hook


def _discard_pre(fn: PreHook):
    def hook(module: nn.Module, inputs: tuple) -> None:                 # None: the inputs stay as they are
        fn(module, inputs)
    return hook


def hook_count(model: nn.Module) -> int:
    """Forward (pre-)hooks and backward hooks registered on any module: 0 when nothing was left behind."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())
