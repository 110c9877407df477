"""The edge-detector experiment: a hand-set edge filter (zero padding, same size) then ReLU, on every image.

Computed in exact integer arithmetic on the raw 0..255 pixels, so "zero" means exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

FILTERS: dict[str, np.ndarray] = {
    "sobel-x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel-y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "prewitt-x": np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]),
    "prewitt-y": np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]),
    "scharr-x": np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "laplacian-8": np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]]),
}


@dataclass
class EdgeResult:
    filter: str
    kernel: np.ndarray
    nonzero_input: np.ndarray      # (N,) non-zero pixels of each input image
    nonzero_before: np.ndarray     # (N,) non-zero pixels of the filter output, before ReLU
    nonzero_after: np.ndarray      # (N,) non-zero pixels after ReLU
    pixels: int                    # pixels per image (H * W)
    outputs: np.ndarray | None = None   # (n_keep, H, W) filter outputs of the first images, for pictures

    def summary(self) -> dict:
        def stats(a):
            return {"mean": float(a.mean()), "median": float(np.median(a)), "min": int(a.min()), "max": int(a.max()),
                    "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90))}
        return {"filter": self.filter, "kernel": self.kernel.tolist(), "images": int(len(self.nonzero_input)),
                "pixels_per_image": self.pixels, "input_nonzero": stats(self.nonzero_input),
                "input_zero_mean": float(self.pixels - self.nonzero_input.mean()),
                "filtered_nonzero": stats(self.nonzero_before), "after_relu_nonzero": stats(self.nonzero_after),
                "relu_zeroed_fraction_of_nonzero": float(1 - self.nonzero_after.sum() / max(self.nonzero_before.sum(), 1))}


def edge_experiment(images: torch.Tensor | np.ndarray, filter: str = "sobel-x", keep: int = 8,
                    batch_size: int = 2000) -> EdgeResult:
    """``images``: uint8 (N, 1, H, W) or (N, H, W). Filter with zero padding (output H x W), then ReLU."""
    if filter not in FILTERS:
        raise ConfigError(f"filter: unknown {filter!r}; valid: {', '.join(FILTERS)}")
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ConfigError(f"images: expected grayscale (N, 1, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    k = torch.from_numpy(FILTERS[filter]).to(torch.float64)[None, None]
    nz_in, nz_before, nz_after, kept = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(torch.float64)             # integers 0..255: float64 sums are exact
        y = F.conv2d(xb, k, padding=k.shape[-1] // 2)          # (B, 1, H, W), zero padding keeps the size
        nz_in.append((xb != 0).flatten(1).sum(1))
        nz_before.append((y != 0).flatten(1).sum(1))
        nz_after.append((torch.relu(y) != 0).flatten(1).sum(1))
        if sum(len(o) for o in kept) < keep:
            kept.append(y[:, 0].numpy())
    outs = np.concatenate(kept)[:keep] if kept else None
    return EdgeResult(filter, FILTERS[filter], torch.cat(nz_in).numpy(), torch.cat(nz_before).numpy(),
                      torch.cat(nz_after).numpy(), int(x.shape[2] * x.shape[3]), outs)


def edges_png(images: torch.Tensor, res: EdgeResult, path, n: int = 6):
    """Rows: input, filter output (diverging colours, 0 = white), after ReLU; and the count distributions."""
    from ..viz import new_figure, save_figure

    n = min(n, len(res.outputs))
    fig = new_figure(2.0 * n + 1, 9.2)
    grid = fig.add_gridspec(4, n, height_ratios=[1, 1, 1, 1.3])
    vmax = float(np.abs(res.outputs[:n]).max()) or 1.0
    for j in range(n):
        out = res.outputs[j]
        panels = [(images[j, 0].numpy(), "gray", 0, 255, f"input: {res.nonzero_input[j]} non-zero"),
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
    return save_figure(fig, path)
