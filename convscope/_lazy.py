"""Packages whose names are imported on first use (PEP 562), so that importing a package, which every import of
one of its modules does first, costs only that module: ``convscope --help`` then needs no torch.

    __getattr__, __dir__ = lazy_exports(__name__, {"load": ".registry", "ImageDataset": ".dataset"})

A package keeps the same names in an ``if TYPE_CHECKING:`` import block, for type checkers and the API docs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public name to the (relative)
    module that defines it (``".name"`` for the submodule ``name`` itself, ``".module:other"`` for a name defined
    there as ``other``), imported when the name is first asked
    for and then cached in the package."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where, _, attr = exports[name].partition(":")           # ".attribution:METHODS": another name there
        module = importlib.import_module(where, package)
        value = module if where == f".{name}" else getattr(module, attr or name)   # a submodule, or a name in one
        setattr(sys.modules[package], name, value)          # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
