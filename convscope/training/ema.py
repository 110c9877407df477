"""An exponential moving average of a model's weights (airbench style), as a wrapper around a copy of it."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``average``: a copy of ``model`` whose parameters follow the trained ones, ``ema = d * ema + (1 - d) * w``
    after every step, and whose buffers (BatchNorm statistics) are copied. Early steps use a smaller decay
    (d_t = min(d, (1 + t) / (10 + t))) so the average is not dominated by the random initialisation."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.average = copy.deepcopy(model)

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimizer step ``step`` (0-based)."""
        d = min(self.decay, (1 + step) / (10 + step))
        ema_p = list(self.average.parameters())
        torch._foreach_mul_(ema_p, d)
        torch._foreach_add_(ema_p, [p.detach() for p in self.model.parameters()], alpha=1 - d)
        for b_ema, b in zip(self.average.buffers(), self.model.buffers()):
            b_ema.copy_(b)
