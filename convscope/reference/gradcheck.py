"""Gradient checking by central finite differences in float64, for any layer with forward/backward."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GradcheckResult:
    """Worst relative error per checked tensor: |analytic - numeric| / max(|analytic|, |numeric|, floor), where
    floor = 1e-3 * max |analytic| over the tensor (entries far below the tensor's scale would otherwise
    report the finite-difference noise of a near-cancellation as a large relative error)."""

    errors: dict[str, float]
    eps: float

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    def ok(self, tol: float = 1e-6) -> bool:
        return self.worst <= tol


def gradcheck(layer, inputs: np.ndarray, eps: float = 1e-6, max_entries: int | None = 200,
              seed: int = 0) -> GradcheckResult:
    """Compare ``layer.backward`` with central differences of L = sum(forward(x) * r) for a fixed random r.

    Checks the input and every entry of ``layer.params`` (a random sample of ``max_entries`` positions per
    tensor when larger). ``layer`` needs ``forward(x, train)``, ``backward(dy) -> dx``, ``params``, ``grads``.
    Stochastic layers (dropout) must be checked with a fixed mask; batch norm is checked in training mode.
    """
    rng = np.random.default_rng(seed)
    x = np.array(inputs, dtype=np.float64)
    for k in layer.params:
        layer.params[k] = layer.params[k].astype(np.float64)
    y = layer.forward(x, True)
    r = rng.standard_normal(y.shape)
    analytic = {"input": layer.backward(r.copy())}
    analytic.update({k: layer.grads[k].copy() for k in layer.params})

    def loss() -> float:
        state = {k: v.copy() for k, v in getattr(layer, "buffers", {}).items()}
        out = float((layer.forward(x, True) * r).sum())
        for k, v in state.items():  # running statistics must not drift during the check
            layer.buffers[k] = v
        return out

    errors = {}
    for name, target in [("input", None)] + [(k, k) for k in layer.params]:
        arr = x if target is None else layer.params[target]
        flat = arr.reshape(-1)
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, max_entries, replace=False)
        worst = 0.0
        floor = max(1e-3 * float(np.abs(analytic[name]).max()), 1e-12)
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            num = (up - down) / (2 * eps)
            ana = analytic[name].reshape(-1)[i]
            worst = max(worst, float(abs(ana - num) / max(abs(ana), abs(num), floor)))
        errors[name] = worst
    return GradcheckResult(errors, eps)
