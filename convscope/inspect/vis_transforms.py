"""Robustness transforms for feature visualization: random pad, jitter, scale and rotation of the image
before each step, so the optimizer finds patterns the unit likes at many positions and sizes instead of
adversarial pixel noise. Pure batched functions of (B, C, H, W) on [0, 1]; one draw per step for the batch,
from the generator passed in (no global RNG). ``fit`` returns the model's input size at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Transform:
    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _choice(values: Sequence[float], g: torch.Generator) -> float:
    return float(values[int(torch.randint(len(values), (1,), generator=g))])


class Pad(Transform):
    """Pad every side by ``width`` pixels of ``value`` (mid-grey by default): room for the jitter to move into."""

    def __init__(self, width: int, value: float = 0.5) -> None:
        self.width, self.value = width, value

    def __call__(self, x, g):
        return F.pad(x, (self.width,) * 4, value=self.value)

    def __repr__(self) -> str:
        return f"pad({self.width})"


class Jitter(Transform):
    """A random crop ``d`` pixels smaller in each dimension: a shift by 0..d pixels."""

    def __init__(self, d: int) -> None:
        self.d = d

    def __call__(self, x, g):
        if self.d <= 0:
            return x
        dy, dx = (int(v) for v in torch.randint(self.d + 1, (2,), generator=g))
        h, w = x.shape[2] - self.d, x.shape[3] - self.d
        return x[:, :, dy:dy + h, dx:dx + w]

    def __repr__(self) -> str:
        return f"jitter({self.d})"


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) through a 2x3 affine map of the normalized coordinates (same for the batch)."""
    grid = F.affine_grid(theta.to(x.dtype).expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class RandomScale(Transform):
    """Zoom by a factor drawn from ``scales`` (bilinear, same output size)."""

    def __init__(self, scales: Sequence[float]) -> None:
        self.scales = tuple(scales)

    def __call__(self, x, g):
        s = _choice(self.scales, g)
        return x if s == 1.0 else _affine(x, torch.tensor([[1 / s, 0, 0], [0, 1 / s, 0]]))

    def __repr__(self) -> str:
        return f"scale({min(self.scales):g}..{max(self.scales):g})"


class RandomRotate(Transform):
    """Rotate by an angle in degrees drawn from ``angles`` (bilinear, same output size)."""

    def __init__(self, angles: Sequence[float]) -> None:
        self.angles = tuple(angles)

    def __call__(self, x, g):
        a = math.radians(_choice(self.angles, g))
        if a == 0.0:
            return x
        c, s = math.cos(a), math.sin(a)
        return _affine(x, torch.tensor([[c, -s, 0], [s, c, 0]]))

    def __repr__(self) -> str:
        return f"rotate({min(self.angles):g}..{max(self.angles):g} deg)"


def standard(size: tuple[int, int]) -> list[Transform]:
    """Lucent's standard set, scaled from 224 pixels to the image: pad, jitter, scale, rotate, small jitter.
    For 28 x 28: pad 2, jitter 2, scale 0.9..1.1, rotate -10..10 degrees, jitter 1."""
    unit = max(1, round(max(size) / 28))
    return [Pad(2 * unit), Jitter(2 * unit), RandomScale([1 + (i - 5) / 50 for i in range(11)]),
            RandomRotate(list(range(-10, 11))), Jitter(unit)]


def apply(transforms: Sequence[Transform], x: torch.Tensor, g: torch.Generator, size: tuple[int, int]
          ) -> torch.Tensor:
    """Every transform in order, then ``fit`` to the model's input size."""
    for t in transforms:
        x = t(x, g)
    return fit(x, size)


def fit(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop to ``size`` if larger, resize (bilinear) if smaller: models with a flatten head need it."""
    h, w = size
    if x.shape[2] >= h and x.shape[3] >= w:
        t, l = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, t:t + h, l:l + w]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
