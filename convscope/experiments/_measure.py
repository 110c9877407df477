"""Measurements of one refine variant at one step: accuracies, losses, per-class accuracy, kernel responses on
their top-k images; and the two batch-norm treatments (frozen running statistics, or re-estimated ones)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..inspect.hooks import capture
from ..errors import ConfigError
from ..models.forward import iter_batches
from ..models.hooks import observe
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
        for _ in iter_batches(model, images_u8, norm, batch_size, eval=False):
            pass
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


Views = Callable[[nn.Module, torch.Tensor], torch.Tensor]   # (model, input (B, C, H, W)) -> logits (B, classes)


def plain_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float()


def logits_and_peaks(model: nn.Module, layer: str, images_u8: torch.Tensor, norm: Normalization,
                     views: Views | None = None, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass in eval mode: float32 logits (N, classes), computed as the run evaluates (``views``: the run's
    own logits, test-time views included; default the plain forward) in ``evaluate``'s batches, and (N, C)
    float64 peaks of each channel of ``layer`` (the maximum over positions, the value ``topk`` ranks images by)
    from the first forward of each batch, which ``views`` must make on the unchanged input (checked)."""
    peaks: list[torch.Tensor] = []
    first = {"on": False}

    def peak(name: str, a: torch.Tensor) -> None:                  # a: (B, C, H, W) or (B, C)
        if first["on"]:
            peaks.append(a.reshape(a.shape[0], a.shape[1], -1).amax(2).double() if a.ndim > 2 else a.double())

    def forward(x: torch.Tensor) -> torch.Tensor:
        def enter(m: nn.Module, inputs: tuple) -> None:
            if first["on"] and inputs[0] is not x:
                raise ConfigError("views: the first forward of a batch must take the unchanged input (the peaks "
                                  "are read from it); run the model on x before any other view")

        first["on"] = True
        with observe(forward=[(model, lambda m, i, o: first.__setitem__("on", False))], pre=[(model, enter)]), \
                capture(model, [layer], peak):
            return (views or plain_logits)(model, x)

    logits = [out for _, out in iter_batches(model, images_u8, norm, batch_size, forward=forward)]
    return torch.cat(logits), torch.cat(peaks)


def mean_on_owned(peaks: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """(C,): each channel's mean peak over the images it owns; ``peaks`` (N, C), ``owners`` (N, C) bool."""
    o = owners.double()
    return (peaks * o).sum(0) / o.sum(0).clamp(min=1)


def kept_fraction(peaks: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """(C,): the fraction of each channel's images in ``owners`` (N, C) bool (its top-k set, fixed before
    refinement) that are still among its top-k by ``peaks`` (N, C) now (ties: the lower index, as ``topk``)."""
    k = owners.sum(0)                                               # (C,) set sizes
    order = torch.sort(peaks, dim=0, descending=True, stable=True).indices   # (N, C) best first
    kept = torch.zeros(peaks.shape[1], dtype=torch.float64)
    for c in range(peaks.shape[1]):
        kept[c] = owners[order[:int(k[c]), c], c].double().sum() / max(int(k[c]), 1)
    return kept


def measure(model: nn.Module, norm: Normalization, views: Views | None, response: str, test: ImageDataset,
            test_owners: torch.Tensor, train_images: torch.Tensor, train_labels: torch.Tensor,
            chosen_pos: torch.Tensor, train_owners: tuple[torch.Tensor, torch.Tensor],
            per_channel: bool) -> tuple[dict, torch.Tensor]:
    """One row of a variant's curve, from two forward passes: the test set, and ``train_images`` (the chosen
    images together with every kernel's top-k training images; ``chosen_pos`` their rows of the chosen ones).
    ``test_owners``: (N_test, C) bool, each kernel's top-k test images; ``train_owners``: (rows of the top-k
    union, (U, C) bool owners) — both fixed before refinement. Returns the row and the (N_test,) bool of which
    test images are classified correctly (for paired statistics).

    Selectivity: each kernel's mean peak on its own top-k test images and on *all* test images; a kernel became
    more selective if the first rose by more than the second. ``topk_test_kept``: how much of each kernel's
    top-k test set is still its top-k."""
    k = len(test.classes)
    logits, peaks = logits_and_peaks(model, response, test.images, norm, views)
    t = result_from_logits(logits, test.labels, k)
    correct = logits.argmax(1) == test.labels
    r_test = mean_on_owned(peaks, test_owners)                      # (C,)
    r_all = peaks.mean(0)                                           # (C,) every test image
    kept = kept_fraction(peaks, test_owners)
    logits, peaks = logits_and_peaks(model, response, train_images, norm, views)
    ch = result_from_logits(logits[chosen_pos], train_labels[chosen_pos], k)
    r_train = mean_on_owned(peaks[train_owners[0]], train_owners[1])
    row = {"test_accuracy": t.accuracy, "test_loss": t.loss, "test_per_class": t.per_class,
           "chosen_accuracy": ch.accuracy, "chosen_loss": ch.loss, "gap": ch.accuracy - t.accuracy,
           "response_topk_train": float(r_train.mean()), "response_topk_test": float(r_test.mean()),
           "response_all_test": float(r_all.mean()), "topk_test_kept": float(kept.mean())}
    if per_channel:
        row["response_topk_train_per_channel"] = r_train.tolist()
        row["response_topk_test_per_channel"] = r_test.tolist()
        row["response_all_test_per_channel"] = r_all.tolist()
        row["topk_test_kept_per_channel"] = kept.tolist()
    return row, correct
