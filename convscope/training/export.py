"""ONNX export of a run: the graph (dynamic batch axis), what a consumer needs to feed it (in the model's
metadata), and a check of the exported graph against torch on the run's real test images with onnxruntime.

Two input conventions:

    pixels       uint8 (B, C, H, W), 0..255: the run's normalization is inside the graph, so a consumer feeds
                 images as stored (the default: nothing to get wrong on the other side)
    normalized   float32 (B, C, H, W) = (pixels / 255 - mean) / std, what ``run.logits`` takes; mean and std
                 are in the metadata

The run's test-time averaging (``run.tta``: each image and its mirror) is part of the graph, so the exported
model's logits are ``run.logits``'.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._atomic import atomic_write_bytes, writable_folder
from .._check import choice, integer, replaceable
from .._result import Display, ResultMixin, RichDisplay, Table
from .._version import __version__
from ..data.dataset import ImageDataset
from ..errors import ConfigError, ConvscopeError
from ..models.forward import iter_batches
from ..models.legacy import upgrade_state_dict
from ..models.weights import load_weights
from ..models.output import check_logits
from ..runs import rundir as rd
from .evaluate import TTA

if TYPE_CHECKING:      # run.py offers Run.export_onnx, which imports this module: no import back at run time
    from .run import Run

ONNX_MARK = b"convscope run "   # the start of every export's doc_string: how an earlier export is recognised


def earlier_export(head: bytes) -> bool:
    """Whether ``head`` (a file's first 4 KiB) starts a convscope export: a serialized ModelProto whose fields
    before the graph are read as protobuf (ir_version 1 and model_version 5 varints; producer_name 2,
    producer_version 3 and domain 4 length-delimited) up to its doc_string (field 6), which starts with ONNX_MARK.
    The mark alone anywhere in the file let a user's notes that mention a convscope run be replaced."""
    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while pos < len(head) and shift < 64:
            byte = head[pos]
            value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
            if byte < 0x80:
                return value, pos
        return -1, pos                      # cut off or too long: not ours

    pos = 0
    while pos < len(head):
        tag, pos = varint(pos)
        field, wire = tag >> 3, tag & 7
        if field in (1, 5) and wire == 0:
            _, pos = varint(pos)
        elif field in (2, 3, 4, 6) and wire == 2:
            length, pos = varint(pos)
            if length < 0:
                return False
            if field == 6:
                return head[pos:pos + min(length, len(ONNX_MARK))] == ONNX_MARK and length >= len(ONNX_MARK)
            pos += length
        else:
            return False                    # the graph (7) or anything else before a doc_string: not ours
        if tag < 0 or pos < 0:
            return False
    return False


INPUTS = ("pixels", "normalized")
OPSETS = (18, 23)            # the range torch's exporter (torch.onnx, dynamo) and onnxruntime 1.2x both handle
PACKAGES = "pip install 'convscope[onnx]' (onnx, onnxscript, onnxruntime)"


class ExportError(ConvscopeError):
    """The exported graph does not reproduce the run (its check failed) or cannot be produced."""


@dataclass(frozen=True)
class OnnxCheck(ResultMixin):
    """The exported graph against torch on ``n`` images of ``dataset`` (``split``)."""

    dataset: str
    split: str
    n: int
    max_abs_diff: float           # max |logit_onnx - logit_torch| over all images and classes
    same_prediction: int          # images whose top class is the same in both

    @property
    def identical_predictions(self) -> bool:
        return self.same_prediction == self.n


@dataclass(frozen=True, repr=False)
class OnnxExport(RichDisplay, ResultMixin):
    """What :func:`export_onnx` wrote; displays as the file, its input and metadata, and the check's numbers."""

    path: Path
    bytes: int
    input: str                    # "pixels" or "normalized"
    input_name: str
    input_shape: tuple[Any, ...]  # ("batch", C, H, W)
    opset: int
    metadata: dict[str, str] = field(default_factory=dict)
    check: OnnxCheck | None = None

    def _display(self) -> Display:
        lines = [f"{self.bytes:,} bytes, opset {self.opset}",
                 f"input {self.input_name!r} {tuple(self.input_shape)} ({self.input}"
                 + (": uint8 pixels, normalized inside the graph)" if self.input == "pixels" else
                    ": float, already normalized)")]
        c = self.check
        if c is None:
            lines.append("not checked against torch")
        else:
            lines.append(f"checked against torch on {c.n:,} {c.dataset} {c.split} images: max |logit difference| "
                         f"{c.max_abs_diff:.3g}, same top class for {c.same_prediction:,} of {c.n:,}"
                         + (" (identical predictions)" if c.identical_predictions else ""))
        table = Table(["metadata key", "value"], [[k, v if len(v) <= 80 else v[:77] + "..."]
                                                  for k, v in self.metadata.items()], "metadata recorded in the model")
        return Display(f"ONNX export: {self.path}", lines, [table] if self.metadata else [])


class _Graph(nn.Module):
    """What is exported: [uint8 pixels -> normalized input ->] the model, averaged with its mirror if the run
    does test-time augmentation. Mean and std are buffers (1, C, 1, 1), constants in the graph."""

    def __init__(self, run: Run, pixels: bool):
        super().__init__()
        self.net, self.pixels = TTA(run.model, run.tta), pixels
        self.register_buffer("mean", torch.tensor(run.normalization.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(run.normalization.std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixels:                                     # (B, C, H, W) uint8 -> float32 model input
            x = (x.to(torch.float32) / 255.0 - self.mean) / self.std
        return self.net(x)                                  # (B, classes) float32


def _modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it; asked here so the message names it)
    except ImportError as e:
        raise ConfigError(f"ONNX export needs the package {e.name!r}, which is not installed: {PACKAGES}") from None
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    return onnx, onnxruntime


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporter logs its stages ("[torch.onnx] Obtain model graph ...", torchvision ops it skips) and
    warns about its own internals; none of it is the user's business."""
    # logging.disable, not one logger's level: when torch.export fails it also logs from torch.fx and
    # torch._dynamo (loggers torch._logging configures with their own levels), ~90 lines of graph dump; the
    # failure itself comes back as the exception, which export turns into one ExportError
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                contextlib.redirect_stderr(null):   # a failing torch.export also prints the graph to stderr
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


def _metadata(run: Run, pixels: bool) -> dict[str, str]:
    """Strings (ONNX metadata_props are str -> str): what to feed, what comes out, where it came from."""
    c, h, w = run.input_shape
    feed = (f"uint8 pixels (batch, {c}, {h}, {w}), 0..255; normalization is inside the graph" if pixels else
            f"float32 (batch, {c}, {h}, {w}) = (pixels / 255 - mean) / std per channel")
    return {
        "convscope.input": feed,
        "convscope.output": f"float32 logits (batch, {len(run.classes)}); softmax gives class probabilities",
        "convscope.classes": json.dumps(list(run.classes)),
        "convscope.normalization": json.dumps({"mean": list(run.normalization.mean),
                                               "std": list(run.normalization.std)}),
        "convscope.tta": "mirror average" if run.tta else "none",
        "convscope.model": str(run.meta.get("model", run.config.model.name)),
        "convscope.dataset": str(run.config.data.dataset),
        **_weights_record(run),
        "convscope.version": __version__,
        "convscope.git_commit": str(run.meta.get("git_commit") or ""),
    }


def _weights_record(run: Run) -> dict[str, str]:
    """The SHA-256 of the run's model.safetensors, which the graph holds, unless the run's model was changed in
    memory after loading (an API user's fine-tuning, pruning...): then no file holds the exported weights, and
    the metadata says so instead of naming a file whose weights it does not hold."""
    digest = str(run.meta.get("sha256", {}).get(rd.WEIGHTS, ""))
    state = run.model.state_dict()
    try:   # a 0.1 run's file holds numeric keys, renamed as load_run renames them
        stored = upgrade_state_dict(run.model, load_weights(run.path / rd.WEIGHTS, digest or None))
    except (OSError, ConvscopeError):
        stored = None
    if stored is not None and stored.keys() == state.keys() and all(torch.equal(stored[k], state[k].cpu())
                                                                    for k in stored):
        return {"convscope.weights_sha256": digest}
    return {"convscope.weights": f"changed in memory after loading {run.path / rd.WEIGHTS}: no file holds these "
                                 "weights"}


def _export_proto(run: Run, pixels: bool, opset: int | None) -> Any:
    c, h, w = run.input_shape
    graph = _Graph(run, pixels).eval()
    example = (torch.zeros((2, c, h, w), dtype=torch.uint8) if pixels else torch.zeros((2, c, h, w)))
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                graph, (example,), None, dynamo=True, verbose=False, report=False, external_data=False,
                input_names=["pixels" if pixels else "input"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), **kwargs)
    except Exception as e:   # torch.export / onnxscript: the model uses something ONNX or tracing cannot express
        raise ExportError(f"torch could not export {run.path}'s model to ONNX: {_export_failure(e)}; models with "
                          "data-dependent Python control flow (an `if` on a tensor's values) or custom ops need "
                          "changes before they export") from None
    proto = program.model_proto
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:   # the exporter specialised the batch axis: forward depends on the batch size
        raise ExportError(f"torch exported {run.path}'s model with the batch axis fixed at {batch.dim_value} "
                          "(the example's batch), so the graph would refuse any other batch size: the model's "
                          "forward depends on the batch size (a branch on x.shape[0], or statistics across the "
                          "batch); make it treat every image alike")
    return proto


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s+(\S[^\n]*)')


def _export_failure(e: BaseException) -> str:
    """One line for a failed torch.export: the innermost cause's type and first line, and the model's line that
    raised it where torch's message names it ("The following call raised this error: File ..."), without the
    terminal colours and the pages of advice torch's message carries."""
    root = e
    while root.__cause__ is not None:
        root = root.__cause__
    text = _ANSI.sub("", str(root)).strip()
    first = text.splitlines()[0] if text else ""
    where = _CALL.search(_ANSI.sub("", str(e)))
    at = f" at {where[1]} line {where[2]} in {where[3]}: `{where[4].strip()}`" if where else ""
    return f"{type(root).__name__}: {first}{at}"


def check_onnx(run: Run, model_bytes: bytes, dataset: ImageDataset, pixels: bool, batch_size: int = 500,
               split: str = "test") -> OnnxCheck:
    """Run the serialized graph with onnxruntime and ``run.logits`` on every image of ``dataset``."""
    _, ort = _modules()
    if ort is None:
        raise ConfigError(f"checking the export needs onnxruntime, which is not installed: {PACKAGES} (or skip the "
                          "check: --no-check / check=False)")
    if tuple(dataset.shape) != tuple(run.input_shape):
        raise ConfigError(f"dataset: images are {tuple(dataset.shape)}, the model takes {tuple(run.input_shape)}",
                          arg="dataset")
    try:
        session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    except Exception as e:   # onnxruntime's own exception types: the graph is not one it can run
        raise ExportError(f"onnxruntime cannot load the exported graph of {run.path}: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None
    name = session.get_inputs()[0].name
    worst, same = 0.0, 0
    for i, expected in iter_batches(run.model, dataset.images, run.normalization, batch_size, forward=run.logits):
        try:   # the reference first: a diverged run's NaN scores would compare as "no difference"
            check_logits(expected, f"{run.path}'s model", finite=True, where=f"{dataset.name} {split} images")
        except ConfigError as e:
            raise ExportError(f"{e}; an export would give the same scores") from None
        u8 = dataset.images[i:i + len(expected)]                          # (B, C, H, W) uint8
        feed = u8 if pixels else run.preprocess(u8)
        try:
            got = torch.from_numpy(session.run(None, {name: feed.contiguous().numpy()})[0])   # (B, classes)
        except Exception as e:
            raise ExportError(f"onnxruntime failed to run the exported graph of {run.path} on {len(feed)} "
                              f"{dataset.name} {split} images: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None
        diff = float((got - expected).abs().max()) if len(got) else 0.0
        worst = max(worst, diff if math.isfinite(diff) else math.inf)   # NaN from onnxruntime: no match
        same += int((got.argmax(1) == expected.argmax(1)).sum())
    return OnnxCheck(dataset.name, split, len(dataset), worst, same)


def export_onnx(run: Run, path: str | os.PathLike[str], *, input: str = "pixels", opset: int | None = None,
                check: ImageDataset | bool = True, split: str = "test") -> OnnxExport:
    """Export ``run`` (a :class:`~convscope.training.Run`) to the ONNX file ``path``, written atomically.

    ``input``: "pixels" (uint8, normalization inside the graph) or "normalized" (see the module's docstring).
    ``check``: True checks the graph against torch on the run's own test split (an ImageDataset: on that data;
    False: no check) and writes nothing unless every prediction agrees. ``opset``: the ONNX opset (default:
    the exporter's)."""
    if not (isinstance(getattr(run, "model", None), nn.Module) and hasattr(run, "normalization")
            and hasattr(run, "input_shape") and hasattr(run, "tta")):
        raise ConfigError(f"run: expected a convscope Run (convscope.load_run(path)), got {type(run).__name__}",
                          arg="run")
    choice(input, "input", INPUTS)
    if opset is not None:
        integer(opset, "opset", *OPSETS)
    if not isinstance(path, (str, os.PathLike)) or not str(path) or str(path) == "-":
        raise ConfigError(f"path: expected a file path such as model.onnx, got {path!r}", arg="path")
    if os.fspath(path).endswith(("/", os.sep)) or Path(path).is_dir():   # Path() drops a trailing slash
        what = "is a folder" if Path(path).is_dir() else "names a folder (it ends with a slash)"
        raise ConfigError(f"path: {os.fspath(path)} {what}; give a file path such as {Path(path) / 'model.onnx'}",
                          arg="path")
    path = Path(path)
    # an existing file is replaced only if it is an earlier export (its doc_string, serialized before the graph,
    # says "convscope run ": earlier_export): never the run's own weights (export RUN --onnx
    # RUN/model.safetensors destroyed the trained weights), nor a user's own model.onnx, nor any other file
    replaceable(path, "path", earlier_export, "an ONNX file an earlier convscope export wrote",
                f"give a new path such as {path.with_name(path.stem + '-convscope.onnx')}")
    # before the export and its check (seconds to minutes): a folder that cannot take the file fails now
    writable_folder(path.parent, f"path {path}", "model.onnx in a folder you can write", arg="path")
    if not isinstance(check, (bool, ImageDataset)):
        raise ConfigError(f"check: expected True, False or a convscope ImageDataset, got {type(check).__name__}",
                          arg="check")
    onnx, _ = _modules()
    pixels = input == "pixels"
    dataset = check
    if check is True:
        from ..data import load

        dataset = load(run.config.data.dataset, split, run.config.data.data_dir, download=False)
    # the export and the check put the model in eval mode; an API user's model in training mode gets its modes
    # back, module by module (one may hold some layers in eval on purpose)
    modes = {m: m.training for m in run.model.modules()}
    try:
        proto = _export_proto(run, pixels, opset)
        meta = _metadata(run, pixels)
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = (f"{ONNX_MARK.decode()}{run.path.name}: {meta['convscope.input']} -> "
                            f"{meta['convscope.output']}")
        data = proto.SerializeToString()
        onnx.checker.check_model(proto)
        result = None
        if isinstance(dataset, ImageDataset):
            try:
                result = check_onnx(run, data, dataset, pixels, split=split)
            except ExportError as e:
                raise ExportError(f"{e}; nothing was written to {path}") from None
            if not result.identical_predictions or result.max_abs_diff > 1e-3:
                raise ExportError(f"the exported graph does not reproduce {run.path} on {result.dataset} {split}: "
                                  f"{result.n - result.same_prediction} of {result.n} predictions differ, max "
                                  f"|logit difference| {result.max_abs_diff:.3g}; nothing was written to {path}")
    finally:
        for m, training in modes.items():
            m.training = training
    atomic_write_bytes(path, data)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    c, h, w = run.input_shape
    return OnnxExport(path, len(data), input, "pixels" if pixels else "input", ("batch", c, h, w), opset_used,
                      meta, result)
