"""Nothing hidden: every layer of a CNN as a short NumPy forward/backward pair, checked against PyTorch."""

from .conv import ALGORITHMS, conv2d, conv2d_backward
from .engine import Sequential, from_torch, to_torch_state
from .gradcheck import GradcheckResult, gradcheck
from .layers import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, GlobalMaxPool2d, Layer,
                     Linear, MaxPool2d, ReLU, softmax_cross_entropy)
from .optim import SGD, Adam

__all__ = ["ALGORITHMS", "Adam", "AvgPool2d", "BatchNorm2d", "Conv2d", "Dropout", "Flatten", "GlobalAvgPool2d",
           "GlobalMaxPool2d", "GradcheckResult",
           "Layer", "Linear", "MaxPool2d", "ReLU", "SGD", "Sequential", "conv2d", "conv2d_backward", "from_torch",
           "gradcheck", "softmax_cross_entropy", "to_torch_state"]
