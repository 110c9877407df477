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

from .._check import is_int, number
from .._check import tensor as check_tensor
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


def _index_dtype(geom: ConvGeometry, nnz: int) -> np.dtype:
    """scipy's choice for CSR indices: int32 while every index and the entry count fit, else int64 (matching
    it means scipy never converts, i.e. never copies, the arrays built here)."""
    return np.dtype(np.int32 if max(nnz, *geom.shape) < 2**31 - 1 else np.int64)


def _valid_per_channel(geom: ConvGeometry) -> tuple[int, int]:
    """(entries of one output channel's rows before dropping taps on zero padding, after dropping them)."""
    (h, w), (kh, kw), (ho, wo) = geom.input_hw, geom.kernel, geom.output_hw
    t, _, l, _ = geom.pad
    ig = geom.in_channels // geom.groups
    _, vy = _source_index(np.arange(ho), np.arange(kh), geom.stride[0], geom.dilation[0], t, h, geom.padding_mode)
    _, vx = _source_index(np.arange(wo), np.arange(kw), geom.stride[1], geom.dilation[1], l, w, geom.padding_mode)
    return ho * wo * ig * kh * kw, int(vy.sum()) * int(vx.sum()) * ig


def conv_pattern(geom: ConvGeometry, idx_dtype: np.dtype | None = None) -> Pattern:
    (h, w), (kh, kw), (ho, wo) = geom.input_hw, geom.kernel, geom.output_hw
    t, _, l, _ = geom.pad
    ig = geom.in_channels // geom.groups
    iy, vy = _source_index(np.arange(ho), np.arange(kh), geom.stride[0], geom.dilation[0], t, h, geom.padding_mode)
    ix, vx = _source_index(np.arange(wo), np.arange(kw), geom.stride[1], geom.dilation[1], l, w, geom.padding_mode)
    idx_dtype = np.dtype(idx_dtype or (np.int32 if geom.in_channels * h * w < 2**31 else np.int64))
    # grids of shape (Ho, Wo, Ig, kh, kw): the entries of one output channel's rows, in row order; built in the
    # index dtype so the only full-size temporaries are this grid and the selections below (see build_bytes)
    cols = (np.arange(ig, dtype=idx_dtype)[None, None, :, None, None] * idx_dtype.type(h * w)
            + (iy * w).astype(idx_dtype)[:, None, None, :, None] + ix.astype(idx_dtype)[None, :, None, None, :])
    taps = (np.arange(ig, dtype=np.int32)[:, None, None] * (kh * kw) + np.arange(kh, dtype=np.int32)[None, :, None] * kw
            + np.arange(kw, dtype=np.int32)[None, None, :])                  # (Ig, kh, kw)
    valid = vy[:, None, None, :, None] & vx[None, :, None, None, :]           # (Ho, Wo, 1, kh, kw)
    row_len = valid.reshape(ho * wo, -1).sum(1) * ig
    if valid.all():                                                           # nothing to drop: no mask needed
        return Pattern(geom, cols.reshape(-1), np.broadcast_to(taps[None, None], cols.shape).reshape(-1), row_len,
                       canonical=geom.padding_mode == "zeros")
    valid = np.broadcast_to(valid, cols.shape)
    taps_full = np.broadcast_to(taps[None, None], cols.shape)
    return Pattern(geom, cols[valid], taps_full[valid], row_len, canonical=geom.padding_mode == "zeros")


def _merge_duplicates(pat: Pattern) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Circular, reflect and replicate padding can send several taps of a row to one column. Sort each row's
    entries by column and group equal ones: returns (cols (U,), taps sorted (P,), group starts (U,), row_len)."""
    rows = np.repeat(np.arange(len(pat.row_len), dtype=np.int64), pat.row_len)   # (P,)
    key = rows * (int(pat.cols.max(initial=0)) + 1) + pat.cols                  # (P,) int64: row-major, then column
    del rows
    order = np.argsort(key, kind="stable")                                       # (P,) int64
    key = key[order]
    first = np.empty(len(key), dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    del key
    starts = np.flatnonzero(first)                                               # (U,) int64
    cols = pat.cols[order][starts]                                               # (U,)
    taps = pat.taps[order]                                                       # (P,)
    del order
    row_of_entry = np.repeat(np.arange(len(pat.row_len)), pat.row_len)[starts]
    row_len = np.bincount(row_of_entry, minlength=len(pat.row_len))
    return cols, taps, starts, row_len


def build_bytes(geom: ConvGeometry, dtype=np.float32) -> int:
    """Peak memory of :func:`conv_matrix`: every buffer alive at once, index grids and temporaries included.

    With O output channels, P entries per channel (Pf before dropping taps on zero padding), R rows,
    ``i`` index bytes and ``f`` value bytes:
      pattern phase: the (Ho, Wo, Ig, kh, kw) column grid (Pf*i) + its mask (Pf) + the selected columns and
                     taps (P*(i + 4)); merging duplicates (non-zero padding) adds sort keys, order and group
                     starts (about P*(8 + 8 + 8 + 8 + i + 4))
      fill phase:    the matrix, O*P*(f + i) + (R + 1)*i, beside the pattern (P*(i + 4 + 8)), one channel's
                     gathered weights (P*f), its row lengths and row offsets (2*R/O*8)
    plus a float64 copy of the weight when it is not float32/float64.
    """
    itemsize = np.dtype(dtype).itemsize
    p_full, p = _valid_per_channel(geom)
    if geom.padding_mode != "zeros":
        p = p_full
    rows, _ = geom.shape
    o = geom.out_channels
    i = _index_dtype(geom, o * p).itemsize
    pattern = p_full * (i + 1) + p * (i + 4)
    if geom.padding_mode != "zeros":
        pattern = max(pattern, p * (i + 4) + p * (8 * 4 + i + 4))
    fill = o * p * (itemsize + i) + (rows + 1) * i + p * (i + 4 + 8 + itemsize) + 2 * (rows // o + 1) * 8
    weight_copy = o * (geom.in_channels // geom.groups) * geom.kernel[0] * geom.kernel[1] * 8
    return max(pattern, fill) + weight_copy + (1 << 20)  # + 1 MiB for small arrays and Python objects


def estimate_bytes(geom: ConvGeometry, dtype=np.float32) -> int:
    """Peak memory of building the matrix (see :func:`build_bytes`; kept under its historical name)."""
    return build_bytes(geom, dtype)


def check_max_memory(max_memory) -> float:
    """``max_memory`` (bytes) must be a finite positive number: inf or nan would silently disable the limit."""
    return number(max_memory, "max_memory", 0, lo_open=True)


def _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode):
    """Accept a weight array/tensor or an nn.Conv2d (whose own settings are used)."""
    if isinstance(weight, nn.Conv2d):
        layer = weight
        weight = layer.weight
        stride, padding, dilation, groups = layer.stride, layer.padding, layer.dilation, layer.groups
        padding_mode = layer.padding_mode
    if isinstance(weight, torch.Tensor):
        # complex/bool/meta refused before any conversion: .double() would drop an imaginary part silently
        weight = check_tensor(weight.detach(), "weight", kinds="fi",
                              fix="a conv weight holds real numbers (float, or integers taken exactly)").cpu()
        weight = (weight.double() if weight.dtype not in (torch.float32, torch.float64) else weight).numpy()
    if not isinstance(weight, np.ndarray):
        raise ConfigError(f"weight: expected a numpy array, a torch tensor or an nn.Conv2d, got "
                          f"{type(weight).__name__}")
    if weight.dtype not in (np.float32, np.float64):
        if weight.dtype == np.bool_ or not np.issubdtype(weight.dtype, np.number) \
                or np.issubdtype(weight.dtype, np.complexfloating):
            raise ConfigError(f"weight: expected a real float array, got dtype {weight.dtype}")
        weight = weight.astype(np.float64)
    if not np.isfinite(weight).all():
        raise ConfigError(f"weight: holds {int((~np.isfinite(weight)).sum())} NaN or infinite value(s); the matrix "
                          "(and every product with it) would be NaN")
    if not isinstance(input_shape, (tuple, list, torch.Size)) or \
            not all(is_int(v) for v in input_shape):
        raise ConfigError(f"input_shape: expected (C, H, W) ints, got {input_shape!r}")
    geom = make_geometry(weight.shape, input_shape, stride, padding, dilation, groups, padding_mode)
    return weight, geom


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1, padding_mode: str = "zeros",
                *, format: str = "csr", max_memory: float = DEFAULT_MAX_MEMORY):
    """The convolution's matrix: ``scipy.sparse.csr_matrix`` (``format="csr"``) or a torch sparse CSR tensor
    (``format="torch"``). ``weight`` is (out, in/groups, kh, kw) as in PyTorch, or an ``nn.Conv2d``;
    ``input_shape`` is (C, H, W). Refuses, before allocating, when the peak memory of building it
    (:func:`build_bytes`: the matrix, index grids and every temporary) exceeds ``max_memory`` bytes.
    """
    max_memory = check_max_memory(max_memory)
    if format not in ("csr", "torch"):
        raise ConfigError(f"format: {format!r} is not 'csr' or 'torch' (see conv_operator for a LinearOperator)")
    weight, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)
    need = build_bytes(geom, weight.dtype)
    if need > max_memory:
        raise MatrixTooLargeError(
            f"max_memory: building the {geom.shape[0]:,} x {geom.shape[1]:,} matrix needs about "
            f"{need / 2**30:.2f} GiB at its peak ({geom.taps_upper_bound:,} entries, index grids included), over "
            f"max_memory={max_memory / 2**30:.2f} GiB; raise max_memory or use conv_operator() (matrix-free)")
    o = geom.out_channels
    og = o // geom.groups
    rows_per_channel = geom.output_hw[0] * geom.output_hw[1]
    ig_hw = (geom.in_channels // geom.groups) * geom.input_hw[0] * geom.input_hw[1]
    idx = _index_dtype(geom, o * _valid_per_channel(geom)[geom.padding_mode == "zeros"])
    pat = conv_pattern(geom, idx)
    if pat.canonical:
        cols, taps, starts, row_len = pat.cols, pat.taps, None, pat.row_len
    else:
        cols, taps, starts, row_len = _merge_duplicates(pat)
        if len(starts) == len(taps):  # sorted, but no two taps share a column: a plain gather suffices
            starts = None
    del pat
    u = len(cols)                                                              # entries per output channel
    w2 = weight.reshape(o, -1)                                                 # (O, Ig*kh*kw)
    data = np.empty(o * u, dtype=weight.dtype)                                 # (O*U,) values, row order
    indices = np.empty(o * u, dtype=idx)                                       # (O*U,) columns
    indptr = np.empty(geom.shape[0] + 1, dtype=idx)                            # (R+1,)
    indptr[0] = 0
    offsets = np.cumsum(row_len)                                               # (Ho*Wo,) ends of one channel's rows
    for c in range(o):  # one channel at a time: no (O, P) temporary; every write goes straight into place
        seg = slice(c * u, (c + 1) * u)
        if starts is None:
            np.take(w2[c], taps, out=data[seg])
        else:
            np.add.reduceat(w2[c][taps], starts, out=data[seg])                # duplicates summed
        np.add(cols, idx.type(c // og * ig_hw), out=indices[seg])
        np.add(offsets, c * u, out=indptr[1 + c * rows_per_channel:1 + (c + 1) * rows_per_channel], casting="unsafe")
    if format == "torch":
        with warnings.catch_warnings():  # torch's notice that sparse CSR is a beta feature
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(indptr), torch.from_numpy(indices),
                                           torch.from_numpy(data), size=geom.shape,
                                           check_invariants=False)  # canonical by construction, shares the arrays
    m = sp.csr_matrix((data, indices, indptr), shape=geom.shape, copy=False)
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m


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
