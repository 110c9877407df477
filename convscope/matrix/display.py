"""Showing a conv matrix: symbolic text (w11 ... w33), its block structure in words, a heatmap PNG
(block-reduced when large, and saying so on the image), and a singular-value plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from matplotlib.figure import Figure

from ..conv.conv_matrix import conv_pattern
from ..conv.geometry import ConvGeometry
from ..viz import new_figure, save_figure


def tap_names(geom: ConvGeometry) -> list[str]:
    """Names of the weight entries in ``weight.ravel()`` order: w11..w33 for one channel in and out."""
    o, ig, (kh, kw) = geom.out_channels, geom.in_channels // geom.groups, geom.kernel
    sep = "," if max(kh, kw) > 9 else ""
    one = o == 1 and ig == 1
    names = []
    for a in range(o):
        for c in range(ig):
            for i in range(kh):
                for j in range(kw):
                    tap = f"{i + 1}{sep}{j + 1}"
                    names.append(f"w{tap}" if one else f"w{a + 1}.{c + 1}:{tap}")
    return names


def symbolic_entries(geom: ConvGeometry) -> dict[tuple[int, int], str]:
    """(row, col) -> expression in weight names; taps that land on the same pixel are summed (w11+w13)."""
    pat = conv_pattern(geom)
    names = tap_names(geom)
    o, og = geom.out_channels, geom.out_channels // geom.groups
    ig_hw = (geom.in_channels // geom.groups) * geom.input_hw[0] * geom.input_hw[1]
    per_channel = (geom.in_channels // geom.groups) * geom.kernel[0] * geom.kernel[1]  # taps of one output channel
    rows_one = np.repeat(np.arange(len(pat.row_len)), pat.row_len)
    entries: dict[tuple[int, int], list[str]] = {}
    n_pix = len(pat.row_len)
    for a in range(o):
        off = (a // og) * ig_hw
        for r, c, t in zip(rows_one + a * n_pix, pat.cols + off, pat.taps + a * per_channel):
            entries.setdefault((int(r), int(c)), []).append(names[t])
    return {k: "+".join(v) for k, v in entries.items()}


def block_structure(geom: ConvGeometry) -> str:
    """The matrix's structure in words, from its geometry."""
    (h, w), (ho, wo), (sh, sw) = geom.input_hw, geom.output_hw, geom.stride
    t, b, l, r = geom.pad
    full_circ = (geom.padding_mode == "circular" and t + b == geom.dilation[0] * (geom.kernel[0] - 1)
                 and l + r == geom.dilation[1] * (geom.kernel[1] - 1) and h % sh == 0 and w % sw == 0)
    stride_note = "" if (sh, sw) == (1, 1) else f" (strided: block (a, b) depends on b - {sh}a, entries on j - {sw}i)"
    if full_circ and (sh, sw) == (1, 1):
        kind = (f"doubly block circulant: {ho} x {h} blocks of {wo} x {w}, each block circulant, "
                "and block (a, b) depends only on (b - a) mod H")
    elif geom.padding_mode in ("zeros", "circular") or not any(geom.pad):
        extra = ("; circular padding adds wrap-around corners" if geom.padding_mode == "circular" else "")
        kind = (f"doubly block Toeplitz: {ho} x {h} blocks of {wo} x {w}; block (a, b) depends only on b - a "
                f"and is itself Toeplitz{stride_note}{extra}")
    else:
        kind = (f"doubly block Toeplitz away from the border ({ho} x {h} blocks of {wo} x {w}); {geom.padding_mode} "
                "padding folds the border taps onto edge pixels, breaking the Toeplitz pattern there")
    if geom.out_channels * geom.in_channels > 1:
        g = geom.groups
        grid = f"{geom.out_channels} x {geom.in_channels} grid of such matrices, one per (output, input) channel pair"
        if g > 1:
            grid += f", block-diagonal over {g} groups (zero off the group blocks)"
        kind = f"{grid}; each: {kind}"
    return kind


def format_symbolic(geom: ConvGeometry, max_cells: int = 64 * 64) -> str | None:
    rows, cols = geom.shape
    if rows * cols > max_cells or cols > 64:
        return None
    entries = symbolic_entries(geom)
    width = max(max((len(v) for v in entries.values()), default=1), 1)
    lines = []
    for r in range(rows):
        lines.append(" ".join(f"{entries.get((r, c), '0'):>{width}}" for c in range(cols)))
    return "\n".join(lines)


def heatmap_figure(m: sp.csr_matrix, title: str, max_pixels: int = 512) -> Figure:
    """Entries as colours (blue < 0 < red, white = zero). Larger than max_pixels: max |entry| per block."""
    rows, cols = m.shape
    bh, bw = -(-rows // max_pixels), -(-cols // max_pixels)
    coo = m.tocoo()
    if bh == 1 and bw == 1:
        img = np.zeros(m.shape)
        img[coo.row, coo.col] = coo.data
        vmax = float(np.abs(coo.data).max()) if coo.nnz else 1.0
        cmap, vmin, note = "RdBu_r", -vmax, ""
    else:
        img = np.zeros((-(-rows // bh), -(-cols // bw)))
        np.maximum.at(img, (coo.row // bh, coo.col // bw), np.abs(coo.data))
        vmax = float(img.max()) or 1.0
        cmap, vmin = "magma_r", 0.0
        note = f"reduced: each pixel is the max |entry| of a {bh} x {bw} block"
    fig = new_figure(min(12, 2 + 10 * img.shape[1] / max(img.shape)), min(12, 1.5 + 10 * img.shape[0] / max(img.shape)))
    ax = fig.subplots()
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal",
                   extent=(-0.5 * bw, img.shape[1] * bw - 0.5 * bw, img.shape[0] * bh - 0.5 * bh, -0.5 * bh))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"input index (C, H, W order), {cols:,} columns")
    ax.set_ylabel(f"output index, {rows:,} rows")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if note:
        ax.text(0.5, -0.12, note, transform=ax.transAxes, ha="center", va="top", fontsize=9, color="darkred")
    return fig


def heatmap_png(m: sp.csr_matrix, path: Path, title: str, max_pixels: int = 512, output: str | None = None) -> Path:
    return save_figure(heatmap_figure(m, title, max_pixels), path, output=output)


def spectrum_png(sv: np.ndarray, path: Path, title: str, output: str | None = None) -> Path:
    fig = new_figure(6, 3.6)
    ax = fig.subplots()
    sv = np.sort(np.asarray(sv))[::-1]
    ax.semilogy(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-300), ".-", ms=3)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    pos = sv[sv > sv[0] * 1e-12] if len(sv) else sv
    cond = sv[0] / pos[-1] if len(pos) else float("inf")
    ax.set_title(f"{title}\nlargest {sv[0]:.4g}, smallest {sv[-1]:.4g}, condition number {cond:.4g}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path, output=output)
