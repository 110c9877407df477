"""Evaluation: accuracy, per-class accuracy and the confusion matrix, in batches with bounded memory."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..runs.manifest import MAX_TTA_SHIFT, valid_tta_shift


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    per_class: list[float]
    confusion: np.ndarray          # (classes, classes): rows = true label, columns = predicted
    loss: float
    n: int


def autocast_for(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def shifted(x: torch.Tensor, dy: int, dx: int, fill: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) moved dy pixels down and dx right, the uncovered border set to ``fill`` (1, C, 1, 1):
    the normalized value of a black pixel, as the training translation fills with black."""
    s = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x - fill, (s, s, s, s)) + fill
    return padded[..., s - dy:s - dy + h, s - dx:s - dx + w]


def tta_logits(model: nn.Module, x: torch.Tensor, flip: bool = False, shift: int = 0,
               fill: torch.Tensor | None = None) -> torch.Tensor:
    """Float32 logits (B, classes) of normalized images x (B, C, H, W), averaged over test-time views.

    ``flip``: each view and its left-right mirror, equally. ``shift``: the image keeps half the weight and its
    four copies moved ``shift`` pixels up, down, left and right share the other half (airbench weighs its
    translated views the same way); ``fill`` (1, C, 1, 1) is the normalized value of the uncovered border."""
    def view(v: torch.Tensor) -> torch.Tensor:
        out = model(v).float()
        return 0.5 * (out + model(v.flip(3)).float()) if flip else out

    logits = view(x)
    if shift:
        fill = torch.zeros((1, x.shape[1], 1, 1), dtype=x.dtype, device=x.device) if fill is None else fill
        moved = [view(shifted(x, dy, dx, fill)) for dy, dx in ((shift, 0), (-shift, 0), (0, shift), (0, -shift))]
        logits = 0.5 * logits + 0.125 * sum(moved)
    return logits


def black(norm: Normalization, channels: int, device: torch.device, dtype: torch.dtype = torch.float32
          ) -> torch.Tensor:
    """The normalized value of a black pixel, (1, C, 1, 1): what the border of a shifted view is filled with."""
    return norm.apply(torch.zeros((1, channels, 1, 1), dtype=torch.uint8, device=device)).to(dtype)


@torch.no_grad()
def predict_logits(model: nn.Module, images_u8: torch.Tensor, norm: Normalization, batch_size: int = 1024,
                   bf16: bool = False, channels_last: bool = False, tta: bool = False,
                   tta_shift: int = 0) -> torch.Tensor:
    """Float32 logits (N, classes) for uint8 images, in eval mode (the mode is restored afterwards).
    ``tta``: the mean of the logits of each image and its left-right mirror; ``tta_shift``: also views moved
    that many pixels (see :func:`tta_logits`)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    fill = black(norm, images_u8.shape[1], device) if tta_shift else None     # (1, C, 1, 1)
    out = []
    try:
        for i in range(0, len(images_u8), batch_size):
            x = norm.apply(images_u8[i:i + batch_size].to(device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, bf16):
                out.append(tta_logits(model, x, tta, tta_shift, fill))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, dataset: ImageDataset, norm: Normalization, batch_size: int = 1024,
             bf16: bool = False, channels_last: bool = False, tta: bool = False, tta_shift: int = 0) -> EvalResult:
    if not isinstance(dataset, ImageDataset):
        raise ConfigError(f"dataset: expected a convscope.data.ImageDataset (uint8 images with labels), got "
                          f"{type(dataset).__name__}; load one with convscope.data.load(...)")
    if not isinstance(norm, Normalization):
        raise ConfigError(f"norm: expected a convscope.data.Normalization, got {type(norm).__name__}")
    if not valid_tta_shift(tta_shift):
        raise ConfigError(f"tta_shift: expected 0..{MAX_TTA_SHIFT} pixels, got {tta_shift!r}")
    logits = predict_logits(model, dataset.images, norm, batch_size, bf16, channels_last, tta and dataset.hflip_ok,
                            tta_shift)
    return result_from_logits(logits, dataset.labels.to(logits.device), len(dataset.classes))


def result_from_logits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> EvalResult:
    """Accuracy, per-class accuracy, confusion matrix and mean cross-entropy of float logits (N, k)."""
    pred = logits.argmax(1)
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k).cpu().numpy()
    totals = confusion.sum(1)
    per_class = [float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i in range(k)]
    loss = float(nn.functional.cross_entropy(logits, labels)) if len(labels) else float("nan")
    return EvalResult(float((pred == labels).float().mean()) if len(labels) else float("nan"), per_class, confusion,
                      loss, len(labels))
