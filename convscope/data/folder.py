"""``folder:PATH`` datasets: one subfolder per class, PNG/JPEG images, read safely with Pillow.

Layout: ``PATH/<class>/*.png`` (one split, divided 80/20 by :func:`stratified_split`), or
``PATH/train/<class>/...`` and ``PATH/test/<class>/...``. Hidden files are ignored. Rejected, each with
a message naming the file: empty files, non-images, decompression bombs (more than ``max_pixels``),
and symbolic links that point outside ``PATH``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from .._check import is_int
from ..errors import DataError
from .image import DEFAULT_MAX_PIXELS, GRAY_MODES, open_image, upright_size
from .prepare import prepare_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
ResizePolicy = Literal["error", "stretch", "fit", "crop"]
RESIZE_POLICIES = ("error", "stretch", "fit", "crop")
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
def _open_image(path: Path, root: Path, opts: FolderOptions, load: bool) -> Iterator[Image.Image]:
    """Open ``path`` safely; header checks only unless ``load`` (then decode the pixels too)."""
    _check_inside(path, root)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not a PNG or JPEG file (suffix {path.suffix or 'none'}); remove it from the class "
                        f"folder")
    with open_image(path, opts.max_pixels, load) as img:
        yield img


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
    modes, sizes = set(), []
    for p, _ in files:
        with _open_image(p, root, opts, load=False) as img:
            modes.add(img.mode)
            w, h = upright_size(img)                     # as read: EXIF orientation applied
            sizes.append((h, w))
    channels = opts.channels
    if channels is None:
        channels = 1 if modes <= GRAY_MODES else 3
    size = opts.size or sizes[0]
    if size[0] * size[1] > opts.max_pixels:
        raise DataError(f"size: {size[0]} x {size[1]} is more than max_pixels={opts.max_pixels} pixels per image; "
                        "choose a smaller size (or raise max_pixels)")
    try:
        out = np.empty((len(files), channels, *size), dtype=np.uint8)     # (N, C, H, W)
    except MemoryError:
        raise DataError(f"{root}: {len(files):,} images of {channels} x {size[0]} x {size[1]} do not fit in memory; "
                        "choose a smaller size") from None
    for i, (p, _) in enumerate(files):  # pass 2: decode one at a time into the preallocated tensor
        if opts.resize == "error" and sizes[i] != tuple(size):
            raise DataError(f"{p}: size {sizes[i][0]} x {sizes[i][1]} (H x W) differs from {size[0]} x {size[1]} "
                            f"(the first image's or the chosen size); {RESIZE_HINT}")
        with _open_image(p, root, opts, load=True) as img:   # the one image -> input path, as predict's
            out[i] = prepare_image(img, (channels, *size), mode="none", resize=opts.resize).tensor.numpy()
    labels = np.asarray([lab for _, lab in files], dtype=np.int64)
    return out, labels, tuple(f.name for f in folders)
