"""``fast``: our default — a small BN + ReLU convnet sized for a 2-core CPU, and ``resnet-small``."""

from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register_model("fast", "default: 3 conv-BN-ReLU blocks (pool after each), global max-pool, linear")
def fast(in_channels: int, image_size: tuple[int, int], num_classes: int, width: int = 32) -> nn.Module:
    """Widths (w, 2w, 4w); each block halves the resolution. (N, C, 28, 28) -> (N, 4w, 3, 3) -> (N, classes)."""
    w = width
    return nn.Sequential(
        *conv_bn(in_channels, w), nn.MaxPool2d(2),
        *conv_bn(w, 2 * w), nn.MaxPool2d(2),
        *conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )


class BasicBlock(nn.Module):
    """Two 3 x 3 conv-BN layers with an identity (or 1 x 1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_model("resnet-small", "ResNet-style, BN, 3 stages of 2 basic blocks (for 32 x 32 RGB)", (3, 32, 32))
def resnet_small(in_channels: int, image_size: tuple[int, int], num_classes: int, width: int = 16) -> nn.Module:
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        BasicBlock(w, w, 1), BasicBlock(w, w, 1),
        BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1),
        BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )
