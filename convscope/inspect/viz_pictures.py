"""Pictures for feature visualization, projections, attribution overlays and the attribution audit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure

from ..viz import new_figure, save_figure
if TYPE_CHECKING:   # the result classes draw their displays with these functions: no import back at run time
    from .audit import MethodAudit
    from .projection import Projections
    from .visualize import Visualization


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _show(ax, img: np.ndarray, **kw) -> None:
    """(C, H, W) image on [0, 1] (grayscale or RGB) or (H, W) map."""
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else img[:3].transpose(1, 2, 0)
    if img.ndim == 2 and "cmap" not in kw:
        kw["cmap"] = "gray"
    ax.imshow(img, interpolation="nearest", **kw)
    _bare(ax)


def visualization_figure(vis: Visualization, dataset_images: torch.Tensor | None, title: str, max_units: int = 32,
                         per_row: int = 8) -> Figure:
    """Each unit: its optimized image and, beside it, the best dataset image by the same measure."""
    n = min(len(vis.channels), max_units)
    pair = 2 if vis.natural_indices is not None and dataset_images is not None else 1
    rows = math.ceil(n / per_row)
    cols = per_row * pair
    fig = new_figure(0.95 * cols + 0.4, 1.15 * rows + 0.8)
    axes = fig.subplots(rows, cols, squeeze=False)
    for a in axes.ravel():
        _bare(a)
        a.set_axis_off()
    for i in range(n):
        ax = axes[i // per_row][(i % per_row) * pair]
        ax.set_axis_on()
        _show(ax, vis.images[i] / 255.0, vmin=0, vmax=1)
        ax.set_title(f"{vis.channels[i]}: {vis.values[i]:.2f}", fontsize=7)
        if pair == 2:
            ax2 = axes[i // per_row][(i % per_row) * 2 + 1]
            ax2.set_axis_on()
            _show(ax2, dataset_images[vis.natural_indices[i]].float().numpy() / 255.0, vmin=0, vmax=1)
            ax2.set_title(f"#{vis.natural_indices[i]}: {vis.natural_values[i]:.2f}", fontsize=7, color="0.35")
    beat = vis.beats_natural()
    extra = "" if beat is None else f"; optimized > best natural image for {100 * beat:.0f}% of units"
    fig.suptitle(f"{title}\n(optimized image: unit, value | best dataset image, grey: index, value{extra})",
                 fontsize=9)
    return fig


def visualization_png(vis: Visualization, dataset_images: torch.Tensor | None, path: Path, title: str,
                      max_units: int = 32, per_row: int = 8) -> Path:
    """Each unit: its optimized image and, beside it, the best dataset image by the same measure."""
    return save_figure(visualization_figure(vis, dataset_images, title, max_units, per_row), path)


def _crop(img: np.ndarray, box: tuple[int, int, int, int], fill: float) -> np.ndarray:
    """(C, H, W) -> the box (top, left, bottom, right), areas outside the image filled."""
    t, l, b, r = box
    c, h, w = img.shape
    out = np.full((c, b - t + 1, r - l + 1), fill, dtype=np.float64)
    tt, ll, bb, rr = max(t, 0), max(l, 0), min(b, h - 1), min(r, w - 1)
    out[:, tt - t:bb - t + 1, ll - l:rr - l + 1] = img[:, tt:bb + 1, ll:rr + 1]
    return out


def _signed(p: np.ndarray) -> np.ndarray:
    """A projection (C, H, W) shown as an image: 0 -> grey, scaled by its own largest magnitude."""
    m = np.abs(p).max()
    return np.clip(0.5 + 0.5 * p / (m if m > 0 else 1.0), 0, 1)


def projections_png(proj: Projections, dataset_images: torch.Tensor, path: Path, title: str,
                    max_channels: int = 8, max_k: int = 4) -> Path:
    """Zeiler and Fergus figure 2: per unit, the receptive-field patches of its top activations, their
    deconvnet projections and their guided-backprop images, all cropped to the same box."""
    chans = min(len(proj.channels), max_channels)
    k = min(max_k, proj.deconvnet.shape[1])
    fig = new_figure(0.85 * 3 * k + 1.0, 0.9 * chans + 1.0)
    axes = fig.subplots(chans, 3 * k, squeeze=False)
    for ci in range(chans):
        for j in range(k):
            if j >= len(proj.records[ci]):
                continue
            rec, box = proj.records[ci][j], proj.boxes[ci][j]
            img = dataset_images[rec.index].float().numpy() / 255.0
            _show(axes[ci][j], _crop(img, box, 0.5), vmin=0, vmax=1)
            _show(axes[ci][k + j], _signed(_crop(proj.deconvnet[ci, j], box, 0.0)), vmin=0, vmax=1)
            _show(axes[ci][2 * k + j], _signed(_crop(proj.guided[ci, j], box, 0.0)), vmin=0, vmax=1)
        axes[ci][0].set_ylabel(f"ch {proj.channels[ci]}", fontsize=7)
    for j, name in ((0, "patches"), (k, "deconvnet"), (2 * k, "guided backprop")):
        axes[0][j].set_title(name, fontsize=8, loc="left")
    fig.suptitle(f"{title}: top-{k} activations per unit, projected to pixels (grey = 0)", fontsize=9)
    return save_figure(fig, path)


def attribution_figure(inputs: np.ndarray, maps: np.ndarray, target: list[int], title: str, max_images: int = 8,
                       classes: list[str] | None = None) -> Figure:
    """Top row: the inputs (N, C, H, W), each stretched to its own range; bottom row: each map (N, h, w), signed
    maps in diverging colours around 0 (white), non-negative ones from black; each on its own scale."""
    n = min(len(maps), max_images)
    fig = new_figure(1.5 * n + 0.6, 3.6)
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        x = inputs[i].astype(np.float64)
        _show(axes[0][i], (x - x.min()) / ((x.max() - x.min()) or 1.0), vmin=0, vmax=1)
        name = classes[target[i]] if classes and 0 <= target[i] < len(classes) else str(target[i])
        axes[0][i].set_title(f"#{i}, target {name}", fontsize=7)
        m = maps[i]
        top = float(np.abs(m).max()) or 1.0
        if m.min() < 0:
            axes[1][i].imshow(m, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
        else:
            axes[1][i].imshow(m, cmap="inferno", vmin=0, vmax=top, interpolation="nearest")
        _bare(axes[1][i])
    axes[1][0].set_ylabel("map", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def overlay_figure(image_u8: torch.Tensor, maps: dict[str, np.ndarray], title: str) -> Figure:
    """One image (C, H, W) uint8 and each method's map over it (|map| in colour, scaled to its own max)."""
    fig = new_figure(1.6 * (len(maps) + 1) + 0.4, 2.2)
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    img = image_u8.float().numpy() / 255.0
    _show(axes[0], img, vmin=0, vmax=1)
    axes[0].set_title("input", fontsize=8)
    gray = img.mean(0)
    for ax, (name, m) in zip(axes[1:], maps.items()):
        a = np.abs(m)
        ax.imshow(gray, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.imshow(a / (a.max() or 1.0), cmap="inferno", alpha=0.6, vmin=0, vmax=1, interpolation="bilinear")
        _bare(ax)
        ax.set_title(name.replace("_", " "), fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def overlay_png(image_u8: torch.Tensor, maps: dict[str, np.ndarray], path: Path, title: str) -> Path:
    return save_figure(overlay_figure(image_u8, maps, title), path)


def audit_figure(rows: list[MethodAudit], title: str) -> Figure:
    """Three panels: cascading randomization (rank correlation), deletion and insertion curves."""
    fig = new_figure(13, 3.8)
    ax_r, ax_d, ax_i = fig.subplots(1, 3)
    for k, r in enumerate(rows):
        color = f"C{k % 10}"
        ax_r.plot(range(len(r.randomization)), [x["spearman"] for x in r.randomization], "o-", color=color,
                  label=r.method)
        for ax, kind in ((ax_d, "deletion"), (ax_i, "insertion")):
            cur = np.array(r.faithfulness["curves"][f"{kind}_prob"])
            rnd = np.array(r.faithfulness["random_curves"][f"{kind}_prob"])
            xs = np.linspace(0, 1, len(cur))
            ax.plot(xs, cur, color=color, label=f"{r.method} {r.faithfulness[f'{kind}_auc']:.2f}")
            ax.plot(xs, rnd, color=color, ls=":", lw=0.8)
    if rows:
        ax_r.set_xticks(range(len(rows[0].randomization)))
        ax_r.set_xticklabels([x["randomized_to"] for x in rows[0].randomization], rotation=60, fontsize=7)
    ax_r.axhline(0, color="0.7", lw=0.5)
    low = min([0.0] + [x["spearman"] for r in rows for x in r.randomization])
    ax_r.set(ylabel="Spearman rank corr. with original", ylim=(low - 0.1, 1.05))
    ax_r.set_title("randomization cascade, top layer first", fontsize=9)
    ax_d.set(xlabel="fraction of pixels removed", ylabel="probability of the target class")
    ax_d.set_title("deletion: lower is better (dotted: random)", fontsize=9)
    ax_i.set(xlabel="fraction of pixels inserted")
    ax_i.set_title("insertion: higher is better", fontsize=9)
    for ax in (ax_r, ax_d, ax_i):
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10, y=1.0)
    fig.subplots_adjust(bottom=0.3, wspace=0.3, top=0.85)
    return fig


def audit_png(rows: list[MethodAudit], path: Path, title: str) -> Path:
    return save_figure(audit_figure(rows, title), path)
