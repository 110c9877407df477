"""Per-channel normalization: the one mapping from stored uint8 pixels to a model's float input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] pixel scale; ``apply`` maps uint8 (B, C, H, W) to model input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        """One mean and one std per channel, finite, each std positive: a std of 0 would make ``apply`` divide
        by zero (inf input), a negative one would flip the image."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values or \
                    not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"Normalization {name}: expected a non-empty tuple of numbers, one per channel "
                                  f"(e.g. (0.13,) or (0.49, 0.48, 0.45)), got {values!r}", arg=name)
            if not all(math.isfinite(v) for v in values):
                raise ConfigError(f"Normalization {name}: must be finite numbers, got {tuple(values)}", arg=name)
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"Normalization std: each must be positive (a std of 0 divides by zero), got "
                              f"{self.std}; for no scaling give 1.0", arg="std")
        if len(self.mean) != len(self.std):
            raise ConfigError(f"Normalization: {len(self.mean)} mean(s) and {len(self.std)} std(s); give one of each "
                              "per channel", arg="std")

    @classmethod
    def of(cls, images: torch.Tensor) -> Normalization:
        x = images.to(torch.float64) / 255.0                       # (N, C, H, W)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    @classmethod
    def identity(cls, channels: int = 1) -> Normalization:
        """Pixels on the [0, 1] scale as they are: for a model trained without normalization (say so explicitly:
        the inspection tools never assume it)."""
        return cls((0.0,) * channels, (1.0,) * channels)

    def apply(self, images_u8: torch.Tensor, input_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        """uint8 images (B, C, H, W), pixels 0..255 -> float32 model input. Float images are refused: 0..1 or
        0..255 cannot be told apart, and a wrong guess gives silently wrong numbers. ``input_shape``: the
        model's (C, H, W); other images are refused (a one-value normalization would otherwise pass RGB images
        to a grayscale model unchanged)."""
        if not isinstance(images_u8, torch.Tensor) or images_u8.dtype != torch.uint8:
            got = f"a {images_u8.dtype} tensor" if isinstance(images_u8, torch.Tensor) else type(images_u8).__name__
            raise ConfigError(f"Normalization.apply: expected uint8 images (B, C, H, W) with pixels 0..255, got {got}; "
                              "float images on the [0, 1] scale go through Normalization.normalize(x), and "
                              "(x * 255).round().to(torch.uint8) converts them")
        if images_u8.ndim != 4 or len(self.mean) not in (1, images_u8.shape[1]):
            raise ConfigError(f"Normalization.apply: expected images (B, C, H, W) with {len(self.mean)} channel(s), "
                              f"got shape {tuple(images_u8.shape)}")
        if input_shape is not None and tuple(images_u8.shape[1:]) != tuple(input_shape):
            c, h, w = input_shape
            how = ""
            if images_u8.shape[1] != c:
                how = ("; convert RGB to grayscale first (ITU-R 601 luma, as predict does: "
                       "(0.299 R + 0.587 G + 0.114 B).round().to(torch.uint8)), or read image files with "
                       "convscope.data.prepare.prepare_image" if c == 1 else
                       "; repeat a grayscale channel with images.expand(-1, 3, -1, -1)" if images_u8.shape[1] == 1
                       else "")
            raise ConfigError(f"images: expected uint8 images (B, {c}, {h}, {w}), the model's input shape, got shape "
                              f"{tuple(images_u8.shape)}{how or '; resize them to the model input size'}",
                              arg="images")
        return self.normalize(images_u8.to(torch.float32).div_(255.0))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images on the [0, 1] scale (B, C, H, W) -> (x - mean) / std per channel."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
