"""SGD with momentum and Adam in NumPy, with PyTorch's exact update rules."""

from __future__ import annotations

import numpy as np


class SGD:
    """v = mu v + (g + wd p)  (v = g + wd p on the first step);  p -= lr (g + wd p + mu v if nesterov else v)."""

    def __init__(self, params: list[tuple[dict, str]], lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        self.params, self.lr, self.momentum, self.wd, self.nesterov = params, lr, momentum, weight_decay, nesterov
        self.state: dict[int, np.ndarray] = {}

    def step(self, grads: list[np.ndarray]) -> None:
        for i, ((owner, key), g) in enumerate(zip(self.params, grads)):
            p = owner[key]
            d = g + self.wd * p if self.wd else g
            if self.momentum:
                buf = self.state.get(i)
                buf = d.copy() if buf is None else self.momentum * buf + d
                self.state[i] = buf
                d = d + self.momentum * buf if self.nesterov else buf
            owner[key] = (p - self.lr * d).astype(p.dtype)


class Adam:
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""

    def __init__(self, params: list[tuple[dict, str]], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.betas, self.eps, self.wd = params, lr, betas, eps, weight_decay
        self.t = 0
        self.m: dict[int, np.ndarray] = {}
        self.v: dict[int, np.ndarray] = {}

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for i, ((owner, key), g) in enumerate(zip(self.params, grads)):
            p = owner[key]
            if self.wd:
                g = g + self.wd * p
            self.m[i] = b1 * self.m.get(i, 0) + (1 - b1) * g
            self.v[i] = b2 * self.v.get(i, 0) + (1 - b2) * g * g
            mhat = self.m[i] / (1 - b1 ** self.t)
            denom = np.sqrt(self.v[i]) / np.sqrt(1 - b2 ** self.t) + self.eps
            owner[key] = (p - self.lr * mhat / denom).astype(p.dtype)
