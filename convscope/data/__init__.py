"""Datasets as whole uint8 tensors behind one call: ``load(name, split, root=None)``."""

from .dataset import ImageDataset, stratified_split
from .folder import FolderOptions
from .idx import read_idx, write_idx
from .normalize import Normalization
from .registry import DATASETS, availability, load

__all__ = ["DATASETS", "FolderOptions", "ImageDataset", "Normalization", "availability", "load", "read_idx",
           "stratified_split",
           "write_idx"]
