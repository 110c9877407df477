import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convscope.errors import ConfigError
from convscope.conv import avg_pool_matrix, conv_matrix, max_pool_selection, stack_matrix
from convscope.matrix.spectrum import (circular_singular_values, dense_singular_values, gram_upper_bound,
                                       lipschitz_bound, spectral_norm_interval)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 2]), st.sampled_from([(1, 1), (2, 2), (2, 1)]),
       st.integers(1, 2), st.sampled_from([2, 3]), st.integers(0, 1000))
def test_fft_singular_values_equal_dense_svd(cin, cout, groups, stride, dil, k, seed):
    cin, cout = cin * groups, cout * groups
    h, w = 4 * stride[0], 4 * stride[1]
    tot = dil * (k - 1)
    if tot + 1 > h or tot + 1 > w:
        return
    pad = (tot // 2, tot - tot // 2, tot // 2, tot - tot // 2)
    wt = np.random.default_rng(seed).standard_normal((cout, cin // groups, k, k))
    fast = circular_singular_values(wt, (cin, h, w), stride, pad, dil, groups)
    dense = dense_singular_values(wt, (cin, h, w), stride=stride, padding=pad, dilation=dil, groups=groups,
                                  padding_mode="circular")
    assert len(fast) == len(dense) == min(cout * (h // stride[0]) * (w // stride[1]), cin * h * w)
    np.testing.assert_allclose(fast, dense, atol=1e-6)


def test_fft_method_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="padding"):
        circular_singular_values(np.ones((1, 1, 3, 3)), (1, 6, 6), padding=0)
    with pytest.raises(ConfigError, match="stride"):
        circular_singular_values(np.ones((1, 1, 3, 3)), (1, 7, 7), stride=2, padding=1)


@pytest.mark.parametrize("cfg", [
    dict(shape=(2, 8, 8), w=(3, 2, 3, 3), padding=1),
    dict(shape=(3, 9, 7), w=(4, 3, 3, 3), padding=1, stride=2),
    dict(shape=(2, 8, 8), w=(2, 1, 3, 3), padding=2, dilation=2, groups=2),
    dict(shape=(1, 6, 6), w=(2, 1, 5, 5), padding=0),
    dict(shape=(2, 6, 6), w=(2, 2, 3, 3), padding=1, padding_mode="reflect"),
])
def test_power_iteration_lower_le_exact_le_gram_upper(cfg):
    wt = np.random.default_rng(0).standard_normal(cfg.pop("w"))
    shape = cfg.pop("shape")
    exact = dense_singular_values(wt, shape, **cfg)[0]
    iv = spectral_norm_interval(wt, shape, **cfg, iters=300)
    assert iv.lower <= exact * (1 + 1e-12) and exact <= iv.upper * (1 + 1e-12)
    assert iv.lower > 0.99 * exact   # power iteration gets close
    assert iv.history == sorted(iv.history) or iv.converged  # estimates rise towards the norm


def test_gram_iteration_converges_to_the_norm_from_above():
    a = np.random.default_rng(1).standard_normal((5, 7, 4)) + 1j * np.random.default_rng(2).standard_normal((5, 7, 4))
    exact = max(np.linalg.svd(m, compute_uv=False)[0] for m in a)
    bounds = [gram_upper_bound(a, t) for t in range(1, 8)]
    assert all(b >= exact * (1 - 1e-12) for b in bounds)
    assert all(x >= y - 1e-9 for x, y in zip(bounds, bounds[1:]))  # monotone
    assert bounds[-1] == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("k, s, p, include", [(2, 2, 0, True), (3, 2, 1, True), (3, 2, 1, False), (3, 1, 1, False)])
def test_avg_pool_matrix(k, s, p, include):
    x = torch.randn(3, 7, 8, dtype=torch.float64)
    m = avg_pool_matrix((3, 7, 8), k, s, p, include)
    ref = F.avg_pool2d(x[None], k, s, p, count_include_pad=include)
    np.testing.assert_allclose(m @ x.numpy().ravel(), ref.numpy().ravel(), atol=1e-12)


def test_max_pool_selection_matches_pytorch_including_ties():
    x = torch.tensor([[[1., 1., 0., 2.], [1., 1., 2., 2.], [5., 3., 3., 3.], [4., 5., 3., 3.]]], dtype=torch.float64)
    m = max_pool_selection(x, 2)
    _, idx = F.max_pool2d(x[None], 2, return_indices=True)
    assert m.shape == (4, 16) and m.nnz == 4
    np.testing.assert_array_equal(m.indices, idx.ravel().numpy())   # PyTorch's tie-breaking, by construction
    np.testing.assert_array_equal(m @ x.numpy().ravel(), F.max_pool2d(x[None], 2).ravel().numpy())
    assert m.indices[0] == 0   # all four equal: the first in scan order wins


def test_stack_matrix_is_exact_at_the_input_and_linear_parts_compose():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3, stride=2),
                        nn.AvgPool2d(2, padding=1)).double()
    x = torch.randn(2, 10, 10, dtype=torch.float64)
    s = stack_matrix(net, (2, 10, 10), x)
    np.testing.assert_allclose(s.matrix @ x.numpy().ravel() + s.bias, net(x[None]).detach().numpy().ravel(), atol=1e-12)
    lin = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.AvgPool2d(2), nn.Conv2d(2, 1, 2, bias=False)).double()
    s = stack_matrix(lin, (1, 9, 9))
    m1 = conv_matrix(lin[0].weight, (1, 9, 9))
    m2 = avg_pool_matrix((2, 7, 7), 2)
    m3 = conv_matrix(lin[2].weight, (2, 3, 3))
    np.testing.assert_allclose(s.matrix.toarray(), (m3 @ m2 @ m1).toarray(), atol=1e-14)
    with pytest.raises(ConfigError, match="pass the input x"):
        stack_matrix(net, (2, 10, 10))


def test_lipschitz_bound_is_an_upper_bound():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double().eval()
    net[1].running_var.uniform_(0.5, 2.0)
    layers, bound = lipschitz_bound(net, (1, 8, 8))
    assert [b.kind for b in layers] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    # empirical: the largest gradient norm of any output over random inputs never exceeds the bound
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    worst = 0.0
    for k in range(3):
        (g,) = torch.autograd.grad(net(x)[:, k].sum(), x)
        worst = max(worst, float(g.flatten(1).norm(dim=1).max()))
    assert worst <= bound
    with pytest.raises(ConfigError, match="feed-forward chains"):
        from convscope.models import create_model

        lipschitz_bound(create_model("resnet-small").double(), (3, 32, 32))



def test_cli_prints_the_textbook_matrix_exactly(cli):
    r = cli("matrix", "--input", "4x4", "--kernel", "3x3")
    assert r.returncode == 0, r.stderr
    assert "matrix 4 x 16, 36 non-zeros, density 0.5625" in r.stdout
    assert "doubly block Toeplitz" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines() if line.lstrip().startswith(("w11", "0 "))]
    assert rows == [
        ["w11", "w12", "w13", "0", "w21", "w22", "w23", "0", "w31", "w32", "w33", "0", "0", "0", "0", "0"],
        ["0", "w11", "w12", "w13", "0", "w21", "w22", "w23", "0", "w31", "w32", "w33", "0", "0", "0", "0"],
        ["0", "0", "0", "0", "w11", "w12", "w13", "0", "w21", "w22", "w23", "0", "w31", "w32", "w33", "0"],
        ["0", "0", "0", "0", "0", "w11", "w12", "w13", "0", "w21", "w22", "w23", "0", "w31", "w32", "w33"]]


def test_cli_json_png_and_svd(tmp_path, cli):
    r = cli("matrix", "--input", "6x6", "--kernel", "3x3", "--padding", "1", "--padding-mode", "circular",
            "--channels", "2:3", "--svd", "--png", str(tmp_path / "m.png"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["shape"] == [108, 72] and info["nonzeros"] == 108 * 2 * 9
    assert "block circulant" in info["structure"]
    assert info["spectrum"]["method"].startswith("exact, FFT")
    assert (tmp_path / "m.png").stat().st_size > 1000 and (tmp_path / "m-spectrum.png").stat().st_size > 1000
    r = cli("matrix", "--input", "3x3", "--kernel", "5x5")
    assert r.returncode == 2 and "kernel" in r.stderr and "Traceback" not in r.stderr
    r = cli("matrix", "--input", "4xx", "--kernel", "3")
    assert r.returncode == 2 and "--input" in r.stderr


def test_cli_on_a_trained_run(small_run, tmp_path, cli):
    r = cli("matrix", str(small_run.path), "--layer", "conv2", "--json", "--svd", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not list(tmp_path.iterdir())   # pictures go into the run, not the working directory
    assert (small_run.path / "inspect" / "matrix-conv2-spectrum.png").stat().st_size > 1000
    info = json.loads(r.stdout)
    assert info["input_shape"] == [8, 14, 14] and info["output_shape"] == [16, 14, 14]
    layer = small_run.model.conv2
    exact = dense_singular_values(layer.weight.detach().double(), (8, 14, 14), padding=1)
    assert info["spectrum"]["largest"] == pytest.approx(exact[0], rel=1e-9)
    r = cli("matrix", str(small_run.path), "--lipschitz")
    assert r.returncode == 0 and "Lipschitz upper bound" in r.stdout
    r = cli("matrix", str(small_run.path), "--layer", "nope")
    assert r.returncode == 2 and "conv1, conv2, conv3" in r.stderr
