"""Checkpoints and weights in safetensors: nothing is ever unpickled.

A checkpoint is one safetensors file: every tensor of the training state (model, optimizer, RNG states)
as a named tensor, and the rest of the state (numbers, strings, nesting) as a JSON *skeleton* in the
file's metadata, with the SHA-256 of skeleton + tensor bytes, so corruption is detected on load.
Writes are atomic (temp file, fsync, rename): the previous checkpoint survives a crash at any instant.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from .._atomic import atomic_write_bytes
from ..data.safe_io import open_regular
from ..errors import ConvscopeError, DataError

FORMAT = "convscope-state-v1"


class CheckpointError(ConvscopeError):
    """A checkpoint or weights file is missing, truncated, tampered with, or not safetensors."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with _open_regular(Path(path), "file") as f:  # a FIFO or device would never end
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


def _open_regular(path: Path, what: str = "safetensors file"):
    """Open a regular file for reading; a FIFO or device (which could block or never end) is refused first."""
    try:
        return open_regular(path, what)
    except DataError as e:
        raise CheckpointError(str(e)) from None


def check_not_pickle(path: Path) -> None:
    """Refuse pickle and torch.save (zip) files with a clear message, before anything parses them.

    A safetensors file starts with its header's length (8 bytes, little-endian) and then ``{``; its first
    byte can be 0x80 (a length of 128 + 256 k), so the pickle test applies only to what is not safetensors.
    """
    with _open_regular(path) as f:
        head = f.read(9)
    if head[8:9] == b"{":
        return
    if (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04":
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
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    check_not_pickle(path)  # also refuses anything but a regular file
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupt ({e})") from e
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path}: malformed safetensors metadata (expected a map of strings)")
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
    try:
        return _unpack(json.loads(meta["skeleton"]), tensors)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: malformed checkpoint skeleton ({type(e).__name__}: {e}); "
                              "the file was not written by convscope") from None


def save_weights(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor],
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
    return _open(path)[1]


# ---- the JSON files of a run directory ---------------------------------------------------------------------------

MAX_JSON_BYTES = 64 << 20  # config.json, model.json, summary.json are kilobytes; anything near this is not ours


def read_json_file(path: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of a run directory: a regular file (a FIFO or device is refused), at most ``max_bytes``,
    nesting bounded by Python's recursion limit (a deeply nested file is an error, not a crash)."""
    path = Path(path)
    try:
        with open_regular(path, "JSON file") as f:
            size = os.fstat(f.fileno()).st_size  # read what is there (+1 to see growth), not a max_bytes buffer
            data = f.read(min(size, max_bytes) + 1)
    except DataError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from e
    if len(data) > max_bytes:
        raise CheckpointError(f"{path}: more than {max_bytes:,} bytes; not a convscope run file")
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: unreadable or not JSON ({type(e).__name__}: {e})") from None


def _finite_list(v: Any, n: int, positive: bool) -> bool:
    return (isinstance(v, list) and len(v) in (1, n)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    and (x > 0 or not positive) for x in v))


def check_manifest(meta: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate the structure of a run's model.json before anything is built from it; errors name the key."""
    def bad(key: str, want: str) -> CheckpointError:
        got = meta.get(key, "(missing)") if isinstance(meta, dict) else meta
        return CheckpointError(f"{path}: {key} must be {want}, got {str(got)[:80]!r}; the file is corrupt or "
                               "was not written by convscope")

    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    sha = meta.get("sha256")
    if not isinstance(sha, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sha.items()):
        raise bad("sha256", "a map of file names to SHA-256 hex digests")
    if not isinstance(meta.get("model"), str):
        raise bad("model", "a model name (str)")
    if not isinstance(meta.get("model_args", {}), dict) or not all(isinstance(k, str) for k in meta.get("model_args", {})):
        raise bad("model_args", "a map of argument names to values")
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 16 for v in shape)):
        raise bad("input_shape", "[C, H, W], three ints from 1 to 65536")
    n = meta.get("num_classes")
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1 << 20):
        raise bad("num_classes", "a positive int")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) == n and all(isinstance(c, str) for c in classes)):
        raise bad("classes", f"a list of num_classes={n} names")
    norm = meta.get("normalization")
    if not (isinstance(norm, dict) and _finite_list(norm.get("mean"), shape[0], False)
            and _finite_list(norm.get("std"), shape[0], True)):
        raise bad("normalization", f"{{'mean': [...], 'std': [...]}} with 1 or {shape[0]} finite values "
                                   "(std positive)")
    if not isinstance(meta.get("tta", False), bool):
        raise bad("tta", "true or false")
    return meta
