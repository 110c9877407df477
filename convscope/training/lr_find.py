"""The learning-rate finder (``convscope lr-find``, ``convscope train --lr find``): Smith's range test
(Smith 2015, "Cyclical learning rates for training neural networks", section 3.3) as fastai runs it.

From the run's seeded model and training batches (its optimizer, augmentation and loss), the learning rate grows
exponentially from ``start`` to ``end`` over ``steps`` optimizer steps, one batch each. The loss of each step is
smoothed by an exponential moving average with bias correction (beta 0.98); the sweep stops early when the
smoothed loss exceeds ``diverge`` (4) times its best, or a step is non-finite. The model's weights are restored
afterwards: the sweep trains, but leaves no trace.

The suggestion follows one of three rules, all computed (fastai's, on the smoothed losses without the first 10%
and the last 5 steps of the sweep):

- ``steep`` (convscope's default): where the smoothed loss falls fastest per decade of lr (fastai's ``steep``);
- ``valley`` (fastai's default since 2.5): the longest stretch over which the smoothed loss keeps falling (a
  longest decreasing subsequence), and the lr half-way along it (fastai's ``valley``);
- ``minimum``: the rate at the lowest smoothed loss, divided by 10 (fastai's ``minimum``, Smith's rule of thumb).

The default is the rule that did best on the main job (lr_rules.DEFAULT_RULE; bench/lr_find_main_job.py): there
valley's suggestion, 100x below the tuned 0.1, trained to 85% where steep's came within 0.1 point of 0.1.

A sweep whose batch loss (a running median of 5) never falls by 10% of its first value finds no rate: the model
does not learn at any (see ``convscope train --check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._check import choice, integer, number
from .._result import ResultMixin
from ..errors import ConfigError
from ..runs.callbacks import Callback, LoopView
from .config import TrainConfig
from .doctor import _g
from .lr_rules import DEFAULT_RULE, RULE_TEXT, RULES, suggest
from .runtime import torch_settings
from .setup import prepare, scratch_trainer

# The fewest steps per decade of lr whose lack of a loss fall says something about the model: on the main job
# (digits, fast2) sweeps from 1e-7 to 10 (8 decades) of 10 and 20 steps (1.25 and 2.5 per decade) showed no 10% fall
# and were declared untrainable, while 30 steps (3.75 per decade) found a rate; the dead-ReLU model of the tests is
# judged rightly at 40 steps over 5 decades (8 per decade). Below this a no-fall sweep is "too few steps to judge".
MIN_STEPS_PER_DECADE = 5
MAX_STEPS = 10_000   # fastai sweeps 100; 10**9 steps barely raised the lr and ran until killed


@dataclass
class LRFind(ResultMixin):
    """A learning-rate sweep: the rates, the raw and smoothed losses, each rule's suggestion and the chosen one."""

    model: str
    dataset: str
    optimizer: str
    batch_size: int
    rule: str
    lrs: list[float]
    losses: list[float | None]               # each step's batch loss (None: non-finite, the sweep's last step)
    smoothed: list[float | None]
    suggestions: dict[str, float | None]     # rule -> lr (None when the loss did not fall)
    stopped: str                             # "end", "diverged" or "nonfinite"
    note: str = ""                           # why there is no suggestion
    start: float = 1e-7
    end: float = 10.0
    config_lr: float = 0.0                   # the config's (peak) lr, for comparison

    @property
    def suggested(self) -> float | None:
        return self.suggestions.get(self.rule)


def lr_find(config: TrainConfig | dict[str, Any] | None = None, *, start: float = 1e-7, end: float = 10.0,
            steps: int = 100, beta: float = 0.98, diverge: float = 4.0, rule: str = DEFAULT_RULE,
            model: nn.Module | None = None) -> LRFind:
    """Sweep the learning rate (this module's docstring) for ``config`` (a TrainConfig or a dict of its keys).
    ``model``: sweep this model instead of the config's seeded one (its weights and buffers are restored
    afterwards). Deterministic for a config (its seed), up to the kernels' own determinism."""
    from .config import config_from_dict

    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config or {})
    start = number(start, "start", 0, lo_open=True)
    end = number(end, "end", start, lo_open=True)
    if not math.isfinite(end / start):   # 1e308 / 1e-7 overflows: every rate after the first would be inf
        raise ConfigError(f"end: {end:g} / start {start:g} overflows a float, so the sweep's rates would be "
                          "infinite; sweep a range that fits, e.g. start 1e-7 and end 10 (the default)", arg="end")
    steps = integer(steps, "steps", 5, MAX_STEPS, fix="e.g. 100; each step trains one batch, and the lr grows by "
                                                    "(end/start)^(1/steps) per step: a longer sweep only samples it "
                                                    "more finely")
    beta = number(beta, "beta", 0, 1, hi_open=True)
    diverge = number(diverge, "diverge", 1, lo_open=True)
    rule = choice(rule, "rule", RULES)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()} if model is not None else None
    lrs: list[float] = []
    losses: list[float | None] = []
    smoothed: list[float | None] = []
    stopped = "end"
    try:
        with torch_settings(cfg), torch.random.fork_rng(devices=[]):
            cfg, data = prepare(cfg)
            cfg, model_, engine, feeder = scratch_trainer(cfg, data, model, schedule="constant", warmup_epochs=0.0,
                                                          ema=0.0)
            avg, best = 0.0, math.inf
            order, epoch, index = feeder.order(0), 0, 0
            for i in range(steps):
                if index == feeder.steps_per_epoch:   # a sweep longer than an epoch: the next epoch's order
                    epoch, index = epoch + 1, 0
                    order = feeder.order(epoch)
                x, y = feeder.batch(order, index)
                index += 1
                lr = start * (end / start) ** (i / (steps - 1))
                result = engine.train_step(x, y, i, lr=lr)
                lrs.append(lr)
                if result is None or not math.isfinite(result.loss):
                    losses.append(None)
                    smoothed.append(None)
                    stopped = "nonfinite"
                    break
                avg = beta * avg + (1 - beta) * result.loss
                smooth = avg / (1 - beta ** (i + 1))
                losses.append(result.loss)
                smoothed.append(smooth)
                best = min(best, smooth)
                if smooth > diverge * best:
                    stopped = "diverged"
                    break
    finally:
        if model is not None and saved is not None:
            model.load_state_dict(saved)
    finite = [(lr, s, v) for lr, s, v in zip(lrs, smoothed, losses) if s is not None and v is not None]
    suggestions, note = suggest([f[0] for f in finite], [f[1] for f in finite], [f[2] for f in finite])
    decades = math.log10(end / start)
    if note and stopped == "end" and finite and steps < MIN_STEPS_PER_DECADE * decades:   # no verdict from a glimpse
        note = (f"{steps} steps over {decades:.3g} decades of lr are too few to judge whether the model trains (the "
                f"lr grows {(end / start) ** (1 / (steps - 1)):.3g}x per step, each rate gets one batch); sweep at "
                f"least {MIN_STEPS_PER_DECADE} steps per decade: --steps {math.ceil(MIN_STEPS_PER_DECADE * decades)} "
                "or more, or a narrower --start/--end")
    elif note and stopped != "end":   # a short sweep can jump past the rates that train in a few steps
        note += (f" (the sweep stopped after {len(lrs)} of {steps} steps, at lr {_g(lrs[-1])}: a longer sweep, "
                 "--steps, or a narrower one, --start/--end, may still find a rate)")
    return LRFind(cfg.model.name, cfg.data.dataset, cfg.optim.optimizer, cfg.optim.batch_size, rule, lrs, losses,
                  smoothed, suggestions, stopped, note, start, end, cfg.optim.lr)


def plot(res: LRFind, path: str | Path, output: str | None = None) -> Path:
    """The sweep as a PNG (atomic write): raw and smoothed loss against the lr (log scale), each rule's rate
    marked, the suggested one named with its rule."""
    from ..viz.figures import new_figure, save_figure

    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    raw = [(lr, v) for lr, v in zip(res.lrs, res.losses) if v is not None]
    sm = [(lr, v) for lr, v in zip(res.lrs, res.smoothed) if v is not None]
    if raw:
        ax.plot(*zip(*raw), color="0.75", lw=0.8, label="batch loss")
    if sm:
        ax.plot(*zip(*sm), color="C0", lw=1.8, label="smoothed (EMA 0.98, bias-corrected)")
        lo, hi = min(v for _, v in sm), max(v for _, v in sm[: max(1, len(sm) // 2)])
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.3 * (hi - lo + 1e-9))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    for i, r in enumerate(RULES):
        lr = res.suggestions.get(r)
        if lr is not None:
            chosen = r == res.rule
            ax.axvline(lr, color=f"C{i + 1}", lw=2.0 if chosen else 1.0, ls="-" if chosen else "--",
                       label=f"{r}: {_g(lr)}" + (" (suggested)" if chosen else ""))
    if res.config_lr:
        ax.axvline(res.config_lr, color="0.3", lw=0.8, ls=":", label=f"config lr {_g(res.config_lr)}")
    title = f"lr-find: {res.model} on {res.dataset}, {res.optimizer}, batch {res.batch_size}"
    sub = (f"suggested {_g(res.suggested)} by {RULE_TEXT[res.rule]}" if res.suggested is not None
           else "no suggestion: the loss did not fall")
    ax.set_title(f"{title}\n{sub}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, output=output)


def report(res: LRFind) -> str:
    """The sweep in words, as the command prints it."""
    head = (f"lr-find: {res.model} on {res.dataset} ({res.optimizer}, batch {res.batch_size}): {len(res.lrs)} steps "
            f"from {_g(res.start)} to {_g(res.lrs[-1])}" + {"end": "", "diverged": " (stopped: the loss diverged)",
                                                            "nonfinite": " (stopped: non-finite loss)"}[res.stopped])
    if res.suggested is None:
        return f"{head}\nno suggestion: {res.note}"
    others = ", ".join(f"{r} {_g(v)}" for r, v in res.suggestions.items() if r != res.rule and v is not None)
    return (f"{head}\nsuggested lr {_g(res.suggested)} ({RULE_TEXT[res.rule]}); other rules: {others}; "
            f"the config's lr: {_g(res.config_lr)}")


class SaveSweep(Callback):
    """Writes the sweep that chose a run's lr (``train --lr find``) into its folder when the run starts:
    lr-find.json (this result) and lr-find.png (:func:`plot`)."""

    def __init__(self, res: LRFind) -> None:
        self.res = res

    def on_train_start(self, loop: LoopView) -> None:
        from .._atomic import atomic_write_text
        from ..distributed import current_world

        if current_world().is_main:
            atomic_write_text(loop.path / "lr-find.json", self.res.to_json() + "\n")
            plot(self.res, loop.path / "lr-find.png")
