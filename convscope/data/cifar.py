"""CIFAR-10, binary version: fixed 3,073-byte records (1 label byte, 3 x 32 x 32 pixels, R then G then B).

Read straight out of the published ``cifar-10-binary.tar.gz`` (only the expected regular members;
nothing is extracted to disk) or out of an unpacked ``cifar-10-batches-bin`` folder. Never unpickles.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .safe_io import BoundedGunzip, open_regular, read_regular

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_FILE = 10_000


def parse_records(data: bytes, name: str, expected: int | None = PER_FILE) -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR-10 binary records into images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    if len(data) % RECORD:
        raise DataError(f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                        "(truncated or not a CIFAR-10 binary batch)")
    n = len(data) // RECORD
    if expected is not None and n != expected:
        raise DataError(f"{name}: holds {n} records, a CIFAR-10 batch holds {expected}")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(n, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if n and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{name}: record {bad} has label {labels[bad]}, CIFAR-10 labels are 0..9")
    return rec[:, 1:].reshape(n, 3, 32, 32).copy(), labels


def _members(split: str) -> tuple[str, ...]:
    if split == "train":
        return TRAIN_FILES
    if split == "test":
        return TEST_FILES
    raise DataError(f"cifar10: unknown split {split!r}; valid: 'train', 'test'")


def read_cifar_archive(path: Path, split: str, max_stream_bytes: int = 190_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Read one split from the tar.gz archive, touching only its expected regular-file members.

    The archive is read as a stream through a bounded gunzip: at most ``max_stream_bytes`` are ever
    decompressed (the published tar stream is 184 MB), and a member is read only if it has exactly the size
    of a CIFAR-10 batch, so neither a decompression bomb nor an oversized member can exhaust memory.
    """
    wanted = _members(split)
    chunks: dict[str, bytes] = {}
    try:
        with open_regular(path, "CIFAR-10 archive") as raw, \
                tarfile.open(fileobj=BoundedGunzip(raw, max_stream_bytes, str(path)), mode="r|") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile():
                    if member.size != RECORD * PER_FILE:
                        raise DataError(f"{path}: member {member.name} holds {member.size:,} bytes, a CIFAR-10 "
                                        f"batch holds {RECORD * PER_FILE:,}; it is not the CIFAR-10 binary version")
                    f = tar.extractfile(member)
                    if f is not None:
                        chunks[base] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable tar.gz archive ({e}); delete it and fetch it again") from e
    missing = [m for m in wanted if m not in chunks]
    if missing:
        raise DataError(f"{path}: archive lacks {', '.join(missing)}; it is not the CIFAR-10 binary version")
    return _stack([parse_records(chunks[m], f"{path}:{m}") for m in wanted])


def read_cifar_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split from an unpacked ``cifar-10-batches-bin`` folder (regular files of the exact size only)."""
    parts = []
    for m in _members(split):
        p = folder / m
        if not p.exists():
            raise DataError(f"{p}: missing; the folder {folder} is not a complete unpacked CIFAR-10 binary version")
        parts.append(parse_records(read_regular(p, RECORD * PER_FILE, "CIFAR-10 batch"), str(p)))
    return _stack(parts)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
