"""Singular values and norms of convolutions.

* Circular padding: exact singular values by 2-D FFT plus one small SVD per frequency (Sedghi, Gupta and
  Long, "The Singular Values of Convolutional Layers", ICLR 2019). Stride s: the subsampled output aliases
  s_h x s_w frequencies together, so each block is O x (C s_h s_w), scaled by 1/sqrt(s_h s_w) (polyphase).
* Zero padding: an interval for the spectral norm — a lower estimate by matrix-free power iteration, and a
  certified upper bound: the zero-padded conv is a restriction of a circular conv on the padded canvas, whose
  norm is max over frequencies of ||A(f)||_2, bounded from above by Gram iteration (Delattre, Barthelemy,
  Araujo and Allauzen, ICML 2023): ||A||_2 <= ||G_t||_F^(1/2^t) with G_0 = A, G_{t+1} = G_t^H G_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._result import ResultMixin
from ..conv.conv_matrix import _weight_and_geometry
from ..conv.geometry import ConvGeometry
from ..conv.operator import conv_operator
from ..errors import ConfigError
from ..models.probe import layer_input_shapes


def check_finite_weight(weight: np.ndarray) -> None:
    """NaN or infinite weights have no spectrum: the SVD fails to converge or returns NaN, so refuse them."""
    if not np.isfinite(weight).all():
        bad = int(np.size(weight) - np.isfinite(weight).sum())
        raise ConfigError(f"weight: {bad} of {np.size(weight)} values are NaN or infinite; the spectrum needs finite "
                          "weights (check the layer's training)")


def _dense_weight(weight: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """(O, C, kh, kw) with zeros outside the group blocks: a grouped conv is block-diagonal."""
    o, c, g = geom.out_channels, geom.in_channels, geom.groups
    if g == 1:
        return weight
    full = np.zeros((o, c, *geom.kernel), dtype=weight.dtype)
    og, ig = o // g, c // g
    for k in range(g):
        full[k * og:(k + 1) * og, k * ig:(k + 1) * ig] = weight[k * og:(k + 1) * og]
    return full


def frequency_blocks(weight: np.ndarray, geom: ConvGeometry, canvas: tuple[int, int]) -> np.ndarray:
    """The per-frequency matrices of the stride-s circular conv on an (N_h, N_w) canvas:
    (N_h/s_h * N_w/s_w, O, C * s_h * s_w) complex, whose singular values together are the operator's."""
    nh, nw = canvas
    sh, sw = geom.stride
    dh, dw = geom.dilation
    w = _dense_weight(weight, geom).astype(np.float64)
    o, c, kh, kw = w.shape
    grid = np.zeros((o, c, nh, nw))
    for i in range(kh):  # taps wrap around a canvas smaller than the dilated kernel: fold them
        for j in range(kw):
            grid[:, :, (i * dh) % nh, (j * dw) % nw] += w[:, :, i, j]
    a = np.fft.fft2(grid)                                            # (O, C, N_h, N_w)
    a = a.reshape(o, c, sh, nh // sh, sw, nw // sw)                   # frequency u = u' + a * N_h / s_h
    a = a.transpose(3, 5, 0, 2, 4, 1)                                 # (N_h/s, N_w/s, O, s_h, s_w, C)
    return a.reshape((nh // sh) * (nw // sw), o, sh * sw * c) / math.sqrt(sh * sw)


def circular_singular_values(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """All singular values (descending) of a circularly padded conv, exactly, without building its matrix.

    Needs the layer to be a (strided) circular convolution of the whole input: total padding d(k-1) per
    dimension and H, W divisible by the stride (what ``padding='same'``-style circular layers are).
    """
    weight, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, "circular")
    (h, w), (sh, sw) = geom.input_hw, geom.stride
    t, b, l, r = geom.pad
    if t + b != geom.dilation[0] * (geom.kernel[0] - 1) or l + r != geom.dilation[1] * (geom.kernel[1] - 1):
        raise ConfigError(f"padding: the FFT method needs total padding d*(k-1) = "
                          f"{geom.dilation[0] * (geom.kernel[0] - 1)} x {geom.dilation[1] * (geom.kernel[1] - 1)} "
                          f"(a full circular convolution), got {geom.pad}; use dense_singular_values")
    if h % sh or w % sw:
        raise ConfigError(f"stride: the input {h} x {w} must be divisible by the stride {geom.stride} for the "
                          "polyphase FFT method; use dense_singular_values")
    blocks = frequency_blocks(weight, geom, (h, w))
    sv = np.linalg.svd(blocks, compute_uv=False).ravel()
    return np.sort(sv)[::-1]


def dense_singular_values(weight, input_shape, **conv_kwargs) -> np.ndarray:
    """Reference: ``numpy.linalg.svd`` of the explicit (densified) matrix. Small layers only."""
    from ..conv.conv_matrix import conv_matrix

    m = conv_matrix(weight, input_shape, **conv_kwargs)
    if m.shape[0] * m.shape[1] > 25_000_000:
        raise ConfigError(f"input_shape: a dense {m.shape[0]} x {m.shape[1]} SVD is too large; use the FFT method "
                          "(circular padding) or spectral_norm_interval")
    return np.linalg.svd(m.toarray(), compute_uv=False)


def gram_upper_bound(blocks: np.ndarray, iterations: int = 6) -> float:
    """Certified upper bound on max_f ||blocks[f]||_2 by Gram iteration, with rescaling against overflow."""
    g = torch.from_numpy(np.ascontiguousarray(blocks)).to(torch.complex128)
    log_scale = torch.zeros(g.shape[0], dtype=torch.float64)
    for _ in range(iterations):
        r = torch.linalg.matrix_norm(g, ord="fro").clamp_min(1e-300)          # (F,)
        g = g / r[:, None, None]
        log_scale = 2 * (log_scale + torch.log(r))
        g = g.mH @ g
    log_bound = (log_scale + torch.log(torch.linalg.matrix_norm(g, ord="fro").clamp_min(1e-300))) / 2**iterations
    return float(torch.exp(log_bound.max()))


@dataclass(frozen=True)
class NormInterval(ResultMixin):
    """lower <= ||M||_2 <= upper. ``history``: the power iteration's successive estimates."""

    lower: float
    upper: float
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list, repr=False)


def power_iteration(op, iters: int = 100, tol: float = 1e-7, seed: int = 0) -> tuple[float, list[float], bool]:
    """Lower estimate of the largest singular value: ||M v|| for unit v is never above it."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(op.shape[1])
    v /= np.linalg.norm(v)
    history, sigma = [], 0.0
    for _ in range(iters):
        mv = op.matvec(v)
        sigma_new = float(np.linalg.norm(mv))
        history.append(sigma_new)
        w = op.rmatvec(mv)
        nw = np.linalg.norm(w)
        if nw == 0:
            return 0.0, history, True
        v = w / nw
        if abs(sigma_new - sigma) <= tol * max(sigma_new, 1e-30):
            return sigma_new, history, True
        sigma = sigma_new
    return sigma, history, False


def spectral_norm_interval(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                           padding_mode: str = "zeros", iters: int = 100, gram_iterations: int = 6) -> NormInterval:
    """[lower, upper] for the spectral norm of any conv layer (exact up to tolerance for circular padding)."""
    weight, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)
    op = conv_operator(weight.astype(np.float64), geom.input_shape, geom.stride, _pad_arg(geom), geom.dilation,
                       geom.groups, geom.padding_mode)
    lower, history, converged = power_iteration(op, iters)
    if geom.padding_mode == "zeros":
        t, b, l, r = geom.pad
        h, w = geom.input_hw
        sh, sw = geom.stride
        # any canvas at least as large as the padded input, rounded up to a multiple of the stride
        canvas = (-(-(h + t + b) // sh) * sh, -(-(w + l + r) // sw) * sw)
        canvas = (max(canvas[0], sh), max(canvas[1], sw))
        upper = gram_upper_bound(frequency_blocks(weight, geom, canvas), gram_iterations)
    else:
        # other paddings copy border pixels: bound by the Frobenius-free rule ||M||_2 <= sqrt(||M||_1 ||M||_inf)
        from ..conv.conv_matrix import conv_matrix

        m = conv_matrix(weight.astype(np.float64), geom.input_shape, geom.stride, _pad_arg(geom), geom.dilation,
                        geom.groups, geom.padding_mode)
        a = abs(m)
        upper = math.sqrt(float(a.sum(0).max()) * float(a.sum(1).max()))
    return NormInterval(lower, max(upper, lower), len(history), converged, history)


def _pad_arg(geom: ConvGeometry):
    t, b, l, r = geom.pad
    return (l, r, t, b)


@dataclass(frozen=True)
class LayerBound(ResultMixin):
    name: str
    kind: str
    input_shape: tuple[int, ...]
    lower: float
    upper: float


def lipschitz_bound(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[LayerBound], float]:
    """Per-layer spectral-norm intervals of a feed-forward chain, and the product of upper bounds: an upper
    bound on the network's Lipschitz constant in the L2 norm (in eval mode). Residual blocks are refused."""
    from ..conv.pooling import avg_pool_matrix

    modules = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    shapes = layer_input_shapes(model, input_shape, [n for n, _ in modules])
    if any(not isinstance(m, nn.Sequential) and list(m.children()) for _, m in model.named_modules()
           if m is not model):
        bad = sorted({type(m).__name__ for _, m in model.named_modules()
                      if m is not model and not isinstance(m, nn.Sequential) and list(m.children())})
        raise ConfigError(f"model: the product bound holds for feed-forward chains only; it contains {', '.join(bad)} "
                          "(residual or custom blocks)")
    out, total = [], 1.0
    one = (nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity, nn.AdaptiveMaxPool2d, nn.Tanh, nn.LeakyReLU)
    for name, m in modules:
        shape = shapes.get(name)
        if shape is None:
            continue
        if isinstance(m, nn.Conv2d):
            iv = spectral_norm_interval(m.weight.detach().double(), shape, m.stride, m.padding, m.dilation, m.groups,
                                        m.padding_mode)
            lo, hi = iv.lower, iv.upper
        elif isinstance(m, nn.Linear):
            lo = hi = float(torch.linalg.matrix_norm(m.weight.detach().double(), ord=2))
        elif isinstance(m, nn.BatchNorm2d):
            scale = (m.weight.detach().double() if m.affine else 1.0) / torch.sqrt(m.running_var.double() + m.eps)
            lo = hi = float(torch.as_tensor(scale).abs().max())
        elif isinstance(m, nn.AvgPool2d):
            a = abs(avg_pool_matrix(shape, m.kernel_size, m.stride, m.padding, m.count_include_pad))
            lo, hi = 0.0, math.sqrt(float(a.sum(0).max()) * float(a.sum(1).max()))
        elif isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            lo = hi = 1.0 / math.sqrt(shape[1] * shape[2])
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            k = k if isinstance(k, tuple) else (k, k)
            s = s if isinstance(s, tuple) else (s, s)
            lo, hi = 1.0, math.sqrt(math.ceil(k[0] / s[0]) * math.ceil(k[1] / s[1]))  # windows sharing a pixel
        elif isinstance(m, one):
            lo = hi = 1.0
        else:
            raise ConfigError(f"layer {name!r}: no Lipschitz bound for {type(m).__name__}")
        out.append(LayerBound(name, type(m).__name__, shape, lo, hi))
        total *= hi
    return out, total


DENSE_SVD_LIMIT = 25_000_000   # matrix entries (rows x cols) up to which a dense SVD is affordable (~200 MB)


@dataclass(frozen=True)
class SpectrumSummary(ResultMixin):
    """What is known of a conv layer's singular values: all of them (``exact``), or an interval for the largest."""

    method: str
    exact: bool
    largest: float | None = None            # exact: sigma_max
    smallest: float | None = None           # exact: sigma_min
    condition_number: float | None = None   # sigma_max / smallest non-zero sigma (inf if all are zero)
    count: int | None = None
    lower: float | None = None              # interval: lower <= sigma_max <= upper
    upper: float | None = None
    iterations: int | None = None
    converged: bool | None = None
    values: np.ndarray | None = field(default=None, repr=False)   # exact: all singular values, descending


def layer_spectrum(weight, input_shape, stride=1, padding=0, dilation=1, groups: int = 1,
                   padding_mode: str = "zeros", dense_limit: int = DENSE_SVD_LIMIT) -> SpectrumSummary:
    """The best affordable answer: exact values by FFT for circular padding (where the stride allows it), by a
    dense SVD when the matrix has at most ``dense_limit`` entries, else the power/Gram spectral-norm interval."""
    w, geom = _weight_and_geometry(weight, input_shape, stride, padding, dilation, groups, padding_mode)
    check_finite_weight(w)
    padding_mode = geom.padding_mode   # an nn.Conv2d brings its own settings
    conv = dict(stride=geom.stride, padding=_pad_arg(geom), dilation=geom.dilation, groups=geom.groups)
    sv, method = None, ""
    if geom.padding_mode == "circular":
        try:
            sv, method = circular_singular_values(w, input_shape, **conv), "exact, FFT + per-frequency SVD"
        except ConfigError:  # a stride that does not divide the input: fall through to the dense SVD
            sv = None
    rows, cols = geom.shape
    if sv is None and rows * cols <= dense_limit:
        sv, method = dense_singular_values(w, input_shape, **conv, padding_mode=padding_mode), "exact, dense SVD"
    if sv is not None:
        sv = np.sort(np.asarray(sv, dtype=np.float64))[::-1]
        positive = sv[sv > sv[0] * 1e-12] if len(sv) and sv[0] > 0 else sv[:0]
        return SpectrumSummary(method, True, float(sv[0]), float(sv[-1]),
                               float(sv[0] / positive[-1]) if len(positive) else float("inf"), int(len(sv)),
                               values=sv)
    iv = spectral_norm_interval(w, input_shape, **conv, padding_mode=padding_mode)
    return SpectrumSummary("power iteration (lower) and Gram iteration (upper)", False, lower=iv.lower,
                           upper=iv.upper, iterations=iv.iterations, converged=iv.converged)
