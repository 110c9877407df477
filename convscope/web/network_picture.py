"""The network view as one static picture (for the report, which has no script): the input, every shown layer
as a column of its feature maps for one test image, then the class probabilities. The maps are the ones the
Draw page paints, from the same forward (:func:`convscope.web.compute.predict_with_maps`) and colour scales:
viridis from 0 to the layer's maximum, or blue-white-red around 0 for a layer with negative values."""

from __future__ import annotations

import base64
import math

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw

from . import compute
from .runs import RunEntry

CELL = 44            # pixels per map (nearest-neighbour)
MAX_MAPS = 12        # maps drawn per layer column; the rest are counted under it
GAP, HEAD = 10, 34   # pixels between columns, header height


def _maps(layer: dict) -> np.ndarray:
    """A Prediction layer (uint8 base64, one scale for the layer) -> RGB maps (C, h, w, 3)."""
    q = np.frombuffer(base64.b64decode(layer["data"]), dtype=np.uint8).reshape(layer["shape"])
    cmap = colormaps["RdBu_r" if layer["signed"] else "viridis"]
    return (cmap(q / 255.0)[..., :3] * 255).round().astype(np.uint8)


def network_png(entry: RunEntry, image_u8: torch.Tensor) -> tuple[bytes, dict]:
    """PNG bytes of the network view for one uint8 image (C, H, W), and what it shows (prediction, layers)."""
    from .pictures import gray_rgb, png_bytes

    pred = compute.predict_with_maps(entry, image_u8[None])
    cols = [("input", gray_rgb(image_u8.numpy())[None], "", "x".join(map(str, image_u8.shape)))]
    for li in pred.layers:
        maps = _maps(li)
        more = f"+{len(maps) - MAX_MAPS} more" if len(maps) > MAX_MAPS else ""
        cols.append((li["name"], maps[:MAX_MAPS], more, "x".join(map(str, li["shape"]))))
    rows = max(len(m) for _, m, _, _ in cols)
    bars_w = 190
    width = len(cols) * (CELL + GAP) + GAP + bars_w
    height = HEAD + rows * (CELL + 4) + 24
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    x = GAP
    for name, maps, more, shape in cols:
        draw.text((x, 4), name[:9], fill=(27, 31, 36))
        draw.text((x, 17), shape[:9], fill=(93, 102, 112))
        for k, m in enumerate(maps):
            tile = Image.fromarray(m).resize((CELL, CELL), Image.NEAREST)
            canvas.paste(tile, (x, HEAD + k * (CELL + 4)))
        if more:
            draw.text((x, HEAD + len(maps) * (CELL + 4) + 2), more, fill=(93, 102, 112))
        x += CELL + GAP
    # softmax: one bar per class, the predicted one in the accent colour
    draw.text((x + 4, 4), "softmax", fill=(27, 31, 36))
    bh = max(10, min(22, (height - HEAD - 10) // max(1, len(pred.classes))))
    for k, (c, p) in enumerate(zip(pred.classes, pred.probabilities)):
        y = HEAD + k * bh
        draw.text((x + 4, y), str(c)[:8], fill=(27, 31, 36))
        colour = (217, 72, 15) if k == pred.index else (141, 164, 189)
        finite = math.isfinite(p)   # a diverged model (the report refuses one; the picture alone must not crash)
        draw.rectangle([x + 60, y + 2, x + 60 + (int(90 * p) if finite else 0), y + bh - 3], fill=colour)
        draw.text((x + 155, y), f"{100 * p:.0f}%" if finite else "NaN", fill=(93, 102, 112))
    return png_bytes(np.asarray(canvas)), {"prediction": pred.prediction, "layers": [li["name"] for li in pred.layers]}
