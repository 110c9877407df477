"""``fast``: our default — a small BN + ReLU convnet sized for a 2-core CPU, and ``resnet-small``."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._registry import register_model


def conv_bn(c_in: int, c_out: int, k: int) -> list[tuple[str, nn.Module]]:
    """The k-th conv-BN-ReLU, named ``conv{k}``, ``bn{k}``, ``relu{k}``."""
    return [(f"conv{k}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)), (f"bn{k}", nn.BatchNorm2d(c_out)),
            (f"relu{k}", nn.ReLU(inplace=True))]


@register_model("fast", "default: 3 conv-BN-ReLU blocks (pool after each), flatten, linear")
def fast(in_channels: int, image_size: tuple[int, int], num_classes: int, width: int = 32, head: str = "flatten",
         extra: int = 0) -> nn.Module:
    """Widths (w, 2w, 4w); each block halves the resolution. (N, C, 28, 28) -> (N, 4w, 3, 3) -> (N, classes).

    ``head``: ``max`` (global max-pool), ``avg`` (global average) or ``flatten`` (keep the 3 x 3 layout);
    ``extra``: additional conv-BN-ReLU layers in each of the last ``extra`` blocks (0 to 3)."""
    from ..errors import ConfigError

    if head not in ("max", "avg", "flatten"):
        raise ConfigError(f"fast: head must be 'max', 'avg' or 'flatten', got {head!r}")
    if not 0 <= extra <= 3:
        raise ConfigError(f"fast: extra must lie in 0..3, got {extra}")
    w = width
    layers: list[tuple[str, nn.Module]] = []
    c_in, k = in_channels, 0
    h, wd = image_size
    for i, c_out in enumerate((w, 2 * w, 4 * w)):
        k += 1
        layers += conv_bn(c_in, c_out, k)
        if i >= 3 - extra:  # convs are numbered in order, pools by block: ... relu3, conv4, ..., relu4, pool3
            k += 1
            layers += conv_bn(c_out, c_out, k)
        layers.append((f"pool{i + 1}", nn.MaxPool2d(2)))
        c_in, h, wd = c_out, h // 2, wd // 2
    if head == "flatten":
        layers += [("flatten", nn.Flatten()), ("fc", nn.Linear(c_in * h * wd, num_classes))]
    else:
        layers += [("gpool", nn.AdaptiveMaxPool2d(1) if head == "max" else nn.AdaptiveAvgPool2d(1)),
                   ("flatten", nn.Flatten()), ("fc", nn.Linear(c_in, num_classes))]
    return nn.Sequential(OrderedDict(layers))


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
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, w, 3, padding=1, bias=False)), ("bn1", nn.BatchNorm2d(w)),
        ("relu1", nn.ReLU(inplace=True)),
        ("layer1", nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))),                # (w, H, W)
        ("layer2", nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))),    # (2w, H/2, W/2)
        ("layer3", nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))),  # (4w, H/4, W/4)
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4 * w, num_classes)),
    ]))
