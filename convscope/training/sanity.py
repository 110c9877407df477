"""``convscope train --check``: before a long run, can this model learn at all? (Karpathy's "recipe for
training neural networks": verify the loss at init, overfit one batch.)

Two checks, on the run's resolved config (model, init, optimizer, peak learning rate, precision):

1. **initial loss**: the cross-entropy of the untrained model on the batch against -log(1/C) = ln C, the loss of
   a uniform prediction; outside [0.5, 1.5] x ln C it fails (the doctor's rule, training/doctor.py).
2. **overfit one batch**: ``batch`` training images (a fixed, seeded choice), without augmentation, label
   smoothing or weight decay, at the config's peak learning rate held constant, for at most ``max_steps``
   steps: it passes when every image of the batch is classified right (the training forward's argmax, before the
   step's update). A model that cannot memorise 64 images cannot learn 60,000.

When a check fails, the doctor's rules at initialisation (dead units, vanishing activations or gradients,
non-finite values) on the first step's statistics say why, with the evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .._check import integer
from .._result import ResultMixin
from .config import CHECK_BATCH, CHECK_MAX_BATCH, CHECK_MAX_STEPS, CHECK_STEPS, CHECK_WHY, TrainConfig
from .diagnostics import StepProbe, header
from .doctor import Finding, _g, findings_at_init
from .runtime import torch_settings
from .setup import prepare, scratch_trainer

DEFAULT_BATCH = CHECK_BATCH
DEFAULT_MAX_STEPS = CHECK_STEPS

# the check trains on the batch as it is, at one learning rate: everything that would blur "can it learn?" off
PLAIN = dict(schedule="constant", warmup_epochs=0.0, weight_decay=0.0, label_smoothing=0.0, ema=0.0, translate=0,
             hflip=False, cutout=0, rotate=0.0, scale=0.0, aspect=0.0, stroke=0.0, blur=0.0, tta=False)


@dataclass
class SanityCheck(ResultMixin):
    """The outcome of :func:`check`: ``passed``, and the evidence."""

    model: str
    dataset: str
    batch: int                       # images overfit
    classes: int
    lr: float                        # the constant learning rate of the overfit
    initial_loss: float | None       # cross-entropy of the untrained model on the batch (None: non-finite)
    expected_initial_loss: float     # ln C
    steps: int                       # steps taken (fewer than max_steps when the batch was learned)
    max_steps: int
    learned_at: int | None           # the step whose forward first classified the whole batch right
    batch_accuracy: float            # of the last step's forward
    best_loss: float | None
    losses: list[float | None] = field(default_factory=list)   # per step, None where non-finite
    failures: list[Finding] = field(default_factory=list)      # why the check fails (empty: it passed)
    causes: list[Finding] = field(default_factory=list)        # what the statistics at initialisation show

    @property
    def passed(self) -> bool:
        return not self.failures


def fixed_batch(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` training images, the classes taken in turn (a seeded order within each class), so a
    small batch holds every class: (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    per_class = [order[labels[order] == c] for c in labels.unique().tolist()]
    picked, i = [], 0
    while len(picked) < n:
        for idx in per_class:
            if i < len(idx) and len(picked) < n:
                picked.append(int(idx[i]))
        i += 1
    return torch.tensor(picked)


def check(config: TrainConfig | dict[str, Any] | None = None, *, batch: int = DEFAULT_BATCH,
          max_steps: int = DEFAULT_MAX_STEPS) -> SanityCheck:
    """Run the sanity checks (this module's docstring) on ``config`` (a TrainConfig or a dict of its keys); no
    run folder is written. ``batch``: images to overfit (at most the training set); ``max_steps``: the bound."""
    from .config import config_from_dict

    cfg = config if isinstance(config, TrainConfig) else config_from_dict(config or {})
    batch = integer(batch, "batch", 1, CHECK_MAX_BATCH, fix=f"e.g. {CHECK_BATCH}; {CHECK_WHY}")
    max_steps = integer(max_steps, "max_steps", 1, CHECK_MAX_STEPS, fix=f"e.g. {CHECK_STEPS}; {CHECK_WHY}")
    with torch_settings(cfg), torch.random.fork_rng(devices=[]):
        cfg, data = prepare(cfg)
        n = min(batch, len(data.train))
        cfg, model, engine, feeder = scratch_trainer(cfg, data, **PLAIN, batch_size=n)
        x, y = feeder.take(fixed_batch(data.train.labels, n, cfg.runtime.seed).to(feeder.device))
        classes = len(data.train.classes)
        head = header(model, classes, 1, 1, max_steps)
        losses: list[float | None] = []
        learned_at, acc, first, nonfinite_at = None, 0.0, None, None
        for step in range(max_steps):
            probe = StepProbe(engine.model) if step == 0 and hasattr(engine, "model") else None
            result = engine.train_step(x, y, step)
            if probe is not None:
                acts, params = probe.finish()
                first = {"kind": "diag", "step": 0, "epoch": 1, "lr": cfg.optim.lr,
                         "loss": result.loss if result is not None else None,
                         "grad_norm": result.grad_norm if result is not None else None,
                         "activations": acts, "params": params}
            if result is None:
                losses.append(None)
                nonfinite_at = step
                break
            losses.append(result.loss)
            acc = result.correct / n
            if result.correct == n:
                learned_at = step
                break
    finite = [v for v in losses if v is not None]
    res = SanityCheck(cfg.model.name, cfg.data.dataset, n, classes, cfg.optim.lr, losses[0], math.log(classes),
                      len(losses), max_steps, learned_at, acc, min(finite) if finite else None, losses)
    res.causes = findings_at_init(head, first) if first is not None else []
    init = [f for f in res.causes if f.code == "initial_loss"]
    res.failures += init
    if nonfinite_at is not None:
        res.failures.append(Finding(
            "nonfinite", "error", f"loss went non-finite at step {nonfinite_at} of the overfit (lr {_g(cfg.optim.lr)}"
            + (f", after loss {_g(finite[-1])}" if finite else "") + "): lower the learning rate or set --grad-clip",
            {"step": nonfinite_at, "lr": cfg.optim.lr}))
    elif learned_at is None:
        res.failures.append(Finding(
            "cannot_overfit", "error",
            f"cannot overfit one batch: after {max_steps} steps on the same {n} images at lr {_g(cfg.optim.lr)} the "
            f"batch accuracy is {100 * acc:.0f}% (loss {_g(finite[0])} at step 0, best {_g(min(finite))}); a model "
            "that can learn classifies all of them",
            {"steps": max_steps, "batch": n, "batch_accuracy": acc, "initial_loss": finite[0],
             "best_loss": min(finite)}))
    return res


def report(c: SanityCheck) -> str:
    """The check in words, as ``convscope train --check`` prints it."""
    init = "non-finite" if c.initial_loss is None else f"{c.initial_loss:.3f}"
    lines = [f"sanity check of {c.model} on {c.dataset} ({c.classes} classes)",
             f"  initial loss {init} (expected -log(1/{c.classes}) = {c.expected_initial_loss:.3f}; "
             f"fails outside 0.5x to 1.5x)",
             f"  overfit {c.batch} images at lr {_g(c.lr)}: " +
             (f"all classified right at step {c.learned_at} (loss {_g(c.losses[c.learned_at])})"
              if c.learned_at is not None else
              f"{100 * c.batch_accuracy:.0f}% after {c.steps} steps (bound {c.max_steps})")]
    if c.passed:
        lines.append("passed: the model can learn")
        lines += [f"  note: {f.message}" for f in c.causes]
        return "\n".join(lines)
    lines.append(f"FAILED ({len(c.failures)}):")
    lines += [f"  [{f.code}] {f.message}" for f in c.failures]
    others = [f for f in c.causes if f not in c.failures]
    if others:
        lines.append("likely causes, from the first step's statistics:")
        lines += [f"  [{f.code}] {f.message}" for f in others]
    elif not any(f.code == "initial_loss" for f in c.failures):
        lines.append("no defect shows at initialisation: try other learning rates (convscope lr-find)")
    return "\n".join(lines)
