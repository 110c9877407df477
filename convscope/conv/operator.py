"""Matrix-free views: a ``scipy.sparse.linalg.LinearOperator`` whose matvec is ``conv2d`` and whose rmatvec
(the transpose) is ``conv_transpose2d``, for layers too large to store explicitly."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator

from .conv_matrix import _weight_and_geometry
from .geometry import ConvGeometry


def transpose_output_padding(geom: ConvGeometry) -> tuple[int, int]:
    """``output_padding`` making ``conv_transpose2d`` return the conv's input size (symmetric padding)."""
    t, _, l, _ = geom.pad
    out = []
    for size, o, s, k, d, p in zip(geom.input_hw, geom.output_hw, geom.stride, geom.kernel, geom.dilation, (t, l)):
        out.append(size - ((o - 1) * s - 2 * p + d * (k - 1) + 1))
    return out[0], out[1]


def _pad(x: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    t, b, l, r = geom.pad
    if not any(geom.pad):
        return x
    mode = "constant" if geom.padding_mode == "zeros" else geom.padding_mode
    return F.pad(x, (l, r, t, b), mode=mode)


def conv_forward(w: torch.Tensor, x: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """The layer's linear part on a batch x (B, C, H, W): explicit padding, then an unpadded conv2d."""
    return F.conv2d(_pad(x, geom), w, stride=geom.stride, dilation=geom.dilation, groups=geom.groups)


def conv_adjoint(w: torch.Tensor, g: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """The transpose applied to output-shaped g (B, O, Ho, Wo): ``conv_transpose2d`` for symmetric zero
    padding; otherwise the exact vector-Jacobian product of :func:`conv_forward` (padding adjoints fold
    the padded border back onto the pixels it copied)."""
    t, b, l, r = geom.pad
    if geom.padding_mode == "zeros" and t == b and l == r:
        return F.conv_transpose2d(g, w, stride=geom.stride, padding=(t, l),
                                  output_padding=transpose_output_padding(geom),
                                  groups=geom.groups, dilation=geom.dilation)
    x = torch.zeros(g.shape[0], *geom.input_shape, dtype=g.dtype, requires_grad=True)
    with torch.enable_grad():
        y = conv_forward(w, x, geom)
        (grad,) = torch.autograd.grad(y, x, g)
    return grad


def conv_operator(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                  padding_mode: str = "zeros") -> LinearOperator:
    """The convolution as a LinearOperator of shape (O*Ho*Wo, C*H*W); accepts an ``nn.Conv2d`` too.
    Works on vectors and on (n, k) blocks, in the weight's dtype."""
    weight, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)
    w = torch.from_numpy(np.ascontiguousarray(weight))
    rows, cols = geom.shape

    def matmat(x: np.ndarray) -> np.ndarray:
        xs = torch.from_numpy(np.ascontiguousarray(x.T, dtype=weight.dtype)).reshape(-1, *geom.input_shape)
        with torch.no_grad():
            return conv_forward(w, xs, geom).reshape(xs.shape[0], rows).T.numpy()

    def rmatmat(g: np.ndarray) -> np.ndarray:
        gs = torch.from_numpy(np.ascontiguousarray(g.T, dtype=weight.dtype)).reshape(-1, *geom.output_shape)
        return conv_adjoint(w, gs, geom).detach().reshape(gs.shape[0], cols).T.numpy()

    return LinearOperator((rows, cols), matvec=lambda v: matmat(v.reshape(-1, 1)).ravel(),
                          rmatvec=lambda v: rmatmat(v.reshape(-1, 1)).ravel(), matmat=matmat, rmatmat=rmatmat,
                          dtype=weight.dtype)
