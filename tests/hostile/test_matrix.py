"""Hostile inputs to the conv-matrix tools: conv_matrix's max_memory and argument types, describe_conv /
layer_spectrum, and the conv-layer lookup behind `convscope matrix RUN --layer`. Each ends in a correct result or
a clear convscope error naming the argument, before any large allocation."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from convscope.errors import ConfigError
from convscope.conv import MatrixTooLargeError, conv_matrix, make_geometry
from convscope.conv.conv_matrix import build_bytes
from convscope.matrix.report import conv_layer_in_model, describe_conv
from convscope.matrix.spectrum import layer_spectrum

from .conftest import outcome, refused

S = (1, 28, 28)


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


# -- describe_conv / layer_spectrum ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_spectrum_refuses_non_finite_weights(value):
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 1, 1] = value
    with pytest.raises(ConfigError, match="weight"):
        layer_spectrum(w, (1, 4, 4))
    with pytest.raises(ConfigError, match="weight"):
        describe_conv(w, (1, 4, 4), spectrum=True)
    with pytest.raises(ConfigError, match="weight"):
        describe_conv(torch.from_numpy(w), (1, 4, 4))


@pytest.mark.parametrize("weight", ["w", None, 3.0, {"a": 1}, np.array(["a"]), np.ones((1, 1, 3, 3), bool)])
def test_describe_conv_refuses_non_arrays(weight):
    with pytest.raises(ConfigError, match="weight"):
        describe_conv(weight, (1, 4, 4))


def test_layer_spectrum_refuses_a_string():
    with pytest.raises(ConfigError, match="weight"):
        layer_spectrum("w", (1, 4, 4))


def test_describe_conv_valid_inputs_unchanged():
    w = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    a = describe_conv(w, (1, 4, 4), spectrum=True)
    b = describe_conv(torch.from_numpy(w), (1, 4, 4))
    c = describe_conv(w.tolist(), (1, 4, 4))
    assert a.report.shape == b.report.shape == c.report.shape == (4, 16)
    assert (a.matrix != c.matrix).nnz == 0
    assert np.isfinite(a.report.spectrum.largest)


# -- matrix RUN --layer -----------------------------------------------------------------------------------------------

def test_conv_layer_lookup_numeric_name_gets_the_renaming_hint(small_run):
    with pytest.raises(ConfigError, match="--layer '0'.*numeric indices"):
        conv_layer_in_model(small_run.model, "0", S)


def test_conv_layer_lookup_type_naming_several_lists_them(small_run):
    with pytest.raises(ConfigError, match="names 3 layers.*conv1, conv2, conv3"):
        conv_layer_in_model(small_run.model, "Conv2d", S)


def test_conv_layer_lookup_other_cases(small_run):
    with pytest.raises(ConfigError, match="is a ReLU, not a conv layer"):
        conv_layer_in_model(small_run.model, "relu1", S)
    with pytest.raises(ConfigError, match="--layer"):
        conv_layer_in_model(small_run.model, " ", S)
    layer, shape = conv_layer_in_model(small_run.model, "conv2", S)
    assert layer is small_run.model.conv2 and shape == (8, 14, 14)
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert conv_layer_in_model(seq, "0", (1, 5, 5))[0] is seq[0]
    assert conv_layer_in_model(seq, "Conv2d", (1, 5, 5))[0] is seq[0]      # a type naming one conv layer


def test_cli_matrix_layer_hint_and_type(cli, small_run):
    refused(cli("matrix", small_run.path, "--layer", "0"), "--layer", "numeric indices")
    refused(cli("matrix", small_run.path, "--layer", "Conv2d"), "--layer", "conv1, conv2, conv3")
