"""The draw-and-see view of ``convscope serve`` as a Jupyter widget (anywidget): a canvas, the prediction and every
layer's feature maps, updated while drawing, for any trained run. No server process and no network: the canvas
sends its picture through the widget's model, and the kernel answers by the same path as the draw page
(:func:`convscope.web.compute.predict_picture`, which prepares it as ``convscope predict`` prepares a file)."""

from __future__ import annotations

import base64
import binascii
import io
import os
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image

from ..data.image import read_image
from ..errors import ConfigError, ConvscopeError
from ..training import Run, load_run
from ..web.compute import predict_picture
from ..web.runs import RunEntry
from ..web.security import MAX_IMAGE_PIXELS

try:
    import anywidget
    import traitlets
except ImportError as e:   # the notebook extra is optional: say which package and how to get it
    raise ImportError(f"convscope.widgets needs the package {e.name!r}: pip install 'convscope[notebook]'") from None

PNG_URL = "data:image/png;base64,"

CSS = """
.convscope-draw { display: grid; grid-template-columns: auto 1fr; gap: 8px 16px; font: 13px sans-serif; }
.convscope-draw .cs-pad { width: 224px; height: 224px; border: 1px solid #888; touch-action: none; cursor: crosshair; }
.convscope-draw .cs-controls { display: flex; gap: 6px; align-items: center; margin-top: 4px; }
.convscope-draw .cs-status { color: #666; min-height: 1.2em; max-width: 224px; }
.convscope-draw .cs-head { display: flex; gap: 12px; align-items: center; }
.convscope-draw .cs-input { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #ccc; }
.convscope-draw .cs-prediction { font-size: 40px; font-weight: bold; }
.convscope-draw .cs-prob { display: grid; grid-template-columns: 7em 1fr 4em; gap: 4px; align-items: center; }
.convscope-draw .cs-bar { display: block; height: 10px; background: #9ab; width: 0; }
.convscope-draw .cs-top .cs-bar { background: #2a6; }
.convscope-draw .cs-layers { grid-column: 1 / span 2; }
.convscope-draw .cs-layer-title { margin: 6px 0 2px; font-weight: bold; }
.convscope-draw .cs-maps { display: flex; flex-wrap: wrap; gap: 2px; }
.convscope-draw .cs-map { width: 42px; height: 42px; image-rendering: pixelated; }
"""


def _esm() -> str:
    """The widget's JavaScript module: the web app's shared helpers (common.js), then the widget's own code."""
    common = resources.files("convscope.web").joinpath("static/common.js").read_text(encoding="utf-8")
    own = resources.files("convscope.widgets").joinpath("draw_widget.js").read_text(encoding="utf-8")
    return common + "\n" + own


def png_data_url(picture: Any) -> str:
    """A picture (PIL image, array (H, W) / (H, W, C) / (C, H, W), PNG bytes or an image file path) as the PNG data
    URL the canvas sends."""
    if not isinstance(picture, (str, os.PathLike, bytes, Image.Image)):
        picture = np.asarray(picture)                      # tensors, lists: the array rule of read_image
    img = read_image(picture, MAX_IMAGE_PIXELS, name="picture")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return PNG_URL + base64.b64encode(buf.getvalue()).decode("ascii")


class DrawWidget(anywidget.AnyWidget):
    """Draw a picture; see the run's prediction and every layer's maps. State shared with the browser:
    ``image`` (what the canvas sends: a PNG data URL), ``prediction`` (the draw page's JSON: classes,
    probabilities, the prepared input and each layer's maps as uint8 base64), ``error`` and ``updates`` (pictures
    answered). Setting ``image`` from Python (:meth:`draw`) runs the same path as the browser's canvas."""

    _esm = _esm()
    _css = CSS
    image = traitlets.Unicode("").tag(sync=True)
    prediction = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    updates = traitlets.Int(0).tag(sync=True)
    run_name = traitlets.Unicode("").tag(sync=True)

    def __init__(self, run: Run, **kwargs: Any) -> None:
        self._entry = RunEntry(run.path.name, run.path, run)
        super().__init__(run_name=run.path.name, **kwargs)

    @property
    def run(self) -> Run:
        return self._entry.run

    @traitlets.observe("image")
    def _on_image(self, change: dict[str, Any]) -> None:
        try:
            self.prediction = predict_picture(self._entry, self._decode(change["new"])).to_dict()
            self.error = ""
        except ConvscopeError as e:       # a picture the page would refuse: say why, keep the last prediction
            self.error = str(e)
        finally:
            self.updates += 1             # the browser waits for this before sending the next picture

    @staticmethod
    def _decode(url: str) -> Image.Image:
        if not url.startswith(PNG_URL):
            raise ConfigError(f"image: expected a PNG data URL ({PNG_URL}...), got {url[:30]!r}")
        try:
            data = base64.b64decode(url[len(PNG_URL):], validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConfigError(f"image: the data URL is not valid base64 ({e})") from None
        return read_image(data, MAX_IMAGE_PIXELS, name="drawing")

    def draw(self, picture: Any) -> dict[str, Any]:
        """Show ``picture`` as if drawn on the canvas (see :func:`png_data_url` for what it may be); returns the
        prediction (also in ``self.prediction``). A refused picture raises its error."""
        self.error = ""
        self.image = png_data_url(picture)
        if self.error:
            raise ConfigError(self.error)
        return self.prediction


def draw(run: Run | str | os.PathLike[str]) -> DrawWidget:
    """The draw-and-see widget for ``run`` (a :class:`~convscope.training.Run` or its directory): display it in a
    notebook, draw, and watch the prediction and every layer's maps follow."""
    if isinstance(run, (str, os.PathLike)):
        run = load_run(run)
    if not isinstance(run, Run):
        raise ConfigError(f"run: expected a convscope Run (convscope.train(...) or convscope.load_run(path)) or a run "
                          f"directory, got {type(run).__name__}: the widget needs what a run records besides the model "
                          "(input shape, normalization, class names, how pictures are prepared)")
    return DrawWidget(run)
