"""Pictures and files of the refine experiment: ``results.json``, the curves against steps (mean ± std over
seeds), per-class changes, and the kernels with their top images before and after refinement."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_write_text
from .._check import path as check_path
from ..errors import ConfigError
from ..viz import new_figure, save_figure
from .curves import BN_LABEL, COLOURS, curves_figure
from .result import RefineResult


def curves_png(res: RefineResult, path: Path) -> Path:
    return save_figure(curves_figure(res), path)


def per_class_png(res: RefineResult, path: Path) -> Path:
    """Change of each class's test accuracy (percentage points, last step minus step 0, mean over seeds)."""
    summary = res.summary()
    classes = res.data["classes"]
    fig = new_figure(max(8.0, 0.9 * len(classes) + 2), 3.2 * len(summary) + 0.4)
    axes = fig.subplots(len(summary), 1, squeeze=False)
    variants = list(res.config.variants)
    width = 0.8 / len(variants)
    x = np.arange(len(classes))
    for ax, (bn, per) in zip(axes[:, 0], summary.items()):
        for j, v in enumerate(variants):
            ax.bar(x + (j - (len(variants) - 1) / 2) * width, 100 * np.asarray(per[v]["per_class_change"]), width,
                   color=COLOURS[v], label=v)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, [str(c) for c in classes], fontsize=8)
        ax.set_ylabel("test accuracy change (pp)", fontsize=9)
        ax.set_title(BN_LABEL[bn], fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=8, ncol=len(variants))
    return save_figure(fig, path)


def dose_png(res: RefineResult, path: Path) -> Path:
    """Test accuracy change against the dose: the response gain on the kernels' top-k training images (top row)
    and the mean angle the kernels turned (bottom row), one column per BN treatment; each line is one variant's
    measured steps (mean over every model and seed), so variants compare at matched gain or angle."""
    dose = res.dose_response()
    fig = new_figure(6.2 * len(dose) + 0.6, 8.2)
    axes = fig.subplots(2, len(dose), squeeze=False)
    for j, (bn, per) in enumerate(dose.items()):
        for v, pts in per.items():
            y = 100 * np.asarray(pts["accuracy_change"])
            for i, (key, scale) in enumerate((("gain_topk_train", 100.0), ("kernel_angle", 180 / math.pi))):
                axes[i][j].plot(scale * np.asarray(pts[key]), y, "o-", color=COLOURS[v], label=v, lw=1.4, ms=3)
        axes[0][j].set_xlabel("response gain on the kernels' top-k training images (%)", fontsize=9)
        axes[1][j].set_xlabel("mean angle the kernels turned (degrees)", fontsize=9)
        for i in range(2):
            axes[i][j].set_ylabel(f"test accuracy change (pp)\n{BN_LABEL[bn]}", fontsize=9)
            axes[i][j].axhline(0, color="black", lw=0.8)
            axes[i][j].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"refine {res.layer}: accuracy change against dose (mean over {res.model_count()} model(s) x "
                 f"{len(res.config.seeds)} seed(s), each point a measured step)", fontsize=10)
    return save_figure(fig, path)


def _mosaic(w: np.ndarray) -> np.ndarray:
    """(I, kh, kw) -> one 2-D image: the I input slices tiled in a near-square grid, NaN gaps between them."""
    i, kh, kw = w.shape
    cols = math.ceil(math.sqrt(i))
    rows = math.ceil(i / cols)
    out = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    for a in range(i):
        r, c = divmod(a, cols)
        out[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = w[a]
    return out


def kernels_png(res: RefineResult, images: torch.Tensor, path: Path, variant: str = "maximize",
                channels: int = 6, show: int = 5) -> Path:
    """One row per kernel (those whose response on their top-k training images rose most): the kernel before
    and after ``variant`` (seed 0; its input slices tiled), their difference, and its top images before and
    after (the images are training images; the after set is recomputed with ``topk``)."""
    before = res.kernels["before"].float().numpy()
    after_w = res.kernels[variant].float().numpy()
    run = res.runs_of(variant)[0]
    bn = next(iter(run.rows[0]["bn"]))
    r0 = np.asarray(run.rows[0]["bn"][bn]["response_topk_train_per_channel"])
    r1 = np.asarray(run.rows[-1]["bn"][bn]["response_topk_train_per_channel"])
    gain = r1 / np.where(r0 == 0, np.nan, r0) - 1
    order = [int(c) for c in np.argsort(-np.nan_to_num(gain, nan=-np.inf))[:channels]]
    after_top = res.after.get(variant, {}).get("topk_train")
    show = min(show, res.config.k)
    cols = 3 + show + (show if after_top else 0)
    fig = new_figure(1.15 * cols + 0.5, 1.3 * len(order) + 0.9)
    axes = fig.subplots(len(order), cols, squeeze=False)
    for row, c in enumerate(order):
        vmax = float(np.abs(before[c]).max()) or 1.0
        diff = after_w[c] - before[c]
        dmax = float(np.abs(diff).max()) or 1.0                 # the change on its own scale, to be visible
        panels = [(_mosaic(before[c]), "before", vmax), (_mosaic(after_w[c]), f"after {variant}", vmax),
                  (_mosaic(diff), f"change (x{vmax / dmax:.0f})", dmax)]
        for j, (img, title, lim) in enumerate(panels):
            axes[row][j].imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            axes[row][j].set_title(title, fontsize=7)
        tops = [("top before", res.topk_train[c][:show])]
        if after_top:
            tops.append(("top after", after_top[c][:show]))
        j = 3
        for label, idx in tops:
            for n, i in enumerate(idx):
                img = images[i].permute(1, 2, 0).float().numpy() / 255.0
                axes[row][j].imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1,
                                    interpolation="nearest")
                axes[row][j].set_title(f"{label} #{i}" if n == 0 else f"#{i}", fontsize=6)
                j += 1
        overlap = res.after.get(variant, {}).get("overlap")
        label = f"kernel {c}\nresponse {100 * gain[c]:+.1f}%"
        if overlap:
            label += f"\nsame top: {round(overlap[c] * res.config.k)}/{res.config.k}"
        axes[row][0].set_ylabel(label, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{res.layer}: kernels whose response on their top-{res.config.k} training images rose most "
                 f"({variant}, seed {run.seed})",
                 fontsize=9)
    return save_figure(fig, path)


def save_refine(res: RefineResult, out_dir: str | Path) -> list[Path]:
    """Write ``results.json``, ``curves.png``, ``per-class.png``, ``dose.png`` and ``kernels.png`` into
    ``out_dir``; returns the paths written."""
    if not isinstance(res, RefineResult):
        raise ConfigError(f"res: expected the RefineResult that refine(...) returned, got {type(res).__name__}")
    out = check_path(out_dir, "out_dir", "refine-conv3")
    images = res.train_images
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(res.to_dict(), indent=1) + "\n")
    paths = [out / "results.json", curves_png(res, out / "curves.png"), per_class_png(res, out / "per-class.png"),
             dose_png(res, out / "dose.png")]
    if images is not None:
        variant = "maximize" if "maximize" in res.kernels else next((v for v in res.kernels if v != "before"), None)
        if variant is not None:
            paths.append(kernels_png(res, images, out / "kernels.png", variant))
    return paths
