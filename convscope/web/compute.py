"""What the pages show, computed with the library: one forward with every layer captured, a unit's filter,
top-k images and sparsity, a run's training record and confusion matrix, and the conv-as-matrix pattern.

Everything returns plain JSON-ready dicts; the HTML views and the static report both read them.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..conv import make_geometry
from ..data.prepare import Prepared, prepare_image
from ..data.prepare import default_mode as default_prepare
from ..errors import ConfigError, ConvscopeError
from ..inspect import activation_sparsity, capture, list_layers, receptive_fields, topk
from ..matrix.display import block_structure, symbolic_entries, tap_names
from ..models.conv_layers import conv_layers, last_conv
from ..training import Run
from . import pictures
from .network import network
from .runs import RunEntry
from .testset import evaluation, test_dataset  # noqa: F401  (test_dataset: part of this module's API)

TOPK = 9
MATRIX_LIMITS = {"input": 12, "kernel": 7, "stride": 4, "padding": 4, "dilation": 3}


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prediction(_ToDict):
    """One live update: class probabilities and every shown layer's maps (uint8, base64, one scale a layer)."""
    prediction: str
    index: int
    classes: list[str]
    probabilities: list[float]
    input: str                        # base64 of the uint8 model input (C, H, W)
    input_shape: list[int]
    layers: list[dict[str, Any]]      # name, kind, shape, lo, hi, signed, data
    notes: list[str] = field(default_factory=list)   # how the picture was prepared (predict's notes)
    no_ink: bool = False              # a blank picture: the maps are shown, the page names no digit
    logits: list[float] = field(default_factory=list)   # the model's own forward (before any test-time averaging)


@dataclass
class UnitView(_ToDict):
    """A channel of a layer: filter, top-k images with receptive-field boxes, sparsity, saved pictures."""
    run: str
    layer: str
    kind: str
    channel: int
    channels: int
    shape: list[int]
    visualize_command: str
    notes: list[str] = field(default_factory=list)
    filter: dict[str, Any] | None = None
    topk: list[dict[str, Any]] = field(default_factory=list)
    sparsity: dict[str, Any] | None = None
    receptive_field: dict[str, Any] | None = None   # size, jump, start (None: the chain formula does not apply)
    files: list[str] = field(default_factory=list)


@dataclass
class TrainingView(_ToDict):
    """A run's record: summary, epoch and step metrics, confusion matrix and per-class accuracy (test split)."""
    id: str
    path: str
    model: str | None
    dataset: str
    classes: list[str]
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    confusion: list[list[int]] | None = None
    per_class: list[float] | None = None
    accuracy: float | None = None
    confusion_error: str | None = None


@dataclass
class MatrixView(_ToDict):
    """The conv-as-matrix pattern of one channel: entries (row, column, weight name) and the geometry."""
    input: list[int]
    kernel: list[int]
    stride: int
    padding: int
    dilation: int
    output: list[int]
    shape: list[int]
    taps: list[str]
    structure: str
    nnz: int
    entries: list[list[Any]]


def prepare_picture(img: Image.Image, input_shape: tuple[int, int, int], mode: str = "none") -> Prepared:
    """A drawn canvas or an uploaded picture -> the prepared model input, by the one path
    (:func:`convscope.data.prepare.prepare_image`, as ``convscope predict`` reads the same file). A blank canvas
    has no ink for ``mode="mnist"`` to find: it gets the plain conversion (the empty input), so the page shows
    the layers before anything is drawn, and ``steps["no_ink"]`` says so (an uploaded blank picture too: the
    page then names no digit, where ``predict`` refuses the file)."""
    return prepare_image(img, input_shape, mode=mode, blank="plain")


def prepare_canvas_image(img: Image.Image, input_shape: tuple[int, int, int], mode: str = "none") -> torch.Tensor:
    """:func:`prepare_picture`'s model input alone, uint8 (1, C, H, W)."""
    return prepare_picture(img, input_shape, mode).tensor[None]


def shown_layers(entry: RunEntry) -> list[dict[str, Any]]:
    """Leaf layers with a feature-map output (C, H, W), batch norm left out (its maps repeat the conv's)."""
    def compute():
        run = entry.run
        mods = dict(run.model.named_modules())
        return [{"name": li.name, "kind": li.kind, "shape": list(li.output_shape)}
                for li in list_layers(run.model, run.input_shape)
                if len(li.output_shape) == 3 and not list(mods[li.name].children())
                and "Norm" not in li.kind and li.kind != "Identity"]
    return entry.cached("layers", compute)


def _quantize(t: torch.Tensor) -> dict[str, Any]:
    """(C, H, W) float -> uint8 bytes on one scale for the layer: 0..255 from 0 to max, or 128 = 0 when signed."""
    a = t.float()
    lo, hi = float(a.min()), float(a.max())
    signed = lo < 0
    if signed:
        m = max(-lo, hi) or 1.0
        q = (127.5 + 127.5 * a / m).round().clamp(0, 255)
    else:
        q = (255.0 * a / (hi or 1.0)).round().clamp(0, 255)
    data = q.to(torch.uint8).contiguous().numpy().tobytes()
    return {"lo": lo, "hi": hi, "signed": signed, "data": base64.b64encode(data).decode("ascii")}


@torch.no_grad()
def predict_with_maps(entry: RunEntry, x_u8: torch.Tensor, prepared: Prepared | None = None,
                      with_norm: bool = False) -> Prediction:
    """Class probabilities, logits and every shown layer's feature maps for one uint8 input (1, C, H, W); with
    the ``prepared`` picture's notes and whether it had no ink. ``with_norm``: the batch-norm layers' maps too
    (the network view's toggle), each layer flagged ``norm``."""
    run = entry.run
    layers = ([{k: li[k] for k in ("name", "kind", "shape", "norm")} for li in network(entry)["layers"]]
              if with_norm else shown_layers(entry))
    names = [li["name"] for li in layers]
    with entry.model_lock:
        inp = run.preprocess(x_u8)
        with capture(run.model, names) as maps:
            logits = own = run.model(inp).float()
        if run.tta:  # the run's own test-time averaging, as `convscope predict` does
            logits = run.logits(inp)
    probs = torch.softmax(logits, dim=1)[0]
    top = int(probs.argmax())
    return Prediction(run.classes[top], top, list(run.classes), [round(float(p), 6) for p in probs],
                      base64.b64encode(x_u8[0].numpy().tobytes()).decode("ascii"), list(run.input_shape),
                      [{**li, **_quantize(maps[li["name"]][0])} for li in layers],
                      list(prepared.notes) if prepared else [], bool(prepared and prepared.steps.get("no_ink")),
                      [round(float(v), 5) for v in own[0]])


def predict_picture(entry: RunEntry, img: Image.Image, with_norm: bool = False) -> Prediction:
    """A drawn or uploaded picture -> probabilities and every layer's maps, prepared the way ``convscope predict``
    prepares an image file for this run (the run's recorded mode): the draw page and the notebook widget both
    come here."""
    prep = prepare_picture(img, entry.run.input_shape, default_prepare(entry.run.meta))
    return predict_with_maps(entry, prep.tensor[None], prep, with_norm=with_norm)


def inspect_files(run_path: Path, layer: str) -> list[str]:
    """Feature visualizations (``visualize-LAYER*.png``) and projections (``project-LAYER.png``) the CLI wrote for
    ``layer`` into RUN/inspect (paths relative to the run)."""
    folder = run_path / "inspect"
    if not folder.is_dir():
        return []
    safe, out = layer.lower().replace("/", "_"), []     # the CLI writes "/" in a layer name as "_"
    for p in sorted(folder.iterdir()):
        stem = p.name.lower()
        if p.suffix.lower() == ".png" and stem.startswith(("visualize-", "project-")) \
                and stem.split("-", 1)[1].removesuffix(".png") in (safe, f"{safe}-neuron") \
                and not p.is_symlink():
            out.append(f"inspect/{p.name}")
    return out


def check_unit(entry: RunEntry, layer: str, ch: int) -> dict[str, Any]:
    """The shown layer ``layer`` (name, kind, shape) if ``ch`` is one of its channels, else a ConfigError."""
    layers = {li["name"]: li for li in shown_layers(entry)}
    if layer not in layers:
        raise ConfigError(f"layer {layer!r}: not a feature-map layer of this run; choose one of {', '.join(layers)}")
    channels = layers[layer]["shape"][0]
    if not 0 <= ch < channels:
        raise ConfigError(f"channel {ch}: layer {layer!r} has channels 0..{channels - 1}")
    return layers[layer]


def unit_data(entry: RunEntry, layer: str, ch: int) -> UnitView:
    """A channel: its filter, top-k images and patches (receptive-field boxes), sparsity, saved pictures."""
    run = entry.run
    layers = {layer: check_unit(entry, layer, ch)}
    channels = layers[layer]["shape"][0]
    out = UnitView(entry.id, layer, layers[layer]["kind"], ch, channels, layers[layer]["shape"],
                   f"convscope visualize {entry.path} --layer {layer}")
    name = last_conv(run.model, upto=layer)                              # the conv whose channels it shows
    conv = (name, conv_layers(run.model)[name]) if name is not None else None
    if conv is not None and conv[1].out_channels == channels:
        w = conv[1].weight.detach().float()[ch].numpy()                  # (in/groups, kh, kw)
        vmax = float(np.abs(w).max()) or 1.0
        out.filter = {"conv": conv[0], "shape": list(w.shape), "max_abs": vmax,
                         "values": w[0].round(4).tolist() if w.shape[0] == 1 else None,
                         "tiles": [pictures.data_uri(pictures.png_bytes(pictures.enlarge(
                             pictures.colorize(k, signed=True, vmax=vmax), 56))) for k in w[:16]]}
    try:
        ds = test_dataset(run)
    except ConvscopeError as e:
        out.notes.append(f"top-k and sparsity need the {run.config.data.dataset!r} test split: {e}")
        ds = None
    if ds is not None:
        recs = entry.cached(("topk", layer), lambda: topk(run.model, ds, [layer], k=TOPK, norm=run.normalization))
        fields = entry.cached("fields", lambda: _fields(run))
        rf = fields.get(layer)
        images = ds.images.numpy()
        for r in recs[layer][ch]:
            box = rf.box(r.y, r.x) if rf is not None and not rf.is_global else None
            img = images[r.index]
            out.topk.append({"index": r.index, "y": r.y, "x": r.x, "value": r.value, "box": box,
                                "label": ds.classes[int(ds.labels[r.index])],
                                "patch": pictures.data_uri(pictures.png_bytes(pictures.enlarge(
                                    pictures.patch(img, box) if box else pictures.gray_rgb(img), 72))),
                                "image": pictures.data_uri(pictures.png_bytes(pictures.with_box(img, box)))})
        if rf is None:
            out.notes.append("receptive fields: the chain formula does not apply to this model (boxes not drawn)")
        sp = entry.cached(("sparsity", layer), lambda: activation_sparsity(run.model, ds, run.normalization,
                                                                           [layer]))[0]
        out.sparsity = {"channel_zero_fraction": sp.channel_zero_fraction[ch], "layer_zero_fraction": sp.zero_fraction,
                           "dead_channels": sp.dead_channels, "images": len(ds)}
        if rf is not None:
            out.receptive_field = {"size": list(rf.size), "jump": list(rf.jump), "start": list(rf.start)}
    out.files = inspect_files(entry.path, layer)
    return out


def _fields(run: Run) -> dict:
    try:
        return receptive_fields(run.model, run.input_shape)
    except ConfigError:
        return {}


def training_data(entry: RunEntry) -> TrainingView:
    """Epoch and step records, the summary, and the confusion matrix on the test split (cached)."""
    run = entry.run
    epochs, steps = _training_records(run)
    out = TrainingView(entry.id, str(entry.path), run.meta.get("model"), run.config.data.dataset, list(run.classes),
                       run.summary, epochs, [{"step": m["step"], "loss": m.get("loss")} for m in steps])
    try:
        res = evaluation(entry).result
        res.refuse_non_finite(str(entry.path))   # a diverged run: argmax over NaN is class 0 for every image
        out.confusion, out.per_class, out.accuracy = res.confusion.tolist(), res.per_class, res.accuracy
    except ConvscopeError as e:
        out.confusion_error = str(e)
    return out


# what each kind of record must hold to be drawn (metrics.jsonl has no checksum: it may say anything)
_NEEDED = {"epoch": ("epoch",), "step": ("step",)}


def _training_records(run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The epoch and step records of the run's metrics.jsonl; a record of either kind that lacks a key the pages
    need, or holds a non-number there, is a RunError naming the file."""
    from ..runs.rundir import METRICS, RunError

    out: dict[str, list[dict[str, Any]]] = {"epoch": [], "step": []}
    for i, m in enumerate(run.metrics, 1):
        kind = m.get("kind")
        if kind not in _NEEDED:
            continue   # other kinds of record are not drawn
        for key in _NEEDED[kind]:
            v = m.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RunError(f"{run.path / METRICS}: record {i} (kind {kind!r}) has no number under {key!r} "
                               f"(got {v!r:.40}); the file is damaged: fix or delete that line")
        out[kind].append(m)
    return out["epoch"], out["step"]


# the explorer's labels of its fields, so a message names the field the reader sees (and the address's name)
_FIELD_LABELS = {"h": "input H", "w": "input W", "kh": "kernel H", "kw": "kernel W"}


def _int(params: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(key, default)
    name = f"{_FIELD_LABELS[key]} ({key})" if key in _FIELD_LABELS else key
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if not lo <= v <= hi:
        raise ConfigError(f"{name}: {v} is outside {lo}..{hi} (the explorer draws every cell)")
    return v


def matrix_data(params: dict[str, Any]) -> MatrixView:
    """The conv-as-matrix pattern for one input and one output channel: entries (row, col, weight name)."""
    L = MATRIX_LIMITS
    h, w = _int(params, "h", 4, 1, L["input"]), _int(params, "w", 4, 1, L["input"])
    kh, kw = _int(params, "kh", 3, 1, L["kernel"]), _int(params, "kw", 3, 1, L["kernel"])
    s, p = _int(params, "stride", 1, 1, L["stride"]), _int(params, "padding", 0, 0, L["padding"])
    d = _int(params, "dilation", 1, 1, L["dilation"])
    geom = make_geometry((1, 1, kh, kw), (1, h, w), stride=s, padding=p, dilation=d)
    entries = symbolic_entries(geom)
    rows, cols = geom.shape
    return MatrixView([h, w], [kh, kw], s, p, d, list(geom.output_hw), [rows, cols], tap_names(geom),
                      block_structure(geom), len(entries), [[r, c, name] for (r, c), name in sorted(entries.items())])
