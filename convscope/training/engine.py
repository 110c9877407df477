"""The engine protocol: what the training loop asks of the code that actually computes.

The loop (loop.py) owns epochs, batches, evaluation and checkpoint cadence, progress, stop rules and the run
directory; an engine owns the weights and the optimizer. Two engines exist: :class:`~.engines.torch.TorchEngine`
(PyTorch, any device) and :class:`~.engines.numpy.NumpyEngine` (the from-scratch NumPy layers, CPU). Both start
from the same seeded PyTorch model and export into it, so every run loads and inspects alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..data.dataset import ImageDataset
from .evaluate import EvalResult


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step measured (on the batch, before the update)."""

    loss: float           # mean (label-smoothed) cross-entropy of the batch
    correct: int          # images of the batch classified right
    grad_norm: float      # global gradient norm before clipping
    lr: float             # learning rate of the step


class Engine(Protocol):
    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int, lr: float | None = None) -> StepResult | None:
        """One optimizer step on a batch (x float (B, C, H, W), y int64 (B,)) at the 0-based ``step``; None
        when the loss or a gradient is not finite, in which case nothing changed. ``lr``: this step's rate in
        place of the schedule's (the learning-rate finder sweeps it)."""

    def evaluate(self, dataset: ImageDataset) -> EvalResult:
        """Accuracy and loss of the evaluated weights (the average, where the engine keeps one)."""

    def eval_module(self) -> nn.Module:
        """A torch module holding the evaluated weights, for tools that run torch (sparsity tracking)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything engine-specific a checkpoint needs: weights, optimizer, weight average, own RNGs."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; model keys saved before layers were named are mapped."""

    def export_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the final torch ``state_dict`` (the evaluated weights)."""
