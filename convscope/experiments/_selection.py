"""Which training images each refine variant trains on: the kernels' top images, as many random ones, or as
many representative ones (per class, the images nearest the class centroid in the penultimate features)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..inspect.topk import TopRecord
from ..models.forward import iter_batches
from ..models.hooks import observe

REPRESENTATIVE_RULE = ("per class, the training images nearest the class centroid (Euclidean) in the penultimate "
                       "features (the input of the last nn.Linear), class-balanced: the same total as the top-image "
                       "set, split evenly over the classes (largest remainder to the lower class index)")


def topk_union(records: list[list[TopRecord]]) -> torch.Tensor:
    """The sorted dataset indices of every channel's top-k images (each image once)."""
    return torch.tensor(sorted({r.index for recs in records for r in recs}), dtype=torch.int64)


def owner_matrix(records: list[list[TopRecord]], n: int) -> torch.Tensor:
    """(n, C) bool: entry (i, c) says dataset image i is one of channel c's top-k images."""
    own = torch.zeros(n, len(records), dtype=torch.bool)
    for c, recs in enumerate(records):
        for r in recs:
            own[r.index, c] = True
    return own


def random_subset(n_total: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` distinct indices of ``range(n_total)``, drawn uniformly with ``generator``, sorted."""
    return torch.randperm(n_total, generator=generator)[:n].sort().values


def balanced_counts(n: int, available: list[int]) -> list[int]:
    """``n`` split evenly over classes (largest remainder to the lower class index), capped by what each class
    has; what a small class cannot give goes to the others, so the total stays ``n`` (when it can)."""
    counts = [0] * len(available)
    left = min(n, sum(available))
    while left > 0:
        open_ = [c for c in range(len(available)) if counts[c] < available[c]]
        share, extra = divmod(left, len(open_))
        for j, c in enumerate(open_):
            give = min(share + (1 if j < extra else 0), available[c] - counts[c])
            counts[c] += give
            left -= give
    return counts


@contextlib.contextmanager
def _last_linear_input(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collects the input of the model's last ``nn.Linear`` on each forward (a scoped pre-hook)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("variant 'representative': the model has no nn.Linear layer whose input could serve as "
                          "penultimate features; leave the variant out (variants=...)")
    store: list[torch.Tensor] = []
    with observe(pre=[(linears[-1], lambda m, inputs: store.append(inputs[0].detach().flatten(1)))]):
        yield store


def penultimate_features(model: nn.Module, dataset: ImageDataset, norm: Normalization,
                         batch_size: int = 1000) -> torch.Tensor:
    """(N, D) float64: the input of the model's last linear layer for every image, in eval mode."""
    with _last_linear_input(model) as store:
        for _ in iter_batches(model, dataset.images, norm, batch_size):
            pass
    return torch.cat(store).double()


def representative_subset(features: torch.Tensor, labels: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """The :data:`REPRESENTATIVE_RULE` applied to ``features`` (N, D): ``n`` sorted indices."""
    available = torch.bincount(labels, minlength=num_classes).tolist()
    chosen = []
    for c, m in enumerate(balanced_counts(n, available)):
        members = torch.nonzero(labels == c).flatten()
        if m == 0:
            continue
        f = features[members]                                      # (n_c, D)
        dist = (f - f.mean(0, keepdim=True)).pow(2).sum(1)         # squared distance to the class centroid
        order = torch.sort(dist, stable=True).indices[:m]          # ties: the lower dataset index
        chosen.append(members[order])
    return torch.cat(chosen).sort().values


def owners_random(n: int, channels: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, C) bool: for each channel, ``k`` distinct images of ``range(n)`` drawn uniformly with ``generator``."""
    own = torch.zeros(n, channels, dtype=torch.bool)
    for c in range(channels):
        own[torch.randperm(n, generator=generator)[:min(k, n)], c] = True
    return own


def owners_from_pool(pool: torch.Tensor, n: int, channels: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, C) bool: for each channel, ``k`` distinct images drawn uniformly from ``pool`` (dataset indices)."""
    own = torch.zeros(n, channels, dtype=torch.bool)
    for c in range(channels):
        own[pool[torch.randperm(len(pool), generator=generator)[:min(k, len(pool))]], c] = True
    return own


def owners_bottom(peaks: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C) bool: each channel's ``k`` images with the lowest peak in ``peaks`` (N, C) — the images it responds
    to least (ties: the lower dataset index)."""
    order = torch.sort(peaks, dim=0, stable=True).indices[:k]      # (k, C) ascending
    own = torch.zeros(peaks.shape, dtype=torch.bool)
    own.scatter_(0, order, True)
    return own
