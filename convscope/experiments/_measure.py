"""Measurements of one refine variant at one step: accuracies, losses, per-class accuracy, kernel responses on
their top-k images; and the two batch-norm treatments (frozen running statistics, or re-estimated ones)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..inspect.hooks import capture
from ..training.evaluate import result_from_logits

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


@contextlib.contextmanager
def reestimated_bn(model: nn.Module, images_u8: torch.Tensor, norm: Normalization,
                   batch_size: int = 500) -> Iterator[None]:
    """Within the block, every batch-norm layer holds statistics re-estimated on ``images_u8`` (an exact
    average over the batches, not a running one); the original buffers and modes come back on leaving."""
    bns = bn_modules(model)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
             for m in bns]
    modes = {m: m.training for m in model.modules()}
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None                                  # cumulative average of the batches' statistics
        model.eval()
        for m in bns:
            m.train()                                          # only BN in train mode: dropout etc. stay off
        with torch.no_grad():
            for i in range(0, len(images_u8), batch_size):
                model(norm.apply(images_u8[i:i + batch_size]))
        model.eval()
        yield
    finally:
        for m, (mean, var, n, momentum) in zip(bns, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(n)
            m.momentum = momentum
        for m, t in modes.items():
            m.train(t)


@torch.no_grad()
def logits_and_peaks(model: nn.Module, layer: str, images_u8: torch.Tensor, norm: Normalization, tta: bool = False,
                     batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass in eval mode: float32 logits (N, classes), computed exactly as ``evaluate`` does (same batches;
    with ``tta`` the mean with the mirror's logits), and (N, C) float64 peaks of each channel of ``layer`` (the
    maximum over positions, the value ``topk`` ranks images by; from the unmirrored images)."""
    peaks: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    state = {"on": True}

    def reduce(name: str, a: torch.Tensor) -> None:
        if state["on"]:
            peaks.append(a.reshape(a.shape[0], a.shape[1], -1).amax(2).double() if a.ndim > 2 else a.double())

    was_training = model.training
    model.eval()
    try:
        with capture(model, [layer], reduce):
            for i in range(0, len(images_u8), batch_size):
                x = norm.apply(images_u8[i:i + batch_size])
                state["on"] = True
                out = model(x).float()
                if tta:
                    state["on"] = False
                    out = 0.5 * (out + model(x.flip(3)).float())
                logits.append(out)
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(peaks)


def mean_on_owned(peaks: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """(C,): each channel's mean peak over the images it owns; ``peaks`` (N, C), ``owners`` (N, C) bool."""
    o = owners.double()
    return (peaks * o).sum(0) / o.sum(0).clamp(min=1)


def measure(model: nn.Module, norm: Normalization, tta: bool, response: str, test: ImageDataset,
            test_owners: tuple[torch.Tensor, torch.Tensor], train_images: torch.Tensor, train_labels: torch.Tensor,
            chosen_pos: torch.Tensor, train_owners: tuple[torch.Tensor, torch.Tensor], per_channel: bool) -> dict:
    """One row of a variant's curve, from two forward passes: the test set, and ``train_images`` (the chosen
    images together with every kernel's top-k training images; ``chosen_pos`` their rows of the chosen ones).
    ``*_owners``: (rows of the top-k union, (U, channels) bool owners) — each kernel's top-k images, fixed
    before refinement."""
    k = len(test.classes)
    logits, peaks = logits_and_peaks(model, response, test.images, norm, tta)
    t = result_from_logits(logits, test.labels, k)
    r_test = mean_on_owned(peaks[test_owners[0]], test_owners[1])
    logits, peaks = logits_and_peaks(model, response, train_images, norm, tta)
    ch = result_from_logits(logits[chosen_pos], train_labels[chosen_pos], k)
    r_train = mean_on_owned(peaks[train_owners[0]], train_owners[1])
    row = {"test_accuracy": t.accuracy, "test_loss": t.loss, "test_per_class": t.per_class,
           "chosen_accuracy": ch.accuracy, "chosen_loss": ch.loss, "gap": ch.accuracy - t.accuracy,
           "response_topk_train": float(r_train.mean()), "response_topk_test": float(r_test.mean())}
    if per_channel:
        row["response_topk_train_per_channel"] = r_train.tolist()
        row["response_topk_test_per_channel"] = r_test.tolist()
    return row
