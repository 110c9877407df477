"""Figures without pyplot: no global state, no GUI backend, atomic PNG writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._atomic import atomic_write_bytes
from .._check import OUTPUT_KEY, output_file


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure (inches) bound to the Agg canvas, independent of pyplot."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100, metadata: dict[str, str] | None = None) -> bytes:
    """``fig`` rendered to PNG bytes (what a file gets, and what a notebook shows inline); ``metadata``: PNG text
    chunks."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=metadata)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100, output: str | None = None) -> Path:
    """Render ``fig`` to PNG and write it atomically; returns the path. ``output``: the command that writes it to a
    path the user named ("matrix"): the path must pass :func:`convscope._check.output_file` and the PNG is marked
    as that command's, so that a later run of it may replace it and nothing else may."""
    path = Path(path)
    if output is not None:
        output_file(path, "path", output)
    atomic_write_bytes(path, figure_png(fig, dpi, {OUTPUT_KEY: output} if output is not None else None))
    return path
