"""Composable objectives for feature visualization (the Lucent idea, without its global state).

An objective maps the activations of one forward pass to one value per image, shape (B,), to be *maximized*.
Objectives compose: ``channel("conv3", 5) - 0.05 * total_variation()`` is an objective too, and each one
describes itself (``str(obj)``). Batched objectives take one unit per image: ``channel("conv3", [0, 1, 2])``
asks image 0 for channel 0, image 1 for channel 1, ... so many channels are optimized in one batch.

The activations dict passed to an objective holds each requested layer's output under its name, the model
output under ``OUTPUT`` and the image on the [0, 1] scale, before normalization, under ``IMAGE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Real

import torch
import torch.nn.functional as F

from .._check import number
from ..errors import ConfigError

OUTPUT = "<output>"   # key of the model's output (logits)
IMAGE = "<image>"     # key of the image being optimized, (B, C, H, W) on [0, 1]

Acts = dict[str, torch.Tensor]


class Objective:
    """``fn(acts) -> (B,)`` to maximize; ``layers``: the layer names it reads (besides OUTPUT and IMAGE)."""

    def __init__(self, fn: Callable[[Acts], torch.Tensor], description: str, layers: Sequence[str] = ()) -> None:
        self.fn = fn
        self.description = description
        self.layers = tuple(dict.fromkeys(layers))

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return self.description

    @property
    def needs_output(self) -> bool:
        return OUTPUT in self.layers

    # Arithmetic with anything but an Objective or a finite real number returns NotImplemented, so that Python
    # raises its TypeError ("unsupported operand type(s) for +: 'Objective' and 'str'"); NaN/inf weights are a
    # ConfigError: they would turn every image's objective into NaN.
    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a: self(a) + other(a), f"{self} + {other}", self.layers + other.layers)
        k = _scalar(other, "objective + number")
        if k is None:
            return NotImplemented
        return Objective(lambda a: self(a) + k, f"({self} + {k:g})", self.layers)

    def __radd__(self, other: float) -> Objective:
        return self.__add__(other)

    def __neg__(self) -> Objective:
        return -1.0 * self

    def __sub__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return self + (-other)
        k = _scalar(other, "objective - number")
        return NotImplemented if k is None else self + (-k)

    def __rsub__(self, other: float) -> Objective:
        k = _scalar(other, "number - objective")
        return NotImplemented if k is None else (-self) + k

    def __mul__(self, k: float) -> Objective:
        w = _scalar(k, "number * objective")
        if w is None:
            return NotImplemented
        return Objective(lambda a: w * self(a), f"{w:g} * ({self})", self.layers)

    __rmul__ = __mul__


def _scalar(value: object, name: str) -> float | None:
    """A finite real number as a float; None for anything that is not a number (the operator then returns
    NotImplemented); a NaN or infinite number is a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return number(value, name)


def _per_image(units: int | Sequence[int], batch: int) -> torch.Tensor:
    """(B,) unit index per image: one int for every image, or one per image."""
    if isinstance(units, int):
        return torch.full((batch,), units, dtype=torch.long)
    t = torch.as_tensor(list(units), dtype=torch.long)
    if len(t) != batch:
        raise ConfigError(f"objective: {len(t)} units given for a batch of {batch} images (give one per image)")
    return t


def _pick(out: torch.Tensor, units: int | Sequence[int]) -> torch.Tensor:
    """out (B, C, ...) -> (B, ...): for each image its own channel."""
    idx = _per_image(units, out.shape[0])
    if out.ndim < 2:
        raise ConfigError(f"objective: expected a (B, C, ...) layer output, got shape {tuple(out.shape)}")
    bad = idx[(idx < 0) | (idx >= out.shape[1])].tolist()
    if bad:   # negative indices would silently wrap around
        raise ConfigError(f"objective: unit(s) {sorted(set(bad))[:5]} out of range; the layer has {out.shape[1]} "
                          f"channels (0..{out.shape[1] - 1})")
    idx = idx.to(out.device)
    return out[torch.arange(out.shape[0], device=out.device), idx]


def _units_text(units: int | Sequence[int]) -> str:
    if isinstance(units, int):
        return str(units)
    u = list(units)
    return f"{u[0]}..{u[-1]} (one per image)" if len(u) > 3 else str(u)


def channel(layer: str, units: int | Sequence[int], measure: str = "mean") -> Objective:
    """The channel's feature map reduced over positions: ``mean`` (default) or ``max``."""
    if measure not in ("mean", "max"):
        raise ConfigError(f"channel: measure must be 'mean' or 'max', got {measure!r}")

    def fn(a: Acts) -> torch.Tensor:
        m = _pick(a[layer], units)                     # (B, H, W), or (B,) for a fully connected layer
        if m.ndim == 1:                                # a linear layer's channel is its one unit
            return m
        m = m.flatten(1)
        return m.mean(1) if measure == "mean" else m.amax(1)
    return Objective(fn, f"channel({layer}, {_units_text(units)}, {measure})", [layer])


def neuron(layer: str, units: int | Sequence[int], y: int | None = None, x: int | None = None) -> Objective:
    """One position of the channel's map; by default the centre (H // 2, W // 2)."""
    def fn(a: Acts) -> torch.Tensor:
        m = _pick(a[layer], units)                     # (B, H, W) or (B,)
        if m.ndim == 1:
            return m
        yy = m.shape[1] // 2 if y is None else y
        xx = m.shape[2] // 2 if x is None else x
        return m[:, yy, xx]
    where = "centre" if y is None and x is None else f"({y}, {x})"
    return Objective(fn, f"neuron({layer}, {_units_text(units)}, {where})", [layer])


def class_logit(classes: int | Sequence[int]) -> Objective:
    """The model output's logit of the class (one per image, or one for all)."""
    return Objective(lambda a: _pick(a[OUTPUT], classes), f"class_logit({_units_text(classes)})", [OUTPUT])


def diversity(layer: str) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix at ``layer`` to the other images'
    (Olah et al. 2017): pushes a batch that optimizes one unit towards different solutions."""
    def fn(a: Acts) -> torch.Tensor:
        f = a[layer]
        b, c = f.shape[:2]
        flat = f.reshape(b, c, -1)
        gram = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).reshape(b, -1), dim=1)  # (B, C*C)
        sim = gram @ gram.T                                                              # (B, B)
        return -(sim.sum(1) - sim.diagonal()) / max(b - 1, 1)
    return Objective(fn, f"diversity({layer})", [layer])


def l2(center: float = 0.5) -> Objective:
    """Minus the mean squared distance of the image (0..1 scale) from ``center`` (mid-grey): a regularizer."""
    return Objective(lambda a: -((a[IMAGE] - center) ** 2).flatten(1).mean(1), "l2", [IMAGE])


def total_variation() -> Objective:
    """Minus the mean absolute difference of neighbouring pixels (0..1 scale): favours smooth images."""
    def fn(a: Acts) -> torch.Tensor:
        x = a[IMAGE]
        dy = (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).mean(1)
        dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
        return -(dy + dx)
    return Objective(fn, "total_variation", [IMAGE])


def blur(sigma: float = 0.5) -> Objective:
    """Minus the mean squared difference between the image and its Gaussian blur: penalizes high frequencies."""
    def fn(a: Acts) -> torch.Tensor:
        x = a[IMAGE]
        return -((x - gaussian_blur(x.detach(), sigma)) ** 2).flatten(1).mean(1)
    return Objective(fn, f"blur({sigma:g})", [IMAGE])


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), radius 3 sigma, reflect padding (replicate where too small)."""
    r = max(1, round(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    mode = "reflect" if min(x.shape[2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    return F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
