"""The training-curve PNG: loss and accuracy per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..viz import new_figure, save_figure


def curves_figure(history: list[dict[str, Any]], title: str = "", train_label: str = "train") -> Figure:
    """Loss (left) and accuracy (right) per epoch of the epoch records ``history``."""
    fig = new_figure(9, 3.4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label=train_label)
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h["test_accuracy"] for h in history], "s-", label="test")
    if history and "val_accuracy" in history[0]:
        ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], "^-", label="val")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "", train_label: str = "train") -> Path:
    return save_figure(curves_figure(history, title, train_label), path)
