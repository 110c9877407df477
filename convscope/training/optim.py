"""Optimizers, learning-rate schedules as pure functions of the step, and weight initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .config import TrainConfig


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    o = cfg.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=o.weight_decay)
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.Adadelta(params, lr=o.lr, weight_decay=o.weight_decay)


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step ``step`` (0-based): a pure function, so resuming needs only the step.

    ``constant``; ``step`` (x step_gamma every step_epochs epochs); ``cosine`` (to 0 at the end);
    ``onecycle`` (linear 0 -> peak over the first 25% of steps, then linear down to 0, as in airbench).
    Linear warmup over ``warmup_epochs`` multiplies any schedule but onecycle.
    """
    if cfg.schedule.epochs is None:
        raise ConfigError("lr_at: epochs not set; resolve the config first (convscope.training.setup.prepare)")
    total = max(1, cfg.schedule.epochs * steps_per_epoch)
    t = min(step, total - 1)
    if cfg.schedule.name == "onecycle":
        peak = 0.25 * total
        factor = t / peak if t < peak else max(0.0, (total - t) / (total - peak))
        return cfg.optim.lr * factor
    if cfg.schedule.name == "constant":
        factor = 1.0
    elif cfg.schedule.name == "step":
        factor = cfg.schedule.step_gamma ** ((t // steps_per_epoch) // cfg.schedule.step_epochs)
    else:  # cosine
        factor = 0.5 * (1.0 + math.cos(math.pi * t / total))
    warm = cfg.schedule.warmup_epochs * steps_per_epoch
    if warm > 0 and t < warm:
        factor *= (t + 1) / warm
    return cfg.optim.lr * factor


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights: ``kaiming`` (He, fan-in, ReLU gain), ``xavier`` (Glorot
    uniform); biases to zero. ``default`` keeps PyTorch's initialisation."""
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
