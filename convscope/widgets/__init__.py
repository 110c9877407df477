"""Jupyter widgets (anywidget; ``pip install 'convscope[notebook]'``): :func:`draw`, the draw-and-see view of
``convscope serve`` in a notebook."""

from .draw import DrawWidget, draw, png_data_url

__all__ = ["DrawWidget", "draw", "png_data_url"]
