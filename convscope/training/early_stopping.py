"""Best weights and early stopping, as callbacks on the validation accuracy of each epoch.

The loop installs them when the run holds out a validation split (``val_fraction > 0``): :class:`BestWeights`
remembers the best epoch (its accuracy goes into summary.json) and, with ``early_stopping`` set, that epoch's
weights, which the run then ends with; :class:`EarlyStopping` ends the run after ``patience`` epochs without a
better validation accuracy. Both keep their state in the checkpoint, so a killed run resumes with them.
"""

from __future__ import annotations

from typing import Any

import torch

from ..runs.callbacks import Callback, LoopView


class BestWeights(Callback):
    """The epoch with the best validation accuracy so far; with ``keep_weights``, its (evaluated) weights too."""

    key = "best"

    def __init__(self, keep_weights: bool) -> None:
        self.keep_weights = keep_weights
        self.val_accuracy, self.epoch = -1.0, -1
        self.weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        if "val_accuracy" in record and record["val_accuracy"] > self.val_accuracy:
            self.val_accuracy, self.epoch = record["val_accuracy"], record["epoch"]
            if self.keep_weights:
                self.weights = loop.engine.export_weights()

    def state_dict(self) -> dict[str, Any]:
        return {"val_accuracy": self.val_accuracy, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.val_accuracy, self.epoch = state["val_accuracy"], state["epoch"]
        self.weights = state["weights"] if self.keep_weights else None


class EarlyStopping(Callback):
    """Ends the run once ``patience`` epochs have passed since ``best``'s epoch (install it after ``best``)."""

    def __init__(self, patience: int, best: BestWeights) -> None:
        self.patience, self.best = patience, best

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        if record["epoch"] - self.best.epoch >= self.patience:
            loop.request_stop()
