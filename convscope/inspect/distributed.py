"""Dataset-wide inspection on several processes (``torchrun``): each rank streams its shard of the dataset
and the partial results are merged exactly, so the answer equals the single-process one bit for bit.

- Shards are whole batches of the single-process run (``batch_shard``): every image goes through the model
  in the same batch as in one process, so its activations are identical whatever kernel the batch shape picks.
- Top-k: each rank keeps its shard's k best per channel (with global dataset indices); the merge sorts the
  union by (value descending, index ascending) — the single-process order — and keeps k. Exact: the global k
  best of a channel are among the union of the shards' k best.
- Sparsity: the value range (first pass) is reduced with min/max before the histogram edges are fixed; then
  integer counts, histograms and the per-unit "ever non-zero" masks are summed / OR-ed.
- Edge experiment: per-image counts from each shard, concatenated in rank (= dataset) order.

Outside a launch (no ``WORLD_SIZE`` > 1) each function is the single-process tool. Inside one, every rank
returns the full merged result; only rank 0 should print or write (``is_main_process()``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..distributed import World, all_any, all_max, all_min, all_sum, batch_shard, gather_rows, process_group
from .edges import EdgeResult, edge_experiment
from .sparsity import (
    LayerCounts,
    LayerSparsity,
    check_sparsity_args,
    hist_edges,
    layer_shapes,
    sparsity_counts,
    summarize,
    value_ranges,
)
from .topk import TopRecord, topk


def _slice(ds: ImageDataset, start: int, stop: int) -> ImageDataset:
    """Images ``[start, stop)`` as a dataset (views, no copy)."""
    return dataclasses.replace(ds, images=ds.images[start:stop], labels=ds.labels[start:stop])


def sharded_topk(model: nn.Module, dataset: ImageDataset, layers: list[str], k: int = 9,
                 norm: Normalization | None = None, batch_size: int = 500) -> dict[str, list[list[TopRecord]]]:
    """:func:`convscope.inspect.topk` over this launch's ranks; identical records (index, y, x, value)."""
    with process_group() as world:
        start, stop = batch_shard(len(dataset), batch_size, world.rank, world.size)
        empty = start == stop
        # a rank without images still runs one image (and drops it) to learn the channel counts
        local = topk(model, _slice(dataset, 0, 1) if empty else _slice(dataset, start, stop), layers, k, norm,
                     batch_size)
        return {name: _merge_topk(recs, start, empty, k, world) for name, recs in local.items()}


def _merge_topk(recs: list[list[TopRecord]], offset: int, empty: bool, k: int, world: World) -> list[list[TopRecord]]:
    c = len(recs)
    kk = 0 if empty else len(recs[0])
    # (kk, C) per field; row j = each channel's j-th best on this rank, indices made global
    vals = torch.tensor([[r.value for r in ch[:kk]] for ch in recs], dtype=torch.float64).reshape(c, kk).T
    fields = [torch.tensor([[getattr(r, f) for r in ch[:kk]] for ch in recs], dtype=torch.int64).reshape(c, kk).T
              for f in ("index", "y", "x")]
    fields[0] = fields[0] + offset
    vals = gather_rows(vals.contiguous(), world)                        # (sum kk, C)
    idx, ys, xs = (gather_rows(f.contiguous(), world) for f in fields)
    # order by (value desc, index asc): stable sort by index, then stable sort by value
    o1 = torch.sort(idx, dim=0, stable=True).indices
    vals, idx, ys, xs = (t.gather(0, o1) for t in (vals, idx, ys, xs))
    o2 = torch.sort(vals, dim=0, descending=True, stable=True).indices[:k]
    vals, idx, ys, xs = (t.gather(0, o2).T.tolist() for t in (vals, idx, ys, xs))
    return [[TopRecord(i, y, x, v) for v, i, y, x in zip(*ch)] for ch in zip(vals, idx, ys, xs)]


def sharded_activation_sparsity(model: nn.Module, dataset: ImageDataset, norm: Normalization,
                                layers: list[str] | None = None, threshold: float = 1e-3, batch_size: int = 500,
                                bins: int = 60, hist_range: tuple[float, float] | None = None) -> list[LayerSparsity]:
    """:func:`convscope.inspect.activation_sparsity` over this launch's ranks; identical results: the same
    argument checks and partial counts, merged over the ranks instead of computed over one range."""
    args = check_sparsity_args(model, dataset, norm, layers, threshold, batch_size, bins, hist_range)
    with process_group() as world:
        start, stop = batch_shard(len(dataset), batch_size, world.rank, world.size)
        shapes = layer_shapes(model, dataset, args)
        fired = list(shapes)
        ranges = dict.fromkeys(fired)
        if hist_range is None:   # pass 1: each layer's value range over the whole dataset
            local = value_ranges(model, dataset, args, fired, start, stop)
            los = all_min(torch.tensor([local[n][0] for n in fired], dtype=torch.float64), world).tolist()
            his = all_max(torch.tensor([local[n][1] for n in fired], dtype=torch.float64), world).tolist()
            ranges = {n: (a, b) for n, a, b in zip(fired, los, his)}
        counts = sparsity_counts(model, dataset, args, shapes, hist_edges(args, ranges), start, stop)
        for c in counts.values():
            _merge_counts(c, world)
        return summarize(counts)


def _merge_counts(a: LayerCounts, world: World) -> None:
    """:meth:`LayerCounts.merge` over the ranks, in place (exact: integer sums, OR of masks)."""
    a.n, a.zero, a.near = all_sum(torch.tensor([a.n, a.zero, a.near], dtype=torch.int64), world).tolist()
    a.chan_zero = all_sum(a.chan_zero, world)
    a.ever_nonzero = all_any(a.ever_nonzero, world)
    a.hist = all_sum(torch.from_numpy(a.hist), world).numpy()


def sharded_edge_experiment(images: torch.Tensor | np.ndarray, *args, keep: int = 8, batch_size: int = 2000,
                            **kwargs) -> EdgeResult:
    """:func:`convscope.inspect.edge_experiment` over this launch's ranks (other arguments passed through);
    per-image counts in dataset order and the first ``keep`` filter outputs, identical to one process."""
    with process_group() as world:
        start, stop = batch_shard(len(images), batch_size, world.rank, world.size)
        empty = start == stop
        res = edge_experiment(images[:1] if empty else images[start:stop], *args, keep=keep,
                              batch_size=batch_size, **kwargs)
        if not world.distributed:
            return res
        counts = {}
        for f in ("nonzero_input", "nonzero_before", "nonzero_after"):
            local = torch.as_tensor(getattr(res, f), dtype=torch.int64)[:0 if empty else None]
            counts[f] = gather_rows(local, world).numpy()
        outs = res.outputs
        if outs is not None:
            local = torch.as_tensor(outs, dtype=torch.float64)[:0 if empty else None]
            outs = gather_rows(local, world)[:keep].numpy()
        return dataclasses.replace(res, outputs=outs, **counts)
