"""The classic hand-made edge filters of the edge experiment, by name (plain integers: the command line lists
their names without importing NumPy or torch)."""

from __future__ import annotations

KERNELS: dict[str, tuple[tuple[int, ...], ...]] = {
    "sobel-x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel-y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "prewitt-x": ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)),
    "prewitt-y": ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
    "scharr-x": ((-3, 0, 3), (-10, 0, 10), (-3, 0, 3)),
    "laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "laplacian-8": ((1, 1, 1), (1, -8, 1), (1, 1, 1)),
}
