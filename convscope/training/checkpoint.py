"""Checkpoints and weights in safetensors: nothing is ever unpickled.

A checkpoint is one safetensors file: every tensor of the training state (model, optimizer, RNG states)
as a named tensor, and the rest of the state (numbers, strings, nesting) as a JSON *skeleton* in the
file's metadata, with the SHA-256 of skeleton + tensor bytes, so corruption is detected on load.
Writes are atomic (temp file, fsync, rename): the previous checkpoint survives a crash at any instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from .._atomic import atomic_write_bytes
from ..errors import ConvscopeError

FORMAT = "convscope-state-v1"


class CheckpointError(ConvscopeError):
    """A checkpoint or weights file is missing, truncated, tampered with, or not safetensors."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors by {"$t": name} and encode non-JSON structures (int keys, tuples) losslessly."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu").contiguous().clone()
        return {"$t": name}
    if isinstance(obj, dict):
        return {"$d": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"$tuple": [_pack(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, tensors) for v in obj]
    if isinstance(obj, float):
        return {"$f": repr(obj)}  # exact round trip, inf and nan included
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "$t" in obj:
            return tensors[obj["$t"]]
        if "$d" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["$d"]}
        if "$tuple" in obj:
            return tuple(_unpack(v, tensors) for v in obj["$tuple"])
        if "$f" in obj:
            return float(obj["$f"])
    return obj


def _digest(skeleton: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(skeleton.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_not_pickle(path: Path) -> None:
    """Refuse pickle and torch.save (zip) files with a clear message, before anything parses them."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise CheckpointError(f"{path}: is a pickle / torch.save file; convscope never unpickles (it can run code). "
                              "Convert trusted weights with torch.load(weights_only=True) and "
                              "safetensors.torch.save_file")


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a training state (nested dicts/lists of tensors and plain values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_pack(state, tensors))
    meta = {"format": FORMAT, "skeleton": skeleton, "sha256": _digest(skeleton, tensors)}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _open(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    check_not_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupt ({e})") from e
    return meta, tensors


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_state`, verifying its SHA-256."""
    path = Path(path)
    meta, tensors = _open(path)
    if meta.get("format") != FORMAT or "skeleton" not in meta:
        raise CheckpointError(f"{path}: not a convscope checkpoint (format {meta.get('format')!r})")
    if _digest(meta["skeleton"], tensors) != meta.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 mismatch: the checkpoint was modified or corrupted; "
                              "delete it to start over, or restore it from a backup")
    return _unpack(json.loads(meta["skeleton"]), tensors)


def save_weights(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    """A model's state_dict as plain safetensors (readable by any safetensors tool), atomically."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_weights(path: str | os.PathLike[str], expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load safetensors weights; with ``expected_sha256``, a file that differs is refused."""
    path = Path(path)
    if expected_sha256 is not None and path.is_file():
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(f"{path}: SHA-256 {actual} differs from the recorded {expected_sha256}: "
                                  "the file was truncated, tampered with or replaced")
    return _open(path)[1]
