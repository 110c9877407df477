"""Pictures: image grids and plots, drawn with matplotlib's object API (no pyplot global state)."""

from .figures import figure_png, new_figure, save_figure
from .grid import class_grid

__all__ = ["class_grid", "figure_png", "new_figure", "save_figure"]
