"""A run's progress: the counters that go into every checkpoint, and the progress bar that shows them."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from .. import _progress
from .._progress import Stage

LOOP_KEYS = ("step", "epoch", "batch", "bad_streak", "skipped", "elapsed", "acc", "history", "stopped_early")


def _fresh_acc() -> dict[str, Any]:
    return {"loss": 0.0, "correct": 0, "seen": 0}


@dataclass
class LoopState:
    """Where a run stands. ``step``: optimizer steps done; ``epoch``: epochs done; ``batch``: batches done in
    the current epoch; ``acc``: this epoch's running train loss sum, correct count and images seen;
    (the best validation epoch is kept by the BestWeights callback, convscope.training.early_stopping)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    bad_streak: int = 0          # non-finite steps in a row
    skipped: int = 0             # non-finite steps in all
    elapsed: float = 0.0         # seconds of training steps (evaluation and checkpoints excluded)
    acc: dict[str, Any] = field(default_factory=_fresh_acc)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LOOP_KEYS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        return cls(**{k: d[k] for k in LOOP_KEYS})


class Progress:
    """The run's bar (steps, with the running loss, accuracy and images per second) and its per-epoch lines;
    silent with ``enabled=False`` (``--quiet``, ranks other than 0).

    Drawn by convscope/_progress.py, the helper every long command uses, on its rules: a tqdm bar only when
    stderr is a terminal (through a pipe or into a file its carriage returns would leave a line per redraw:
    160 KB for one Fashion-MNIST run), else a progress line on stderr at most every 2 s; the per-epoch lines go
    to standard output either way."""

    def __init__(self, enabled: bool, total_steps: int) -> None:
        self.enabled, self.total_steps = enabled, total_steps

    def bar(self, initial: int, desc: str) -> contextlib.AbstractContextManager[Stage]:
        """The run's bar over all its steps, ``initial`` done already (a resumed run), named ``desc`` (the
        epoch: the loop renames it as each one starts)."""
        return _progress.bar(desc, self.total_steps, "step", initial=initial, show=self.enabled)

    def step(self, bar: Stage, acc: dict[str, Any], images: int, t_epoch: float) -> None:
        if not self.enabled:
            return
        seen = max(1, acc["seen"])
        bar.set_postfix(loss=f"{acc['loss'] / seen:.3f}", acc=f"{acc['correct'] / seen:.3f}",
                        img_s=f"{images / max(time.perf_counter() - t_epoch, 1e-9):.0f}")
        bar.update()

    def write(self, bar: Stage, line: str) -> None:
        bar.write(line)


def epoch_line(h: dict[str, Any], epochs: int) -> str:
    return (f"epoch {h['epoch']:>3}/{epochs}  loss {h['train_loss']:.4f}  train {h['train_accuracy']:.4f}  "
            f"test {h['test_accuracy']:.4f}" + (f"  val {h['val_accuracy']:.4f}" if "val_accuracy" in h else "")
            + f"  {h['images_per_s']:.0f} img/s")
