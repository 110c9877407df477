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


class TTA(nn.Module):
    """``model`` as the run predicts with it: float32 logits (B, classes) of normalized images x (B, C, H, W),
    with ``flip`` the mean of each image's logits and its left-right mirror's. The one test-time averaging of
    convscope: evaluation, ``predict``, the web app and refine's baseline all go through it."""

    def __init__(self, model: nn.Module, flip: bool) -> None:
        super().__init__()
        self.model, self.flip = model, flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).float()
        return 0.5 * (out + self.model(x.flip(3)).float()) if self.flip else out


@torch.no_grad()
def predict_logits(model: nn.Module, images_u8: torch.Tensor, norm: Normalization, batch_size: int = 1024,
                   bf16: bool = False, channels_last: bool = False, tta: bool = False) -> torch.Tensor:
    """Float32 logits (N, classes) for uint8 images, in eval mode (the mode is restored afterwards).
    ``tta``: the mean of the logits of each image and its left-right mirror (:class:`TTA`)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    predictor = TTA(model, tta)
    out = []
    try:
        for i in range(0, len(images_u8), batch_size):
            x = norm.apply(images_u8[i:i + batch_size].to(device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, bf16):
                out.append(predictor(x))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(model: nn.Module, dataset: ImageDataset, norm: Normalization, batch_size: int = 1024,
             bf16: bool = False, channels_last: bool = False, tta: bool = False) -> EvalResult:
    if not isinstance(dataset, ImageDataset):
        raise ConfigError(f"dataset: expected a convscope.data.ImageDataset (uint8 images with labels), got "
                          f"{type(dataset).__name__}; load one with convscope.data.load(...)")
    if not isinstance(norm, Normalization):
        raise ConfigError(f"norm: expected a convscope.data.Normalization, got {type(norm).__name__}")
    logits = predict_logits(model, dataset.images, norm, batch_size, bf16, channels_last, tta and dataset.hflip_ok)
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
