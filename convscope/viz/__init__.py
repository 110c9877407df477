"""Pictures: image grids and plots, drawn with matplotlib's object API (no pyplot global state)."""

from .figures import new_figure, save_figure
from .grid import class_grid

__all__ = ["class_grid", "new_figure", "save_figure"]
