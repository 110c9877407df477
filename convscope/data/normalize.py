"""Per-channel normalization: the one mapping from stored uint8 pixels to a model's float input."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] pixel scale; ``apply`` maps uint8 (B, C, H, W) to model input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

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

    def apply(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, C, H, W), pixels 0..255 -> float32 model input. Float images are refused: 0..1 or
        0..255 cannot be told apart, and a wrong guess gives silently wrong numbers."""
        if not isinstance(images_u8, torch.Tensor) or images_u8.dtype != torch.uint8:
            got = f"a {images_u8.dtype} tensor" if isinstance(images_u8, torch.Tensor) else type(images_u8).__name__
            raise ConfigError(f"Normalization.apply: expected uint8 images (B, C, H, W) with pixels 0..255, got {got}; "
                              "float images on the [0, 1] scale go through Normalization.normalize(x), and "
                              "(x * 255).round().to(torch.uint8) converts them")
        if images_u8.ndim != 4 or len(self.mean) not in (1, images_u8.shape[1]):
            raise ConfigError(f"Normalization.apply: expected images (B, C, H, W) with {len(self.mean)} channel(s), "
                              f"got shape {tuple(images_u8.shape)}")
        return self.normalize(images_u8.to(torch.float32).div_(255.0))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images on the [0, 1] scale (B, C, H, W) -> (x - mean) / std per channel."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
