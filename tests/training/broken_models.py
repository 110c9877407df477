"""Deliberately broken models for the doctor's tests, registered under ``test-*`` names (once per process).

Each is small and fast on the CPU; each has one known defect that a finding must name:

- ``test-dead-relu``: conv layers whose biases start at -``bias`` (ReLUs mostly zero from the first step);
- ``test-hot-logits``: a healthy small CNN whose logits are multiplied by ``scale`` (confident at init);
- ``test-plain``: ``depth`` 3x3 convs + ReLU, no normalization, weights at a small uniform init
  (activations and gradients vanish with depth).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from convscope.models import register_model
from convscope.models._registry import _REGISTRY


def _small_cnn(in_channels: int, image_size, num_classes: int, width: int = 16) -> OrderedDict:
    h, w = image_size
    return OrderedDict([("conv1", nn.Conv2d(in_channels, width, 3, padding=1)), ("bn1", nn.BatchNorm2d(width)),
                        ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
                        ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)), ("bn2", nn.BatchNorm2d(2 * width)),
                        ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
                        ("fc", nn.Linear(2 * width * (h // 4) * (w // 4), num_classes))])


class Scaled(nn.Sequential):
    def __init__(self, layers: OrderedDict, scale: float) -> None:
        super().__init__(layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def dead_relu(in_channels: int, image_size, num_classes: int, bias: float = 8.0) -> nn.Module:
    h, w = image_size
    m = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 16, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(32 * (h // 4) * (w // 4), num_classes))]))
    with torch.no_grad():
        m.conv1.bias.fill_(-bias)
        m.conv2.bias.fill_(-bias)
    return m


def hot_logits(in_channels: int, image_size, num_classes: int, scale: float = 50.0) -> nn.Module:
    return Scaled(_small_cnn(in_channels, image_size, num_classes), scale)


def plain(in_channels: int, image_size, num_classes: int, depth: int = 8, width: int = 16,
          gain: float = 0.5) -> nn.Module:
    h, w = image_size
    layers, c = [], in_channels
    for i in range(1, depth + 1):
        conv = nn.Conv2d(c, width, 3, padding=1)
        with torch.no_grad():   # uniform in +-gain/sqrt(fan_in): std gain/sqrt(3 fan_in), below He's sqrt(2/fan_in)
            conv.weight.uniform_(-gain / (c * 9) ** 0.5, gain / (c * 9) ** 0.5)
            conv.bias.zero_()
        layers += [(f"conv{i}", conv), (f"relu{i}", nn.ReLU())]
        c = width
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(width, num_classes))]
    return nn.Sequential(OrderedDict(layers))


for _name, _fn, _text in (("test-dead-relu", dead_relu, "test: ReLUs dead at init (bias -8)"),
                          ("test-hot-logits", hot_logits, "test: logits x50"),
                          ("test-plain", plain, "test: deep plain CNN, no normalization, small init")):
    if _name not in _REGISTRY:
        register_model(_name, _text)(_fn)
