"""Callbacks: code that attaches to a run's events without touching the loop.

The protocol lives here, below ``training`` and ``inspect``, because both implement it: training's own parts
and ``inspect.sparsity.SparsityTracker`` (inspect never imports training).

    class Every100(Callback):
        def on_step_end(self, loop, result):
            if loop.step % 100 == 0:
                print(loop.step, loop.engine.evaluate(loop.data.test).accuracy)

    convscope.train(config, callbacks=[Every100()])

The loop calls each event on every callback, in order, with itself as the first argument: ``loop.step``
(optimizer steps done), ``loop.epoch`` (epochs done), ``loop.cfg``, ``loop.engine``, ``loop.data``, ``loop.path``
and ``loop.total_steps`` are there to read, and ``loop.request_stop()`` ends the run after the current step
(the epoch is closed as usual and the run finishes as a run that stopped early).
A callback with state to keep across a kill implements ``state_dict`` / ``load_state_dict`` and a unique ``key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # names for type checkers only: the loop's types live in training, a level above this package
    from ..training.batches import TrainData
    from ..training.config import TrainConfig
    from ..training.engine import Engine, StepResult
    from ..training.evaluate import EvalResult
    from ..training.run import Run


class LoopView(Protocol):
    """What a callback may use of the loop that calls it (convscope.training.loop.Loop is one). Declared here, so
    this module does not import the loop that imports it."""

    cfg: TrainConfig
    engine: Engine
    data: TrainData
    path: Path
    total_steps: int

    @property
    def step(self) -> int: ...          # optimizer steps done

    @property
    def epoch(self) -> int: ...         # epochs done

    def request_stop(self) -> None: ...


class Callback:
    """Base class: every event is a no-op."""

    key = ""  # name of the callback's state in checkpoints (only callbacks that have state need one)

    def on_train_start(self, loop: LoopView) -> None:
        """Before the first step of this process (a fresh run, or a resumed one after its state was restored)."""

    def on_step_start(self, loop: LoopView) -> None:
        """Before each optimizer step (``loop.step`` is the 0-based index of the step about to run)."""

    def on_step_end(self, loop: LoopView, result: StepResult | None) -> None:
        """After each optimizer step; ``result`` is None for a skipped (non-finite) step."""

    def on_eval(self, loop: LoopView, split: str, result: EvalResult, seconds: float) -> None:
        """After each evaluation the loop makes (``split``: "test" or "val"), with its duration."""

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        """At each epoch end, before ``record`` (the epoch's metrics.jsonl line) is written: a callback may add
        keys to it."""

    def on_checkpoint(self, loop: LoopView, path: Path) -> None:
        """After a checkpoint was written to ``path``."""

    def on_train_end(self, loop: LoopView, run: Run) -> None:
        """After the run directory holds the final weights, summary, curve and manifest."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
