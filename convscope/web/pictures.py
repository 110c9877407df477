"""Small pictures made directly with NumPy and Pillow (no figure per tile): colour maps, nearest-neighbour
enlargement, receptive-field boxes, and PNG bytes / ``data:`` URIs for pages that must work offline."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw


def png_bytes(arr: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def file_data_uri(path: Path) -> str:
    return data_uri(Path(path).read_bytes())


def colorize(a: np.ndarray, signed: bool | None = None, vmax: float | None = None) -> np.ndarray:
    """float (H, W) -> uint8 RGB (H, W, 3): diverging blue-white-red around 0 when ``signed`` (default: when
    any value is negative), else viridis from 0 to the maximum."""
    a = np.asarray(a, dtype=np.float64)
    signed = bool((a < 0).any()) if signed is None else signed
    if signed:
        m = vmax or float(np.abs(a).max()) or 1.0
        rgba = colormaps["RdBu_r"](np.clip(0.5 + 0.5 * a / m, 0, 1))
    else:
        m = vmax or float(a.max()) or 1.0
        rgba = colormaps["viridis"](np.clip(a / m, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def enlarge(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour enlargement so the longer side is about ``size`` pixels (integer factor, at least 1)."""
    f = max(1, size // max(img.shape[:2]))
    return np.repeat(np.repeat(img, f, axis=0), f, axis=1)


def gray_rgb(img_u8: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 with C = 1 or 3 -> (H, W, 3)."""
    return np.repeat(img_u8[0][..., None], 3, axis=2) if img_u8.shape[0] == 1 else img_u8.transpose(1, 2, 0)


def patch(img_u8: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (H, W, 3) crop under an inclusive box (top, left, bottom, right); outside the image is grey."""
    t, l, b, r = box
    h, w = img_u8.shape[1:]
    rgb = gray_rgb(img_u8)
    out = np.full((b - t + 1, r - l + 1, 3), 128, dtype=np.uint8)    # grey = padding
    tt, ll, bb, rr = max(t, 0), max(l, 0), min(b, h - 1), min(r, w - 1)
    if bb >= tt and rr >= ll:
        out[tt - t:bb - t + 1, ll - l:rr - l + 1] = rgb[tt:bb + 1, ll:rr + 1]
    return out


def with_box(img_u8: np.ndarray, box: tuple[int, int, int, int] | None, size: int = 84) -> np.ndarray:
    """The whole image enlarged, with the box (inclusive, input pixels) drawn in red."""
    rgb = gray_rgb(img_u8)
    f = max(1, size // max(rgb.shape[:2]))
    big = Image.fromarray(enlarge(rgb, size))
    if box is not None:
        t, l, b, r = box
        ImageDraw.Draw(big).rectangle([l * f, t * f, (r + 1) * f - 1, (b + 1) * f - 1], outline=(255, 40, 40), width=2)
    return np.asarray(big)
