"""Pictures of what a CNN learned: kernels, feature maps, and the top-k images of each channel."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from ..viz import new_figure, save_figure
if TYPE_CHECKING:   # topk's display draws with topk_figure: no import back at run time
    from .receptive_field import Field
    from .topk import TopRecord


def _grid(n: int, max_cols: int = 16) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def kernels_figure(conv: nn.Conv2d, title: str, max_out: int = 64, max_in: int = 16) -> Figure:
    """First layer (1 or 3 input channels): one tile per output channel (RGB as colour). Deeper layers: a grid
    of output channels (rows) x input channels (columns). Diverging colours, 0 = white, shared scale."""
    w = conv.weight.detach().float().cpu().numpy()                  # (O, I, kh, kw)
    o, i = w.shape[:2]
    if i == 3:
        n_rows, n_cols = _grid(min(o, max_out))
        fig = new_figure(1.1 * n_cols + 0.6, 1.1 * n_rows + 0.8)
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for a in range(n_rows * n_cols):
            ax = axes[a // n_cols][a % n_cols]
            _bare(ax)
            if a < min(o, max_out):
                k = w[a].transpose(1, 2, 0)
                k = (k - k.min()) / (k.max() - k.min() + 1e-12)   # each kernel stretched to full colour range
                ax.imshow(k, interpolation="nearest")
                ax.set_title(str(a), fontsize=7)
        fig.suptitle(f"{title}: {o} kernels (RGB, each stretched to its own range)", fontsize=10)
        return fig
    o_show, i_show = min(o, max_out), min(i, max_in)
    vmax = float(np.abs(w[:o_show, :i_show]).max()) or 1.0
    if i == 1:
        n_rows, n_cols = _grid(o_show)
        cells = [(a, 0) for a in range(o_show)]
    else:
        n_rows, n_cols = o_show, i_show
        cells = [(a, c) for a in range(o_show) for c in range(i_show)]
    fig = new_figure(0.8 * n_cols + 1.6, 0.8 * n_rows + 1.0)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    im = None
    for idx in range(n_rows * n_cols):
        ax = axes[idx // n_cols][idx % n_cols]
        _bare(ax)
        if idx < len(cells):
            a, c = cells[idx]
            im = ax.imshow(w[a, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            if i == 1:
                ax.set_title(str(a), fontsize=7)
            elif idx % n_cols == 0:
                ax.set_ylabel(f"out {a}", fontsize=6)
            if i > 1 and a == 0:
                ax.set_title(f"in {c}", fontsize=6)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, label="weight")
    shown = "" if (o_show, i_show) == (o, i) else f" (first {o_show} x {i_show} of {o} x {i})"
    fig.suptitle(f"{title}: {o} x {i} kernels {w.shape[2]}x{w.shape[3]}{shown}", fontsize=10)
    return fig


def kernels_png(conv: nn.Conv2d, path: Path, title: str, max_out: int = 64, max_in: int = 16) -> Path:
    return save_figure(kernels_figure(conv, title, max_out, max_in), path)


def feature_maps_png(maps: dict[str, torch.Tensor], image: torch.Tensor, path: Path, title: str,
                     max_channels: int = 16) -> Path:
    """One row per layer: the input image, then up to ``max_channels`` feature maps, each row on its own
    colour scale (shown by the row's colour bar)."""
    layers = [(n, t[0]) for n, t in maps.items() if t.ndim == 4]
    n_cols = max_channels + 1
    fig = new_figure(0.95 * n_cols + 1.2, 1.05 * len(layers) + 0.9)
    axes = fig.subplots(len(layers), n_cols, squeeze=False)
    img = image.permute(1, 2, 0).numpy()
    for r, (name, t) in enumerate(layers):
        a = t.float().cpu().numpy()
        lo, hi = float(a.min()), float(a.max())
        cmap = "RdBu_r" if lo < 0 else "viridis"
        if lo < 0:
            lo, hi = -max(-lo, hi), max(-lo, hi)
        for c in range(n_cols):
            ax = axes[r][c]
            _bare(ax)
            if c == 0:
                ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", interpolation="nearest")
                ax.set_ylabel(f"{name}\n{tuple(a.shape)}", fontsize=7, rotation=0, ha="right", va="center")
            elif c - 1 < a.shape[0]:
                im = ax.imshow(a[c - 1], cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
                if r == 0:
                    ax.set_title(f"ch {c - 1}", fontsize=7)
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.01, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def topk_figure(dataset_images: torch.Tensor, records: list[list[TopRecord]], field: Field | None, kind: str,
                title: str, max_channels: int = 16) -> Figure:
    """A grid, one row per channel, best first: for ``kind="patches"`` the image patches under each unit's
    receptive field (padding shown grey), for ``kind="images"`` the whole images with the field's box drawn."""
    chans = records[:max_channels]
    k = max(len(r) for r in chans)
    h, w = dataset_images.shape[2:]
    fig = new_figure(0.95 * k + 1.2, 0.95 * len(chans) + 0.8)
    axes = fig.subplots(len(chans), k, squeeze=False)
    for c, recs in enumerate(chans):
        for j in range(k):
            ax = axes[c][j]
            _bare(ax)
            if j >= len(recs):
                continue
            rec = recs[j]
            img = dataset_images[rec.index].permute(1, 2, 0).float().numpy() / 255.0
            if field is None or field.is_global:
                t, l, b, r = 0, 0, h - 1, w - 1
            else:
                t, l, b, r = field.box(rec.y, rec.x)
            if kind == "patches":
                patch = np.full((b - t + 1, r - l + 1, img.shape[2]), 0.5)       # grey = padding
                tt, ll, bb, rr = max(t, 0), max(l, 0), min(b, h - 1), min(r, w - 1)
                patch[tt - t:bb - t + 1, ll - l:rr - l + 1] = img[tt:bb + 1, ll:rr + 1]
                ax.imshow(patch[..., 0] if patch.shape[2] == 1 else patch, cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
            else:
                ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
                ax.add_patch(Rectangle((l - 0.5, t - 0.5), r - l + 1, b - t + 1, fill=False, color="red", lw=1))
            ax.set_title(f"#{rec.index} {rec.value:.2f}", fontsize=6)
        axes[c][0].set_ylabel(f"ch {c}", fontsize=7)
    fig.subplots_adjust(hspace=0.45, top=1 - 0.6 / (0.95 * len(chans) + 0.8))
    fig.suptitle(f"{title} ({kind}: top {k} per channel, best left)", fontsize=10)
    return fig


def topk_png(dataset_images: torch.Tensor, records: list[list[TopRecord]], field: Field | None, path_patches: Path,
             path_images: Path, title: str, max_channels: int = 16) -> tuple[Path, Path]:
    """Two PNGs of :func:`topk_figure`: the patches and the whole images."""
    return (save_figure(topk_figure(dataset_images, records, field, "patches", title, max_channels), path_patches),
            save_figure(topk_figure(dataset_images, records, field, "images", title, max_channels), path_images))
