"""THE one path from an image to a model's input: ``prepare_image`` (predict, explain, the ``folder:`` dataset,
the web canvas and upload). Reading and the 8-bit conversion (EXIF orientation, palette, 16-bit scaling, alpha
composited by ink polarity, grayscale/RGB) are :mod:`convscope.data.image`'s; sizing and the MNIST-style
preparation are here.

``mode="mnist"`` prepares a user's image the way MNIST's digits were, so a model trained on them can read it.

MNIST (LeCun et al.): each digit was fitted into a 20 x 20 box keeping its aspect ratio (anti-aliased), then
placed in a 28 x 28 image so that its centre of mass sits at the centre; light strokes on black. A photo or scan
of paper is none of that: dark ink on a light, uneven background, any size, anywhere in the frame.
``prepare_image`` undoes the difference step by step and says what it did:

    1. grayscale       ``to_8bit``: upright, 8-bit, transparency composited by ink polarity, luminance
    2. polarity        light background (median of the border) -> inverted to light strokes on black
    3. level           background -> 0, ink (99.9th percentile) -> 1, the paper's texture (from the border) -> 0
    4. crop            to the bounding box of the ink (specks under 2% of the ink dropped)
    5. fit             longest side -> ``box`` pixels, aspect kept, anti-aliased (Lanczos) resampling
    6. centre          placed so the centre of mass lands on the centre pixel (H // 2, W // 2), as in MNIST

``mode="none"`` keeps the plain conversion: the 8-bit picture sized to the input by a resize policy (``fit``,
the default: aspect kept, centred on black; ``stretch``; ``crop``; ``error``), Lanczos resampling throughout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, DataError
from .image import DEFAULT_MAX_PIXELS, ImageSource, read_image, to_8bit

MODES = ("none", "mnist")
RESIZE_POLICIES = ("fit", "stretch", "crop", "error")
MNIST_LIKE = ("digits", "mnist")          # datasets prepared as MNIST was (Fashion-MNIST was not: no digit box)

_INK_FLOOR = 0.08        # minimum ink-background contrast (fraction of full scale) to count as ink at all
_NOISE_FLOOR = 0.3       # at most this much of the levelled range is taken as background texture and set to 0
_MASK_LEVEL = 0.25       # levelled value above which a pixel counts as ink for the box and the components
_SPECK = 0.02            # components with less than this fraction of the ink's pixels are dropped as specks
_MARK = 0.10             # a column group with at least this fraction of the ink counts as a separate mark


class NoInkError(DataError):
    """MNIST-style preparation found nothing that stands out from the background (a blank image)."""


@dataclass
class Prepared:
    """A prepared image: the model's uint8 input, the notes a user reads, and every step's numbers."""

    tensor: torch.Tensor                     # uint8 (C, H, W), the model's input before normalization
    notes: list[str] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.tensor.shape), "notes": list(self.notes), "steps": dict(self.steps)}


def default_mode(meta: dict[str, Any]) -> str:
    """The preparation a run's model expects, from its model.json: ``meta["prepare"]`` when recorded, else
    ``"mnist"`` for 1-channel 28 x 28 digit datasets (digits, mnist, names like ``emnist-digits``) and ``"none"``
    for everything else (Fashion-MNIST, CIFAR, folders)."""
    recorded = meta.get("prepare")
    if recorded is not None:
        if recorded not in MODES:
            raise ConfigError(f"model.json: prepare = {recorded!r} is not one of {', '.join(MODES)}")
        return recorded
    name = str(meta.get("dataset", "")).lower()
    shape = list(meta.get("input_shape", []))
    if shape != [1, 28, 28] or "fashion" in name or name.startswith("folder"):
        return "none"
    return "mnist" if name in MNIST_LIKE or "mnist" in name or "digit" in name else "none"


def _fit(img: Image.Image, shape: tuple[int, int, int], resize: str, notes: list[str]) -> Image.Image:
    """Size the 8-bit picture to the model's H x W: ``fit`` (aspect kept, centred on black), ``stretch``
    (aspect ignored), ``crop`` (aspect kept, the centre cut out) or ``error`` (refuse another size); one
    resampling filter everywhere, Lanczos (anti-aliased when shrinking)."""
    _, h, w = shape
    size = img.size
    if size == (w, h):
        return img
    if resize == "error":
        raise DataError(f"size {size[1]} x {size[0]} (H x W) differs from the model's {h} x {w}")
    if resize == "stretch":
        notes.append(f"resized {size[0]} x {size[1]} to {w} x {h}, aspect not kept")
        return img.resize((w, h), Image.LANCZOS)
    scale = (min if resize == "fit" else max)(w / size[0], h / size[1])
    nw, nh = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    canvas = Image.new(img.mode, (w, h))
    canvas.paste(img.resize((nw, nh), Image.LANCZOS), ((w - nw) // 2, (h - nh) // 2))  # negative: centre crop
    notes.append(f"resized {size[0]} x {size[1]} to {nw} x {nh}, "
                 + (f"centred on a black {w} x {h} canvas" if resize == "fit" else f"centre cropped to {w} x {h}"))
    return canvas


def _plain(img: Image.Image, shape: tuple[int, int, int], resize: str, notes: list[str], hint: bool = True
           ) -> Prepared:
    """mode none: the 8-bit picture sized to the input, nothing else changed (``hint``: suggest mnist mode for a
    light picture; not when mnist mode already ran and found no ink)."""
    c = shape[0]
    size = img.size
    arr = np.asarray(_fit(img, shape, resize, notes), dtype=np.uint8)        # (H, W) or (H, W, 3)
    if hint and c == 1 and arr.mean() > 127:
        notes.append("mostly light background: the model was trained on light strokes on black; "
                     "try --prepare mnist, which inverts it")
    x = torch.from_numpy(arr.copy())
    x = x[None] if c == 1 else x.permute(2, 0, 1)
    return Prepared(x.contiguous(), notes, {"mode": "none", "input_size": list(size)})


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label 8-connected components of a bool (H, W) mask -> (labels (H, W) int, sizes (n + 1,) with 0 = none)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    return labels, np.bincount(labels.ravel(), minlength=n + 1)


def _marks(mask: np.ndarray) -> int:
    """How many separate marks stand side by side: groups of ink columns split by empty columns, each holding
    at least _MARK of the ink (a single digit's columns are contiguous, even a 5 whose bar is lifted)."""
    cols = mask.sum(0)                                  # (W,) ink pixels per column
    groups, run = [], 0
    for v in cols:
        if v:
            run += int(v)
        elif run:
            groups.append(run)
            run = 0
    if run:
        groups.append(run)
    total = max(1, int(cols.sum()))
    return sum(g >= _MARK * total for g in groups)


def prepare_image(source: ImageSource, shape: tuple[int, int, int] = (1, 28, 28), box: int | None = None,
                  mode: str = "mnist", resize: str = "fit", max_pixels: int = DEFAULT_MAX_PIXELS,
                  blank: str = "error") -> Prepared:
    """THE path from an image to a model's uint8 input (C, H, W) = ``shape``: predict, explain, the folder
    dataset and the web canvas/upload all call it. ``source``: a file path (read safely, at most ``max_pixels``
    pixels), encoded bytes, a PIL image or an array. The picture is made upright, 8-bit and opaque by
    :func:`convscope.data.image.to_8bit`, then ``mode`` "none" sizes it by ``resize`` (fit, stretch, crop,
    error) and "mnist" prepares it as MNIST's digits were (the module's docstring). ``box``: the side of the
    digit box (default: 20/28 of the input, MNIST's 20 px in 28). A blank image in mnist mode raises NoInkError
    (a DataError; ``predict``) or, with ``blank="plain"``, gets the plain conversion (the web's empty canvas,
    ``explain``); errors after reading a file name the file."""
    if mode not in MODES:
        raise ConfigError(f"prepare: {mode!r} is not one of {', '.join(MODES)}")
    if blank not in ("error", "plain"):
        raise ConfigError(f"blank: {blank!r} is not one of error, plain")
    if resize not in RESIZE_POLICIES:
        raise ConfigError(f"resize: {resize!r} is not one of {', '.join(RESIZE_POLICIES)}")
    c, h, w = shape
    if mode == "mnist" and c != 1:
        raise ConfigError(f"prepare mnist: the model takes {c}-channel images; MNIST preparation is for grayscale "
                          "digits (use --prepare none)")
    pil = read_image(source, max_pixels)
    notes: list[str] = []
    try:
        img = to_8bit(pil, c, notes)
        if mode == "mnist":
            try:
                return _mnist(img, shape, box, notes)
            except NoInkError:
                if blank != "plain":
                    raise
                notes = [*notes, "no ink found (a blank image, nothing to centre): the plain conversion is used, "
                                 "as --prepare none"]
                prep = _plain(img, shape, resize, notes, hint=False)
                prep.steps["no_ink"] = True      # callers that answer anyway (explain, the web) say so
                return prep
        return _plain(img, shape, resize, notes)
    except DataError as e:
        if isinstance(source, (str, os.PathLike)):
            raise type(e)(f"{source}: {e}") from e
        raise


def _mnist(img: Image.Image, shape: tuple[int, int, int], box: int | None, notes: list[str]) -> Prepared:
    """mode mnist on the 8-bit grayscale picture: polarity, level, crop, fit, centre (the module's docstring)."""
    _, h, w = shape
    box = box or round(20 * min(h, w) / 28)
    steps: dict[str, Any] = {"mode": "mnist", "input_size": [img.size[0], img.size[1]]}
    a = np.asarray(img, dtype=np.float32)                                      # (H0, W0) in [0, 255]

    # polarity: the background is what the border mostly shows
    ring = max(1, min(a.shape) // 20)
    border = np.concatenate([a[:ring].ravel(), a[-ring:].ravel(), a[:, :ring].ravel(), a[:, -ring:].ravel()])
    steps["inverted"] = bool(np.median(border) > 127.5)
    if steps["inverted"]:
        a = 255.0 - a                                                          # exact on 8-bit values
        notes.append(f"light background (border level {np.median(border):.0f}/255): "
                     "inverted to light strokes on black")
        border = 255.0 - border

    # level: background -> 0, ink -> 1, background texture under a noise floor -> 0
    bg = float(np.median(border)) / 255.0
    ink = (float(np.percentile(a, 99.9)) if a.size >= 1000 else float(a.max())) / 255.0
    inv = steps["inverted"]
    orig_bg, orig_ink = (255 * (1 - bg), 255 * (1 - ink)) if inv else (255 * bg, 255 * ink)   # the file's levels
    steps["background"], steps["ink"] = round(orig_bg), round(orig_ink)
    if ink - bg < _INK_FLOOR:
        raise NoInkError(f"no ink found: the image is nearly uniform (background level {orig_bg:.0f}, strokes "
                        f"{orig_ink:.0f} of 255); draw or photograph a digit with visible strokes")
    a = np.clip((a / 255.0 - bg) / (ink - bg), 0.0, 1.0)
    # the paper's texture: the border's brightest 1% after levelling (0 for a clean image, which stays as it is)
    floor = min(_NOISE_FLOOR, float(np.percentile(np.clip((border / 255.0 - bg) / (ink - bg), 0, 1), 99)))
    if floor > 0:
        a = np.clip((a - floor) / (1.0 - floor), 0.0, 1.0)
    steps["noise_floor"] = round(255 * floor)
    if bg > 0.02 or ink < 0.98:
        notes.append(f"levelled: background ({orig_bg:.0f} in the file) -> 0, strokes ({orig_ink:.0f}) -> 255")

    # crop: specks dropped, then the bounding box of the ink and its anti-aliased edge
    mask = a > _MASK_LEVEL
    labels, sizes = _components(mask)
    specks = np.flatnonzero(sizes < _SPECK * sizes[1:].sum())
    specks = specks[specks > 0]
    if specks.size:
        mask[np.isin(labels, specks)] = False
        notes.append(f"ignored {specks.size} speck{'s' * (specks.size > 1)} (under {100 * _SPECK:.0f}% of the ink)")
    steps["specks"] = int(specks.size)
    if not mask.any():
        raise NoInkError("no ink found: nothing stands out from the background; draw or photograph a digit with "
                        "visible strokes")
    from scipy import ndimage

    a = np.where(ndimage.binary_dilation(mask, np.ones((3, 3), bool)), a, 0.0)   # keep ink + 1 px of its edge
    rows, cols = np.flatnonzero((a > 0).any(1)), np.flatnonzero((a > 0).any(0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    marks = _marks(mask[y0:y1, x0:x1])
    a = a[y0:y1, x0:x1]
    steps["bbox"] = [x0, y0, x1, y1]
    steps["marks"] = marks
    if marks > 1:
        notes.append(f"the image seems to hold {marks} separate marks side by side (several digits?); "
                     "the result is for the whole image, not for each one")
    notes.append(f"cropped to the ink: {x1 - x0} x {y1 - y0} at ({x0}, {y0})")

    # fit: longest side -> box, aspect kept, anti-aliased
    ch, cw = a.shape
    scale = box / max(ch, cw)
    nw, nh = max(1, min(box, round(cw * scale))), max(1, min(box, round(ch * scale)))
    fitted = Image.fromarray(a.astype(np.float32), mode="F").resize((nw, nh), Image.LANCZOS)
    f = np.clip(np.asarray(fitted, dtype=np.float32), 0.0, 1.0)                # (nh, nw)
    steps["fitted"] = [nw, nh]
    notes.append(f"fitted into a {box} x {box} box: {nw} x {nh} (aspect kept, Lanczos)")

    # centre: centre of mass -> (H // 2, W // 2), the patch kept whole inside the input
    m = float(f.sum())
    cy = float((f.sum(1) * np.arange(nh)).sum() / m) if m > 0 else (nh - 1) / 2
    cx = float((f.sum(0) * np.arange(nw)).sum() / m) if m > 0 else (nw - 1) / 2
    oy = int(np.clip(round(h // 2 - cy), 0, h - nh))
    ox = int(np.clip(round(w // 2 - cx), 0, w - nw))
    out = np.zeros((h, w), np.float32)
    out[oy:oy + nh, ox:ox + nw] = f
    steps["offset"] = [ox, oy]
    steps["center_of_mass"] = [round(ox + cx, 2), round(oy + cy, 2)]
    notes.append(f"centred by the centre of mass in {w} x {h} (at {ox + cx:.1f}, {oy + cy:.1f})")
    x = torch.from_numpy(np.round(out * 255.0).astype(np.uint8))[None]          # (1, H, W)
    return Prepared(x, notes, steps)
