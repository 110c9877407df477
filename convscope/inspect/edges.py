"""The edge-detector experiment: a hand-set edge filter (zero padding, same size) then ReLU, on every image.

Any kernel (named, a list, JSON text or a .npy file), any size (even sizes padded as PyTorch's "same"), any
dataset. Integer kernels are computed in exact integer arithmetic on the raw 0..255 pixels, so "zero" means
exactly zero; float kernels count |y| <= a stated tolerance as zero.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._check import integer
from .._result import Display, RichDisplay, Table
from ..configs import EDGE_FILTERS
from ..errors import ConfigError, DataError

FILTERS: dict[str, np.ndarray] = {name: np.array(k) for name, k in EDGE_FILTERS.items()}   # (3, 3) int


# A hand-set kernel is small: this bounds what a .npy header may make us allocate (checked before loading).
MAX_KERNEL_SIDE = 1024
MAX_KERNEL_BYTES = 64 << 20   # a .json kernel file: text of at most this size
_EXAMPLE = "[[1,0],[0,-1]]"


def _read_kernel_file(text: str) -> np.ndarray | object:
    """The content of a kernel file: a .json file as JSON, anything else as a .npy array (no pickles).

    Only a regular file is opened (a FIFO would block, /dev/zero never ends), and a .npy header is checked
    against the file's size and a kernel's bounds before a single element is allocated."""
    from ..data.safe_io import open_regular, read_regular

    src = f"--kernel {text}"
    try:
        if text.lower().endswith(".json"):
            raw = read_regular(text, MAX_KERNEL_BYTES, "file")
        else:
            f = open_regular(text, "file")
    except DataError as e:
        raise ConfigError(f"--kernel: {e}; give a .npy file, a .json file or a JSON list such as {_EXAMPLE}") from None
    if text.lower().endswith(".json"):
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ConfigError(f"{src}: not a JSON list of rows ({e}); write it like {_EXAMPLE}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, EOFError, SyntaxError) as e:
            raise ConfigError(f"{src}: not a NumPy .npy file ({e}); save the kernel with numpy.save, or give a "
                              f".json file or a JSON list such as {_EXAMPLE}") from None
        if dtype.hasobject:
            raise ConfigError(f"{src}: holds Python objects (dtype {dtype}), not readable without pickles "
                              "(unpickling could run code); save a numeric array")
        count = math.prod(shape)
        if count > MAX_KERNEL_SIDE ** 2 or any(n > MAX_KERNEL_SIDE for n in shape):
            raise ConfigError(f"{src}: the header claims an array of shape {tuple(shape)}; a kernel may be at most "
                              f"{MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE}")
        claimed, held = count * dtype.itemsize, size - f.tell()
        if claimed > held:
            raise ConfigError(f"{src}: the header claims {claimed:,} bytes of data (shape {tuple(shape)}, {dtype}) "
                              f"but the file holds {held:,}; it is truncated or corrupt: save the kernel again")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ConfigError(f"{src}: not a readable NumPy array without pickles ({e})") from None


def parse_kernel(value) -> np.ndarray:
    """A 2-D kernel from an array, nested lists, a JSON string such as ``"[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]"``
    or the path of a ``.npy`` file (read without unpickling) or a ``.json`` file. Returns float64 (kh, kw); a clear
    ConfigError for empty, ragged, non-numeric, non-finite, non-2-D or oversized input."""
    src = "kernel"
    if isinstance(value, (str, Path)):
        text = str(value).strip()
        is_path = text.lower().endswith((".npy", ".json")) or (not text.startswith(("[", "{"))
                                                                and os.path.lexists(text))
        if is_path:
            src = f"--kernel {text}"
            value = _read_kernel_file(text)
        else:
            try:
                value = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                msg = getattr(e, "msg", "nested too deeply")
                raise ConfigError(f"kernel {text[:60]!r}: not a JSON list of rows ({msg}); write it like "
                                  "[[-1,0,1],[-2,0,2],[-1,0,1]]") from None
        if not isinstance(value, (list, np.ndarray, int, float)) or isinstance(value, bool):
            what = "a JSON object" if isinstance(value, dict) else f"{type(value).__name__} {value!r:.40}"
            raise ConfigError(f"{src}: expected a 2-D list of numbers such as {_EXAMPLE}, got {what}")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "iuf":
        raise ConfigError(f"{src}: values must be numbers, got dtype {value.dtype}")
    if isinstance(value, (list, tuple)):
        flat = list(value)
        while flat and all(isinstance(v, (list, tuple)) for v in flat):
            flat = [x for v in flat for x in v]
        if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in flat):
            bad = next((v for v in flat if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                                                     np.floating))), None)
            raise ConfigError(f"{src}: every entry must be a number, found {bad!r}")
    try:
        k = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ConfigError(f"{src}: rows of different lengths (ragged); every row needs the same number of "
                          "values") from None
    if k.size == 0:
        raise ConfigError(f"{src}: empty; give at least one value, e.g. [[1]]")
    if k.ndim != 2:
        raise ConfigError(f"{src}: expected a 2-D kernel (a list of rows, e.g. [[1, -1]]), got {k.ndim} dimension(s) "
                          f"of shape {k.shape}")
    if not np.isfinite(k).all():
        raise ConfigError(f"{src}: contains NaN or infinity")
    return k


def same_padding(kh: int, kw: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that keeps H x W: PyTorch's ``padding="same"`` rule, the extra
    pixel of an even kernel going right / bottom."""
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return left, kw - 1 - left, top, kh - 1 - top


@dataclass(repr=False)
class EdgeResult(RichDisplay):
    """Non-zero counts of each image before the filter, after it and after ReLU. Displays as the summary table
    and the picture of the first images with the count distributions."""

    filter: str
    kernel: np.ndarray
    nonzero_input: np.ndarray      # (N,) non-zero pixels of each input image
    nonzero_before: np.ndarray     # (N,) non-zero pixels of the filter output, before ReLU
    nonzero_after: np.ndarray      # (N,) non-zero pixels after ReLU
    pixels: int                    # values per image (C * H * W)
    outputs: np.ndarray | None = None   # (n_keep, H, W) filter outputs of the first images, for pictures
    exact: bool = True             # integer kernel on integer images: float64 sums are exact, zero means 0
    tolerance: float = 0.0         # otherwise an output counts as zero when |y| <= tolerance
    padding: tuple[int, int, int, int] = (1, 1, 1, 1)   # left, right, top, bottom
    inputs: np.ndarray | None = field(default=None, repr=False)   # (n_keep, C, H, W) the images of ``outputs``

    def _display(self) -> Display:
        s = self.summary()
        rows = [[stage, f"{st['mean']:.1f}", f"{st['median']:.0f}", f"{st['p10']:.0f}", f"{st['p90']:.0f}",
                 str(st["min"]), str(st["max"])]
                for stage, st in (("input", s["input_nonzero"]), (f"{self.filter} output", s["filtered_nonzero"]),
                                  ("after ReLU", s["after_relu_nonzero"]))]
        zero = "exact (integer kernel and pixels)" if self.exact else f"|y| <= {self.tolerance:.3g} counts as zero"
        k = "x".join(map(str, self.kernel.shape))
        return Display(f"Edge experiment: {self.filter} ({k}) then ReLU on {s['images']:,} images",
                       [f"{s['input_zero_mean']:.1f} of {self.pixels} values per image exactly zero before any filter",
                        f"ReLU zeroes {100 * s['relu_zeroed_fraction_of_nonzero']:.1f}% of the filter's non-zero "
                        f"outputs", f"zero test: {zero}; padding (left, right, top, bottom) {self.padding}"],
                       [Table(["non-zero values per image", "mean", "median", "p10", "p90", "min", "max"], rows)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        if self.inputs is None or self.outputs is None or not len(self.outputs):
            return []
        from ..viz import figure_png

        return [("the first images: input, filter output, after ReLU; and the counts over all images",
                 figure_png(edges_figure(self.inputs, self)))]

    def summary(self) -> dict:
        def stats(a):
            return {"mean": float(a.mean()), "median": float(np.median(a)), "min": int(a.min()), "max": int(a.max()),
                    "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90))}
        kernel = self.kernel.astype(np.int64).tolist() if self.exact else self.kernel.tolist()
        return {"filter": self.filter, "kernel": kernel, "kernel_shape": list(self.kernel.shape),
                "padding_left_right_top_bottom": list(self.padding), "exact": self.exact,
                "zero_tolerance": self.tolerance, "images": len(self.nonzero_input),
                "pixels_per_image": self.pixels, "input_nonzero": stats(self.nonzero_input),
                "input_zero_mean": float(self.pixels - self.nonzero_input.mean()),
                "filtered_nonzero": stats(self.nonzero_before), "after_relu_nonzero": stats(self.nonzero_after),
                "relu_zeroed_fraction_of_nonzero": float(1 - self.nonzero_after.sum() / max(self.nonzero_before.sum(),
                                                                                            1))}

    def to_dict(self) -> dict:
        return self.summary()


KEEP_MAX = 1_000    # output maps edge_experiment keeps to show


def edge_experiment(images: torch.Tensor | np.ndarray, filter: str = "sobel-x", keep: int = 8,
                    batch_size: int = 2000, *, kernel=None, tolerance: float | None = None) -> EdgeResult:
    """``images``: (N, C, H, W) or (N, H, W), integers 0..255 (uint8) or floats. Cross-correlate each channel with
    the kernel (as ``conv2d`` does; ``kernel`` — any 2-D array, list, JSON text or .npy path — or the named
    ``filter``) with zero "same" padding (output H x W; an even kernel's extra padding goes right / bottom),
    then ReLU, and count non-zero outputs.

    Integer kernels on integer images are computed exactly (float64 sums of integers below 2**53), so zero
    means exactly zero. Otherwise an output counts as zero when |y| <= ``tolerance``, by default
    ``kh * kw * 2**-52 * max|x| * sum|k|`` — twice the worst-case float64 rounding error of the sum."""
    # was: keep=-1 silently accepted (and the slice [:-1] dropped a map); each kept map is (H, W) float64 in memory
    keep = integer(keep, "keep", 0, KEEP_MAX, fix="the output maps kept to show, each held in memory")
    batch_size = integer(batch_size, "batch_size", 1)
    if kernel is not None:
        k_np, name = parse_kernel(kernel), "custom"
    elif filter in FILTERS:
        k_np, name = FILTERS[filter].astype(np.float64), filter
    else:
        raise ConfigError(f"filter: unknown {filter!r}; valid: {', '.join(FILTERS)} (or give kernel=...)")
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] == 0:
        raise ConfigError(f"images: expected (N, C, H, W) or (N, H, W) with N >= 1, got shape {tuple(x.shape)}")
    if x.dtype == torch.bool or x.dtype.is_complex:
        raise ConfigError(f"images: expected integer or float pixels, got {x.dtype}")
    n, c, h, w = x.shape
    kh, kw = k_np.shape
    if kh > h or kw > w:
        raise ConfigError(f"kernel {kh}x{kw} is larger than the {h}x{w} images; use a kernel of at most {h}x{w}")
    integral_images = not x.dtype.is_floating_point
    exact = integral_images and bool(np.all(k_np == np.round(k_np)))
    x_max = float(x.abs().max()) if n else 0.0
    if not math.isfinite(x_max):
        raise ConfigError("images: hold NaN or infinite values; the counts of non-zero outputs would be meaningless")
    with np.errstate(over="ignore"):
        bound = max(x_max, 1.0) * float(np.abs(k_np).sum())     # bounds every |output| and the tolerance
    if not math.isfinite(bound):
        raise ConfigError(f"kernel: values up to {float(np.abs(k_np).max()):.3g} on pixels up to {x_max:g} overflow "
                          "float64 (outputs would be inf or NaN and every count false); scale the kernel down: "
                          "which outputs are zero and their signs do not change with the scale")
    if exact and x_max * np.abs(k_np).sum() >= 2.0 ** 53:
        exact = False                                          # too large for exact float64 integer sums
    if tolerance is None:
        tolerance = 0.0 if exact else kh * kw * 2.0 ** -52 * max(x_max, 1.0) * float(np.abs(k_np).sum())
    elif exact:
        exact = tolerance == 0.0
    if tolerance < 0:
        raise ConfigError(f"tolerance: expected a number >= 0, got {tolerance}")
    pad = same_padding(kh, kw)
    k = torch.from_numpy(k_np)[None, None].expand(c, 1, kh, kw)    # (C, 1, kh, kw): each channel on its own
    nz_in, nz_before, nz_after, kept = [], [], [], []
    for i in range(0, n, batch_size):
        xb = x[i:i + batch_size].to(torch.float64)                 # integers 0..255: float64 sums are exact
        y = F.conv2d(F.pad(xb, pad), k, groups=c)                  # (B, C, H, W)
        if not bool(torch.isfinite(y).all()):                      # the bound above makes this a last guard
            raise ConfigError(f"kernel: the filter gives non-finite outputs on images {i}..{i + len(xb) - 1}; "
                              "scale the kernel down")
        nz_in.append((xb != 0).flatten(1).sum(1))
        nz_before.append((y.abs() > tolerance).flatten(1).sum(1))
        nz_after.append((torch.relu(y) > tolerance).flatten(1).sum(1))
        if sum(len(o) for o in kept) < keep:
            kept.append(y[:, 0].numpy())
    outs = np.concatenate(kept)[:keep] if kept else None
    return EdgeResult(name, k_np, torch.cat(nz_in).numpy(), torch.cat(nz_before).numpy(),
                      torch.cat(nz_after).numpy(), int(c * h * w), outs, exact, float(tolerance), pad,
                      x[:0 if outs is None else len(outs)].numpy())


def edges_figure(images: torch.Tensor | np.ndarray, res: EdgeResult, n: int = 6):
    """Rows: input, filter output (diverging colours, 0 = white), after ReLU; and the count distributions."""
    from ..viz import new_figure

    n = min(n, len(res.outputs))
    fig = new_figure(2.0 * n + 1, 9.2)
    grid = fig.add_gridspec(4, n, height_ratios=[1, 1, 1, 1.3])
    vmax = float(np.abs(res.outputs[:n]).max()) or 1.0
    for j in range(n):
        out = res.outputs[j]
        panels = [(np.asarray(images[j, 0]), "gray", 0, 255, f"input: {res.nonzero_input[j]} non-zero"),
                  (out, "RdBu_r", -vmax, vmax, f"filtered: {res.nonzero_before[j]}"),
                  (np.maximum(out, 0), "RdBu_r", -vmax, vmax, f"ReLU: {res.nonzero_after[j]}")]
        for i, (img, cmap, lo, hi, label) in enumerate(panels):
            ax = fig.add_subplot(grid[i, j])
            im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8)
    fig.colorbar(im, ax=[fig.axes[-1]], fraction=0.05, label="filter output")
    ax = fig.add_subplot(grid[3, :])
    bins = np.arange(0, res.pixels + 2, max(1, res.pixels // 80))
    for arr, label in ((res.nonzero_input, "input"), (res.nonzero_before, f"{res.filter} output"),
                       (res.nonzero_after, "after ReLU")):
        ax.hist(arr, bins=bins, alpha=0.55, label=f"{label} (mean {arr.mean():.0f})")
    ax.set_xlabel(f"non-zero pixels per image (of {res.pixels})")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    return fig


def edges_png(images: torch.Tensor, res: EdgeResult, path, n: int = 6):
    from ..viz import save_figure

    return save_figure(edges_figure(images, res, n), path)
