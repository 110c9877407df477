"""The NumPy reference against PyTorch as the oracle (micrograd/tinygrad style: same computation, both sides)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from convscope.errors import ConfigError
from convscope.models import create_model
from convscope.reference import (ALGORITHMS, SGD, Adam, AvgPool2d, BatchNorm2d, Dropout, Linear, MaxPool2d, ReLU,
                                 conv2d, conv2d_backward, from_torch, gradcheck, softmax_cross_entropy)

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}


def helper_test_op(torch_fn, np_fwd, np_bwd, inputs, dtype, seed=0):
    """Forward values and every input's gradient, PyTorch vs NumPy, at the dtype's tolerance."""
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = torch_fn(*tensors)
    dy = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(torch.tensor(dy))
    ours = np_fwd(*inputs)
    np.testing.assert_allclose(ours, out.detach().numpy(), **TOL[dtype])
    grads = np_bwd(dy, *inputs)
    for g, t in zip(grads, tensors):
        np.testing.assert_allclose(g, t.grad.numpy(), **TOL[dtype])


@st.composite
def conv_case(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 12))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 12))
    return dict(n=draw(st.integers(1, 3)), cin=cin, cout=cout, k=k, s=s, d=d, p=p, hw=(h, w), groups=groups)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_case(), st.sampled_from(ALGORITHMS), st.sampled_from([np.float64, np.float32]), st.integers(0, 10**6))
def test_conv2d_every_algorithm_matches_torch(c, algorithm, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c["n"], c["cin"], *c["hw"])).astype(dtype)
    w = rng.standard_normal((c["cout"], c["cin"] // c["groups"], *c["k"])).astype(dtype)
    b = rng.standard_normal(c["cout"]).astype(dtype)
    kw = dict(stride=c["s"], padding=c["p"], dilation=c["d"], groups=c["groups"])
    helper_test_op(lambda x, w, b: F.conv2d(x, w, b, **kw),
                   lambda x, w, b: conv2d(x, w, b, **kw, algorithm=algorithm),
                   lambda dy, x, w, b: conv2d_backward(dy, x, w, **kw, algorithm=algorithm),
                   [x, w, b], dtype, seed)


def test_conv2d_same_and_valid_padding():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((4, 3, 2, 3))
    for pad in ("same", "valid"):
        for alg in ALGORITHMS:
            np.testing.assert_allclose(conv2d(x, w, padding=pad, dilation=2, algorithm=alg),
                                       F.conv2d(torch.tensor(x), torch.tensor(w), padding=pad, dilation=2).numpy(),
                                       atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pools_match_torch(dtype, k, s, p):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    for cls, fn in ((MaxPool2d, F.max_pool2d), (AvgPool2d, F.avg_pool2d)):
        layer = cls(k, s, p)
        helper_test_op(lambda t: fn(t, k, s, p), lambda a: layer.forward(a), lambda dy, a: [layer.backward(dy)],
                       [x], dtype)


def test_maxpool_ties_break_like_pytorch():
    x = np.array([[[[1., 1., 2., 2.], [1., 1., 2., 2.], [0., 3., 3., 0.], [3., 0., 0., 3.]]]])
    layer = MaxPool2d(2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(dx, t.grad.numpy())
    # overlapping windows (stride 1): gradients of a shared maximum add up, as in PyTorch
    layer = MaxPool2d(2, 1)
    layer.forward(x)
    t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2, 1).sum().backward()
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 3, 3))), t.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_relu_match_torch(dtype):
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((5, 7), (3, 7), (3,)))
    lin = Linear(w, b)
    helper_test_op(lambda x, w, b: F.linear(x, w, b), lambda x, w, b: lin.forward(x),
                   lambda dy, x, w, b: [lin.backward(dy), lin.grads["weight"], lin.grads["bias"]], [x, w, b], dtype)
    x4 = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    x4[0, 0, 0, :2] = 0.0  # the kink: PyTorch's ReLU gradient at 0 is 0
    relu = ReLU()
    helper_test_op(torch.relu, lambda a: relu.forward(a), lambda dy, a: [relu.backward(dy)], [x4], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_train_and_eval_match_torch(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(dtype) * 2 + 1
    g, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    ours = BatchNorm2d(g.copy(), b.copy(), np.zeros(3, dtype), np.ones(3, dtype))
    bn = nn.BatchNorm2d(3).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(g))
        bn.bias.copy_(torch.tensor(b))
    helper_test_op(lambda xt, gt, bt: F.batch_norm(xt, bn.running_mean, bn.running_var, gt, bt, True, 0.1, 1e-5),
                   lambda xa, ga, ba: ours.forward(xa, True),
                   lambda dy, xa, ga, ba: [ours.backward(dy), ours.grads["weight"], ours.grads["bias"]],
                   [x, g, b], dtype)
    np.testing.assert_allclose(ours.buffers["running_var"], bn.running_var.numpy(), **TOL[dtype])
    np.testing.assert_allclose(ours.buffers["running_mean"], bn.running_mean.numpy(), **TOL[dtype])
    bn.eval()
    with torch.no_grad():
        ref = bn(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours.forward(x, train=False), ref, **TOL[dtype])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_matches_torch(smoothing):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 10)) * 5
    y = rng.integers(0, 10, 6)
    zt = torch.tensor(z, requires_grad=True)
    ref = F.cross_entropy(zt, torch.tensor(y), label_smoothing=smoothing)
    ref.backward()
    loss, dz = softmax_cross_entropy(z, y, smoothing)
    assert loss == pytest.approx(float(ref.detach()), rel=1e-12)
    np.testing.assert_allclose(dz, zt.grad.numpy(), atol=1e-12)


def test_dropout_scales_and_masks():
    layer = Dropout(0.25, np.random.default_rng(0))
    x = np.ones((200, 100))
    y = layer.forward(x, True)
    assert set(np.unique(y)) == {0.0, 1 / 0.75} and abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)   # the same mask and scale
    assert layer.forward(x, False) is x


def test_gradcheck_passes_on_correct_layers_and_catches_a_wrong_one():
    rng = np.random.default_rng(5)
    from convscope.reference import Conv2d

    for alg in ALGORITHMS:
        layer = Conv2d(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3), 2, 1, 2, 1, alg)
        res = gradcheck(layer, rng.standard_normal((2, 2, 7, 7)))
        assert res.ok(1e-6), (alg, res.errors)
    bn = BatchNorm2d(rng.standard_normal(2), rng.standard_normal(2), np.zeros(2), np.ones(2))
    assert gradcheck(bn, rng.standard_normal((3, 2, 3, 3))).ok(1e-5)  # its input gradient sums to 0: small entries

    class Wrong(ReLU):
        def backward(self, dy):
            return super().backward(dy) * 1.01  # a 1% bug

    res = gradcheck(Wrong(), rng.standard_normal((2, 3, 4, 4)))
    assert not res.ok(1e-3) and res.errors["input"] == pytest.approx(0.01 / 1.01, rel=1e-3)


def test_lenet5_follows_pytorch_for_20_sgd_steps():
    torch.manual_seed(0)
    model = create_model("lenet5").double()
    ours = from_torch(model, np.float64)
    opt_t = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    opt_n = SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=True)
    _lockstep(model, ours, opt_t, opt_n, steps=20, batch=16, seed=0)


def _lockstep(model, ours, opt_t, opt_n, steps, batch, seed):
    """Train both on the same random batches; the losses and then the weights must agree to 1e-10."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        x, y = rng.standard_normal((batch, 1, 28, 28)), rng.integers(0, 10, batch)
        loss_t = F.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        loss_n, dz = softmax_cross_entropy(ours.forward(x), y)
        ours.backward(dz)
        opt_n.step(ours.gradients())
        assert loss_n == pytest.approx(float(loss_t.detach()), rel=1e-10, abs=1e-12), step
    for t, (owner, key) in zip(model.parameters(), ours.parameters()):
        np.testing.assert_allclose(owner[key], t.detach().numpy(), atol=1e-10)


def test_adam_matches_torch():
    torch.manual_seed(1)
    model = create_model("mlp", hidden=16).double()
    ours = from_torch(model)
    opt_t = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    opt_n = Adam(ours.parameters(), lr=1e-2, weight_decay=1e-3)
    _lockstep(model, ours, opt_t, opt_n, steps=10, batch=8, seed=1)


@pytest.mark.parametrize("call, fragment", [
    (lambda: conv2d(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3))), "weight"),
    (lambda: conv2d(np.ones((2, 5, 5)), np.ones((1, 2, 3, 3))), "x: expected 4 dimensions"),
    (lambda: conv2d(np.ones((1, 1, 5, 5), np.float32), np.ones((1, 1, 3, 3))), "dtype"),
    (lambda: conv2d(np.ones((1, 1, 5, 5), np.int64), np.ones((1, 1, 3, 3), np.int64)), "float32 or float64"),
    (lambda: conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), algorithm="winograd"), "algorithm"),
    (lambda: conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "kernel"),
    (lambda: conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))), "dy: expected "
                                                                                                   "shape"),
])
def test_bad_input_is_a_clear_error(call, fragment):
    with pytest.raises(ConfigError, match=fragment):
        call()


def test_fast_model_runs_identically_in_numpy():
    """The default `fast` model (BN, global max pool) in both engines: same logits and input gradient."""
    torch.manual_seed(0)
    model = create_model("fast", width=4).double().train()
    ours = from_torch(model)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28))
    xt = torch.tensor(x, requires_grad=True)
    out = model(xt)
    dy = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.forward(x, True), out.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), atol=1e-10)
    for g, (name, p) in zip(ours.gradients(), model.named_parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), atol=1e-9, err_msg=name)
