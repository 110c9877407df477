"""Checkpoints and weights in safetensors: nothing is ever unpickled.

A checkpoint is one safetensors file: every tensor of the training state (model, optimizer, RNG states)
as a named tensor, and the rest of the state (numbers, strings, nesting) as a JSON *skeleton* in the
file's metadata, with the SHA-256 of skeleton + tensor bytes, so corruption is detected on load.
Writes are atomic (temp file, fsync, rename): the previous checkpoint survives a crash at any instant.

The training state inside is versioned (``"version"``): :func:`upgrade_state` brings a state written by an
older convscope to today's layout, filling every key a later version added with the value that reproduces
the older behaviour, so adding state never breaks resuming an older checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save

from .._atomic import atomic_write_bytes
from ..models.weights import CheckpointError, load_weights, read_safetensors, save_weights, sha256_file

__all__ = ["CheckpointError", "STATE_VERSION", "load_state", "load_weights", "save_state", "save_weights",
           "sha256_file", "upgrade_state"]

FORMAT = "convscope-state-v1"   # the file encoding (safetensors + JSON skeleton); the state has its own version
STATE_VERSION = 4

# Keys each state version added, with the value a state written before it is resumed with. A version that adds
# a key adds it here; only a change of layout needs a migration function as well (versions 1 -> 2, 3 -> 4 below).
ADDED_KEYS: dict[int, dict[str, Any]] = {
    2: {"callbacks": {}},         # state of callbacks that keep some (none in 0.1)
    3: {"data_sha256": None},     # fingerprint of the training data (None: not recorded, not checked)
}


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


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a training state (nested dicts/lists of tensors and plain values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_pack(state, tensors))
    meta = {"format": FORMAT, "skeleton": skeleton, "sha256": _digest(skeleton, tensors)}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_state`, verifying its SHA-256."""
    path = Path(path)
    meta, tensors = read_safetensors(path)
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


def _v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """convscope 0.1's flat state -> the engine / loop / RNG layout of version 2."""
    loop_keys = ("step", "epoch", "batch", "bad_streak", "skipped", "elapsed", "acc", "history", "best",
                 "stopped_early")
    return {"version": 2, "engine": {"model": state["model"], "optimizer": state["optimizer"], **state["extra"]},
            "loop": {k: state[k] for k in loop_keys},
            "rng": {"aug": state["aug_rng"], "torch": state["torch_rng"], "cuda": state["cuda_rng"]},
            "metrics_bytes": state["metrics_bytes"]}


def _v3_to_v4(state: dict[str, Any]) -> dict[str, Any]:
    """The best validation epoch moved from the loop's counters into the BestWeights callback's state."""
    best = state.get("loop", {}).pop("best", None)
    if best is not None:
        state.setdefault("callbacks", {})["best"] = best
    return state


def upgrade_state(state: dict[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """A training state of any version as today's (``STATE_VERSION``); a newer one is refused."""
    version = state.get("version", 1)  # 0.1 wrote no version
    if not isinstance(version, int) or version > STATE_VERSION:
        raise CheckpointError(f"{source}: state version {version!r} was written by a newer convscope (this one "
                              f"reads up to {STATE_VERSION}); resume it with that version")
    if version == 1:
        state = _v1_to_v2(state)
    for added in ADDED_KEYS.values():
        for key, default in added.items():
            state.setdefault(key, copy.deepcopy(default))
    if version <= 3:
        state = _v3_to_v4(state)
    state["version"] = STATE_VERSION
    return state
