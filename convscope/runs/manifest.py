"""The JSON files of a run directory, read defensively: any file a tool opens may have been edited, truncated or
replaced by something that is not a regular file. :func:`read_json_file` parses one with bounded size and depth;
:func:`check_manifest` validates model.json's structure before anything is built from it."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .._json import loads_strict
from ..data.safe_io import open_regular
from ..errors import DataError
from ..models.weights import CheckpointError

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
        return loads_strict(data.decode("utf-8"))     # strict JSON: NaN/Infinity refused, as the docs promise
    except (ValueError, UnicodeDecodeError) as e:
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
    if not isinstance(meta.get("model_args", {}), dict) or not all(isinstance(k, str) for k in meta.get("model_args",
                                                                                                        {})):
        raise bad("model_args", "a map of argument names to values")
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 16 for v in shape)):
        raise bad("input_shape", "[C, H, W], three ints from 1 to 65536")
    from ..models.probe import MAX_SIDE, MAX_VALUES   # the bound every other input shape gets (#28 F9)

    if max(shape[1:]) > MAX_SIDE or shape[0] * shape[1] * shape[2] > MAX_VALUES:
        raise bad("input_shape", f"[C, H, W] with sides of at most {MAX_SIDE} pixels and at most {MAX_VALUES:,} "
                                 "values (larger images do not fit in memory a batch at a time)")
    n = meta.get("num_classes")
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1 << 20):
        raise bad("num_classes", "a positive int")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) == n and all(isinstance(c, str) for c in classes)):
        raise bad("classes", f"a list of num_classes={n} names")
    repeated = sorted(c for c, k in Counter(classes).items() if k > 1)
    if repeated:    # two outputs with one name: a prediction or per-class figure could not say which it means
        raise CheckpointError(f"{path}: classes names {', '.join(map(repr, repeated[:5]))} more than once; each of "
                              "the model's outputs needs its own class name (the file is corrupt or was edited)")
    norm = meta.get("normalization")
    if not (isinstance(norm, dict) and _finite_list(norm.get("mean"), shape[0], False)
            and _finite_list(norm.get("std"), shape[0], True)):
        count = "1 finite value" if shape[0] == 1 else f"1 or {shape[0]} finite values"
        raise bad("normalization", f"{{'mean': [...], 'std': [...]}} with {count} each (std positive)")
    if not isinstance(meta.get("tta", False), bool):
        raise bad("tta", "true or false")
    shift = meta.get("tta_shift", 0)   # written by runs before shifted test-time views were removed
    if not (isinstance(shift, int) and not isinstance(shift, bool) and shift >= 0):
        raise bad("tta_shift", "a number of pixels (int, 0 or more)")
    return meta
