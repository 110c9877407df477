"""The other layers in NumPy, each a small class: ``forward(x, train)`` keeps what backward needs,
``backward(dy)`` returns dx and fills ``grads`` (same keys as ``params``). Parameter names and layouts are
PyTorch's, so weights move between the two unchanged."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..conv.geometry import pair
from .checks import check_array
from .conv import ALGORITHMS, conv2d, conv2d_backward


class Layer:
    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]

    def __init__(self) -> None:
        self.params, self.grads, self.buffers = {}, {}, {}

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Conv2d(Layer):
    """y = conv2d(x, w) + b; see :mod:`convscope.reference.conv` for the formula and the four algorithms."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride=1, padding=0, dilation=1, groups=1,
                 algorithm: str = "im2col") -> None:
        super().__init__()
        self.params["weight"] = weight
        if bias is not None:
            self.params["bias"] = bias
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        self.algorithm = algorithm

    def forward(self, x, train=True):
        self.x, self.cache = x, {}
        return conv2d(x, self.params["weight"], self.params.get("bias"), self.stride, self.padding, self.dilation,
                      self.groups, self.algorithm, self.cache)

    def backward(self, dy):
        dx, dw, db = conv2d_backward(dy, self.x, self.params["weight"], self.stride, self.padding, self.dilation,
                                     self.groups, self.algorithm, self.cache)
        self.cache = {}
        self.grads["weight"] = dw
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx


def _pool_windows(xp: np.ndarray, k, s) -> np.ndarray:
    """(N, C, Ho, Wo, kh*kw) view of the pooling windows."""
    v = sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    return v.reshape(*v.shape[:4], k[0] * k[1])


def _scatter_taps(dwin: np.ndarray, shape, k, s) -> np.ndarray:
    """Adjoint of :func:`_pool_windows`: add each window slot back onto its input pixel (loop over taps)."""
    out = np.zeros(shape, dtype=dwin.dtype)
    ho, wo = dwin.shape[2:4]
    for p in range(k[0]):
        for q in range(k[1]):
            out[:, :, p:p + s[0] * (ho - 1) + 1:s[0], q:q + s[1] * (wo - 1) + 1:s[1]] += dwin[..., p * k[1] + q]
    return out


class _Pool2d(Layer):
    """Shared by the pooling layers: kernel k, stride s (default k), padding p, each an (h, w) pair."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.k = pair(kernel_size, "kernel_size")
        self.s = self.k if stride is None else pair(stride, "stride")
        self.p = pair(padding, "padding")

    def _pad(self, x: np.ndarray, value: float) -> np.ndarray:
        ph, pw = self.p
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value) if ph or pw else x

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        ph, pw = self.p
        return dxp[:, :, ph:dxp.shape[2] - ph, pw:dxp.shape[3] - pw]


class MaxPool2d(_Pool2d):
    """Max over each window. Ties: the first maximum in row-major window order wins — as PyTorch's CPU
    kernel, which replaces the running max only on a strictly greater value (or NaN). The gradient goes to
    that one input; overlapping windows add up."""

    def forward(self, x, train=True):
        xp = self._pad(x, -np.inf)
        win = _pool_windows(xp, self.k, self.s)
        self.arg = win.argmax(axis=-1)                                            # first maximum (np.argmax)
        self.xp_shape = xp.shape
        return np.take_along_axis(win, self.arg[..., None], axis=-1)[..., 0]

    def backward(self, dy):
        onehot = np.zeros((*dy.shape, self.k[0] * self.k[1]), dtype=dy.dtype)
        np.put_along_axis(onehot, self.arg[..., None], dy[..., None], axis=-1)
        return self._unpad(_scatter_taps(onehot, self.xp_shape, self.k, self.s))


class AvgPool2d(_Pool2d):
    """Mean over each window (zero padding counted, as PyTorch's default count_include_pad=True)."""

    def forward(self, x, train=True):
        xp = self._pad(x, 0.0)
        self.xp_shape = xp.shape
        return _pool_windows(xp, self.k, self.s).mean(axis=-1)

    def backward(self, dy):
        n = self.k[0] * self.k[1]
        dwin = np.broadcast_to((dy / n)[..., None], (*dy.shape, n))
        return self._unpad(_scatter_taps(dwin, self.xp_shape, self.k, self.s))


class GlobalMaxPool2d(Layer):
    """(N, C, H, W) -> (N, C, 1, 1): the maximum of each channel (``nn.AdaptiveMaxPool2d(1)``); first maximum
    in row-major order receives the gradient."""

    def forward(self, x, train=True):
        self.shape = x.shape
        flat = x.reshape(*x.shape[:2], -1)
        self.arg = flat.argmax(axis=-1)
        return np.take_along_axis(flat, self.arg[..., None], axis=-1)[..., None]

    def backward(self, dy):
        dx = np.zeros((*self.shape[:2], self.shape[2] * self.shape[3]), dtype=dy.dtype)
        np.put_along_axis(dx, self.arg[..., None], dy.reshape(*dy.shape[:2], 1), axis=-1)
        return dx.reshape(self.shape)


class GlobalAvgPool2d(Layer):
    """(N, C, H, W) -> (N, C, 1, 1): the mean of each channel (``nn.AdaptiveAvgPool2d(1)``)."""

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, dy):
        return np.broadcast_to(dy / (self.shape[2] * self.shape[3]), self.shape).copy()


class ReLU(Layer):
    """max(x, 0); gradient 1 where x > 0, else 0 (0 at x = 0, as PyTorch)."""

    def forward(self, x, train=True):
        self.mask = x > 0
        return np.where(self.mask, x, 0).astype(x.dtype)

    def backward(self, dy):
        return np.where(self.mask, dy, 0).astype(dy.dtype)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C, H, W order."""

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Linear(Layer):
    """y = x W^T + b, W (out, in)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None) -> None:
        super().__init__()
        self.params["weight"] = weight
        if bias is not None:
            self.params["bias"] = bias

    def forward(self, x, train=True):
        check_array(x, "x", ndim=2, dtype=self.params["weight"].dtype)
        if x.shape[1] != self.params["weight"].shape[1]:
            raise ValueError(f"x: {x.shape[1]} features, the layer takes {self.params['weight'].shape[1]}")
        self.x = x
        y = x @ self.params["weight"].T
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, dy):
        self.grads["weight"] = dy.T @ self.x
        if "bias" in self.params:
            self.grads["bias"] = dy.sum(axis=0)
        return dy @ self.params["weight"]


class Dropout(Layer):
    """Training: zero each unit with probability p and scale the rest by 1/(1-p). Evaluation: identity."""

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.p, self.rng = p, rng

    def forward(self, x, train=True):
        if not train or self.p == 0:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / (1 - self.p)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask


class BatchNorm2d(Layer):
    """Per channel: training normalises with the batch mean and biased variance and updates the running
    statistics (unbiased variance, as PyTorch); evaluation uses the running statistics.
    y = gamma * (x - mean) / sqrt(var + eps) + beta."""

    def __init__(self, weight, bias, running_mean, running_var, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.params.update(weight=weight, bias=bias)
        self.buffers.update(running_mean=running_mean, running_var=running_var)
        self.eps, self.momentum = eps, momentum

    def forward(self, x, train=True):
        g, b = self.params["weight"][None, :, None, None], self.params["bias"][None, :, None, None]
        if not train:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            return g * (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + self.eps) + b
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        self.inv = 1.0 / np.sqrt(var + self.eps)                                    # (C,)
        self.xhat = (x - mean[None, :, None, None]) * self.inv[None, :, None, None]
        mom = self.momentum
        self.buffers["running_mean"] = ((1 - mom) * self.buffers["running_mean"] + mom * mean).astype(x.dtype)
        self.buffers["running_var"] = ((1 - mom) * self.buffers["running_var"] + mom * var * m / max(m - 1,
                                                                                                     1)).astype(x.dtype)
        return g * self.xhat + b

    def backward(self, dy):
        g = self.params["weight"]
        self.grads["bias"] = dy.sum(axis=(0, 2, 3))
        self.grads["weight"] = (dy * self.xhat).sum(axis=(0, 2, 3))
        m = dy.shape[0] * dy.shape[2] * dy.shape[3]
        dxhat = dy * g[None, :, None, None]
        # dx = inv/m * (m dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
        s1 = dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
        s2 = (dxhat * self.xhat).sum(axis=(0, 2, 3))[None, :, None, None]
        return self.inv[None, :, None, None] / m * (m * dxhat - s1 - self.xhat * s2)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
                          ) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against (smoothed) one-hot labels, and its gradient.

    loss = mean_n ( logsumexp(z_n) - sum_k t_nk z_nk ),  t = (1-eps) onehot + eps/K;  dz = (softmax(z) - t) / N.
    """
    check_array(logits, "logits", ndim=2)
    n, k = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {labels.shape}")
    z = logits - logits.max(axis=1, keepdims=True)                                 # stable
    logsum = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - logsum
    target = np.full((n, k), label_smoothing / k, dtype=logits.dtype)
    target[np.arange(n), labels] += 1 - label_smoothing
    loss = float(-(target * logp).sum() / n)
    return loss, ((np.exp(logp) - target) / n).astype(logits.dtype)
