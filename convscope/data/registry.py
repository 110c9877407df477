"""``convscope.data.load(name, split)``: every dataset behind one call, and the listing behind ``data list``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import cifar
from .catalog import (DATASETS, DIGIT_CLASSES, DIGITS_SPLIT_SALT, DIGITS_TEST_FRACTION, EMBEDDED_FILES,  # noqa: F401
                      FASHION_CLASSES, HANDWRITING, SPLITS, DatasetInfo, availability, embedded_dir, train_defaults)
from .dataset import ImageDataset, stratified_split
from .folder import FolderOptions, read_folder
from .idx import parse_idx, read_idx_bytes
from .sources import (
    CIFAR10,
    FASHION_MNIST,
    MNIST,
    RemoteSource,
    check_published,
    fetch,
    find_file,
    find_unpacked,
    read_verified,
)


def _check_split(name: str, split: str, valid: tuple[str, ...] = SPLITS) -> None:
    if split not in valid:
        raise DataError(f"dataset {name!r}: unknown split {split!r}; valid: {', '.join(valid)}")


def load_digits_all() -> tuple[np.ndarray, np.ndarray]:
    """All 10,000 embedded digits (N, 28, 28) uint8 and labels, after checking the files' SHA-256."""
    raw = {}
    for fname, sha in EMBEDDED_FILES.items():
        path = embedded_dir() / fname
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise DataError(f"{path}: SHA-256 differs from the shipped file's; reinstall convscope")
        raw[fname] = data
    images = read_idx_bytes(raw["digits-images-idx3-ubyte.gz"], "digits-images-idx3-ubyte.gz")
    labels = read_idx_bytes(raw["digits-labels-idx1-ubyte.gz"], "digits-labels-idx1-ubyte.gz")
    return images, labels


def _load_digits(split: str) -> ImageDataset:
    _check_split("digits", split, SPLITS + ("all",))
    images, labels = load_digits_all()
    if split != "all":
        train_idx, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SALT)
        idx = train_idx if split == "train" else test_idx
        images, labels = images[idx], labels[idx]
    return ImageDataset(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)),
                        DIGIT_CLASSES, "digits", split, f"embedded: {embedded_dir()}", hflip_ok=False)


def _load_idx_pair(source: RemoteSource, split: str, root, classes, hflip_ok: bool, download: bool) -> ImageDataset:
    _check_split(source.name, split)
    prefix = "train" if split == "train" else "t10k"
    img_name, lab_name = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
    paths = fetch(source, root, download_missing=download, names=(img_name, lab_name))   # the split's files only
    files = {f.name: f for f in source.files}
    img_path, lab_path = paths[img_name], paths[lab_name]
    images = parse_idx(read_verified(img_path, files[img_name]), str(img_path))
    labels = parse_idx(read_verified(lab_path, files[lab_name]), str(lab_path))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lab_path}: {labels.shape} labels for {len(images)} images in {img_path}")
    return ImageDataset(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)),
                        classes, source.name, split, str(img_path), hflip_ok=hflip_ok)


def _load_cifar10(split: str, root, download: bool) -> ImageDataset:
    _check_split("cifar10", split)
    folder = find_unpacked(CIFAR10, root)
    if folder is not None and find_file(CIFAR10, CIFAR10.files[0], root) is None:
        images, labels = cifar.read_cifar_folder(folder, split)
        where = str(folder)
    else:
        path = fetch(CIFAR10, root, download_missing=download)[CIFAR10.files[0].name]
        check_published(path, CIFAR10.files[0])  # checksum (streamed, nothing decompressed) before trusting it
        images, labels = cifar.read_cifar_archive(path, split, CIFAR10.files[0].raw_size)
        where = str(path)
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), cifar.CLASSES, "cifar10", split,
                        where, hflip_ok=True)


FOLDER_QUERY_KEYS = ("resize", "size", "channels", "max_pixels")


def folder_spec(spec: str, options: FolderOptions) -> tuple[Path, FolderOptions]:
    """``PATH`` or ``PATH?resize=fit&size=28x28&channels=1&max_pixels=N`` -> (path, options).

    The query form lets every place that takes a dataset *name* (``convscope train --dataset``, a config
    file) choose folder options too; its values override ``options``. A path that exists as written,
    question mark included, is taken literally.
    """
    if "?" not in spec or Path(spec).expanduser().exists():
        return Path(spec).expanduser(), options
    spec, query = spec.rsplit("?", 1)
    changes: dict = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in FOLDER_QUERY_KEYS:
            raise DataError(f"folder:{spec}?{query}: {item!r} is not KEY=VALUE with KEY one of "
                            f"{', '.join(FOLDER_QUERY_KEYS)} (e.g. folder:{spec}?resize=fit&size=28x28)")
        try:
            if key == "size":
                h, w = (int(v) for v in value.lower().split("x"))
                changes[key] = (h, w)
            elif key in ("channels", "max_pixels"):
                changes[key] = int(value)
            else:
                changes[key] = value
        except ValueError:
            raise DataError(f"folder:{spec}?{query}: {key}={value!r} is not valid "
                            f"({'HxW, e.g. 28x28' if key == 'size' else 'an integer'})") from None
    return Path(spec).expanduser(), replace(options, **changes)


def _load_folder(spec: str, split: str, options: FolderOptions) -> ImageDataset:
    if not spec.partition("?")[0].strip():   # "folder:" alone read the current folder as the dataset
        raise DataError("folder dataset: no path after 'folder:'; give folder:PATH, the folder that holds one "
                        "subfolder per class (or train/ and test/ with those)")
    path, options = folder_spec(spec, options)
    options.validate()
    if not path.exists():
        raise DataError(f"folder dataset {path}: no such folder")
    has_splits = (path / "train").is_dir() and (path / "test").is_dir()
    half = [s for s in SPLITS if (path / s).is_dir()]
    if len(half) == 1 and any(p.is_dir() for p in (path / half[0]).iterdir()):
        # train/ (or test/) holding class folders, without the other: a split layout cut in half, which would
        # otherwise be read as one class named "train" with nested folders
        other = next(s for s in SPLITS if s != half[0])
        raise DataError(f"folder dataset {path}: has {half[0]}/ with class folders but no {other}/; the split "
                        f"layout needs both ({path / 'train'} and {path / 'test'}, each with one subfolder per "
                        f"class), or put the class folders directly in {path} for an 80/20 split")
    if has_splits:
        _check_split(f"folder:{path}", split)
        images, labels, classes = read_folder(path / split, options)
    else:
        _check_split(f"folder:{path}", split, SPLITS + ("all",))
        images, labels, classes = read_folder(path, options)
        if split != "all":
            train_idx, test_idx = stratified_split(labels, 0.2, f"folder:{path.resolve()}")
            idx = train_idx if split == "train" else test_idx
            if len(idx) == 0:
                raise DataError(f"folder dataset {path}: the {split} split is empty ({len(labels)} image(s) in all, "
                                "divided 80/20 per class); add images, or use split 'all'")
            images, labels = images[idx], labels[idx]
    if split == "train" and len(classes) < 2:
        # a classifier trained on one class reaches "100%" by always answering it: refuse rather than mislead
        raise DataError(f"folder dataset {path}: {len(classes)} class folder ({', '.join(classes)}); training a "
                        "classifier needs at least 2 classes, one subfolder each (PATH/<class>/<images>)")
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), classes, f"folder:{path}", split,
                        str(path.resolve()), hflip_ok=False)


def load(name: str, split: str = "train", root: str | os.PathLike[str] | None = None, *, download: bool = True,
         folder_options: FolderOptions | None = None) -> ImageDataset:
    """Load a dataset split as an :class:`ImageDataset` (uint8 images N x C x H x W, int64 labels).

    ``name``: ``digits`` (embedded, offline), ``mnist``, ``fashion-mnist``, ``cifar10`` or ``folder:PATH``
    (``folder:PATH?resize=fit&size=28x28`` sets folder options inside the name).
    ``root``: a folder searched first (and where downloads go). ``download=False`` never touches the network.
    """
    if not isinstance(name, str):
        raise DataError(f"name: expected a dataset name (str), got {type(name).__name__}; valid: "
                        f"{', '.join(DATASETS)}, folder:PATH")
    if not isinstance(split, str):
        raise DataError(f"split: expected 'train', 'test' (or 'all'), got {type(split).__name__} {split!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise DataError(f"root: expected a folder path (str or Path), got {type(root).__name__}")
    if root is not None and os.path.exists(root) and not os.path.isdir(root):   # even where this dataset ignores it
        raise DataError(f"{os.fspath(root)}: not a folder; the data folder (--data-dir, root=) is where datasets are "
                        "looked for and downloaded: give a folder, or leave it out for the user cache")
    if folder_options is not None and not isinstance(folder_options, FolderOptions):
        raise DataError(f"folder_options: expected FolderOptions, got {type(folder_options).__name__}")
    if name.startswith("folder:"):
        return _load_folder(name[len("folder:"):], split, folder_options or FolderOptions())
    if name == "digits":
        return _load_digits(split)
    if name == "mnist":
        return _load_idx_pair(MNIST, split, root, DIGIT_CLASSES, False, download)
    if name == "fashion-mnist":
        return _load_idx_pair(FASHION_MNIST, split, root, FASHION_CLASSES, True, download)
    if name == "cifar10":
        return _load_cifar10(split, root, download)
    raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}, folder:PATH")
