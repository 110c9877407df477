"""Figures without pyplot: no global state, no GUI backend, atomic PNG writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._atomic import atomic_write_bytes


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure (inches) bound to the Agg canvas, independent of pyplot."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` rendered to PNG bytes (what a file gets, and what a notebook shows inline)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Render ``fig`` to PNG and write it atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, figure_png(fig, dpi))
    return path
