"""The dataset catalogue: what each built-in dataset is, where its files are looked for, and the training defaults
it declares; no torch and no NumPy, so ``convscope data list`` answers at once. registry.py loads them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .sources import CIFAR10, FASHION_MNIST, MNIST, RemoteSource, find_file, find_unpacked

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# The embedded digits: SHA-256 of the shipped files (scripts/build_embedded_digits.py prints them).
EMBEDDED_FILES = {
    "digits-images-idx3-ubyte.gz": "d3ca3edc94479149c931c39d29bea0c74930710546d49c0f007a2743c1436a66",
    "digits-labels-idx1-ubyte.gz": "90a5104fcc3b28740476f5545ec6579a11daed8a4330dc2ede05ea153f69fb98",
}
DIGITS_TEST_FRACTION = 0.2  # 8,000 train / 2,000 test, stratified by class
DIGITS_SPLIT_SALT = "convscope-digits-v1"


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset. ``train_defaults``: training settings this dataset wants by default, for the keys a
    run leaves unset (epochs, translate, stroke, blur, batch_size, lr; convscope.training.config.GENERIC_DEFAULTS
    otherwise)."""

    name: str
    description: str
    source: RemoteSource | None = None
    train_defaults: dict = field(default_factory=dict)


# Real handwriting needs stroke-width and blur variation (bench/handwriting.py chose stroke 0.6 + blur 0.8).
HANDWRITING = {"stroke": 0.6, "blur": 0.8}


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "10,000 real MNIST digits shipped inside convscope (8,000 train / 2,000 test)",
                          train_defaults=HANDWRITING),
    "mnist": DatasetInfo("mnist", "MNIST, 60,000 train / 10,000 test, 28 x 28 grayscale", MNIST,
                         train_defaults=HANDWRITING),
    # Speed round 2 (issue 15, bench/results/recipe_ablation_round2_fashion-mnist.json): without translation a
    # run learns the clothes much sooner (4 epochs: 92.96% against 91.91% with +-2 px shifts); 6 epochs without
    # shifts end at 93.4%, as the 12 epochs with shifts did, in half the time. Speed round 3 (issue 26, docs/speed.md):
    # batches of 128 at lr 0.05 (the same rate per image) learn more per epoch and run faster per image on a
    # 2-core CPU; 5 epochs end at 93.20-93.40% in 5 of 5 seeds, where 5 epochs of 256 ended at 92.92-93.28%.
    "fashion-mnist": DatasetInfo("fashion-mnist", "Fashion-MNIST, 60,000 / 10,000, 28 x 28 grayscale", FASHION_MNIST,
                                 train_defaults={"epochs": 5, "translate": 0, "batch_size": 128, "lr": 0.05}),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10 binary version, 50,000 / 10,000, 32 x 32 RGB", CIFAR10),
}
SPLITS = ("train", "test")


def train_defaults(name: str) -> dict:
    """The training defaults dataset ``name`` declares (a copy; {} for folder datasets and unknown names)."""
    info = DATASETS.get(name)
    return dict(info.train_defaults) if info is not None else {}


def embedded_dir() -> Path:
    return Path(str(resources.files("convscope.data") / "embedded"))


def availability(name: str, root: str | os.PathLike[str] | None = None) -> tuple[bool, str]:
    """(available without a download, where it was found or what is missing) — never downloads."""
    info = DATASETS[name]
    if info.source is None:
        return True, f"embedded: {embedded_dir()}"
    if (folder := find_unpacked(info.source, root)) is not None:
        return True, str(folder)
    found = [find_file(info.source, f, root) for f in info.source.files]
    if all(found):
        folders = sorted({str(p.parent) for p in found if p})
        return True, ", ".join(folders)
    missing = [f.name for f, p in zip(info.source.files, found) if p is None]
    return False, f"missing {', '.join(missing)} (would download from {info.source.mirrors[0]})"
