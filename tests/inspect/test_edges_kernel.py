"""The edge experiment with any kernel, checked image by image against a direct NumPy computation."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.data import load
from convscope.errors import ConfigError
from convscope.inspect.edges import edge_experiment, parse_kernel


def numpy_counts(images: np.ndarray, k: np.ndarray, tol: float = 0.0):
    """Per image: non-zero inputs, outputs, outputs after ReLU, by a direct sliding-window cross-correlation with
    zero "same" padding (the extra row / column of an even kernel at the bottom / right)."""
    kh, kw = k.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    x = np.pad(images.astype(k.dtype), ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))      # (N, H, W, kh, kw)
    y = (win * k).sum(axis=(3, 4))
    return (images != 0).sum((1, 2)), (np.abs(y) > tol).sum((1, 2)), (y > tol).sum((1, 2)), y


@pytest.fixture(scope="module")
def digits():
    return load("digits", "test").images[:300, 0].numpy()           # (300, 28, 28) uint8


EDGE_4X4 = [[-1, -1, 1, 1]] * 4


@pytest.mark.parametrize("kernel", [EDGE_4X4, [[1, -1]], [[1], [-2]], [[2, 0, -1], [0, 1, -3]],
                                    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.arange(25).reshape(5, 5) - 12,
                                    [[3]]])
def test_integer_kernels_match_numpy_on_every_image(digits, kernel):
    k = np.asarray(kernel, dtype=np.int64)
    res = edge_experiment(digits, kernel=kernel, keep=300)
    nz_in, nz_y, nz_relu, y = numpy_counts(digits, k)
    assert res.exact and res.tolerance == 0.0
    np.testing.assert_array_equal(res.nonzero_input, nz_in)
    np.testing.assert_array_equal(res.nonzero_before, nz_y)
    np.testing.assert_array_equal(res.nonzero_after, nz_relu)
    np.testing.assert_array_equal(res.outputs, y)                    # the filter outputs themselves, exactly
    assert res.pixels == 784


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("shape", [(4, 4), (2, 3), (3, 2)])
def test_even_kernels_pad_like_pytorch_same(digits, shape):
    k = np.random.default_rng(0).integers(-3, 4, shape)
    res = edge_experiment(digits[:8], kernel=k.tolist())
    ref = F.conv2d(torch.from_numpy(digits[:8, None]).double(), torch.from_numpy(k).double()[None, None],
                   padding="same")
    np.testing.assert_array_equal(res.outputs, ref[:, 0].numpy())


def test_float_kernel_counts_with_the_stated_tolerance(digits):
    # 0.1 x + 0.2 x - 0.3 x is zero in exact arithmetic but not always in float64: the tolerance makes the
    # counts those of the integer kernel [1, 2, -3]
    res = edge_experiment(digits, kernel=[[0.1, 0.2, -0.3]])
    assert not res.exact and 0 < res.tolerance < 1e-9
    _, nz_y, nz_relu, _ = numpy_counts(digits, np.array([[1, 2, -3]]))
    np.testing.assert_array_equal(res.nonzero_before, nz_y)
    np.testing.assert_array_equal(res.nonzero_after, nz_relu)
    raw = edge_experiment(digits, kernel=[[0.1, 0.2, -0.3]], tolerance=0.0)
    assert raw.nonzero_before.sum() > res.nonzero_before.sum()       # without it, rounding noise counts
    _, nz_y, nz_relu, _ = numpy_counts(digits, np.array([[0.5, -0.25]]), res.tolerance)
    res = edge_experiment(digits, kernel=np.array([[0.5, -0.25]]))
    np.testing.assert_array_equal(res.nonzero_before, nz_y)


def test_npy_file_and_json_text(tmp_path, digits):
    path = tmp_path / "k.npy"
    np.save(path, np.array(EDGE_4X4, dtype=np.int32))
    a = edge_experiment(digits[:20], kernel=str(path))
    b = edge_experiment(digits[:20], kernel=json.dumps(EDGE_4X4))
    np.testing.assert_array_equal(a.nonzero_after, b.nonzero_after)
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="without pickles"):
        parse_kernel(str(tmp_path / "obj.npy"))


@pytest.mark.parametrize("kernel, match", [
    ([], "empty"), ([[]], "empty"), ("[]", "empty"), ([[1, 2], [3]], "ragged"), ([["a", 1]], "must be a number"),
    ("[[1, 2], [3, x]]", "not a JSON list"), ([1, 2, 3], "2-D kernel"), ([[[1]]], "2-D kernel"),
    ([[float("nan")]], "NaN"), ([[True, False]], "must be a number"), ("missing.npy", "no such file")])
def test_bad_kernels(kernel, match):
    with pytest.raises(ConfigError, match=match):
        edge_experiment(np.zeros((2, 28, 28), np.uint8), kernel=kernel)


def test_kernel_larger_than_the_image():
    with pytest.raises(ConfigError, match="larger than the 4x4 images"):
        edge_experiment(np.zeros((1, 4, 4), np.uint8), kernel=np.ones((5, 2), int).tolist())


def test_cli_any_kernel_on_fashion(tmp_path):
    cmd = [sys.executable, "-m", "convscope", "edges", "--kernel", json.dumps(EDGE_4X4), "--dataset", "fashion-mnist",
           "--limit", "40", "--out", str(tmp_path)]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads((tmp_path / "edges-kernel4x4-fashion-mnist.json").read_text())
    imgs = load("fashion-mnist", "test").images[:40, 0].numpy()
    _, _, nz_relu, _ = numpy_counts(imgs, np.array(EDGE_4X4))
    assert data["nonzero_after"] == nz_relu.tolist() and data["exact"] and data["split"] == "test"
    assert data["padding_left_right_top_bottom"] == [1, 2, 1, 2]
    p = subprocess.run([*cmd[:5], "[[1, 2], [3]]", "--limit", "2"], check=False, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 2 and "ragged" in p.stderr
