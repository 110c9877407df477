"""Any 2-D convolution as its explicit sparse matrix on the unrolled input.

Rows and columns follow PyTorch's flatten order: row ``(o * Ho + y) * Wo + x`` is output channel ``o`` at
``(y, x)``; column ``(c * H + i) * W + j`` is input channel ``c`` at ``(i, j)``. So
``M @ x.reshape(-1) == conv2d(x[None], weight, ...).reshape(-1)`` (bias excluded: the layer is affine,
``y = M x + b``, and :func:`conv_affine` returns ``b`` beside ``M``).

Construction is vectorised index arithmetic: the column and weight-tap pattern of one output channel is
computed on a (Ho, Wo, C/groups, kh, kw) grid, then replicated over output channels with one gather — no
Python loop over pixels. Padding modes zeros, circular, reflect and replicate are all linear, so all are
matrices; with the last three several taps can land on one input pixel and their weights are summed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..errors import ConfigError
from .geometry import ConvGeometry, make_geometry

DEFAULT_MAX_MEMORY = 4 * 1024**3  # bytes


class MatrixTooLargeError(ConfigError):
    """The explicit matrix would need more memory than ``max_memory`` allows."""


@dataclass(frozen=True)
class Pattern:
    """Where the weight taps of one output channel land, for every output pixel.

    ``cols[k]``/``taps[k]``: column (in group 0) and index into ``weight[o].ravel()`` of the k-th stored
    entry of one output channel's rows, row after row; ``row_len[p]``: entries of the row for pixel p.
    """

    geom: ConvGeometry
    cols: np.ndarray
    taps: np.ndarray
    row_len: np.ndarray
    canonical: bool  # columns sorted and unique within each row (always so for zero padding)


def _source_index(out_idx: np.ndarray, tap: np.ndarray, stride: int, dilation: int, before: int, size: int,
                  mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Input index and validity for output index x tap: ``out*stride + tap*dilation - before``, remapped."""
    i = out_idx[:, None] * stride + tap[None, :] * dilation - before          # (n_out, k)
    if mode == "zeros":
        return i, (i >= 0) & (i < size)
    if mode == "circular":
        i = np.mod(i, size)
    elif mode == "reflect":                                                   # PyTorch: the edge is not repeated
        i = np.where(i < 0, -i, i)
        i = np.where(i >= size, 2 * (size - 1) - i, i)
    else:                                                                     # replicate
        i = np.clip(i, 0, size - 1)
    return i, np.ones_like(i, dtype=bool)


def conv_pattern(geom: ConvGeometry) -> Pattern:
    (h, w), (kh, kw), (ho, wo) = geom.input_hw, geom.kernel, geom.output_hw
    t, _, l, _ = geom.pad
    ig = geom.in_channels // geom.groups
    iy, vy = _source_index(np.arange(ho), np.arange(kh), geom.stride[0], geom.dilation[0], t, h, geom.padding_mode)
    ix, vx = _source_index(np.arange(wo), np.arange(kw), geom.stride[1], geom.dilation[1], l, w, geom.padding_mode)
    idx_dtype = np.int32 if geom.in_channels * h * w < 2**31 else np.int64
    # grids of shape (Ho, Wo, Ig, kh, kw): the entries of one output channel's rows, in row order
    cols = (np.arange(ig, dtype=np.int64)[None, None, :, None, None] * (h * w)
            + (iy * w)[:, None, None, :, None] + ix[None, :, None, None, :])
    taps = (np.arange(ig)[:, None, None] * (kh * kw) + np.arange(kh)[None, :, None] * kw
            + np.arange(kw)[None, None, :])                                   # (Ig, kh, kw)
    valid = vy[:, None, None, :, None] & vx[None, :, None, None, :]           # (Ho, 1, 1, kh, 1) & ... broadcast
    valid = np.broadcast_to(valid, cols.shape)
    row_len = valid.reshape(ho * wo, -1).sum(1)
    taps_full = np.broadcast_to(taps[None, None], cols.shape)
    return Pattern(geom, cols[valid].astype(idx_dtype), taps_full[valid].astype(np.int64), row_len,
                   canonical=geom.padding_mode == "zeros")


def estimate_bytes(geom: ConvGeometry, dtype=np.float32) -> int:
    """Peak memory of building the CSR matrix (data + indices + indptr; twice that when entries are merged)."""
    nnz = geom.taps_upper_bound
    rows, cols = geom.shape
    idx = 4 if max(nnz, cols) < 2**31 else 8
    base = nnz * (np.dtype(dtype).itemsize + idx) + (rows + 1) * idx
    return base if geom.padding_mode == "zeros" else 2 * base


def _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode):
    """Accept a weight array/tensor or an nn.Conv2d (whose own settings are used)."""
    if isinstance(weight, nn.Conv2d):
        layer = weight
        weight = layer.weight
        stride, padding, dilation, groups = layer.stride, layer.padding, layer.dilation, layer.groups
        padding_mode = layer.padding_mode
    if isinstance(weight, torch.Tensor):
        weight = weight.detach().cpu().numpy()
    weight = np.asarray(weight)
    if weight.dtype not in (np.float32, np.float64):
        if not np.issubdtype(weight.dtype, np.number):
            raise ConfigError(f"weight: expected a float array, got dtype {weight.dtype}")
        weight = weight.astype(np.float64)
    geom = make_geometry(weight.shape, input_shape, stride, padding, dilation, groups, padding_mode)
    return weight, geom


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1, padding_mode: str = "zeros",
                *, format: str = "csr", max_memory: int = DEFAULT_MAX_MEMORY):
    """The convolution's matrix: ``scipy.sparse.csr_matrix`` (``format="csr"``) or a torch sparse CSR tensor
    (``format="torch"``). ``weight`` is (out, in/groups, kh, kw) as in PyTorch, or an ``nn.Conv2d``;
    ``input_shape`` is (C, H, W). Refuses, before allocating, when the estimate exceeds ``max_memory`` bytes.
    """
    weight, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)
    need = estimate_bytes(geom, weight.dtype)
    if need > max_memory:
        raise MatrixTooLargeError(
            f"max_memory: the {geom.shape[0]:,} x {geom.shape[1]:,} matrix needs about {need / 2**30:.2f} GiB "
            f"({geom.taps_upper_bound:,} entries), over max_memory={max_memory / 2**30:.2f} GiB; raise max_memory "
            "or use conv_operator() (matrix-free)")
    pat = conv_pattern(geom)
    o = geom.out_channels
    og = o // geom.groups
    ig_hw = (geom.in_channels // geom.groups) * geom.input_hw[0] * geom.input_hw[1]
    data = weight.reshape(o, -1)[:, pat.taps]                                  # (O, P): one gather
    group_offset = (np.arange(o) // og * ig_hw).astype(pat.cols.dtype)
    indices = (pat.cols[None, :] + group_offset[:, None]).ravel()              # (O * P,)
    indptr = np.zeros(geom.shape[0] + 1, dtype=pat.cols.dtype if geom.taps_upper_bound < 2**31 else np.int64)
    np.cumsum(np.tile(pat.row_len, o), out=indptr[1:])
    m = sp.csr_matrix((data.ravel(), indices, indptr), shape=geom.shape)
    if not pat.canonical:
        m.sum_duplicates()                                                     # also sorts the columns
    else:
        m.has_sorted_indices = True
    if format == "csr":
        return m
    if format == "torch":
        with warnings.catch_warnings():  # torch's notice that sparse CSR is a beta feature
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                           torch.from_numpy(m.indices.astype(np.int64)), torch.from_numpy(m.data),
                                           size=m.shape, check_invariants=False)  # built canonical above
    raise ConfigError(f"format: {format!r} is not 'csr' or 'torch' (see conv_operator for a LinearOperator)")


def conv_bias(bias, output_shape: tuple[int, int, int]) -> np.ndarray:
    """The bias vector of the affine map, in row order: ``bias[o]`` repeated over the Ho x Wo outputs."""
    o, ho, wo = output_shape
    if bias is None:
        return np.zeros(o * ho * wo)
    b = bias.detach().cpu().numpy() if isinstance(bias, torch.Tensor) else np.asarray(bias)
    return np.repeat(b, ho * wo)


@dataclass(frozen=True)
class AffineConv:
    matrix: sp.csr_matrix
    bias: np.ndarray
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]


def conv_affine(layer: nn.Conv2d, input_shape, **kw) -> AffineConv:
    """An ``nn.Conv2d`` as ``y = M x + b`` on flattened tensors."""
    m = conv_matrix(layer, input_shape, **kw)
    geom = _weight_and_geometry(layer, input_shape, 1, 0, 1, 1, "zeros")[1]
    return AffineConv(m, conv_bias(layer.bias, geom.output_shape), geom.input_shape, geom.output_shape)


def output_shape(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                 padding_mode: str = "zeros") -> tuple[int, int, int]:
    return _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)[1].output_shape
