"""Which images a run trained on: the one answer, used by training itself and by everything that later needs
"the run's training images" (refine). It is a pure function of the stored training split and four config
keys (dataset, train_subset, val_fraction, seed), so it can be recomputed from a run directory at any time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import load
from ..data.dataset import ImageDataset, stratified_split


@dataclass(frozen=True)
class TrainingSplit:
    """The images a run trained on and those it held out for validation, as datasets and as (sorted) row
    indices into the dataset's stored ``train`` split."""

    train: ImageDataset
    val: ImageDataset | None
    train_indices: np.ndarray      # (N_train,) int64
    val_indices: np.ndarray        # (N_val,) int64; empty without a validation split


def split_indices(labels: np.ndarray, train_subset: int, val_fraction: float, seed: int
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """(training rows or None for all of them, validation rows) of a stored train split with ``labels`` (N,):
    first a class-stratified subset of ``train_subset`` images (0: all; datasets are often sorted by class),
    then ``val_fraction`` of those held out, stratified with a salt of the seed."""
    rows = None
    if 0 < train_subset < len(labels):
        _, rows = stratified_split(labels, train_subset / len(labels), "subset")
    val = np.empty(0, dtype=np.int64)
    if val_fraction > 0:
        kept = np.arange(len(labels)) if rows is None else rows
        tr, va = stratified_split(labels[kept], val_fraction, f"val:{seed}")
        rows, val = kept[tr], kept[va]
    return rows, val


def training_split(run, full: ImageDataset | None = None) -> TrainingSplit:
    """The training (and validation) images of ``run`` (a ``Run`` or its ``TrainConfig``). ``full``: the
    dataset's stored ``train`` split if already loaded (else it is loaded as training loads it)."""
    cfg = getattr(run, "config", run)
    if full is None:
        full = load(cfg.data.dataset, "train", cfg.data.data_dir)
    rows, val = split_indices(full.labels.numpy(), cfg.data.train_subset, cfg.data.val_fraction,
                              cfg.runtime.seed)
    train = full if rows is None else full.subset(rows)
    return TrainingSplit(train, full.subset(val, "val") if cfg.data.val_fraction > 0 else None,
                         np.arange(len(full), dtype=np.int64) if rows is None else rows, val)
