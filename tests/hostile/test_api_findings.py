"""Issue 16, public Python API: topk, activation_sparsity and conv_matrix at their argument boundary."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from convscope.data import ImageDataset, Normalization
from convscope.errors import ConfigError
from convscope.inspect import activation_sparsity, hook_count, topk
from convscope.conv import MatrixTooLargeError, conv_matrix, make_geometry
from convscope.conv.conv_matrix import build_bytes

from .conftest import outcome


def _dataset(n=12, c=1, hw=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, hw, hw), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 2, ("a", "b"), "rand", "test", "memory")


def _model(c=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2)).eval()


@pytest.mark.parametrize("k", [0, -3, True, 2.5, "3", None])
def test_topk_k_must_be_a_positive_int(k):
    # before: k=-3 sliced [:-3] (197 records per channel), k=0 returned empty lists the CLI then crashed on
    model = _model()
    err = outcome(lambda: topk(model, _dataset(), ["0"], k=k), seconds=10)
    assert isinstance(err, ConfigError) and "k:" in str(err)
    assert hook_count(model) == 0


def test_topk_records_match_brute_force_and_string_layers_are_names():
    model, ds = _model(), _dataset(20)
    res = topk(model, ds, "0,1", k=3)             # a comma string names layers, never characters
    assert list(res) == ["0", "1"]
    with torch.no_grad():
        act = model[0](ds.images.float() / 255)   # (N, 4, 8, 8): default norm is identity on [0, 1]
    peak = act.flatten(2).max(2).values          # (N, 4)
    for ch in range(4):
        want = torch.argsort(-peak[:, ch].double(), stable=True)[:3].tolist()
        assert [r.index for r in res["0"][ch]] == want
        assert len(res["0"][ch]) == 3


@pytest.mark.parametrize("bad", [torch.zeros(4, 1, 8, 8), np.zeros((4, 1, 8, 8), np.uint8),
                                 torch.rand(4, 1, 8, 8), [1, 2, 3], None])
def test_plain_tensors_where_a_dataset_is_expected(bad):
    model = _model()
    for call in (lambda: topk(model, bad, ["1"]),
                 lambda: activation_sparsity(model, bad, Normalization((0.0,), (1.0,)))):
        err = outcome(call, seconds=10)
        assert isinstance(err, ConfigError) and "dataset:" in str(err) and "ImageDataset" in str(err)
    assert hook_count(model) == 0


def test_model_without_parameters_works():
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    ds = _dataset(6)
    res = topk(model, ds, ["0"], k=2)
    assert [r.index for r in res["0"][0]] == torch.argsort(-ds.images.flatten(1).max(1).values.double(),
                                                           stable=True)[:2].tolist()
    sp = activation_sparsity(model, ds, Normalization((0.0,), (1.0,)))
    assert sp[0].zero_fraction == pytest.approx(float((ds.images == 0).float().mean()))


def test_images_of_the_wrong_shape_are_named():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    err = outcome(lambda: topk(model, _dataset(hw=9), ["1"]), seconds=10)
    assert isinstance(err, ConfigError) and "(1, 9, 9)" in str(err)
    assert hook_count(model) == 0


@pytest.mark.parametrize("kw", [{"threshold": float("nan")}, {"threshold": -1.0}, {"bins": 0},
                                {"batch_size": 0}, {"hist_range": (1.0, 0.0)}, {"hist_range": (0, math.inf)},
                                {"layers": []}, {"layers": ["nope"]}])
def test_sparsity_arguments_named(kw):
    model = _model()
    err = outcome(lambda: activation_sparsity(model, _dataset(), Normalization((0.0,), (1.0,)), **kw), seconds=10)
    assert isinstance(err, ConfigError)
    assert hook_count(model) == 0


def test_sparsity_norm_must_fit_the_channels():
    err = outcome(lambda: activation_sparsity(_model(), _dataset(), Normalization((0.0, 0.0), (1.0, 1.0))))
    assert isinstance(err, ConfigError) and "norm:" in str(err)


# ---- conv_matrix -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mm", [float("nan"), float("inf"), -1, 0, True, "1", None])
def test_max_memory_must_be_finite_and_positive(mm):
    err = outcome(lambda: conv_matrix(np.ones((1, 1, 3, 3)), (1, 4, 4), max_memory=mm))
    assert isinstance(err, ConfigError) and "max_memory" in str(err)


CASES = [((16, 8, 3, 3), (8, 48, 48), {"padding": 1}),
         ((16, 8, 3, 3), (8, 40, 40), {"padding": 1, "padding_mode": "circular"}),
         ((8, 8, 5, 5), (8, 32, 32), {"padding": 2, "padding_mode": "reflect", "stride": 2}),
         ((32, 1, 3, 3), (1, 96, 96), {"dilation": 2}),
         ((8, 4, 3, 3), (8, 32, 32), {"groups": 2, "padding": 3, "padding_mode": "replicate"}),
         ((4, 64, 1, 1), (64, 24, 24), {}),
         ((6, 2, 3, 3), (2, 2, 2), {"padding": 2})]  # most taps on zero padding


@pytest.mark.parametrize("fmt", ["csr", "torch"])
@pytest.mark.parametrize("ws,shape,kw", CASES)
def test_max_memory_bounds_the_measured_peak(ws, shape, kw, fmt):
    """With max_memory set to exactly the accounted peak, the build is allowed and its measured peak (every
    numpy buffer, index grids included: tracemalloc) stays within it; one byte less is refused before any
    allocation. Before: the estimate left out the index grids and a '1 GiB' limit peaked at 2.6 GB."""
    w = np.random.default_rng(0).standard_normal(ws).astype(np.float32)
    need = build_bytes(make_geometry(ws, shape, **kw), np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        m = conv_matrix(w, shape, format=fmt, max_memory=need, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(MatrixTooLargeError, match="max_memory"):
            conv_matrix(w, shape, format=fmt, max_memory=need - 1, **kw)
        refused_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak <= need, f"measured peak {peak:,} over the accounted {need:,}"
    assert need <= 1.3 * peak + (2 << 20), f"accounting {need:,} far above the measured peak {peak:,}"
    assert refused_peak < 1 << 20
    # the matrix is still the convolution
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    pad_mode = kw.get("padding_mode", "zeros")
    conv = nn.Conv2d(shape[0], ws[0], ws[2:], bias=False, **{k: v for k, v in kw.items() if k != "padding_mode"},
                     padding_mode=pad_mode)
    conv.weight.data = torch.from_numpy(w)
    want = conv(torch.from_numpy(x)[None]).detach().numpy().ravel()
    got = (m @ torch.from_numpy(x).ravel()[:, None]).numpy().ravel() if fmt == "torch" else m @ x.ravel()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    if fmt == "torch":  # shares the numpy buffers: no hidden copy outside tracemalloc's view
        assert m.crow_indices().dtype == m.col_indices().dtype


def test_weight_and_input_shape_types_named():
    for call in (lambda: conv_matrix("weights", (1, 4, 4)), lambda: conv_matrix(np.ones((1, 1, 3, 3)), "1x4x4"),
                 lambda: conv_matrix(np.ones((1, 1, 3, 3), dtype=bool), (1, 4, 4)),
                 lambda: conv_matrix(np.ones((1, 1, 3, 3)), (1, 4.5, 4))):
        err = outcome(call)
        assert isinstance(err, ConfigError)
