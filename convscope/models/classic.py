"""Classic and reference networks: LeNet-5, an MLP baseline, and the PyTorch and Keras MNIST examples."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import ConfigError
from ._registry import register_model


def _after(size: int, kernel: int, pad: int = 0, stride: int = 1) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _need(name: str, h: int, w: int, min_side: int) -> None:
    if h < min_side or w < min_side:
        raise ConfigError(f"model {name!r} needs images of at least {min_side} x {min_side}, got {h} x {w}")


@register_model("lenet5", "LeNet-5 (LeCun et al. 1998) for 28 x 28: conv5(pad 2)-pool-conv5-pool-fc120-fc84")
def lenet5(in_channels: int, image_size: tuple[int, int], num_classes: int, activation: str = "relu",
           pool: str = "max") -> nn.Module:
    """LeNet-5 adapted to 28 x 28 input: padding 2 on the first conv stands in for the original 32 x 32
    canvas. Defaults are the modern ReLU + max-pool variant; ``activation="tanh", pool="avg"`` is closer to 1998."""
    h, w = image_size
    _need("lenet5", h, w, 16)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}.get(activation)
    pl = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}.get(pool)
    if act is None or pl is None:
        raise ConfigError("lenet5: activation must be 'relu' or 'tanh', pool 'max' or 'avg'")
    fh, fw = (_after(_after(h, 5, 2) // 2, 5) // 2), (_after(_after(w, 5, 2) // 2, 5) // 2)
    a = activation
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 6, 5, padding=2)), (f"{a}1", act()), ("pool1", pl(2)),  # (6, H/2, W/2)
        ("conv2", nn.Conv2d(6, 16, 5)), (f"{a}2", act()), ("pool2", pl(2)),                     # (16, 5, 5) for 28
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(16 * fh * fw, 120)), (f"{a}3", act()),
        ("fc2", nn.Linear(120, 84)), (f"{a}4", act()),
        ("fc3", nn.Linear(84, num_classes)),
    ]))


@register_model("mlp", "no-convolution baseline: flatten-fc-ReLU-fc-ReLU-fc")
def mlp(in_channels: int, image_size: tuple[int, int], num_classes: int, hidden: int = 256,
        dropout: float = 0.0) -> nn.Module:
    h, w = image_size
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(in_channels * h * w, hidden)), ("relu1", nn.ReLU()), ("drop1", nn.Dropout(dropout)),
        ("fc2", nn.Linear(hidden, hidden)), ("relu2", nn.ReLU()), ("drop2", nn.Dropout(dropout)),
        ("fc3", nn.Linear(hidden, num_classes)),
    ]))


@register_model("pytorch-example", "PyTorch's official MNIST example network (conv32-conv64-pool-fc128)")
def pytorch_example(in_channels: int, image_size: tuple[int, int], num_classes: int) -> nn.Module:
    h, w = image_size
    _need("pytorch-example", h, w, 6)
    fh, fw = (h - 4) // 2, (w - 4) // 2  # 28 -> 26 -> 24 -> 12: 64 * 12 * 12 = 9216
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 32, 3)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, 3)), ("relu2", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)), ("drop1", nn.Dropout(0.25)), ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(64 * fh * fw, 128)), ("relu3", nn.ReLU()), ("drop2", nn.Dropout(0.5)),
        ("fc2", nn.Linear(128, num_classes)),
    ]))


@register_model("keras-example", "the Keras MNIST convnet example (conv32-pool-conv64-pool-dropout-dense)")
def keras_example(in_channels: int, image_size: tuple[int, int], num_classes: int) -> nn.Module:
    h, w = image_size
    _need("keras-example", h, w, 10)
    fh, fw = (((h - 2) // 2) - 2) // 2, (((w - 2) // 2) - 2) // 2  # 28 -> 26 -> 13 -> 11 -> 5
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, 32, 3)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(32, 64, 3)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("drop1", nn.Dropout(0.5)),
        ("fc", nn.Linear(64 * fh * fw, num_classes)),
    ]))
