"""Input checks for the NumPy reference: clear errors instead of broadcasting surprises."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

FLOATS = (np.float32, np.float64)


def check_array(a, name: str, ndim: int | None = None, dtype=None, shape: tuple | None = None,
                finite: bool = False) -> None:
    if not isinstance(a, np.ndarray):
        raise ConfigError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype not in FLOATS:
        raise ConfigError(f"{name}: expected float32 or float64, got {a.dtype}; convert with .astype(np.float32)")
    if dtype is not None and a.dtype != dtype:
        raise ConfigError(f"{name}: dtype {a.dtype} differs from the input's {np.dtype(dtype)}; use one dtype")
    if ndim is not None and a.ndim != ndim:
        raise ConfigError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ConfigError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    if finite and not np.isfinite(a).all():
        raise ConfigError(f"{name}: contains inf or NaN")
