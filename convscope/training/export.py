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
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._atomic import atomic_write_bytes
from .._check import choice, integer, replaceable
from .._result import Display, ResultMixin, RichDisplay, Table
from .._version import __version__
from ..data.dataset import ImageDataset
from ..errors import ConfigError, ConvscopeError
from ..models.forward import iter_batches
from ..runs import rundir as rd
from .evaluate import TTA

if TYPE_CHECKING:      # run.py offers Run.export_onnx, which imports this module: no import back at run time
    from .run import Run

ONNX_MARK = b"convscope run "   # the start of every export's doc_string: how an earlier export is recognised


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
    warns about its own internals; none of it is the user's business when the export succeeds."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


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
        "convscope.weights_sha256": str(run.meta.get("sha256", {}).get(rd.WEIGHTS, "")),
        "convscope.version": __version__,
        "convscope.git_commit": str(run.meta.get("git_commit") or ""),
    }


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
        raise ExportError(f"torch could not export {run.path}'s model to ONNX: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}; models with data-dependent Python control "
                          "flow or custom ops need changes before they export") from None
    return program.model_proto


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
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst, same = 0.0, 0
    for i, expected in iter_batches(run.model, dataset.images, run.normalization, batch_size, forward=run.logits):
        u8 = dataset.images[i:i + len(expected)]                          # (B, C, H, W) uint8
        feed = u8 if pixels else run.preprocess(u8)
        got = torch.from_numpy(session.run(None, {name: feed.contiguous().numpy()})[0])   # (B, classes)
        worst = max(worst, float((got - expected).abs().max()))
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
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ConfigError(f"path: expected a file path such as model.onnx, got {path!r}", arg="path")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"path: {path} is a folder; give a file path such as {path / 'model.onnx'}", arg="path")
    # an existing file is replaced only if it is an earlier export (its doc_string, serialized before the graph,
    # says "convscope run "): never the run's own weights (export RUN --onnx RUN/model.safetensors destroyed the
    # trained weights), nor a user's own model.onnx, nor any other file that stands there
    replaceable(path, "path", ONNX_MARK, "an ONNX file an earlier convscope export wrote",
                f"give a new path such as {path.with_name(path.stem + '-convscope.onnx')}")
    if not isinstance(check, (bool, ImageDataset)):
        raise ConfigError(f"check: expected True, False or a convscope ImageDataset, got {type(check).__name__}",
                          arg="check")
    onnx, _ = _modules()
    pixels = input == "pixels"
    dataset = check
    if check is True:
        from ..data import load

        dataset = load(run.config.data.dataset, split, run.config.data.data_dir, download=False)
    proto = _export_proto(run, pixels, opset)
    meta = _metadata(run, pixels)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"{ONNX_MARK.decode()}{run.path.name}: {meta['convscope.input']} -> {meta['convscope.output']}"
    data = proto.SerializeToString()
    onnx.checker.check_model(proto)
    result = None
    if isinstance(dataset, ImageDataset):
        result = check_onnx(run, data, dataset, pixels, split=split)
        if not result.identical_predictions or result.max_abs_diff > 1e-3:
            raise ExportError(f"the exported graph does not reproduce {run.path} on {result.dataset} {split}: "
                              f"{result.n - result.same_prediction} of {result.n} predictions differ, max |logit "
                              f"difference| {result.max_abs_diff:.3g}; nothing was written to {path}")
    atomic_write_bytes(path, data)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    c, h, w = run.input_shape
    return OnnxExport(path, len(data), input, "pixels" if pixels else "input", ("batch", c, h, w), opset_used,
                      meta, result)
