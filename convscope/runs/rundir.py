"""The run directory: everything a run leaves behind, how it is created and locked, and reading it back
without unpickling anything (:func:`load_run_model`; ``convscope.training.load_run`` adds the config).

    runs/<name>/
      config.json          the resolved TrainConfig
      metrics.jsonl        one JSON object per line: {"kind": "step", ...} and {"kind": "epoch", ...}
      diagnostics.jsonl    with --diagnose: per-layer statistics every N steps (training/diagnostics.py)
      checkpoint.safetensors   the latest training state (for --resume)
      model.safetensors    final weights
      model.json           model name and arguments, input shape, classes, normalization, versions,
                           git commit, and the SHA-256 of every other file
      model.json.sha256    the SHA-256 of model.json itself (`sha256sum -c` reads it); runs written before it
                           existed load without it
      curve.png            training curve
      summary.json         test_accuracy (fraction), epochs, seconds, ...
      .lock                held by the process writing the run (lock.py)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write_text, os_error_hint, probe_folder
from .._json import loads_strict
from ..data.normalize import Normalization
from ..errors import ConvscopeError, ConvscopeWarning
from ..models.forward import check_device
from ..models.weights import CheckpointError, load_weights, sha256_file
from .manifest import MAX_JSON_BYTES, check_manifest, read_json_file
from .names import check_run_name

CONFIG, METRICS, CHECKPOINT, WEIGHTS, META, CURVE, SUMMARY = (
    "config.json", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "model.json", "curve.png",
    "summary.json")
DIAGNOSTICS = "diagnostics.jsonl"
META_SHA256 = META + ".sha256"
METRICS_MAX_BYTES = 1 << 30   # metrics.jsonl of a very long run is megabytes; more is not a metrics file
CURVE_MAX_BYTES = 64 << 20    # curve.png is ~50 KB
MAX_WEIGHT_BYTES = 4 << 30    # the zoo's models hold < 5 MB of weights; model.json implying more is not a run of ours
HEADER_MAX_BYTES = 16 << 20   # a safetensors header beside the tensors: names, dtypes, shapes (KBs for our models)


class RunError(ConvscopeError):
    """A run directory is missing, incomplete, unwritable or inconsistent."""


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")  # NaN is not JSON: refuse it


def json_safe(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with every non-finite float (at any depth) as null, listed under "non_finite" with a note:
    JSON has no NaN, and a bare NaN makes the file unreadable to strict parsers."""
    bad: list[str] = []

    def clean(v: Any, key: str) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            bad.append(key)
            return None
        if isinstance(v, dict):
            return {k: clean(x, f"{key}.{k}" if key else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{key}[{i}]") for i, x in enumerate(v)]
        return v

    out = clean(obj, "")
    if bad:
        out["non_finite"] = {"keys": bad, "note": "these values were NaN or infinite (e.g. a diverged model); "
                                                 "written as null because JSON has no NaN"}
    return out


def cut_log(path: Path, size: int) -> int:
    """Cut the append-only log ``path`` (metrics.jsonl, diagnostics.jsonl) back to the ``size`` bytes it had when
    the checkpoint was saved: a resumed run writes the later lines again. A file shorter than that (a crash lost
    what the page cache held: checkpoints are fsynced, logs are not) keeps its whole lines; ``truncate`` would pad
    it with NUL bytes, a line no reader can parse. Returns how many of the recorded bytes are missing (0: none)."""
    with open(path, "r+b") as f:
        have = f.seek(0, os.SEEK_END)
        if have >= size:
            f.truncate(size)
            return 0
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1
        f.truncate(keep)
        return size - keep


def warn_cut_log(path: Path, missing: int) -> None:
    """Say that a resumed run's log lost ``missing`` bytes of lines before its checkpoint (see :func:`cut_log`)."""
    if missing:
        warnings.warn(f"{path}: {missing} bytes shorter than when the checkpoint was saved (lost in a crash before "
                      "they reached the disk); the run goes on, but the lines of those steps stay missing",
                      ConvscopeWarning, stacklevel=3)


def logged_steps(metrics: Path) -> int:
    """The last training step ``metrics`` (a run's metrics.jsonl) records; 0 when it is missing or records none."""
    return max((r["step"] for r in read_metrics(metrics, torn_tail=True) if isinstance(r.get("step"), int)),
               default=0)


def git_commit() -> str | None:
    """The commit of the convscope source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def new_run_dir(base: Path, name: str, explicit: Path | None) -> tuple[Path, bool, Any]:
    """``explicit`` (must not already hold a run), or the first free ``base/name``, ``base/name-2``, ...:
    (the path, whether this call created the folder, its held :class:`~.lock.RunLock`). A folder another
    process holds is refused for ``explicit`` and skipped otherwise; ``name`` must stay inside ``base``."""
    from .lock import RunLock, RunLocked

    check_run_name(name)
    k = 2
    while True:
        path = explicit if explicit is not None else base / (name if k == 2 else f"{name}-{k - 1}")
        k += 1
        if explicit is None and (path / CONFIG).exists():
            continue
        created = not path.exists()
        try:
            probe_folder(path)   # creates it; the probe file goes again whatever happens
            lock = RunLock(path).acquire()
        except RunLocked:
            if explicit is not None:
                raise
            continue
        except OSError as e:
            with contextlib.suppress(OSError):   # nothing to undo where the folder could not even be made
                discard_new_run_dir(path, created)
            raise RunError(f"{path}: cannot write the run directory ({e.strerror or e}; {os_error_hint(e)}); "
                           "choose a writable --out") from e
        if (path / CONFIG).exists():  # checked again under the lock: a run may have started meanwhile
            lock.release()
            if explicit is not None:
                raise RunError(f"{explicit}: already holds a run; resume it with --resume {explicit} "
                               "or choose another --out")
            continue
        return path, created, lock


def discard_new_run_dir(path: Path, created: bool) -> None:
    """Undo :func:`new_run_dir` after a set-up failure: a folder it created goes (when it holds nothing else),
    a folder that existed before keeps everything but the lock file."""
    from .lock import LOCK

    (path / LOCK).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):  # something else appeared in it: leave it
            path.rmdir()


def write_manifest(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """model.json, with the SHA-256 of every file of the run (written last, so it covers them all), and
    model.json.sha256 with model.json's own digest. The digest goes first: model.json marks a run finished, so
    a kill between the two leaves an unfinished run (resumed, both rewritten), never an unchecked finished one.
    Returns what model.json holds, as load_run reads it back (the Run that training returns holds that)."""
    files = {}
    for name in (CONFIG, WEIGHTS, SUMMARY, CURVE, METRICS, DIAGNOSTICS):
        if (path / name).exists():
            files[name] = sha256_file(path / name)
    # digest_file: model.json.sha256 belongs to this run, so a run whose digest file went missing is refused
    full = {**meta, "digest_file": META_SHA256, "sha256": files}
    text = json.dumps(full, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path / META_SHA256, f"{hashlib.sha256(text.encode()).hexdigest()}  {META}\n")
    atomic_write_text(path / META, text)
    return full


def check_meta_digest(path: Path, meta: dict[str, Any] | None = None) -> None:
    """model.json against model.json.sha256. A run whose model.json says it has that file (``digest_file``, every
    run written since #28) must have it; runs written before it existed have none: nothing to check."""
    digest_file = path / META_SHA256
    if not digest_file.exists() and not digest_file.is_symlink():
        if meta is not None and meta.get("digest_file") == META_SHA256:
            raise CheckpointError(f"{digest_file}: missing; this run was written with it and model.json cannot be "
                                  "checked without it. Restore it from where the run came from, or retrain")
        return
    from ..data.safe_io import read_regular
    from ..errors import DataError

    try:
        line = read_regular(digest_file, 4096, "digest file").decode("ascii", "replace").split()
    except DataError as e:
        raise CheckpointError(str(e)) from None
    if len(line) != 2 or line[1] != META or len(line[0]) != 64:
        raise CheckpointError(f"{digest_file}: expected one line '<64 hex digits>  {META}'; the file is corrupt "
                              f"(delete it to load the run unchecked, as runs before it were)")
    if sha256_file(path / META) != line[0].lower():
        raise CheckpointError(f"{path / META}: SHA-256 differs from the one recorded in {META_SHA256} (modified "
                              "after the run finished); restore the original or retrain")


RECORD_LIMITS = {CONFIG: MAX_JSON_BYTES, SUMMARY: MAX_JSON_BYTES, METRICS: METRICS_MAX_BYTES,
                 DIAGNOSTICS: METRICS_MAX_BYTES, CURVE: CURVE_MAX_BYTES}


def check_recorded_files(path: Path, recorded: dict[str, str], weight_bytes: int, all_present: bool = True) -> None:
    """Every file model.json records is there and has its recorded SHA-256 (#28 F10). What that guarantees: the
    run's files are the ones training wrote, not changed by accident, cut short or swapped for another run's;
    not a signature: whoever can write the folder can record new digests. Sizes are checked before hashing, so a
    replaced 100 GB file is refused at once rather than hashed for minutes (#28 F5): the weights may be at most
    the ``weight_bytes`` of the model model.json describes (plus a header), the others their files' bounds.
    ``all_present``: every recorded file must be there (runs written before #28 may lack curve.png and the like:
    for them only config.json and the weights must be)."""
    for name in (CONFIG, WEIGHTS):
        if name not in recorded:
            raise RunError(f"{path / META}: records no SHA-256 for {name}; the run is incomplete")
    limits = {**RECORD_LIMITS, WEIGHTS: weight_bytes + 8 + HEADER_MAX_BYTES}
    for name, digest in recorded.items():
        if name not in limits:
            raise CheckpointError(f"{path / META}: records a file {name[:80]!r} that convscope does not write; the "
                                  "file is corrupt or was edited")
        f = path / name
        try:
            size = os.stat(f).st_size
        except FileNotFoundError:
            if not all_present and name not in (CONFIG, WEIGHTS):
                continue
            raise CheckpointError(f"{f}: missing, but model.json records its SHA-256; restore it from where the "
                                  "run came from, or retrain") from None
        except OSError as e:
            raise CheckpointError(f"{f}: cannot read ({e.strerror or e})") from e
        if size > limits[name]:
            what = ("the weights of the model model.json describes" if name == WEIGHTS else f"a run's {name}")
            raise CheckpointError(f"{f}: {size:,} bytes, more than {what} can be ({limits[name]:,}); the file was "
                                  "replaced or padded (not hashed). Restore the original or retrain")
        if sha256_file(f) != digest:
            raise CheckpointError(f"{f}: SHA-256 differs from the one recorded in model.json (modified after the "
                                  "run finished); restore the original or retrain")


def read_json(path: Path) -> Any:
    """A JSON file of a run; a missing one is a RunError that asks whether this is a finished run."""
    if not path.exists() and not path.is_symlink():
        if path.name == META and (path.parent / CHECKPOINT).is_file():   # stopped (Ctrl-C, kill) before its end
            raise RunError(f"{path}: missing: {path.parent} has a checkpoint but no final model: it is still "
                           "training, or it was stopped before it finished; a stopped run finishes with "
                           f"`convscope train --resume {path.parent}` (convscope.resume)")
        raise RunError(f"{path}: missing; is {path.parent} a finished convscope run?")
    return read_json_file(path)  # regular files only, size- and depth-bounded; errors are CheckpointError


def read_metrics(path: Path, torn_tail: bool = False) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (``path``; diagnostics.jsonl has the same form), one JSON object a
    line ([] when there is none). The file is not covered by model.json's checksums, so it is read defensively:
    a regular file of bounded size, every line a JSON object. ``torn_tail``: a last line without its newline
    that is not JSON (a run killed mid-write, not yet resumed) is left out instead of refused."""
    from ..data.safe_io import read_regular
    from ..errors import DataError

    if not path.exists() and not path.is_symlink():
        return []
    try:
        raw = read_regular(path, METRICS_MAX_BYTES, "metrics file")
    except DataError as e:
        raise RunError(f"{e}; metrics.jsonl holds the run's training record (delete it to go without)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunError(f"{path}: not UTF-8 text ({e}); it is not a convscope metrics file") from None
    records = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = loads_strict(line)      # strict JSON: NaN/Infinity refused, as the docs promise
        except ValueError as e:
            if torn_tail and number == len(lines) and not text.endswith("\n"):
                break
            raise RunError(f"{path}, line {number}: not JSON ({getattr(e, 'msg', e)}); each line must be one "
                           "JSON object such as {\"kind\": \"epoch\", ...} (fix or delete the line)") from None
        if not isinstance(record, dict):
            raise RunError(f"{path}, line {number}: expected a JSON object such as {{\"kind\": \"epoch\", ...}}, "
                           f"got a JSON {type(record).__name__}; fix or delete the line")
        records.append(record)
    return records


@dataclass
class RunModel:
    """The trained model of a run with what model.json says about its input: all a tool that looks at the model
    needs (the inspection tools, the matrix reports); :func:`convscope.training.load_run` adds the config."""

    path: Path
    model: nn.Module
    meta: dict[str, Any]               # model.json, structure checked
    input_shape: tuple[int, int, int]  # (C, H, W)
    classes: tuple[str, ...]
    normalization: Normalization

    @property
    def dataset(self) -> str:
        return str(self.meta.get("dataset", ""))


def load_run_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> RunModel:
    """The model of a finished run in eval mode: model.json's structure is checked, the weights' SHA-256 is the
    one it records, the weights are loaded from safetensors only (nothing is unpickled) and strictly."""
    from ..models import create_model, upgrade_state_dict

    if not isinstance(path, (str, os.PathLike)):
        raise RunError(f"path: expected a run directory (str or Path), got {type(path).__name__}")
    map_location = check_device(map_location, "map_location")
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    meta = check_manifest(read_json(path / META), path / META)
    # after the structure check (a bad key says more than "modified"), before anything is built from model.json:
    # an edited input_shape would otherwise surface as a shape mismatch blamed on the weights
    check_meta_digest(path, meta)
    c, h, w = meta["input_shape"]

    def build(device: str | None) -> nn.Module:
        try:
            with warnings.catch_warnings(), (torch.device(device) if device else contextlib.nullcontext()):
                # a tampered geometry may build empty layers: the strict load below refuses it
                warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
                return create_model(meta["model"], in_channels=c, image_size=(h, w),
                                    num_classes=meta["num_classes"], **meta.get("model_args", {}))
        except (TypeError, ValueError, RuntimeError, ZeroDivisionError, NotImplementedError) as e:
            raise CheckpointError(f"{path / META}: cannot build model {meta['model']!r} from its recorded "
                                  f"arguments ({type(e).__name__}: {e})") from e

    # the model's size from model.json without allocating it (meta tensors: shapes only), before anything is
    # allocated or hashed: a width of 2,000,000 or a 100 GB weights file is refused here, at once (#28 F5, F9)
    weight_bytes = sum(t.numel() * t.element_size() for t in build("meta").state_dict().values())
    if weight_bytes > MAX_WEIGHT_BYTES:
        raise CheckpointError(f"{path / META}: model {meta['model']!r} with model_args {meta.get('model_args', {})} "
                              f"and input_shape {[c, h, w]} would hold {weight_bytes:,} bytes of weights, more than "
                              f"a run's model can ({MAX_WEIGHT_BYTES:,}); the file is corrupt or was edited")
    check_recorded_files(path, meta["sha256"], weight_bytes, all_present=meta.get("digest_file") == META_SHA256)
    state = load_weights(path / WEIGHTS)           # its digest checked just above
    model = build(None)
    state = upgrade_state_dict(model, state, str(path / WEIGHTS))  # runs saved before layers were named
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path / WEIGHTS}: weights do not fit model {meta['model']!r}: {e}") from e
    # NaN weights (a diverged run) are not refused here: the run's summary and metrics stay readable; the
    # commands that read scores or rank activations (explain, topk, refine) refuse non-finite values
    model.to(map_location).eval()
    norm = Normalization(tuple(meta["normalization"]["mean"]), tuple(meta["normalization"]["std"]))
    return RunModel(path, model, meta, (c, h, w), tuple(meta["classes"]), norm)


def check_numbers(path: Path, records: list[dict[str, Any]], keys: dict[str, tuple[str, ...]]) -> None:
    """The records of ``path`` (read by :func:`read_metrics`) whose ``kind`` is a key of ``keys`` hold, under each
    of its names, a number or null (``step``: a whole number), as convscope writes them; anything else (a list,
    a string) is a RunError naming the file, the line's record and the field, before a tool computes with it."""
    for number, rec in enumerate(records, 1):
        names = keys.get(rec.get("kind"))
        if names is None:
            continue
        for name in ("step", *names):
            v = rec.get(name)
            whole = isinstance(v, int) and not isinstance(v, bool)
            if (name == "step" and not whole) or (name != "step" and v is not None and not whole
                                                   and not isinstance(v, float)):
                raise RunError(f"{path}: record {number} ({rec.get('kind')}) has {name!r} = {json.dumps(v)[:60]}; "
                               f"expected {'a whole number' if name == 'step' else 'a number or null'}, as "
                               "convscope writes it; fix or delete that line")
