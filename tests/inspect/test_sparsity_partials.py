"""Sparsity as partial counts plus a merge: the partials of two halves of a dataset, merged, equal the
one-process result exactly (integer counts), with the same argument checks on both paths."""

import dataclasses

import numpy as np
import pytest
import torch

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.inspect import activation_sparsity, hook_count
from convscope.inspect.distributed import sharded_activation_sparsity
from convscope.inspect.sparsity import (LayerCounts, check_sparsity_args, hist_edges, layer_shapes, sparsity_counts,
                                        summarize, value_ranges)
from convscope.models import create_model

NORM = Normalization((0.13,), (0.31,))
LAYERS = ["relu1", "relu2", "relu3", "fc"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = create_model("fast", 1, 28, 10, width=8).eval()
    test = load("digits", "test")
    ds = dataclasses.replace(test, images=test.images[:600], labels=test.labels[:600])
    return model, ds


@pytest.mark.parametrize("hist_range", [None, (-1.0, 4.0)])
def test_merged_halves_equal_the_one_process_result(setup, hist_range):
    model, ds = setup
    one = activation_sparsity(model, ds, NORM, LAYERS, threshold=0.01, batch_size=100, bins=20,
                              hist_range=hist_range)
    args = check_sparsity_args(model, ds, NORM, LAYERS, 0.01, 100, 20, hist_range)
    shapes = layer_shapes(model, ds, args)
    halves = [(0, 300), (300, 600)]
    ranges = dict.fromkeys(shapes)
    if hist_range is None:                       # value-range partials merge by min of lows, max of highs
        parts = [value_ranges(model, ds, args, list(shapes), a, b) for a, b in halves]
        ranges = {n: (min(p[n][0] for p in parts), max(p[n][1] for p in parts)) for n in shapes}
    edges = hist_edges(args, ranges)
    first, second = (sparsity_counts(model, ds, args, shapes, edges, a, b) for a, b in halves)
    assert first["relu1"].n == second["relu1"].n == 300
    for name, counts in first.items():
        counts.merge(second[name])
    merged = summarize(first)
    assert [r.to_dict() for r in merged] == [r.to_dict() for r in one]      # exact: == on every field
    assert one[0].hist_counts != [0] * 20 and sum(one[0].hist_counts) == one[0].total
    assert hook_count(model) == 0


def test_the_sharded_path_outside_a_launch_is_the_one_process_tool(setup):
    model, ds = setup
    one = activation_sparsity(model, ds, NORM, LAYERS, batch_size=128)
    assert [r.to_dict() for r in sharded_activation_sparsity(model, ds, NORM, LAYERS, batch_size=128)] == \
        [r.to_dict() for r in one]


@pytest.mark.parametrize("kwargs, match", [({"threshold": -1.0}, "threshold"), ({"batch_size": 0}, "batch_size"),
                                           ({"hist_range": (2.0, 1.0)}, "hist_range"), ({"layers": []}, "layers"),
                                           ({"bins": True}, "bins")])
def test_both_paths_check_their_arguments_alike(setup, kwargs, match):
    model, ds = setup
    for fn in (activation_sparsity, sharded_activation_sparsity):
        with pytest.raises(ConfigError, match=match):
            fn(model, ds, NORM, **{"layers": LAYERS, **kwargs})


def test_counts_with_other_edges_refuse_to_merge():
    a = LayerCounts((2,), np.linspace(0, 1, 5))
    with pytest.raises(ConfigError, match="edges"):
        a.merge(LayerCounts((2,), np.linspace(0, 2, 5)))
    b = LayerCounts((2,), np.linspace(0, 1, 5))
    b.add(torch.tensor([[0.0, 0.5], [0.0, 0.0]]), threshold=0.0)
    a.merge(b)
    assert (a.n, a.zero, a.chan_zero.tolist(), a.ever_nonzero.tolist()) == (2, 3, [2, 1], [False, True])
