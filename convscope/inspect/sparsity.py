"""How sparse are the activations? Exact zeros per layer and per channel over a whole dataset, near-zeros
under a threshold, dead units, and histograms — in one streaming pass with bounded memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._check import integer, number
from .._result import Display, ResultMixin, RichDisplay, Table
from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.layers import default_activation_layers, resolve_layers
from ..runs.callbacks import Callback, LoopView
from ._args import check_dataset, check_model, check_norm, stream
from .hooks import capture


@dataclass
class LayerSparsity(ResultMixin):
    name: str
    shape: tuple[int, ...]               # one example's activation shape
    total: int                           # activations counted (examples x units)
    zero_fraction: float                 # exactly 0.0
    near_zero_fraction: float            # |a| <= threshold
    channel_zero_fraction: list[float]   # per channel (per feature for 2-D outputs)
    dead_units: int                      # units (channel, y, x) that are 0 on every input
    units: int
    dead_channels: int                   # channels that are 0 everywhere on every input
    hist_edges: list[float] = field(default_factory=list)
    hist_counts: list[int] = field(default_factory=list)


class LayerCounts:
    """Raw integer counts of one layer's outputs over some images: the partial result. Two partials over
    disjoint images (with the same histogram edges) merge exactly into the counts over their union."""

    def __init__(self, shape: tuple[int, ...], bins: np.ndarray) -> None:
        self.shape, self.bins = shape, bins
        self.n = 0                                                       # images
        self.zero = 0                                                    # activations exactly 0
        self.near = 0                                                    # |a| <= threshold
        self.chan_zero = torch.zeros(shape[0], dtype=torch.int64)       # (C,) zeros per channel
        self.ever_nonzero = torch.zeros(shape, dtype=torch.bool)        # one image's shape: unit ever non-zero
        self.hist = np.zeros(len(bins) - 1, dtype=np.int64)

    def add(self, a: torch.Tensor, threshold: float) -> None:
        """Count a batch of outputs ``a`` (B, *shape)."""
        a = a.float()
        z = a == 0
        self.n += a.shape[0]
        self.zero += int(z.sum())
        self.near += int((a.abs() <= threshold).sum())
        self.chan_zero += z.transpose(0, 1).reshape(a.shape[1], -1).sum(1).cpu()
        self.ever_nonzero |= (~z).any(0).cpu()
        self.hist += np.histogram(a.cpu().numpy(), bins=self.bins)[0]

    def merge(self, other: LayerCounts) -> None:
        """Add ``other``'s counts (same layer, same edges, other images) in place."""
        if other.shape != self.shape or not np.array_equal(other.bins, self.bins):
            raise ConfigError("sparsity partials: counts of different layers or histogram edges cannot be merged; "
                              "compute both with the same edges (hist_edges of the merged value ranges)")
        self.n, self.zero, self.near = self.n + other.n, self.zero + other.zero, self.near + other.near
        self.chan_zero += other.chan_zero
        self.ever_nonzero |= other.ever_nonzero
        self.hist += other.hist


@dataclass(frozen=True)
class SparsityArgs:
    """The checked arguments of :func:`activation_sparsity` (shared by the sharded path)."""

    norm: Normalization
    names: list[str]
    threshold: float
    batch_size: int
    bins: int
    hist_range: tuple[float, float] | None


BINS_MAX = 10_000   # histogram bins per layer (activation_sparsity)


def check_sparsity_args(model: nn.Module, dataset: ImageDataset, norm: Normalization, layers: list[str] | None,
                        threshold: float, batch_size: int, bins: int,
                        hist_range: tuple[float, float] | None) -> SparsityArgs:
    check_model(model)
    dataset = check_dataset(dataset)
    norm = check_norm(norm, dataset, required=True)
    batch_size = integer(batch_size, "batch_size", 1)
    # was: bins=10**9 accepted, > 60 s and ~8 GB per layer (a histogram of that many counts per layer and batch)
    bins = integer(bins, "bins", 1, BINS_MAX, fix="a histogram's bins per layer; more cannot be told apart on a plot "
                                                 "and cost memory and time on every batch")
    threshold = number(threshold, "threshold", 0)
    if hist_range is not None:
        if not isinstance(hist_range, (tuple, list)) or len(hist_range) != 2:
            raise ConfigError(f"hist_range: expected (low, high), got {hist_range!r}")
        hist_range = tuple(number(v, "hist_range") for v in hist_range)
        if not hist_range[0] < hist_range[1]:
            raise ConfigError(f"hist_range: low must be below high, got {hist_range!r}")
    names = resolve_layers(model, layers) if layers is not None else default_activation_layers(model)
    if not names:
        raise ConfigError("layers: no layer given; name at least one (e.g. 'relu1' or 'ReLU'), or pass None")
    return SparsityArgs(norm, names, threshold, batch_size, bins, hist_range)


def layer_shapes(model: nn.Module, dataset: ImageDataset, args: SparsityArgs) -> dict[str, tuple[int, ...]]:
    """The layers of ``args.names`` that output a tensor in a forward pass, with one example's output shape
    (a one-image probe: every shard knows them, also one without images)."""
    shapes: dict[str, tuple[int, ...]] = {}
    with capture(model, args.names, lambda n, t: shapes.setdefault(n, tuple(t.shape[1:]))):
        stream(model, dataset, args.norm, 1, stop=1)
    return {n: shapes[n] for n in args.names if n in shapes}


def value_ranges(model: nn.Module, dataset: ImageDataset, args: SparsityArgs, layers: list[str], start: int = 0,
                 stop: int | None = None) -> dict[str, tuple[float, float]]:
    """Partial: each layer's (min, max) over images ``[start, stop)``; (inf, -inf) where there are none.
    Partials merge by the min of the lows and the max of the highs."""
    lo = dict.fromkeys(layers, np.inf)
    hi = dict.fromkeys(layers, -np.inf)

    def extent(name: str, out: torch.Tensor) -> None:
        lo[name] = min(lo[name], float(out.min()))
        hi[name] = max(hi[name], float(out.max()))

    with capture(model, layers, extent):
        stream(model, dataset, args.norm, args.batch_size, start, stop, progress="sparsity: value ranges (pass 1 of 2)")
    return {n: (lo[n], hi[n]) for n in layers}


def hist_edges(args: SparsityArgs, ranges: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Each layer's histogram edges: ``args.hist_range`` if given, else spanning its (merged) value range."""
    if args.hist_range is not None:
        return {n: np.linspace(*args.hist_range, args.bins + 1) for n in ranges}
    return {n: _bin_edges(lo, hi, args.bins) for n, (lo, hi) in ranges.items()}


def sparsity_counts(model: nn.Module, dataset: ImageDataset, args: SparsityArgs, shapes: dict[str, tuple[int, ...]],
                    edges: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> dict[str, LayerCounts]:
    """Partial: each layer's counts over images ``[start, stop)`` (the single-process batches of that range)."""
    counts = {n: LayerCounts(shapes[n], edges[n]) for n in shapes}
    with capture(model, list(shapes), lambda name, out: counts[name].add(out, args.threshold)):
        stream(model, dataset, args.norm, args.batch_size, start, stop, progress="sparsity: counting zeros")
    return counts


class SparsityReport(RichDisplay, list):
    """:func:`activation_sparsity`'s rows (a list of :class:`LayerSparsity`), displayed as a table per layer and
    the bar chart with each layer's histogram."""

    def _display(self) -> Display:
        rows = [[r.name, "x".join(map(str, r.shape)), f"{100 * r.zero_fraction:.2f}",
                 f"{100 * r.near_zero_fraction:.2f}", f"{r.dead_units:,}/{r.units:,}",
                 f"{r.dead_channels}/{r.shape[0]}", f"{r.total:,}"] for r in self]
        return Display(f"Activation sparsity of {len(self)} layer(s)", [],
                       [Table(["layer", "shape", "exactly 0 %", "near 0 %", "dead units", "dead channels",
                               "activations counted"], rows)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        if not self:
            return []
        from ..viz import figure_png

        return [("share of zeros per layer, and each layer's histogram of values", figure_png(sparsity_figure(self)))]


def summarize(counts: dict[str, LayerCounts]) -> SparsityReport:
    """The result of merged counts (all the images), in layer order."""
    return SparsityReport(_summary(n, c) for n, c in counts.items())


def activation_sparsity(model: nn.Module, dataset: ImageDataset, norm: Normalization, layers: list[str] | None = None,
                        threshold: float = 1e-3, batch_size: int = 500, bins: int = 60,
                        hist_range: tuple[float, float] | None = None) -> SparsityReport:
    """Sparsity of each layer's output over ``dataset`` (eval mode), one :class:`LayerSparsity` per layer (a list
    that displays itself). Default layers: the activation modules.

    Two streaming passes when ``hist_range`` is None (the first finds each layer's value range)."""
    args = check_sparsity_args(model, dataset, norm, layers, threshold, batch_size, bins, hist_range)
    shapes = layer_shapes(model, dataset, args)
    ranges = value_ranges(model, dataset, args, list(shapes)) if hist_range is None else dict.fromkeys(shapes)
    return summarize(sparsity_counts(model, dataset, args, shapes, hist_edges(args, ranges)))


def _bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """Histogram edges spanning a layer's observed value range [lo, hi] (a constant layer gets width 1)."""
    top = hi if hi > lo else lo + 1.0
    return np.linspace(lo, top, bins + 1)


def _summary(name: str, a: LayerCounts) -> LayerSparsity:
    """The fractions and dead counts of one layer, from its accumulated raw counts."""
    units = int(np.prod(a.shape))
    per_chan = units // a.shape[0]
    dead_units = int((~a.ever_nonzero).sum())
    dead_channels = int((~a.ever_nonzero.reshape(a.shape[0], -1).any(1)).sum())
    return LayerSparsity(name, a.shape, a.n * units, a.zero / (a.n * units), a.near / (a.n * units),
                         (a.chan_zero.double() / (a.n * per_chan)).tolist(), dead_units, units, dead_channels,
                         a.bins.tolist(), a.hist.tolist())


def sparsity_figure(results: list[LayerSparsity], title: str = ""):
    """Share of exact and near zeros per layer (bars), then each layer's histogram of activation values."""
    from ..viz import new_figure

    n = len(results)
    fig = new_figure(10, 2.2 + 2.0 * n)
    axes = fig.subplots(n + 1, 1, squeeze=False)[:, 0]
    ax = axes[0]
    ax.bar(range(n), [100 * r.zero_fraction for r in results], color="tab:blue", label="exactly 0")
    ax.bar(range(n), [100 * (r.near_zero_fraction - r.zero_fraction) for r in results],
           bottom=[100 * r.zero_fraction for r in results], color="tab:orange", label="near 0 (not exactly)")
    ax.set_xticks(range(n), [r.name for r in results], fontsize=8)
    ax.set_ylabel("% of activations")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title or "activation sparsity per layer")
    for ax, r in zip(axes[1:], results):
        edges = np.asarray(r.hist_edges)
        ax.bar(edges[:-1], np.maximum(r.hist_counts, 1e-1), width=np.diff(edges), align="edge", color="tab:gray")
        ax.set_yscale("log")
        ax.set_title(f"{r.name}: {100 * r.zero_fraction:.1f}% exactly zero, {r.dead_units}/{r.units} dead units, "
                     f"{r.dead_channels}/{r.shape[0]} dead channels", fontsize=9)
        ax.set_xlabel("activation value")
    fig.tight_layout()
    return fig


def sparsity_png(results: list[LayerSparsity], path, title: str = ""):
    from ..viz import save_figure

    return save_figure(sparsity_figure(results, title), path)


class SparsityTracker(Callback):
    """Per epoch, the exactly-zero fraction of each activation layer's output on the first ``probe`` test
    images, as ``"sparsity": {layer: fraction}`` in the epoch's metrics line (``track_sparsity: true`` adds one
    to a run; any run may take one through ``callbacks=``)."""

    def __init__(self, probe: int = 1000) -> None:
        self.probe = probe

    def on_epoch_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        test = loop.data.test
        probe = test.subset(torch.arange(min(self.probe, len(test))))
        res = activation_sparsity(loop.engine.eval_module(), probe, loop.data.norm, hist_range=(0.0, 1.0), bins=1)
        record["sparsity"] = {r.name: round(r.zero_fraction, 6) for r in res}
