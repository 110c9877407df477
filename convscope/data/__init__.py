"""Datasets as whole uint8 tensors behind one call: ``load(name, split, root=None)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and the API docs; at run time each name is imported on first use
    from .dataset import ImageDataset, stratified_split
    from .folder import FolderOptions
    from .idx import read_idx, write_idx
    from .normalize import Normalization
    from .catalog import DATASETS, availability
    from .registry import load

__all__ = ["DATASETS", "FolderOptions", "ImageDataset", "Normalization", "availability", "load", "read_idx",
           "stratified_split",
           "write_idx"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ImageDataset": ".dataset", "stratified_split": ".dataset", "FolderOptions": ".folder", "read_idx": ".idx",
    "write_idx": ".idx", "Normalization": ".normalize", "DATASETS": ".catalog", "availability": ".catalog",
    "load": ".registry"
})
