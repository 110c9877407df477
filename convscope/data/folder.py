"""``folder:PATH`` datasets: one subfolder per class, PNG/JPEG images, read safely with Pillow.

Layout: ``PATH/<class>/*.png`` (one split, divided 80/20 by :func:`stratified_split`), or
``PATH/train/<class>/...`` and ``PATH/test/<class>/...``. Hidden files are ignored. Rejected, each with
a message naming the file: empty files, non-images, decompression bombs (more than ``max_pixels``),
and symbolic links that point outside ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._check import is_int
from ..errors import DataError
from .safe_io import open_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
ResizePolicy = Literal["error", "stretch", "fit", "crop"]
RESIZE_POLICIES = ("error", "stretch", "fit", "crop")
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
RESIZE_HINT = ("choose a resize policy: in Python FolderOptions(resize='fit') (or 'stretch', 'crop'; size=(H, W) "
               "sets the target); on the command line --resize fit [--size HxW] for eval, data and the inspection "
               "commands; for train (and anywhere a dataset name is taken, config files included) name the "
               "dataset folder:PATH?resize=fit (add &size=HxW to choose the size)")


@dataclass(frozen=True)
class FolderOptions:
    """How images of a folder dataset become one tensor.

    ``size`` (H, W): target size; None takes the first image's size. ``resize``: what to do with an image
    of another size: ``"error"`` (refuse, naming it), ``"stretch"`` (resize, ignoring aspect),
    ``"fit"`` (keep aspect, pad with black to fill), ``"crop"`` (keep aspect, centre-crop to fill).
    ``channels``: 1 (grayscale) or 3 (RGB); None takes 1 if every image is grayscale, else 3.
    """

    size: tuple[int, int] | None = None
    resize: ResizePolicy = "error"
    channels: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validate(self) -> FolderOptions:
        """Raise a DataError naming the field when an option is out of range; return self."""
        if self.size is not None and not (isinstance(self.size, (tuple, list)) and len(self.size) == 2
                                          and all(is_int(v) and v >= 1 for v in self.size)):
            raise DataError(f"size: expected (H, W), two positive ints, got {self.size!r}")
        if self.resize not in RESIZE_POLICIES:
            raise DataError(f"resize: {self.resize!r} is not one of {', '.join(RESIZE_POLICIES)}")
        if self.channels is not None and self.channels not in (1, 3):
            raise DataError(f"channels: must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        if not (is_int(self.max_pixels) and self.max_pixels >= 1):
            raise DataError(f"max_pixels: expected a positive int, got {self.max_pixels!r}")
        return self


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _check_inside(path: Path, root: Path) -> None:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise DataError(f"{path}: symbolic link to {resolved}, outside the dataset folder {root}; "
                        "copy the file in instead of linking out")


def class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (folder datasets need PATH/<class>/<images>)")
    try:
        subdirs = sorted(p for p in root.iterdir() if not _is_hidden(p) and p.is_dir())
    except PermissionError as e:
        raise DataError(f"{root}: cannot read the folder ({e.strerror})") from e
    if not subdirs:
        raise DataError(f"{root}: no class subfolders; put each class's images in PATH/<class name>/")
    return subdirs


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, load: bool = True
               ) -> Iterator[Image.Image]:
    """Open a PNG or JPEG file safely: a regular file only (a FIFO or device is refused before it can block),
    at most ``max_pixels`` pixels (a decompression bomb is refused from its header, before decoding), PNG or
    JPEG only; header checks only unless ``load``. Every failure is a DataError naming the file."""
    path = Path(path)
    fp = open_regular(path, "image file")
    img = None
    try:
        if os.fstat(fp.fileno()).st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fp)
                w, h = img.size
                if w * h > max_pixels:
                    raise DataError(f"{path}: {w} x {h} pixels exceeds max_pixels={max_pixels} "
                                    "(possible decompression bomb); raise max_pixels if the image is genuine")
                if img.format not in ("PNG", "JPEG"):
                    raise DataError(f"{path}: is a {img.format} image; only PNG and JPEG are read")
                if load:
                    img.load()
            except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise DataError(f"{path}: not a readable image ({e})") from e
            except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:  # Pillow's corrupt-file errors
                raise DataError(f"{path}: corrupt or truncated image ({e})") from e
        yield img
    finally:
        if img is not None:
            img.close()
        fp.close()


@contextlib.contextmanager
def _open_image(path: Path, root: Path, opts: FolderOptions, load: bool) -> Iterator[Image.Image]:
    """Open ``path`` safely; header checks only unless ``load`` (then decode the pixels too)."""
    _check_inside(path, root)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not a PNG or JPEG file (suffix {path.suffix or 'none'}); remove it from the class "
                        f"folder")
    with open_image(path, opts.max_pixels, load) as img:
        yield img


def _to_array(img: Image.Image, path: Path, size: tuple[int, int], channels: int, policy: ResizePolicy) -> np.ndarray:
    img = img.convert("L" if channels == 1 else "RGB")
    h, w = size
    if img.size != (w, h):
        if policy == "error":
            raise DataError(f"{path}: size {img.size[1]} x {img.size[0]} (H x W) differs from {h} x {w} (the "
                            f"first image's or the chosen size); {RESIZE_HINT}")
        if policy == "stretch":
            img = img.resize((w, h), Image.BILINEAR)
        else:
            scale = (min if policy == "fit" else max)(w / img.size[0], h / img.size[1])
            nw, nh = max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))
            img = img.resize((nw, nh), Image.BILINEAR)
            canvas = Image.new(img.mode, (w, h))
            canvas.paste(img, ((w - nw) // 2, (h - nh) // 2))  # negative offsets crop the centre
            img = canvas
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_folder(root: Path, opts: FolderOptions) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read every image under ``root/<class>/``: images (N, C, H, W) uint8, labels (N,), class names."""
    opts.validate()
    root = root.resolve()
    folders = class_folders(root)
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        _check_inside(folder, root)
        for p in sorted(folder.iterdir()):
            if _is_hidden(p):
                continue
            if p.is_dir():
                raise DataError(f"{p}: nested folder inside class {folder.name!r}; class folders hold images only")
            files.append((p, label))
    if not files:
        raise DataError(f"{root}: the class folders hold no images")
    # pass 1: headers only (cheap), to validate every file and choose channels and size before decoding
    modes, first_size = set(), None
    for p, _ in files:
        with _open_image(p, root, opts, load=False) as img:
            modes.add(img.mode)
            first_size = first_size or (img.size[1], img.size[0])
    channels = opts.channels
    if channels is None:
        channels = 1 if modes <= {"L", "1", "I;16", "I", "LA"} else 3
    size = opts.size or first_size
    if size[0] * size[1] > opts.max_pixels:
        raise DataError(f"size: {size[0]} x {size[1]} is more than max_pixels={opts.max_pixels} pixels per image; "
                        "choose a smaller size (or raise max_pixels)")
    try:
        out = np.empty((len(files), channels, *size), dtype=np.uint8)     # (N, C, H, W)
    except MemoryError:
        raise DataError(f"{root}: {len(files):,} images of {channels} x {size[0]} x {size[1]} do not fit in memory; "
                        "choose a smaller size") from None
    for i, (p, _) in enumerate(files):  # pass 2: decode one at a time into the preallocated tensor
        with _open_image(p, root, opts, load=True) as img:
            out[i] = _to_array(img, p, size, channels, opts.resize)
    labels = np.asarray([lab for _, lab in files], dtype=np.int64)
    return out, labels, tuple(f.name for f in folders)
