"""Weights files: a model's ``state_dict`` as plain safetensors, SHA-256 checked, never unpickled; and a
digest of a state's values that is equal exactly when the weights are bit-identical."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from .._atomic import atomic_write_bytes
from ..data.safe_io import open_regular
from ..errors import ConvscopeError, DataError


class CheckpointError(ConvscopeError):
    """A checkpoint or weights file is missing, truncated, tampered with, or not safetensors."""


def _open_regular(path: Path, what: str = "safetensors file"):
    """Open a regular file for reading; a FIFO or device (which could block or never end) is refused first."""
    try:
        return open_regular(path, what)
    except DataError as e:
        raise CheckpointError(str(e)) from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with _open_regular(Path(path), "file") as f:  # a FIFO or device would never end
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_not_pickle(path: Path) -> None:
    """Refuse pickle and torch.save (zip) files with a clear message, before anything parses them.

    A safetensors file starts with its header's length (8 bytes, little-endian) and the header's ``{``; that
    length's first byte may well be 0x80, the first byte of a pickle, so the safetensors layout is checked
    first. A file cut short keeps that layout: the safetensors reader then reports it as truncated. (A pickle's
    ninth byte is inside its frame length or torch's magic number, which is never ``{`` in practice.)"""
    with _open_regular(path) as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise CheckpointError(f"{path}: is a pickle / torch.save file; convscope never unpickles (it can run code). "
                              "Convert trusted weights with torch.load(weights_only=True) and "
                              "safetensors.torch.save_file")


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file; anything else is a :class:`CheckpointError`."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    check_not_pickle(path)  # also refuses anything but a regular file
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupt ({e})") from e
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path}: malformed safetensors metadata (expected a map of strings)")
    return meta, tensors


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """A model's state_dict as plain safetensors (readable by any safetensors tool), atomically."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_weights(path: str | os.PathLike[str], expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load safetensors weights; with ``expected_sha256``, a file that differs is refused."""
    path = Path(path)
    if expected_sha256 is not None and path.exists():
        actual = sha256_file(path)  # refuses a FIFO or device
        if actual != expected_sha256:
            raise CheckpointError(f"{path}: SHA-256 {actual} differs from the recorded {expected_sha256}: "
                                  "the file was truncated, tampered with or replaced")
    return read_safetensors(path)[1]


def check_finite_state(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Weights a model can compute with: a NaN or infinite value in any floating tensor makes every output that
    depends on it NaN (predictions, rankings, maps that mean nothing), so it is refused where the weights enter,
    naming the file and the tensors."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())}
    if bad:
        listed = ", ".join(f"{k} ({n:,} of {state[k].numel():,})" for k, n in list(bad.items())[:5])
        raise CheckpointError(f"{source}: NaN or infinite weights in {len(bad)} tensor(s): {listed}"
                              f"{', ...' if len(bad) > 5 else ''}; the model's outputs would be NaN. Use weights "
                              "saved before the training diverged (or retrain with a lower learning rate)")


def named_values_sha256(state: Mapping[str, torch.Tensor], keys: Iterable[str] | None = None) -> str:
    """SHA-256 over (key name, raw bytes of the tensor) for each key in order (default: ``state``'s order).
    Pass ``model.state_dict().keys()`` to digest a state in the model's order, whatever order it was saved in."""
    h = hashlib.sha256()
    for k in (state if keys is None else keys):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
