"""Evaluation: accuracy, per-class accuracy and the confusion matrix, in batches with bounded memory."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.forward import iter_batches, model_device
from ..models.output import check_logits


# Images per forward when evaluating. On the CPU, 256 ran 2.0-2.1x faster than 1024 for fast2 (bf16, channels-last,
# 2 threads, Intel Xeon; bench/eval_batch.py): a 1024-image batch's first activations (1024 x 32 x 28 x 28 bf16,
# 51 MB) leave the cache before the next layer reads them.
EVAL_BATCH = 256


@dataclass(frozen=True)
class EvalResult:
    accuracy: float
    per_class: list[float]
    confusion: np.ndarray          # (classes, classes): rows = true label, columns = predicted
    loss: float
    n: int
    non_finite: int = 0            # images whose scores hold NaN/inf (a diverged model): their argmax means nothing

    def refuse_non_finite(self, what: str) -> None:
        """A ConfigError when any image's scores were NaN or infinite: ``what`` (the run) diverged, and an
        accuracy, a per-class figure or a confusion from argmax over NaN would be made up (class 0 for all)."""
        if self.non_finite:
            raise ConfigError(f"{what}: the model's scores are NaN or infinite for {self.non_finite:,} of "
                              f"{self.n:,} images (the run diverged), so no accuracy can be measured; its loss curve "
                              "(curve.png) and `convscope doctor` show where, and `convscope lr-find` a learning "
                              "rate to retrain with")


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
        # x.shape[0], not len(x): under torch.export the batch stays symbolic (len() would fix it at the example's)
        out = check_logits(self.model(x), batch=x.shape[0]).float()  # the output contract, before any cast
        return 0.5 * (out + self.model(x.flip(3)).float()) if self.flip else out


@torch.no_grad()
def predict_logits(model: nn.Module, images_u8: torch.Tensor, norm: Normalization, batch_size: int = EVAL_BATCH,
                   bf16: bool = False, channels_last: bool = False, tta: bool = False) -> torch.Tensor:
    """Float32 logits (N, classes) for uint8 images, in eval mode (the mode is restored afterwards).
    ``tta``: the mean of the logits of each image and its left-right mirror (:class:`TTA`)."""
    device = model_device(model)
    predictor = TTA(model, tta)

    def views(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, bf16):
            return predictor(x)

    out = [logits for _, logits in iter_batches(model, images_u8, norm, batch_size, forward=views)]
    return torch.cat(out) if out else torch.empty(0)


def check_classes(model_classes: Sequence[str], dataset: ImageDataset) -> None:
    """The dataset's classes must be the model's, by name and in order: label k of the dataset is then output k
    of the model. Otherwise accuracy compares unrelated labels (a reshape error, or "100%" when two folder
    classes happen to line up with the model's first two outputs)."""
    mine, theirs = tuple(model_classes), tuple(dataset.classes)
    if mine == theirs:
        return
    shown = (lambda c: ", ".join(c[:12]) + (", ..." if len(c) > 12 else ""))
    why = ("the same names in another order" if sorted(mine) == sorted(theirs) else
           f"{len(theirs)} classes ({shown(theirs)}) where the model has {len(mine)} ({shown(mine)})")
    raise ConfigError(f"dataset: {dataset.name!r} has {why}; accuracy would compare unrelated labels. Evaluate on "
                      "a dataset with the model's classes, named as the model names them, in the same order",
                      arg="dataset")


def evaluate(model: nn.Module, dataset: ImageDataset, norm: Normalization, batch_size: int = EVAL_BATCH,
             bf16: bool = False, channels_last: bool = False, tta: bool = False,
             classes: Sequence[str] | None = None) -> EvalResult:
    """Accuracy, per-class accuracy, confusion and loss of ``model`` on ``dataset``. ``classes``: the model's
    class names (``run.classes``), checked against the dataset's before any work; without them the model's output
    width is checked against the dataset's class count."""
    if not isinstance(dataset, ImageDataset):
        raise ConfigError(f"dataset: expected a convscope.data.ImageDataset (uint8 images with labels), got "
                          f"{type(dataset).__name__}; load one with convscope.data.load(...)")
    if not isinstance(norm, Normalization):
        raise ConfigError(f"norm: expected a convscope.data.Normalization, got {type(norm).__name__}")
    if classes is not None:
        check_classes(classes, dataset)
    logits = predict_logits(model, dataset.images, norm, batch_size, bf16, channels_last, tta and dataset.hflip_ok)
    if len(dataset):
        # shape and dtype only: a diverged model's NaN scores are a result the training loop records (its
        # summary flags the non-finite loss), not an input error
        check_logits(logits, batch=len(dataset), where=f"{dataset.name!r} images")
        if logits.shape[1] != len(dataset.classes):
            raise ConfigError(f"dataset: {dataset.name!r} has {len(dataset.classes)} classes but the model gives "
                              f"{tuple(logits.shape[1:])} outputs per image; evaluate on a dataset with the model's "
                              "classes", arg="dataset")
    return result_from_logits(logits, dataset.labels.to(logits.device), len(dataset.classes))


def result_from_logits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> EvalResult:
    """Accuracy, per-class accuracy, confusion matrix and mean cross-entropy of float logits (N, k)."""
    pred = logits.argmax(1)
    confusion = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k).cpu().numpy()
    totals = confusion.sum(1)
    per_class = [float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i in range(k)]
    loss = float(nn.functional.cross_entropy(logits, labels)) if len(labels) else float("nan")
    bad = int((~torch.isfinite(logits).all(1)).sum()) if len(labels) else 0
    return EvalResult(float((pred == labels).float().mean()) if len(labels) else float("nan"), per_class, confusion,
                      loss, len(labels), bad)
