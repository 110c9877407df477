"""Convolution geometry: normalising PyTorch-style arguments and the output-size arithmetic.

Output size per dimension (Dumoulin and Visin, "A guide to convolution arithmetic", relationship 15):
``o = floor((i + p_before + p_after - d (k - 1) - 1) / s) + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._check import choice, integer, is_int
from ..errors import ConfigError

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def pair(value, name: str) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, as PyTorch takes them."""
    if is_int(value):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ConfigError(f"{name}: expected an int or an (h, w) pair of ints, got {value!r}")


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a 2-D convolution except the weight values."""

    out_channels: int
    in_channels: int
    kernel: tuple[int, int]
    input_hw: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]       # (top, bottom, left, right)
    groups: int
    padding_mode: str

    @property
    def output_hw(self) -> tuple[int, int]:
        (h, w), (kh, kw), (sh, sw), (dh, dw) = self.input_hw, self.kernel, self.stride, self.dilation
        t, b, l, r = self.pad
        return (h + t + b - dh * (kh - 1) - 1) // sh + 1, (w + l + r - dw * (kw - 1) - 1) // sw + 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_hw)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, *self.output_hw)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the matrix: output size x input size."""
        c, h, w = self.input_shape
        o, ho, wo = self.output_shape
        return o * ho * wo, c * h * w

    @property
    def taps_upper_bound(self) -> int:
        """Stored entries before dropping taps that fall on zero padding."""
        o, ho, wo = self.output_shape
        return o * ho * wo * (self.in_channels // self.groups) * self.kernel[0] * self.kernel[1]


def resolve_padding(padding, kernel: tuple[int, int], dilation: tuple[int, int],
                    stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, an (h, w) pair, a 4-tuple in ``F.pad`` order
    (left, right, top, bottom), ``"valid"`` or ``"same"`` (as PyTorch: extra padding after, stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ConfigError("padding='same' needs stride 1 (as in PyTorch); give explicit padding instead")
            th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        raise ConfigError(f"padding: {padding!r} is not 'same', 'valid', an int, an (h, w) pair or a 4-tuple")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, int) for p in padding):
            raise ConfigError(f"padding: expected ints, got {padding!r}")
        left, right, top, bottom = padding
        return top, bottom, left, right
    ph, pw = pair(padding, "padding")
    return ph, ph, pw, pw


def make_geometry(weight_shape: tuple[int, ...], input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                  padding_mode: str = "zeros") -> ConvGeometry:
    """Validate every argument and return the geometry; errors name the argument at fault."""
    if len(weight_shape) != 4:
        raise ConfigError(f"weight: expected 4 dimensions (out, in/groups, kh, kw), got shape {tuple(weight_shape)}")
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape: expected (C, H, W), got {tuple(input_shape)}")
    o, ig, kh, kw = (int(v) for v in weight_shape)
    c, h, w = (int(v) for v in input_shape)
    if min(o, ig, kh, kw) < 1 or min(c, h, w) < 1:
        raise ConfigError(f"weight shape {tuple(weight_shape)} and input_shape {tuple(input_shape)} must be positive")
    groups = integer(groups, "groups", 1)
    if c % groups or o % groups:
        raise ConfigError(f"groups={groups} must divide both in_channels={c} and out_channels={o}")
    if c // groups != ig:
        raise ConfigError(f"weight: in_channels/groups = {c}/{groups} = {c // groups}, but the weight has {ig} "
                          f"input channels (weight shape {tuple(weight_shape)}, input_shape {tuple(input_shape)})")
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    if min(s) < 1:
        raise ConfigError(f"stride: must be positive, got {stride!r}")
    if min(d) < 1:
        raise ConfigError(f"dilation: must be positive, got {dilation!r}")
    choice(padding_mode, "padding_mode", PADDING_MODES)
    pad = resolve_padding(padding, (kh, kw), d, s)
    if min(pad) < 0:
        raise ConfigError(f"padding: must not be negative, got {padding!r}")
    t, b, l, r = pad
    if padding_mode == "reflect" and (max(t, b) >= h or max(l, r) >= w):
        raise ConfigError(f"padding: reflect padding {pad} (top, bottom, left, right) must be smaller than the input "
                          f"{h} x {w}")
    if padding_mode == "circular" and (max(t, b) > h or max(l, r) > w):
        raise ConfigError(f"padding: circular padding {pad} must not exceed the input {h} x {w}")
    geom = ConvGeometry(o, c, (kh, kw), (h, w), s, d, pad, groups, padding_mode)
    eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
    if eh > h + t + b or ew > w + l + r:
        raise ConfigError(f"kernel: the (dilated) kernel {eh} x {ew} is larger than the padded input "
                          f"{h + t + b} x {w + l + r}; use a smaller kernel or dilation, or more padding")
    ho, wo = geom.output_hw
    if ho < 1 or wo < 1:
        raise ConfigError(f"input_shape: output would be {ho} x {wo} (empty)")
    return geom
