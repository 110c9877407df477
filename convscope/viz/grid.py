"""A grid of sample images, one row per class, labelled with the class names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .._check import integer
from ..data.dataset import ImageDataset
from .figures import new_figure, save_figure


def pick_per_class(labels: torch.Tensor, n_classes: int, per_class: int) -> list[list[int]]:
    """The first ``per_class`` indices of each class, in dataset order (deterministic)."""
    lab = labels.numpy()
    return [np.flatnonzero(lab == k)[:per_class].tolist() for k in range(n_classes)]


# One matplotlib panel per sample: 10 classes x 64 are 640 panels (seconds to draw); `--per-class 1000000000` ended
# in a MemoryError traceback.
MAX_PER_CLASS = 64
PER_CLASS_WHY = "each sample is one panel of the picture: wider grids are unreadable and take minutes to draw"


def class_grid(dataset: ImageDataset, path: str | os.PathLike[str], per_class: int = 8,
               output: str | None = None) -> Path:
    """Write a PNG: one row per class (name on the left), ``per_class`` samples across (at most
    :data:`MAX_PER_CLASS`)."""
    per_class = integer(per_class, "per_class", 1, MAX_PER_CLASS, fix=PER_CLASS_WHY)
    rows = pick_per_class(dataset.labels, len(dataset.classes), per_class)
    n_rows = len(rows)
    fig = new_figure(per_class * 0.9 + 1.6, n_rows * 0.9 + 0.6)
    axes = fig.subplots(n_rows, per_class, squeeze=False)
    for r, idx in enumerate(rows):
        for c in range(per_class):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(idx):
                img = dataset.images[idx[c]].permute(1, 2, 0).numpy()  # (H, W, C)
                if img.shape[2] == 1:
                    ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                else:
                    ax.imshow(img, interpolation="nearest")
        axes[r][0].set_ylabel(dataset.classes[r], rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"{dataset.name} ({dataset.split}, {len(dataset):,} images)", fontsize=11)
    return save_figure(fig, path, output=output)
