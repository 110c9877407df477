"""Top-k maximally activating examples (Zeiler and Fergus 2014): one streaming pass over a dataset keeps,
for each channel of each chosen layer, the k images whose activation peaks highest, with the position.

Memory O(layers x channels x k): each batch is reduced to one (value, position) per image and channel,
merged into the running top-k. Ties are resolved deterministically: a higher value first, then the
lower dataset index, then (within an image) the first position in row-major order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from .._check import integer
from .._result import Display, ResultMixin, RichDisplay, Table
from ..configs import TOPK_MAX
from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.layers import resolve_layers
from ._args import check_dataset, check_model, check_norm, model_and_norm, stream
from .hooks import capture


@dataclass(frozen=True)
class TopRecord(ResultMixin):
    index: int      # dataset index
    y: int          # position in the layer's output (0 for fully connected layers)
    x: int
    value: float


class TopK(RichDisplay, dict):
    """:func:`topk`'s result, ``{layer: [[TopRecord, ...] per channel]}`` (a dict), that displays as a table per
    layer (each channel's best images) and, per layer, a grid of the images with the receptive field boxed."""

    def __init__(self, records: dict[str, list[list[TopRecord]]], images: torch.Tensor | None = None,
                 model: nn.Module | None = None, dataset: str = "") -> None:
        super().__init__(records)
        self.images, self.model, self.dataset = images, model, dataset   # images: (N, C, H, W) uint8

    def to_dict(self) -> dict[str, list[list[dict]]]:
        """``{layer: [[{index, y, x, value}, ...] per channel]}``, plain JSON as every result type gives."""
        return {layer: [[r.to_dict() for r in recs] for recs in chans] for layer, chans in self.items()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _fields(self) -> dict:
        """Each layer's receptive field for the boxes; none where the chain formula does not apply."""
        from .receptive_field import receptive_fields

        try:
            return receptive_fields(self.model, tuple(self.images.shape[1:])) if self.model is not None else {}
        except ConfigError:
            return {}

    def _display(self) -> Display:
        tables = []
        for layer, chans in self.items():
            rows = [[str(c)] + [f"#{r.index} ({r.y},{r.x}) {r.value:.3g}" for r in recs] for c, recs in
                    enumerate(chans)]
            k = max((len(r) for r in chans), default=0)
            tables.append(Table(["channel"] + [f"top {j + 1}" for j in range(k)], rows,
                                f"{layer}: dataset index (y,x of the peak) value, best first"))
        k = max((len(recs) for chans in self.values() for recs in chans), default=0)
        return Display(f"Top-{k} images of {len(self)} layer(s)" + (f" on {self.dataset}" if self.dataset else ""),
                       [], tables)

    def _pictures(self) -> list[tuple[str, bytes]]:
        if self.images is None:
            return []
        from ..viz import figure_png
        from .pictures import topk_figure

        fields = self._fields()
        return [(f"{layer}: the top images, receptive field boxed (first 16 channels)",
                 figure_png(topk_figure(self.images, recs, fields.get(layer), "images", layer)))
                for layer, recs in self.items() if recs]


class _Running:
    def __init__(self, channels: int, k: int, device) -> None:
        self.k = k
        self.values = torch.empty(channels, 0, dtype=torch.float64, device=device)
        self.index = torch.empty(channels, 0, dtype=torch.int64, device=device)
        self.pos = torch.empty(channels, 0, dtype=torch.int64, device=device)

    def add(self, act: torch.Tensor, first_index: int) -> None:
        b, c = act.shape[:2]
        val, pos = act.reshape(b, c, -1).max(dim=2)                # (B, C): first maximum in row-major order
        val = val.double()
        idx = torch.arange(first_index, first_index + b, device=act.device)
        vals = torch.cat([self.values, val.T], dim=1)              # running entries precede: lower indices
        inds = torch.cat([self.index, idx.expand(c, b)], dim=1)
        poss = torch.cat([self.pos, pos.T], dim=1)
        order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :self.k]  # ties keep index order
        self.values, self.index, self.pos = vals.gather(1, order), inds.gather(1, order), poss.gather(1, order)


def topk(model: nn.Module, dataset: ImageDataset, layers: list[str], k: int = 9,
         norm: Normalization | None = None, batch_size: int = 500) -> TopK:
    """Per layer, per channel: the k best records (index, y, x, value), best first. ``model``: a run (its
    normalization is used) or an nn.Module with ``norm`` given."""
    model, norm = model_and_norm(model, norm)
    check_model(model)
    dataset = check_dataset(dataset)
    k = integer(k, "k", 1, TOPK_MAX, fix="the top images per channel, all kept in memory and written out")
    batch_size = integer(batch_size, "batch_size", 1)
    norm = check_norm(norm, dataset)
    names = resolve_layers(model, layers)
    if not names:
        raise ConfigError("layers: no layer given; name at least one (e.g. 'conv1' or 'ReLU')")
    running: dict[str, _Running] = {}
    widths: dict[str, int] = {}
    state = {"first": 0}

    def reduce(name: str, out: torch.Tensor) -> None:
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):   # NaN would rank anywhere
            bad = (~torch.isfinite(out)).flatten(1).any(1).nonzero()[:, 0] + state["first"]
            raise ConfigError(f"layers: {name} gives NaN or infinite activations for {len(bad)} image(s) of the "
                              f"batch from #{state['first']} (first #{int(bad[0])}); a ranking of them would be "
                              "meaningless. Check the model's weights (a diverged run?) and the normalization")
        if name not in running:
            running[name] = _Running(out.shape[1], k, out.device)
            widths[name] = out.shape[3] if out.ndim == 4 else 1
        running[name].add(out, state["first"])

    with capture(model, names, reduce):      # the hooks read the batch's first dataset index from state
        stream(model, dataset, norm, batch_size, after=lambda n: state.__setitem__("first", state["first"] + n),
               progress=f"topk: top {k} of {len(dataset):,} images")
    silent = [n for n in names if n not in running]
    if silent:
        raise ConfigError(f"layers: {', '.join(silent)} produced no tensor output in the forward pass (not used by "
                          "the model's forward?); choose layers the forward runs through")
    result = TopK({}, dataset.images, model, dataset.name)
    for n in names:
        r, w = running[n], widths[n]
        vals, inds, poss = r.values.cpu().tolist(), r.index.cpu().tolist(), r.pos.cpu().tolist()
        result[n] = [[TopRecord(i, p // w, p % w, v) for v, i, p in zip(vc, ic, pc)]
                     for vc, ic, pc in zip(vals, inds, poss)]
    return result
