"""The run directory: everything a run leaves behind, and loading it back without unpickling anything.

    runs/<name>/
      config.json          the resolved TrainConfig
      metrics.jsonl        one JSON object per line: {"kind": "step", ...} and {"kind": "epoch", ...}
      checkpoint.safetensors   the latest training state (for --resume)
      model.safetensors    final weights
      model.json           model name and arguments, input shape, classes, normalization, versions,
                           git commit, and the SHA-256 of every other file
      model.json.sha256    the SHA-256 of model.json itself (`sha256sum -c` reads it); runs written before it
                           existed load without it
      curve.png            training curve
      summary.json         test_accuracy (fraction), epochs, seconds, ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write_text
from .._version import __version__
from ..errors import ConvscopeError
from .checkpoint import CheckpointError, check_manifest, load_weights, read_json_file, sha256_file
from .config import TrainConfig, recorded_config, retired_settings
from ..data.normalize import Normalization
from ..data.prepare import default_mode as default_prepare

CONFIG, METRICS, CHECKPOINT, WEIGHTS, META, CURVE, SUMMARY = (
    "config.json", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "model.json", "curve.png",
    "summary.json")
META_SHA256 = META + ".sha256"
METRICS_MAX_BYTES = 1 << 30   # metrics.jsonl of a very long run is megabytes; more is not a metrics file


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
    from .config import check_run_name
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
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"  # unique: another process may probe the same folder
            probe.write_bytes(b"ok")
            probe.unlink()
            lock = RunLock(path).acquire()
        except RunLocked:
            if explicit is not None:
                raise
            continue
        except OSError as e:
            raise RunError(f"{path}: cannot write the run directory ({e.strerror or e}); "
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


@dataclass
class Run:
    """A finished (or loaded) run: the model with its weights, its config and what it measured."""

    path: Path
    model: nn.Module
    config: TrainConfig
    normalization: Normalization
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl, one JSON object a line. The file is not covered by model.json's
        checksums, so it is read defensively: a regular file of bounded size, every line a JSON object."""
        from ..data.safe_io import read_regular
        from ..errors import DataError

        path = self.path / METRICS
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
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                raise RunError(f"{path}, line {number}: not JSON ({getattr(e, 'msg', e)}); each line must be one "
                               "JSON object such as {\"kind\": \"epoch\", ...} (fix or delete the line)") from None
            if not isinstance(record, dict):
                raise RunError(f"{path}, line {number}: expected a JSON object such as {{\"kind\": \"epoch\", ...}}, "
                               f"got a JSON {type(record).__name__}; fix or delete the line")
            records.append(record)
        return records

    @property
    def tta(self) -> bool:
        """Whether this run's predictions average each image with its mirror (flip test-time augmentation)."""
        return bool(self.meta.get("tta", False))

    def logits(self, inp: torch.Tensor) -> torch.Tensor:
        """Float32 logits (B, classes) of preprocessed input (B, C, H, W), with the run's test-time averaging."""
        from .evaluate import TTA

        return TTA(self.model, self.tta)(inp)

    def preprocess(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> the normalized float input the model was trained on."""
        return self.normalization.apply(images_u8)

    @property
    def dataset_spec(self) -> dict[str, Any]:
        return {"name": self.config.dataset, "data_dir": self.config.data_dir, "input_shape": list(self.input_shape),
                "classes": list(self.classes)}


def model_metadata(model: nn.Module, cfg: TrainConfig, norm: Normalization, classes, input_shape) -> dict[str, Any]:
    spec = getattr(model, "convscope_spec", {})
    return {
        "model": spec.get("name", cfg.model.name),
        "model_args": spec.get("kwargs", cfg.model.args),
        "input_shape": list(input_shape),
        "num_classes": len(classes),
        "classes": list(classes),
        "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
        "prepare": default_prepare({"dataset": cfg.data.dataset, "input_shape": list(input_shape)}),
        "dataset": cfg.data.dataset,
        "convscope_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
    }


def write_manifest(path: Path, meta: dict[str, Any]) -> None:
    """model.json, with the SHA-256 of every file of the run (written last, so it covers them all), and
    model.json.sha256 with model.json's own digest. The digest goes first: model.json marks a run finished, so
    a kill between the two leaves an unfinished run (resumed, both rewritten), never an unchecked finished one."""
    files = {}
    for name in (CONFIG, WEIGHTS, SUMMARY, CURVE, METRICS):
        if (path / name).exists():
            files[name] = sha256_file(path / name)
    text = json.dumps({**meta, "sha256": files}, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path / META_SHA256, f"{hashlib.sha256(text.encode()).hexdigest()}  {META}\n")
    atomic_write_text(path / META, text)


def check_meta_digest(path: Path) -> None:
    """model.json against model.json.sha256 (absent in runs written before it existed: nothing to check)."""
    digest_file = path / META_SHA256
    if not digest_file.exists() and not digest_file.is_symlink():
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


def _read_json(path: Path) -> Any:
    if not path.exists() and not path.is_symlink():
        raise RunError(f"{path}: missing; is {path.parent} a finished convscope run?")
    return read_json_file(path)  # regular files only, size- and depth-bounded; errors are CheckpointError


def load_run(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Run:
    """Load a finished run: checks every file's recorded SHA-256 and loads weights from safetensors only."""
    from ..models import create_model, upgrade_state_dict

    if not isinstance(path, (str, os.PathLike)):
        raise RunError(f"path: expected a run directory (str or Path), got {type(path).__name__}")
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    meta = check_manifest(_read_json(path / META), path / META)
    recorded = meta["sha256"]
    for name in (CONFIG, WEIGHTS):
        if name not in recorded:
            raise RunError(f"{path / META}: records no SHA-256 for {name}; the run is incomplete")
    if sha256_file(path / CONFIG) != recorded[CONFIG]:
        raise CheckpointError(f"{path / CONFIG}: SHA-256 differs from the one recorded in model.json (modified)")
    raw_config = _read_json(path / CONFIG)
    cfg = recorded_config(raw_config, source=str(path / CONFIG))
    shift = retired_settings(raw_config).get("tta_shift") or meta.get("tta_shift")
    if shift:
        warnings.warn(f"{path}: this run recorded test-time shifts of {shift} px (tta_shift), which convscope no "
                      "longer averages (the ablation measured -0.07 points); its evaluation and predictions use "
                      "the image itself" + (" and its mirror" if meta.get("tta") else ""), UserWarning, stacklevel=2)
    state = load_weights(path / WEIGHTS, expected_sha256=recorded[WEIGHTS])
    c, h, w = meta["input_shape"]
    try:
        with warnings.catch_warnings():  # a tampered geometry may build empty layers: the strict load below refuses it
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
            model = create_model(meta["model"], in_channels=c, image_size=(h, w), num_classes=meta["num_classes"],
                                 **meta.get("model_args", {}))
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:  # arguments the model cannot take
        raise CheckpointError(f"{path / META}: cannot build model {meta['model']!r} from its recorded arguments "
                              f"({type(e).__name__}: {e})") from e
    state = upgrade_state_dict(model, state, str(path / WEIGHTS))  # runs saved before layers were named
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path / WEIGHTS}: weights do not fit model {meta['model']!r}: {e}") from e
    model.to(map_location).eval()
    norm = Normalization(tuple(meta["normalization"]["mean"]), tuple(meta["normalization"]["std"]))
    summary = _read_json(path / SUMMARY) if (path / SUMMARY).exists() else {}
    if not isinstance(summary, dict):
        raise RunError(f"{path / SUMMARY}: expected a JSON object, got {type(summary).__name__}")
    check_meta_digest(path)   # last: a file-specific message (a pickle, a bad key) says more than "modified"
    return Run(path, model, cfg, norm, tuple(meta["classes"]), (c, h, w), summary, meta)
