"""Conv2d forward and backward in NumPy, four interchangeable ways. Shapes as in PyTorch:
x (N, C, H, W), weight (O, C/groups, kh, kw), bias (O,), y (N, O, Ho, Wo).

    y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * xpad[n, g*C/groups + c, i*s_h + p*d_h, j*s_w + q*d_w]

(a cross-correlation, as deep learning calls "convolution"), where g = o // (O/groups).
Backward, with dy = dL/dy:  db = sum dy;  dw = correlate(xpad, dy);  dx = "full" convolution of the
zero-upsampled dy with w, cropped by the padding.

* ``direct``  — the loops of the definition over output pixels (the (c, p, q) sum vectorised).
* ``im2col``  — sliding windows by stride tricks, one GEMM; col2im loops over the kh x kw kernel offsets.
* ``matrix``  — the explicit sparse matrix of :mod:`convscope.conv`: y = M x, dx = M^T dy.
* ``fft``     — rfft2 at full size; correlation = convolution with the flipped kernel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError
from ..conv.conv_matrix import conv_matrix, conv_pattern
from ..conv.geometry import ConvGeometry, make_geometry
from .checks import check_array

ALGORITHMS = ("direct", "im2col", "matrix", "fft")


def geometry(x: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups) -> ConvGeometry:
    check_array(x, "x", ndim=4)
    check_array(weight, "weight", ndim=4, dtype=x.dtype)
    return make_geometry(weight.shape, x.shape[1:], stride, padding, dilation, groups)


def _pad(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    t, b, l, r = g.pad
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r))) if any(g.pad) else x


def _crop(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    t, _, l, _ = g.pad
    h, w = g.input_hw
    return xp[:, :, t:t + h, l:l + w]


def _windows(xp: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw) view: the input patch under each output pixel (no copy)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = g.kernel, g.stride, g.dilation, g.output_hw
    v = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return v[:, :, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw, ::dh, ::dw]


def _tap_slices(g: ConvGeometry, p: int, q: int) -> tuple[slice, slice]:
    """The input pixels that kernel offset (p, q) touches, over all output pixels (a strided slice)."""
    (sh, sw), (dh, dw), (ho, wo) = g.stride, g.dilation, g.output_hw
    return (slice(p * dh, p * dh + sh * (ho - 1) + 1, sh), slice(q * dw, q * dw + sw * (wo - 1) + 1, sw))


# ---- direct -------------------------------------------------------------------------------------------------

def _direct_fwd(xp, w, g):
    n, (o, (ho, wo)) = xp.shape[0], (w.shape[0], g.output_hw)
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
    y = np.zeros((n, o, ho, wo), dtype=xp.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))   # (N, O)
    return y


def _direct_bwd(dy, xp, w, g):
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = g.kernel, g.stride, g.dilation, g.output_hw
    dxp, dw_ = np.zeros_like(xp), np.zeros_like(w)
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            d = dy[:, :, i, j]                                                     # (N, O)
            dw_ += np.tensordot(d, xp[:, :, rows, cols], axes=(0, 0))             # (O, C, kh, kw)
            dxp[:, :, rows, cols] += np.tensordot(d, w, axes=(1, 0))              # (N, C, kh, kw)
    return dxp, dw_


# ---- im2col ------------------------------------------------------------------------------------------------

def _im2col(xp, g):
    """Columns (C*kh*kw, N*Ho*Wo): one column per output pixel, holding the input patch it sees."""
    n = xp.shape[0]
    ho, wo = g.output_hw
    return _windows(xp, g).transpose(1, 4, 5, 0, 2, 3).reshape(-1, n * ho * wo)   # the one copy


def _im2col_fwd(xp, w, g, cache=None):
    n, o, (ho, wo) = xp.shape[0], w.shape[0], g.output_hw
    cols = _im2col(xp, g)
    if cache is not None:
        cache["cols"] = cols
    y = w.reshape(o, -1) @ cols                                                   # (O, N*Ho*Wo): the GEMM
    return y.reshape(o, n, ho, wo).transpose(1, 0, 2, 3)


def _im2col_bwd(dy, xp, w, g, cache=None):
    n, c = xp.shape[:2]
    o, (ho, wo), (kh, kw) = w.shape[0], g.output_hw, g.kernel
    cols = cache.get("cols") if cache else None
    if cols is None or cols.shape != (c * kh * kw, n * ho * wo):
        cols = _im2col(xp, g)
    dyo = dy.transpose(1, 0, 2, 3).reshape(o, -1)                                 # (O, N*Ho*Wo)
    dw_ = (dyo @ cols.T).reshape(w.shape)
    dcols = (w.reshape(o, -1).T @ dyo).reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((c, n, *xp.shape[2:]), dtype=xp.dtype)                         # (C, N, Hp, Wp)
    for p in range(kh):          # col2im: one strided add per kernel offset, not per pixel
        for q in range(kw):
            rs, cs = _tap_slices(g, p, q)
            dxp[:, :, rs, cs] += dcols[:, p, q]
    return dxp.transpose(1, 0, 2, 3), dw_


# ---- explicit sparse matrix ---------------------------------------------------------------------------------

def _matrix_fwd(x, w, g):
    m = conv_matrix(w, x.shape[1:], g.stride, _pad_arg(g), g.dilation)
    return (m @ x.reshape(x.shape[0], -1).T).T.reshape(x.shape[0], w.shape[0], *g.output_hw)


def _matrix_bwd(dy, x, w, g):
    n = x.shape[0]
    m = conv_matrix(w, x.shape[1:], g.stride, _pad_arg(g), g.dilation)
    dy2 = dy.reshape(n, -1)
    dx = (m.T @ dy2.T).T.reshape(x.shape)
    # dW[o, tap] = sum over the matrix entries holding that tap of dy[row] * x[col]
    pat = conv_pattern(make_geometry(w.shape, x.shape[1:], g.stride, _pad_arg(g), g.dilation))
    pix = np.repeat(np.arange(len(pat.row_len)), pat.row_len)                     # output pixel of each entry
    xs = x.reshape(n, -1)[:, pat.cols]                                            # (N, P)
    dyp = dy.reshape(n, w.shape[0], -1)[:, :, pix]                                # (N, O, P)
    prod = np.einsum("nop,np->op", dyp, xs)                                       # (O, P)
    dw_ = np.zeros((w.shape[0], w[0].size), dtype=w.dtype)
    for o in range(w.shape[0]):
        dw_[o] = np.bincount(pat.taps, weights=prod[o], minlength=w[0].size)
    return dx, dw_.reshape(w.shape)


def _pad_arg(g: ConvGeometry):
    t, b, l, r = g.pad
    return (l, r, t, b)


# ---- FFT ---------------------------------------------------------------------------------------------------

def _dilate(w, g):
    (dh, dw), (kh, kw) = g.dilation, g.kernel
    if (dh, dw) == (1, 1):
        return w
    out = np.zeros((*w.shape[:2], dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _fft_fwd(xp, w, g):
    wd = _dilate(w, g)
    (hp, wp), (eh, ew) = xp.shape[2:], wd.shape[2:]
    size = (hp + eh - 1, wp + ew - 1)                                             # full linear convolution
    xf = np.fft.rfft2(xp, size)                                                   # (N, C, F1, F2)
    kf = np.fft.rfft2(wd[:, :, ::-1, ::-1], size)                                 # flip: correlation
    full = np.fft.irfft2(np.einsum("ncuv,ocuv->nouv", xf, kf), size)
    (sh, sw), (ho, wo) = g.stride, g.output_hw
    valid = full[:, :, eh - 1:hp, ew - 1:wp]
    return valid[:, :, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw].astype(xp.dtype)


def _fft_bwd(dy, xp, w, g):
    wd = _dilate(w, g)
    (hp, wp), (eh, ew), (sh, sw) = xp.shape[2:], wd.shape[2:], g.stride
    up = np.zeros((*dy.shape[:2], hp - eh + 1, wp - ew + 1), dtype=dy.dtype)     # dy, zero-upsampled by stride
    up[:, :, :sh * (dy.shape[2] - 1) + 1:sh, :sw * (dy.shape[3] - 1) + 1:sw] = dy
    size = (hp + eh - 1, wp + ew - 1)
    upf, xf = np.fft.rfft2(up, size), np.fft.rfft2(xp, size)
    dxp = np.fft.irfft2(np.einsum("nouv,ocuv->ncuv", upf, np.fft.rfft2(wd, size)), size)[:, :, :hp, :wp]
    dwd = np.fft.irfft2(np.einsum("nouv,ncuv->ocuv", np.conj(upf), xf), size)[:, :, :eh, :ew]
    dh, dw = g.dilation
    return dxp.astype(xp.dtype), dwd[:, :, ::dh, ::dw].astype(w.dtype)


_FWD = {"direct": _direct_fwd, "im2col": _im2col_fwd, "fft": _fft_fwd}
_BWD = {"direct": _direct_bwd, "im2col": _im2col_bwd, "fft": _fft_bwd}


def _groups(x, weight, g):
    """Per group: (that group's input channels, its weights, the group's own single-group geometry)."""
    ci, co = x.shape[1] // g.groups, weight.shape[0] // g.groups
    sub = ConvGeometry(co, ci, g.kernel, g.input_hw, g.stride, g.dilation, g.pad, 1, "zeros")
    return [(slice(k * ci, (k + 1) * ci), slice(k * co, (k + 1) * co), sub) for k in range(g.groups)]


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1, algorithm: str = "im2col", cache: dict | None = None) -> np.ndarray:
    """Same signature and result as ``torch.nn.functional.conv2d``, on NumPy arrays, plus the algorithm.

    ``cache``: pass the same dict to :func:`conv2d_backward` to reuse the forward's im2col columns."""
    _check_algorithm(algorithm)
    g = geometry(x, weight, stride, padding, dilation, groups)
    parts = []
    for cs, os_, sub in _groups(x, weight, g):
        xs, ws = x[:, cs], weight[os_]
        if algorithm == "matrix":
            parts.append(_matrix_fwd(xs, ws, sub))
        elif algorithm == "im2col" and cache is not None and g.groups == 1:
            parts.append(_im2col_fwd(_pad(xs, sub), ws, sub, cache))
        else:
            parts.append(_FWD[algorithm](_pad(xs, sub), ws, sub))
    y = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if bias is not None:
        check_array(bias, "bias", ndim=1, dtype=x.dtype, shape=(weight.shape[0],))
        y = y + bias[None, :, None, None]
    return y.astype(x.dtype, copy=False)  # may be a transposed view: values, not layout, are the contract


def conv2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray, stride=1, padding=0, dilation=1,
                    groups: int = 1, algorithm: str = "im2col",
                    cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dweight, dbias) for upstream gradient dy (N, O, Ho, Wo)."""
    _check_algorithm(algorithm)
    g = geometry(x, weight, stride, padding, dilation, groups)
    check_array(dy, "dy", ndim=4, dtype=x.dtype, shape=(x.shape[0], *g.output_shape))
    dxs, dws = [], []
    for cs, os_, sub in _groups(x, weight, g):
        xs, ws, dys = x[:, cs], weight[os_], dy[:, os_]
        if algorithm == "matrix":
            dx, dw_ = _matrix_bwd(dys, xs, ws, sub)
        elif algorithm == "im2col":
            dxp, dw_ = _im2col_bwd(dys, _pad(xs, sub), ws, sub, cache if groups == 1 else None)
            dx = _crop(dxp, sub)
        else:
            dxp, dw_ = _BWD[algorithm](dys, _pad(xs, sub), ws, sub)
            dx = _crop(dxp, sub)
        dxs.append(dx)
        dws.append(dw_)
    dx = np.concatenate(dxs, axis=1) if groups > 1 else dxs[0]
    dw_ = np.concatenate(dws, axis=0) if groups > 1 else dws[0]
    return dx, dw_.astype(weight.dtype, copy=False), dy.sum(axis=(0, 2, 3))
