"""Hostile inputs to the inspection tools (convscope.inspect and its commands): topk and activation_sparsity
at their argument boundary, edges --kernel files, layer lists and --out, receptive_field_report. Each ends in a
correct result or a clear convscope error naming the argument, file or flag; hooks are removed either way."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convscope.data import ImageDataset, Normalization
from convscope.errors import ConfigError
from convscope.inspect import activation_sparsity, hook_count, topk
from convscope.inspect.edges import parse_kernel
from convscope.inspect.receptive_field import empirical_receptive_field, receptive_field_report

from .conftest import outcome, time_bound

IDENTITY = Normalization.identity()  # these models take raw [0, 1] pixels, said explicitly


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
    err = outcome(lambda: topk(model, _dataset(), ["0"], k=k, norm=IDENTITY), seconds=10)
    assert isinstance(err, ConfigError) and "k:" in str(err)
    assert hook_count(model) == 0


def test_topk_records_match_brute_force_and_string_layers_are_names():
    model, ds = _model(), _dataset(20)
    res = topk(model, ds, "0,1", k=3, norm=IDENTITY)             # a comma string names layers, never characters
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
    for call in (lambda: topk(model, bad, ["1"], norm=IDENTITY),
                 lambda: activation_sparsity(model, bad, Normalization((0.0,), (1.0,)))):
        err = outcome(call, seconds=10)
        assert isinstance(err, ConfigError) and "dataset:" in str(err) and "ImageDataset" in str(err)
    assert hook_count(model) == 0


def test_model_without_parameters_works():
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))
    ds = _dataset(6)
    res = topk(model, ds, ["0"], k=2, norm=IDENTITY)
    assert [r.index for r in res["0"][0]] == torch.argsort(-ds.images.flatten(1).max(1).values.double(),
                                                           stable=True)[:2].tolist()
    sp = activation_sparsity(model, ds, Normalization((0.0,), (1.0,)))
    assert sp[0].zero_fraction == pytest.approx(float((ds.images == 0).float().mean()))


def test_images_of_the_wrong_shape_are_named():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    err = outcome(lambda: topk(model, _dataset(hw=9), ["1"], norm=IDENTITY), seconds=10)
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


# ---- edges --kernel files (items 26, 27) ------------------------------------------------------------------------


def _npy_header(shape, dtype="<f8") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buf = np.lib.format.magic(1, 0)
    h = repr(header).encode("latin1")
    pad = 64 - (len(buf) + 2 + len(h) + 1) % 64
    h += b" " * pad + b"\n"
    return buf + len(h).to_bytes(2, "little") + h


def test_kernel_header_lie_is_refused_before_allocating(tmp_path):
    p = tmp_path / "lie.npy"
    p.write_bytes(_npy_header((100_000, 100_000)) + b"\0" * 1024)   # claims 80 GB
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*at most 1024x1024"):
        parse_kernel(str(p))


def test_kernel_truncated_npy_is_refused(tmp_path):
    p = tmp_path / "short.npy"
    p.write_bytes(_npy_header((3, 3)) + b"\0" * 16)   # 72 bytes claimed, 16 held
    with pytest.raises(ConfigError, match="--kernel.*truncated"):
        parse_kernel(str(p))


def test_kernel_oversized_npy_is_refused(tmp_path):
    p = tmp_path / "big.npy"
    np.save(p, np.zeros((2000, 3)))
    with pytest.raises(ConfigError, match="--kernel.*at most"):
        parse_kernel(str(p))


@pytest.mark.parametrize("content", [b"", b"not a numpy file", b"\x93NUMPY"])
def test_kernel_empty_or_text_npy(tmp_path, content):
    p = tmp_path / "k.npy"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match="--kernel.*not a NumPy .npy file"):
        parse_kernel(str(p))


def test_kernel_object_npy_is_not_unpickled(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="--kernel.*Python objects"):
        parse_kernel(str(p))


def test_kernel_fifo_does_not_hang(tmp_path):
    p = tmp_path / "fifo.npy"
    os.mkfifo(p)
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*FIFO"):
        parse_kernel(str(p))


def test_kernel_devzero_link_and_folder(tmp_path):
    link = tmp_path / "zero.npy"
    link.symlink_to("/dev/zero")
    with time_bound(10), pytest.raises(ConfigError, match="--kernel.*character device"):
        parse_kernel(str(link))
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ConfigError, match="--kernel.*folder"):
        parse_kernel(str(tmp_path / "dir.npy"))
    with pytest.raises(ConfigError, match="--kernel.*no such"):
        parse_kernel(str(tmp_path / "missing.npy"))


def test_kernel_json_file_is_read_as_json(tmp_path):
    p = tmp_path / "kernel.json"
    p.write_text("[[1, 0], [0, -1]]")
    assert parse_kernel(str(p)).tolist() == [[1, 0], [0, -1]]
    p.write_text("{oops")
    with pytest.raises(ConfigError, match="--kernel.*not a JSON list"):
        parse_kernel(str(p))


def test_kernel_json_object_message():
    with pytest.raises(ConfigError, match="expected a 2-D list of numbers.*JSON object"):
        parse_kernel('{"a": 1}')


def test_kernel_valid_npy_unchanged(tmp_path):
    p = tmp_path / "ok.npy"
    k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.save(p, k)
    assert parse_kernel(str(p)).tolist() == k.tolist()
    assert parse_kernel("[[1, -1]]").tolist() == [[1, -1]]


def test_cli_kernel_fifo(tmp_path, cli):
    os.mkfifo(tmp_path / "fifo.npy")
    r = cli("edges", "--limit", "5", "--out", tmp_path / "o", "--kernel", tmp_path / "fifo.npy", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--kernel" in r.stderr


# ---- empty layer lists and --out (items 1, 32) ----------------------------------------------------------------


@pytest.mark.parametrize("value", [" ", ",", " , ", ""])
def test_layer_arg_empty(small_run, value):
    from convscope.cli.inspect_cmd import _layer_arg

    model = small_run.model
    with pytest.raises(ConfigError, match="--layers .*names no layer"):
        _layer_arg(model, value, "--layers")
    assert _layer_arg(model, None) is None


def test_out_dir_checks(tmp_path):
    from convscope._atomic import writable_folder

    def _make_out_dir(out):       # what the inspection commands call for --out
        return writable_folder(out, f"--out {out}", "--out inspect")

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="--out .*give a folder"):
        _make_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="--out /proc/forbidden: cannot create"):
        _make_out_dir(Path("/proc/forbidden"))
    _make_out_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


@pytest.mark.parametrize("argv", [["sparsity", "--layers", " "], ["features", "--layers", ","],
                                  ["filters", "--layer", " "]])
def test_cli_empty_layer_lists(small_run, cli, tmp_path, argv):
    r = cli(argv[0], small_run.path, *argv[1:], "--out", tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and argv[1] in r.stderr and "names no layer" in r.stderr


def test_cli_out_is_a_file(small_run, cli, tmp_path):
    (tmp_path / "f").write_text("x")
    r = cli("filters", small_run.path, "--out", tmp_path / "f", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--out" in r.stderr and "give a folder" in r.stderr
    assert (tmp_path / "f").read_text() == "x"


S = (1, 28, 28)


# -- receptive_field_report -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [28, "1x28x28", (1, 0, 0), (3, 28, 28), (1, 4, 4), (1, 28), (1.0, 28, 28)])
def test_receptive_field_report_refuses_bad_shapes(small_run, shape):
    with pytest.raises(ConfigError, match="input_shape"):
        receptive_field_report(small_run.model, shape)
    with pytest.raises(ConfigError, match="input_shape"):
        empirical_receptive_field(small_run.model, "conv1", shape)


def test_receptive_field_report_refuses_a_non_module():
    with pytest.raises(ConfigError, match="model"):
        receptive_field_report(np.zeros(3), S)
    with pytest.raises(ConfigError, match="model"):
        empirical_receptive_field(np.zeros(3), "conv1", S)


class _Residual(nn.Module):
    """Not a chain: the report takes its gradient (fallback) path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, padding=1)
        self.conv2 = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(x + self.conv1(x))


def test_receptive_field_report_fallback_path_validates_first():
    model = _Residual()
    assert receptive_field_report(model, (1, 8, 8)).method == "gradient"
    with pytest.raises(ConfigError, match="input_shape"):
        receptive_field_report(model, (3, 8, 8))


def test_receptive_field_report_valid_shape_unchanged(small_run):
    r = receptive_field_report(small_run.model, S)
    assert [row.layer for row in r.rows][:2] == ["conv1", "bn1"]
    assert all(row.agrees for row in r.rows if row.check is not None)
