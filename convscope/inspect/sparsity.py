"""How sparse are the activations? Exact zeros per layer and per channel over a whole dataset, near-zeros
under a threshold, dead units, and histograms — in one streaming pass with bounded memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import ImageDataset
from .._result import ResultMixin
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.probe import eval_mode
from ..runs.callbacks import Callback, LoopView
from ._args import check_dataset, check_model, check_norm, finite_float, forward, positive_int
from ..models.layers import default_activation_layers, resolve_layers
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


class _Acc:
    """Running sums for one layer; O(units) memory."""

    def __init__(self, shape: tuple[int, ...], bins: np.ndarray) -> None:
        self.shape, self.bins = shape, bins
        self.n = 0
        self.zero = 0
        self.near = 0
        c = shape[0]
        self.chan_zero = torch.zeros(c, dtype=torch.float64)
        self.ever_nonzero = torch.zeros(shape, dtype=torch.bool)
        self.hist = np.zeros(len(bins) - 1, dtype=np.int64)

    def add(self, a: torch.Tensor, threshold: float) -> None:
        a = a.float()
        z = a == 0
        self.n += a.shape[0]
        self.zero += int(z.sum())
        self.near += int((a.abs() <= threshold).sum())
        self.chan_zero += z.transpose(0, 1).reshape(a.shape[1], -1).sum(1).double()
        self.ever_nonzero |= (~z).any(0).cpu()
        self.hist += np.histogram(a.cpu().numpy(), bins=self.bins)[0]


def activation_sparsity(model: nn.Module, dataset: ImageDataset, norm: Normalization, layers: list[str] | None = None,
                        threshold: float = 1e-3, batch_size: int = 500, bins: int = 60,
                        hist_range: tuple[float, float] | None = None) -> list[LayerSparsity]:
    """Sparsity of each layer's output over ``dataset`` (eval mode). Default layers: the activation modules.

    Two streaming passes when ``hist_range`` is None (the first finds each layer's value range)."""
    device = check_model(model)
    dataset = check_dataset(dataset)
    norm = check_norm(norm, dataset, required=True)
    batch_size, bins = positive_int(batch_size, "batch_size"), positive_int(bins, "bins")
    threshold = finite_float(threshold, "threshold", minimum=0.0)
    if hist_range is not None:
        if not isinstance(hist_range, (tuple, list)) or len(hist_range) != 2:
            raise ConfigError(f"hist_range: expected (low, high), got {hist_range!r}")
        lo_, hi_ = (finite_float(v, "hist_range") for v in hist_range)
        if not lo_ < hi_:
            raise ConfigError(f"hist_range: low must be below high, got {hist_range!r}")
    names = resolve_layers(model, layers) if layers is not None else default_activation_layers(model)
    if not names:
        raise ConfigError("layers: no layer given; name at least one (e.g. 'relu1' or 'ReLU'), or pass None")
    accs: dict[str, _Acc] = {}
    edges: dict[str, np.ndarray] = {}
    with eval_mode(model):
        if hist_range is None:  # pass 1: each layer's value range, so pass 2's histograms hold every value
            lo: dict[str, float] = {}
            hi: dict[str, float] = {}

            def extent(name: str, out: torch.Tensor) -> None:
                lo[name] = min(lo.get(name, np.inf), float(out.min()))
                hi[name] = max(hi.get(name, -np.inf), float(out.max()))

            with torch.no_grad(), capture(model, names, extent):
                for i in range(0, len(dataset), batch_size):
                    forward(model, norm.apply(dataset.images[i:i + batch_size].to(device)), dataset)
            for n, low in lo.items():
                edges[n] = _bin_edges(low, hi[n], bins)

        def reduce(name: str, out: torch.Tensor) -> None:
            if name not in accs:
                accs[name] = _Acc(tuple(out.shape[1:]), edges.get(name, np.linspace(*(hist_range or (0, 1)), bins + 1)))
            accs[name].add(out, threshold)

        with torch.no_grad(), capture(model, names, reduce):
            for i in range(0, len(dataset), batch_size):
                forward(model, norm.apply(dataset.images[i:i + batch_size].to(device)), dataset)
    return [_summary(n, accs[n]) for n in names if n in accs]


def _bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """Histogram edges spanning a layer's observed value range [lo, hi] (a constant layer gets width 1)."""
    top = hi if hi > lo else lo + 1.0
    return np.linspace(lo, top, bins + 1)


def _summary(name: str, a: _Acc) -> LayerSparsity:
    """The fractions and dead counts of one layer, from its accumulated raw counts."""
    units = int(np.prod(a.shape))
    per_chan = units // a.shape[0]
    dead_units = int((~a.ever_nonzero).sum())
    dead_channels = int((~a.ever_nonzero.reshape(a.shape[0], -1).any(1)).sum())
    return LayerSparsity(name, a.shape, a.n * units, a.zero / (a.n * units), a.near / (a.n * units),
                         (a.chan_zero / (a.n * per_chan)).tolist(), dead_units, units, dead_channels,
                         a.bins.tolist(), a.hist.tolist())


def sparsity_png(results: list[LayerSparsity], path, title: str = ""):
    from ..viz import new_figure, save_figure

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
    return save_figure(fig, path)


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
