"""Speed-round-2 knobs (issue 15) that touch the training loop, kept self-contained so they port to any engine.

* ``fused_batch_fn``/``use_fused_batch``: the training batch from uint8 in one gather (bit-identical to the
  loop's augmentation; see convscope/data/augment_speed.py).
* ``maybe_compile``: ``torch.compile`` of the trained module (measured: it does not pay on a 2-core CPU —
  docs/sections/speed.md has the numbers; kept so it can be measured again elsewhere).
* ``predict_logits_shift_tta``/``shift_tta_evaluate``: test-time augmentation by translation.

Each takes the pieces it needs (model, images, normalization, generator), never the loop's private state,
except ``use_fused_batch``/``shift_tta_evaluate`` which adapt today's Trainer (public attributes only).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment_speed import fused_batch, pad_store
from ..data.normalize import Normalization
from .evaluate import EvalResult, autocast_for, result_from_logits


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """Compile ``model``'s forward in place when ``enabled`` (state-dict keys unchanged, unlike
    ``torch.compile(model)``; on torch 2.13 CPU ``nn.Module.compile()`` of a Sequential compiled nothing)."""
    if enabled:
        model.forward = torch.compile(model.forward)
    return model


def use_fused_batch(trainer: Any) -> None:
    """Give a Trainer the one-gather uint8 batch: pads its uint8 store once, replaces ``trainer._batch``."""
    cfg = trainer.cfg
    pad = cfg.translate
    store = pad_store(trainer.images, pad)                       # uint8 (N, C, H+2t, W+2t), built once

    def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = fused_batch(store, pad, idx, trainer.norm, trainer.aug_gen, cfg.translate, cfg.hflip, cfg.cutout,
                        cfg.channels_last)
        return x, trainer.labels[idx]

    trainer._batch = batch


def _shift_u8(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate uint8 images (B, C, H, W) by (dy, dx) pixels with zero fill (the training augmentation's fill)."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


@torch.no_grad()
def predict_logits_shift_tta(model: nn.Module, images_u8: torch.Tensor, norm: Normalization, shift: int,
                             mirror: bool = False, batch_size: int = 1024, bf16: bool = False,
                             channels_last: bool = False) -> torch.Tensor:
    """Float32 logits (N, classes): the mean over the image and its translations by ``shift`` pixels up,
    down, left and right (5 views; 10 with ``mirror``: each view and its left-right mirror)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    shifts = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift > 0 else [])
    out = []
    try:
        for i in range(0, len(images_u8), batch_size):
            xb = images_u8[i:i + batch_size].to(device)
            total = None
            for dy, dx in shifts:
                x = norm.apply(_shift_u8(xb, dy, dx).contiguous())
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast_for(device, bf16):
                    views = [model(x).float()] + ([model(x.flip(3)).float()] if mirror else [])
                for v in views:
                    total = v if total is None else total + v
            out.append(total / (len(shifts) * (2 if mirror else 1)))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def shift_tta_evaluate(trainer: Any, dataset: Any, shift: int) -> EvalResult:
    """Trainer.evaluate with translation TTA (and the mirror where ``tta`` is on and the dataset allows it)."""
    model = trainer.eval_module()
    logits = predict_logits_shift_tta(model, dataset.images, trainer.norm, shift,
                                      mirror=trainer.cfg.tta and dataset.hflip_ok, bf16=trainer.bf16,
                                      channels_last=trainer.cfg.channels_last)
    return result_from_logits(logits, dataset.labels.to(logits.device), len(dataset.classes))
