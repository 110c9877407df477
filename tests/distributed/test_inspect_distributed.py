"""Distributed inspection equals the single-process tools bit for bit (real torchrun launches, CPU, gloo)."""

import json

import torch
from safetensors.torch import save_file

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.inspect import activation_sparsity, edge_experiment, hook_count, topk
from convscope.models import create_model

from .conftest import HERE, torchrun

NORM = Normalization((0.286,), (0.353,))
LAYERS = ["relu2", "relu3", "fc"]


def _model() -> torch.nn.Module:
    """Seeded width-8 `fast` model; relu3 channel 0 made constant (0.5 everywhere) so its top-k is all ties,
    which only the (value desc, index asc, position asc) rule orders: images 0..4 at position (0, 0)."""
    torch.manual_seed(0)
    m = create_model("fast", 1, 28, 10, width=8).eval()
    with torch.no_grad():
        m.conv3.weight[0] = 0.0
        if m.conv3.bias is not None:
            m.conv3.bias[0] = 0.0
        m.bn3.bias[0] = 0.5
    return m


def _launch(tmp_path, nproc: int, limit: int, batch: int) -> dict:
    model = _model()
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    r = torchrun(nproc, HERE / "_inspect_worker.py", tmp_path / "w.safetensors", tmp_path, limit, batch)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(nproc)]
    return {"result": json.loads((tmp_path / "result.json").read_text()), "ranks": ranks, "model": model}


def _reference(model, limit: int, batch: int) -> dict:
    ds = load("fashion-mnist", "test")
    if limit:
        ds = ds.subset(torch.arange(limit))
    top = topk(model, ds, LAYERS, 5, NORM, batch_size=batch)
    spars = activation_sparsity(model, ds, NORM, batch_size=batch)
    edges = edge_experiment(ds.images, "sobel-x", keep=4, batch_size=1500)
    assert hook_count(model) == 0
    # through JSON like the worker's output: Python floats round-trip exactly, so == is bit equality
    return json.loads(json.dumps({
        "topk": {n: [[r.to_dict() for r in ch] for ch in chans] for n, chans in top.items()},
        "sparsity": [s.to_dict() for s in spars],
        "edges": {"nonzero_input": edges.nonzero_input.tolist(), "nonzero_before": edges.nonzero_before.tolist(),
                  "nonzero_after": edges.nonzero_after.tolist(), "outputs": edges.outputs.tolist(),
                  "pixels": edges.pixels}}))


def test_two_ranks_equal_one_process_on_fashion_mnist_test(tmp_path):
    got = _launch(tmp_path, 2, 0, 500)
    assert [r["shard"] for r in got["ranks"]] == [[0, 5000], [5000, 10000]]   # each rank did half the work
    assert all(r["size"] == 2 for r in got["ranks"])
    ref = _reference(got["model"], 0, 500)
    res = got["result"]
    assert res["topk"] == ref["topk"]
    assert res["sparsity"] == ref["sparsity"]
    assert res["edges"] == ref["edges"]
    ties = res["topk"]["relu3"][0]
    assert [(r["index"], r["y"], r["x"], r["value"]) for r in ties] == [(i, 0, 0, 0.5) for i in range(5)]
    assert len(res["edges"]["nonzero_after"]) == 10000
    assert sum(s["dead_units"] for s in res["sparsity"]) > 0        # the OR of "ever non-zero" is exercised


def test_uneven_shards_and_a_rank_with_no_batch(tmp_path):
    """700 images in batches of 500 on 3 ranks: 2 batches (the last partial), so rank 0 gets none and must
    still take part in every merge; the result still equals one process."""
    got = _launch(tmp_path, 3, 700, 500)
    assert [r["shard"] for r in got["ranks"]] == [[0, 0], [0, 500], [500, 700]]
    assert got["result"] == _reference(got["model"], 700, 500)
