"""convscope in the browser: ``convscope serve`` (draw a digit, watch every layer; units; the conv-as-matrix
explorer; training curves) and ``convscope report`` (one self-contained HTML file).

    from convscope.web import create_app, serve, build_report
"""

from .app import create_app
from .compute import prepare_canvas_image
from .report import build_report
from .server import serve

__all__ = ["build_report", "create_app", "prepare_canvas_image", "serve"]
