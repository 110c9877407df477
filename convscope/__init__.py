"""convscope: build, train and look inside convolutional neural networks, on PyTorch.

    import convscope
    run = convscope.train({"epochs": 5})          # -> Run (model, config, metrics, summary)
    run = convscope.load_run("runs/fast2-digits")  # no unpickling: safetensors + JSON, SHA-256 checked

Importing ``convscope`` (which every ``import convscope.<anything>`` does first) loads only the errors and the
version: the training API below is imported on first use, so ``convscope.data`` does not drag in the training
loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (ChecksumError, ConfigError, ConvscopeError, ConvscopeWarning, DataError, DatasetNotFoundError,
                     DownloadError, SettingWarning)

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports them on first use
    from .training import Run, TrainConfig, load_run, resume, train

_TRAINING = ("Run", "TrainConfig", "load_run", "resume", "train")

__all__ = ["ChecksumError", "ConfigError", "ConvscopeError", "ConvscopeWarning", "DataError", "DatasetNotFoundError",
           "DownloadError", "Run", "SettingWarning", "TrainConfig", "__version__", "load_run", "resume", "train"]


def __getattr__(name: str) -> Any:
    """``convscope.train`` and the rest of the training API, imported when first asked for (PEP 562)."""
    if name in _TRAINING:
        from . import training

        value = getattr(training, name)
        globals()[name] = value   # later lookups skip this function
        return value
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
