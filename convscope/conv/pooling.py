"""Pooling as matrices, and the linear part of a small conv/pool stack as the product of its matrices.

Average pooling is linear: a fixed matrix. Max pooling is not, but at a given input it *selects* one input
per window: its matrix at that input is a 0/1 selection matrix (ties broken exactly as PyTorch breaks them,
since the indices come from ``max_pool2d`` itself). ReLU at a given input is the diagonal 0/1 mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .conv_matrix import conv_bias, conv_matrix
from .geometry import make_geometry, pair
from .operator import conv_forward


def avg_pool_matrix(input_shape, kernel_size, stride=None, padding=0, count_include_pad: bool = True,
                    divisor_override: int | None = None) -> sp.csr_matrix:
    """``nn.AvgPool2d`` (ceil_mode=False) as a matrix: a depthwise conv whose rows are scaled by 1/divisor."""
    c = int(input_shape[0])
    kh, kw = pair(kernel_size, "kernel_size")
    stride = (kh, kw) if stride is None else pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    ones = np.ones((c, 1, kh, kw))
    m = conv_matrix(ones, input_shape, stride, (ph, pw), 1, c)
    if divisor_override:
        divisor = np.full(m.shape[0], float(divisor_override))
    elif count_include_pad:
        divisor = np.full(m.shape[0], float(kh * kw))
    else:
        divisor = np.diff(m.indptr).astype(np.float64)  # taps that fall inside the image
    return sp.diags(1.0 / divisor) @ m


def max_pool_selection(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1) -> sp.csr_matrix:
    """The selection matrix of ``max_pool2d`` at input x (C, H, W): row r has a single 1 at the argmax."""
    if x.ndim != 3:
        raise ConfigError(f"x: expected one input (C, H, W), got shape {tuple(x.shape)}")
    c, h, w = x.shape
    out, idx = F.max_pool2d(x[None].double(), kernel_size, stride, padding, dilation, return_indices=True)
    idx = idx[0].reshape(c, -1).numpy()                                  # argmax within each channel's H*W
    cols = (idx + (np.arange(c) * h * w)[:, None]).ravel()
    n = cols.size
    return sp.csr_matrix((np.ones(n), cols, np.arange(n + 1)), shape=(n, c * h * w))


@dataclass(frozen=True)
class StackMatrix:
    """``y = matrix @ x + bias`` on flattened tensors, valid at (and, with max pool or ReLU, near) input ``x``."""

    matrix: sp.csr_matrix
    bias: np.ndarray
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]


def stack_matrix(layers: nn.Module | list[nn.Module], input_shape, x: torch.Tensor | None = None) -> StackMatrix:
    """The linear part of a stack of Conv2d / AvgPool2d / MaxPool2d / ReLU / Identity / Dropout (eval) layers.

    Conv and average pooling are affine everywhere; max pooling and ReLU need the input ``x`` (C, H, W) at
    which their selection is taken. The product is verified exact: ``matrix @ x + bias`` equals the stack's
    output at ``x``.
    """
    modules = list(layers.children()) if isinstance(layers, nn.Sequential) else list(
        layers if isinstance(layers, (list, tuple)) else [layers])
    shape = tuple(int(v) for v in input_shape)
    cur = None if x is None else x.detach().double()
    total = sp.identity(int(np.prod(shape)), format="csr")
    bias = np.zeros(total.shape[0])
    for i, layer in enumerate(modules):
        b = None
        if isinstance(layer, nn.Conv2d):
            w = layer.weight.detach().double()
            geom = make_geometry(w.shape, shape, layer.stride, layer.padding, layer.dilation, layer.groups,
                                 layer.padding_mode)
            m = conv_matrix(w, shape, layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)
            b = conv_bias(layer.bias, geom.output_shape)

            def apply(v, w=w, geom=geom, layer=layer):
                y = conv_forward(w, v[None], geom)[0]
                return y if layer.bias is None else y + layer.bias.detach().double()[:, None, None]
        elif isinstance(layer, nn.AvgPool2d):
            if layer.ceil_mode:
                raise ConfigError(f"layer {i} ({layer}): ceil_mode=True is not supported")
            m = avg_pool_matrix(shape, layer.kernel_size, layer.stride, layer.padding, layer.count_include_pad,
                                layer.divisor_override)
            apply = lambda v, layer=layer: layer(v[None])[0]  # noqa: E731
        elif isinstance(layer, (nn.MaxPool2d, nn.ReLU)):
            if cur is None:
                raise ConfigError(f"layer {i} ({type(layer).__name__}) is not linear: pass the input x at which "
                                  "to take its selection")
            if isinstance(layer, nn.ReLU):
                m = sp.diags((cur.reshape(-1) > 0).double().numpy()).tocsr()
            else:
                m = max_pool_selection(cur, layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            apply = lambda v, layer=layer: layer(v[None])[0]  # noqa: E731
        elif isinstance(layer, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise ConfigError(f"layer {i}: {type(layer).__name__} is not supported; stack_matrix takes Conv2d, "
                              "AvgPool2d, MaxPool2d, ReLU, Identity and Dropout")
        total = (m @ total).tocsr()
        bias = m @ bias + (b if b is not None else 0.0)
        with torch.no_grad():
            probe = cur if cur is not None else torch.zeros(shape, dtype=torch.float64)
            nxt = apply(probe)
        cur = nxt if cur is not None else None
        shape = tuple(int(v) for v in nxt.shape)
    return StackMatrix(total, bias, tuple(int(v) for v in input_shape), shape)
