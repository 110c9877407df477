"""The explicit matrix against PyTorch: M x = conv2d(x), M^T g = conv_transpose2d(g) = autograd's input grad."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convscope.errors import ConfigError
from convscope.conv import (MatrixTooLargeError, conv_affine, conv_matrix, conv_operator, make_geometry,
                              transpose_output_padding)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["zeros", "zeros", "circular", "reflect", "replicate"]))
    h, w = draw(st.integers(3, 11)), draw(st.integers(3, 11))
    pads = draw(st.tuples(*[st.integers(0, 3)] * 4))                 # F.pad order: left, right, top, bottom
    if mode == "reflect":
        pads = (min(pads[0], w - 1), min(pads[1], w - 1), min(pads[2], h - 1), min(pads[3], h - 1))
    if draw(st.booleans()):                                           # symmetric, as nn.Conv2d takes it
        pads = (pads[0], pads[0], pads[2], pads[2])
    # the dilated kernel must fit the padded input
    if dh * (kh - 1) + 1 > h + pads[2] + pads[3] or dw * (kw - 1) + 1 > w + pads[0] + pads[1]:
        dh = dw = 1
        kh, kw = min(kh, h), min(kw, w)
    return dict(cin=cin, cout=cout, groups=groups, k=(kh, kw), s=(sh, sw), d=(dh, dw), mode=mode, hw=(h, w),
                pads=pads)


def _reference(x, w, c):
    mode = "constant" if c["mode"] == "zeros" else c["mode"]
    xp = F.pad(x, c["pads"], mode=mode)
    return F.conv2d(xp, w, stride=c["s"], dilation=c["d"], groups=c["groups"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs(), st.sampled_from([torch.float64, torch.float32]), st.integers(0, 2**31 - 1))
def test_matrix_equals_conv2d_and_its_transpose_equals_the_input_gradient(c, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c["cout"], c["cin"] // c["groups"], *c["k"], generator=g, dtype=dtype)
    x = torch.randn(1, c["cin"], *c["hw"], generator=g, dtype=dtype, requires_grad=True)
    m = conv_matrix(w, (c["cin"], *c["hw"]), c["s"], c["pads"], c["d"], c["groups"], c["mode"])
    y = _reference(x, w, c)
    assert m.shape == (y.numel(), x.numel()) and m.dtype == (np.float64 if dtype == torch.float64 else np.float32)
    tol = dict(rtol=0, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m @ x.detach().numpy().ravel(), y.detach().numpy().ravel(), **tol)
    gy = torch.randn(y.shape, generator=g, dtype=dtype)
    (gx,) = torch.autograd.grad(y, x, gy)
    np.testing.assert_allclose(m.T @ gy.numpy().ravel(), gx.numpy().ravel(), **tol)
    if c["mode"] == "zeros" and c["pads"][0] == c["pads"][1] and c["pads"][2] == c["pads"][3]:
        geom = make_geometry(tuple(w.shape), (c["cin"], *c["hw"]), c["s"], c["pads"], c["d"], c["groups"])
        xt = F.conv_transpose2d(gy, w, stride=c["s"], padding=(c["pads"][2], c["pads"][0]),
                                output_padding=transpose_output_padding(geom), groups=c["groups"], dilation=c["d"])
        np.testing.assert_allclose(m.T @ gy.numpy().ravel(), xt.numpy().ravel(), **tol)
    op = conv_operator(w, (c["cin"], *c["hw"]), c["s"], c["pads"], c["d"], c["groups"], c["mode"])
    v = np.random.default_rng(seed).standard_normal(m.shape[1]).astype(m.dtype)
    u = np.random.default_rng(seed + 1).standard_normal(m.shape[0]).astype(m.dtype)
    np.testing.assert_allclose(op.matvec(v), m @ v, **tol)
    np.testing.assert_allclose(op.rmatvec(u), m.T @ u, **tol)


def test_the_textbook_example_4_by_16_with_36_nonzeros():
    w = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    m = conv_matrix(w, (1, 4, 4))
    assert m.shape == (4, 16) and m.nnz == 36
    expected = np.array([
        [1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0],
        [0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0],
        [0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9]])
    np.testing.assert_array_equal(m.toarray(), expected)


def test_same_padding_and_layers_and_torch_output():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 4, (2, 3), padding="same", dilation=(2, 1), bias=True).double()
    x = torch.randn(1, 3, 7, 6, dtype=torch.float64)
    aff = conv_affine(layer, (3, 7, 6))
    np.testing.assert_allclose(aff.matrix @ x.numpy().ravel() + aff.bias, layer(x).detach().numpy().ravel(), atol=1e-12)
    assert aff.output_shape == (4, 7, 6)
    t = conv_matrix(layer, (3, 7, 6), format="torch")
    assert t.layout == torch.sparse_csr
    np.testing.assert_allclose((t @ x.reshape(-1, 1)).reshape(-1).numpy(), aff.matrix @ x.numpy().ravel(), atol=1e-12)


def test_layout_is_canonical_csr():
    m = conv_matrix(np.ones((2, 2, 3, 3)), (2, 5, 5), padding=1, padding_mode="replicate")
    assert isinstance(m, sp.csr_matrix) and m.has_canonical_format
    m = conv_matrix(np.ones((2, 2, 3, 3)), (2, 5, 5), padding=1)
    assert m.has_sorted_indices and m.nnz == 2 * 2 * (3 * 5 - 2) ** 2


# Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (2016): relationships 1-6, 15
@pytest.mark.parametrize("i, k, s, p, d, o", [
    (4, 3, 1, 0, 1, 2),    # relationship 1: no padding, unit strides: o = i - k + 1
    (5, 4, 1, 2, 1, 6),    # relationship 2: arbitrary padding: o = i - k + 2p + 1
    (5, 3, 1, 1, 1, 5),    # relationship 3: half (same) padding: o = i
    (5, 3, 1, 2, 1, 7),    # relationship 4: full padding: o = i + k - 1
    (5, 3, 2, 0, 1, 2),    # relationship 5: no padding, strides: o = floor((i - k) / s) + 1
    (5, 3, 2, 1, 1, 3),    # relationship 6: padding and strides
    (6, 3, 2, 1, 1, 3),    # relationship 6, the non-divisible case (6 + 2 - 3) / 2 + 1 = 3
    (7, 3, 1, 0, 2, 3),    # relationship 15: dilation: o = i + 2p - k - (k - 1)(d - 1) over s, + 1
])
def test_convolution_arithmetic(i, k, s, p, d, o):
    m = conv_matrix(np.ones((1, 1, k, k)), (1, i, i), s, p, d)
    assert m.shape == (o * o, i * i)
    assert F.conv2d(torch.ones(1, 1, i, i), torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1] == o


@pytest.mark.parametrize("kwargs, arg", [
    (dict(weight=np.ones((1, 2, 3, 3)), input_shape=(3, 5, 5)), "weight"),
    (dict(weight=np.ones((1, 1, 6, 6)), input_shape=(1, 4, 4)), "kernel"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 4, 4), dilation=3), "kernel"),
    (dict(weight=np.ones((2, 1, 3, 3)), input_shape=(3, 5, 5), groups=2), "groups"),
    (dict(weight=np.ones((1, 1, 3)), input_shape=(1, 5, 5)), "weight"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(5, 5)), "input_shape"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 5, 5), stride=0), "stride"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 5, 5), padding=-1), "padding"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 5, 5), padding=5, padding_mode="reflect"), "padding"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 5, 5), padding_mode="mirror"), "padding_mode"),
    (dict(weight=np.ones((1, 1, 3, 3)), input_shape=(1, 5, 5), padding="same", stride=2), "padding"),
])
def test_bad_arguments_are_named(kwargs, arg):
    with pytest.raises(ConfigError) as e:
        conv_matrix(**kwargs)
    assert str(e.value).startswith(arg)


def test_memory_refused_before_allocating():
    with pytest.raises(MatrixTooLargeError, match="max_memory.*conv_operator"):
        conv_matrix(np.ones((512, 512, 3, 3), dtype=np.float32), (512, 64, 64), padding=1)
