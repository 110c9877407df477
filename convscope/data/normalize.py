"""Per-channel normalization: the one mapping from stored uint8 pixels to a model's float input."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    def apply(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.normalize(images_u8.to(torch.float32).div_(255.0))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images on the [0, 1] scale (B, C, H, W) -> (x - mean) / std per channel."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std
