"""The one dataset object every loader returns, and the deterministic stratified split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError


@dataclass(frozen=True)
class ImageDataset:
    """A whole image-classification split held in memory.

    ``images`` is uint8 (N, C, H, W) and ``labels`` int64 (N,); ``classes[k]`` names label k.
    ``source`` says where the data came from (a file, a folder, or the embedded copy), and
    ``hflip_ok`` whether a horizontal mirror keeps the label (true for photos and clothes, false for digits).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    split: str
    source: str
    hflip_ok: bool = False
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be a uint8 tensor (N, C, H, W), got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: labels must be int64 of shape ({self.images.shape[0]},), "
                            f"got {self.labels.dtype} {tuple(self.labels.shape)}")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"{self.name}: labels must lie in [0, {len(self.classes) - 1}] "
                            f"(one per class name), found {int(self.labels.min())}..{int(self.labels.max())}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices: torch.Tensor | np.ndarray, split: str | None = None) -> ImageDataset:
        """The images at ``indices`` (a new dataset sharing class names and provenance); an index outside
        ``[-len, len)`` is a DataError naming it, not torch's IndexError."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        n = len(self.labels)
        bad = idx[(idx < -n) | (idx >= n)]
        if len(bad):
            raise DataError(f"indices: {int(bad[0])} is outside {self.name} ({self.split}, {n:,} images: indices "
                            f"0..{n - 1}, or -{n}..-1 from the end); give indices of images in the dataset")
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.name, split or self.split,
                            self.source, self.hflip_ok, dict(self.extra))

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, shape=({c}, {h}, {w}), "
                f"classes={len(self.classes)}, source={self.source!r})")


def _hash_key(salt: str, index: int) -> bytes:
    return hashlib.blake2b(f"{salt}:{index}".encode(), digest_size=8).digest()


def stratified_split(labels: np.ndarray, test_fraction: float, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, test), class by class, reproducibly on every platform and version.

    Each class's indices are ordered by a keyed hash (BLAKE2b of ``f"{salt}:{index}"``), which no RNG
    version change can alter; each class gives ``test_fraction`` of its images to test, rounded by the
    largest-remainder method so the test size is exactly ``round(test_fraction * N)``. Both outputs are sorted.
    """
    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_fraction
    take = np.floor(exact).astype(int)
    short = int(round(test_fraction * len(labels))) - int(take.sum())
    # largest remainders first; ties broken by class order, so the result is fully determined
    for k in sorted(range(len(classes)), key=lambda k: (-(exact[k] - take[k]), k))[:max(short, 0)]:
        take[k] += 1
    test = []
    for cls, n_test in zip(classes, take):
        members = np.flatnonzero(labels == cls)
        order = sorted(members.tolist(), key=lambda i: _hash_key(salt, i))
        test.extend(order[:n_test])
    test_idx = np.sort(np.asarray(test, dtype=np.int64))
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx
