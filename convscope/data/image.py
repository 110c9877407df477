"""Reading a user's image: the safe opener and the one conversion to an 8-bit grayscale or RGB picture.

Every image that becomes model input — a ``predict`` or ``explain`` file, a ``folder:`` dataset image, a
browser canvas or upload — goes through :func:`read_image` (or :func:`open_image`) and :func:`to_8bit`,
then :func:`convscope.data.prepare.prepare_image` sizes it. ``to_8bit`` applies, in this order:

    1. orientation   the EXIF orientation tag (phone photos) is applied, so the picture is read upright
    2. palette       P / PA images are expanded through their palette (to RGBA when they hold transparency)
    3. bit depth     16-bit (I;16, I;16B, ...) and 32-bit (I) integers are scaled by their nominal range
                     0..65535 -> 0..255, not clipped; I outside 0..65535 and float (F) images by their own
                     range (F in [0, 1] by 255)
    4. alpha         transparency is composited on a background chosen by ink polarity (below)
    5. channels      converted to L (luminance, ITU-R 601-2) or RGB, whichever the model takes

Alpha by ink polarity: the opaque pixels are the ink. Their mean luminance, weighted by alpha, picks the
background: dark ink (mean < 128) goes on white, light ink on black. So black strokes on a transparent layer
(what drawing apps export) read exactly like the same strokes on white paper, and white strokes on
transparency like strokes on a black canvas; MNIST-style preparation then inverts paper to the dataset's
light-on-black polarity as it does for any scan. An image whose every pixel is opaque is not composited.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from .safe_io import open_regular

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
FILE_FORMATS = ("PNG", "JPEG")                 # what a file on disk may be
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ORIENTATION = 0x0112                          # the EXIF tag; values 5..8 swap width and height
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)   # ITU-R 601-2, as Pillow's RGB -> L

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


class ImageTooLarge(DataError):
    """The header announces more pixels than allowed (a decompression bomb, or a genuinely huge image)."""


class ImageFormatError(DataError):
    """A readable image in a format that is not accepted here."""


def _first_bytes(fp) -> str:
    """What a file that is no image starts with, for the message: ``starts with b'hello wo'`` or ``empty``."""
    try:
        fp.seek(0)
        head = fp.read(8)
    except (OSError, ValueError):
        return "unreadable"
    return f"it starts with {head!r}" if head else "empty"


@contextlib.contextmanager
def _decoding(name: str, max_pixels: int, formats: tuple[str, ...], fp, load: bool) -> Iterator[Image.Image]:
    """Open ``fp`` with Pillow: the size from the header checked before decoding, the format against
    ``formats``; every failure a DataError naming ``name``."""
    img = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fp)
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageTooLarge(f"{name}: {w} x {h} pixels exceeds max_pixels={max_pixels:,} (possible "
                                        "decompression bomb); if the image is genuine, downscale it below "
                                        "that (from Python: raise max_pixels)")
                if img.format not in formats:
                    raise ImageFormatError(f"{name}: is a {img.format} image; only {' and '.join(formats)} are "
                                           "read")
                if load:
                    img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                # Pillow's own limit fires inside Image.open for a header past ~179 M pixels, before ours can
                size = re.search(r"\((\d+) pixels\)", str(e))
                what = f"{int(size.group(1)):,} pixels" if size else "more pixels than Pillow decodes"
                raise ImageTooLarge(f"{name}: the header announces {what}, over max_pixels={max_pixels:,} (possible "
                                    "decompression bomb); a genuine image must be scaled down first") from e
            except UnidentifiedImageError as e:
                raise DataError(f"{name}: not a readable image: not PNG or JPEG ({_first_bytes(fp)}); give a "
                                "PNG or JPEG file") from e
            except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:  # Pillow's corrupt-file errors
                if isinstance(e, DataError):
                    raise
                raise DataError(f"{name}: corrupt or truncated image ({e})") from e
        yield img
    finally:
        if img is not None:
            img.close()


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, load: bool = True,
               formats: tuple[str, ...] = FILE_FORMATS) -> Iterator[Image.Image]:
    """Open an image file safely: a regular file only (a FIFO or device is refused before it can block), at
    most ``max_pixels`` pixels (a decompression bomb is refused from its header, before decoding), PNG or
    JPEG only; header checks only unless ``load``. Every failure is a DataError naming the file."""
    path = Path(path)
    fp = open_regular(path, "image file")
    try:
        if os.fstat(fp.fileno()).st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with _decoding(str(path), max_pixels, formats, fp, load) as img:
            yield img
    finally:
        fp.close()


def read_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, formats: tuple[str, ...] = FILE_FORMATS,
               name: str = "image") -> Image.Image:
    """``source`` as a decoded PIL image: a path (through :func:`open_image`), encoded bytes (an upload: the
    same header checks, ``name`` in the messages), a PIL image (returned as is) or an array (H, W), (H, W, C)
    or (C, H, W) — uint8 as is; other dtypes scaled like :func:`to_8bit`'s float rule, [0, 1] by 255."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise DataError(f"{name}: empty (0 bytes); send a PNG or JPEG image")
        with _decoding(name, max_pixels, formats, io.BytesIO(bytes(source)), load=True) as img:
            return _detached(img)
    with open_image(source, max_pixels, load=True, formats=formats) as img:
        return _detached(img)


def _detached(img: Image.Image) -> Image.Image:
    """A copy that outlives the file (its ``info``, EXIF included, kept; ``format`` restored)."""
    out = img.copy()
    out.format = img.format
    return out


def _from_array(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):   # (C, H, W) -> (H, W, C)
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or a.size == 0:
        raise DataError(f"image array of shape {a.shape}: expected (H, W), (H, W, C) or (C, H, W)")
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float64) * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8; 1 = upright) from the header only: JPEG APP1, or a PNG eXIf chunk placed
    before the pixels (where the PNG specification puts it). Nothing is decoded."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError):   # a broken EXIF block: read as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(W, H) once the EXIF orientation is applied (orientations 5..8 turn the picture by 90 degrees)."""
    w, h = img.size
    return (h, w) if orientation(img) >= 5 else (w, h)


def _scale_to_8bit(img: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit, 32-bit integer and float images -> L, by their nominal range (see the module's docstring)."""
    a = np.asarray(img)
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if img.mode == "F":
        nominal = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
    elif img.mode.startswith("I;16") or (lo >= 0 and hi <= 65535):
        nominal = (0.0, 65535.0)
    else:
        nominal = (lo, hi)
    span = nominal[1] - nominal[0] or 1.0
    out = np.clip(np.round((a - nominal[0]) * (255.0 / span)), 0, 255).astype(np.uint8)
    notes.append(f"scaled {img.mode} pixels {nominal[0]:g}..{nominal[1]:g} to 0..255")
    return Image.fromarray(out)


def _composite(img: Image.Image, notes: list[str]) -> Image.Image:
    """RGBA -> RGB on the background opposite to the ink's mean luminance (see the module's docstring)."""
    rgba = np.asarray(img, dtype=np.float32)                                # (H, W, 4)
    alpha = rgba[..., 3] / 255.0
    if alpha.min() >= 1.0:
        return img.convert("RGB")
    weight = float(alpha.sum())
    ink = float((rgba[..., :3] @ _LUMA * alpha).sum() / weight) if weight > 0 else 255.0
    light = ink >= 127.5
    bg = Image.new("RGBA", img.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
    notes.append(f"composited the transparent background on {'black' if light else 'white'} (the opaque "
                 f"pixels are {'light' if light else 'dark'}: mean luminance {ink:.0f}/255)")
    return Image.alpha_composite(bg, img).convert("RGB")


def to_8bit(img: Image.Image, channels: int, notes: list[str] | None = None) -> Image.Image:
    """``img`` upright, 8-bit, composited, as ``"L"`` (``channels`` 1) or ``"RGB"`` (3); each step that
    changed something is appended to ``notes`` in words (``"converted RGB to grayscale"``)."""
    notes = [] if notes is None else notes
    turn = orientation(img)
    if turn != 1:
        img = ImageOps.exif_transpose(img)
        notes.append(f"turned upright (EXIF orientation {turn})")
    source, target = img.mode, ("L" if channels == 1 else "RGB")
    deep = source in ("I", "F") or source.startswith("I;16")
    if source in ("P", "PA"):
        img = img.convert("RGBA" if source == "PA" or "transparency" in img.info else "RGB")
    elif deep:
        img = _scale_to_8bit(img, notes)                                   # -> L
    if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
        img = _composite(img.convert("RGBA"), notes)                       # -> RGB
    if img.mode != target:
        img = img.convert(target)
    if source != target and not (deep and channels == 1):
        notes.append(f"converted {source} to {'grayscale' if channels == 1 else 'RGB'}")
    return img
