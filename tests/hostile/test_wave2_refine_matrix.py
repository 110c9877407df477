"""Hostile inputs, wave 2: the refine experiment (API and CLI), receptive_field_report, describe_conv /
layer_spectrum and `convscope matrix RUN --layer`. Each must end in a result or a clear convscope error that
names the argument at fault, before any long work."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from convscope.errors import ConfigError
from convscope.experiments import RefineConfig, refine
from convscope.inspect.receptive_field import empirical_receptive_field, receptive_field_report
from convscope.matrix.report import conv_layer_in_model, describe_conv
from convscope.matrix.spectrum import layer_spectrum

FAST = {"train_limit": 100, "test_limit": 50, "seeds": (0,), "variants": ("top",), "steps": 1, "eval_every": 1,
        "k": 1, "bn": ("frozen",), "bn_images": 20, "threads": 1}
FAST_CLI = ["--train-limit", "100", "--test-limit", "50", "--seeds", "0", "--variants", "top", "--steps", "1",
            "--eval-every", "1", "--k", "1", "--bn", "frozen", "--bn-images", "20"]
S = (1, 28, 28)


def _refused(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


# -- RefineConfig and refine(config=...) ----------------------------------------------------------------------------

@pytest.mark.parametrize("seeds", ["0,1", 3, (0.5,), (True,), (-1,), (2**63,), (99999999999999999999999,)])
def test_refine_config_refuses_bad_seeds(seeds):
    with pytest.raises(ConfigError, match="seeds"):
        RefineConfig(seeds=seeds)


def test_refine_config_largest_seed_is_accepted():
    assert RefineConfig(seeds=[0, 2**63 - 1]).seeds == (0, 2**63 - 1)


def test_refine_config_variants_string_is_refused_not_split_into_letters():
    with pytest.raises(ConfigError, match=r"variants: .*\('top',\)"):
        RefineConfig(variants="top")
    with pytest.raises(ConfigError, match="bn"):
        RefineConfig(bn="frozen")
    assert RefineConfig(variants=["top", "random"]).variants == ("top", "random")
    with pytest.raises(ConfigError, match="variants"):
        RefineConfig(variants=5)
    with pytest.raises(ConfigError, match="variants"):
        RefineConfig(variants=["top", 3])


@pytest.mark.parametrize("threads", [0, -1, (os.cpu_count() or 1) + 1, 100000, 1.5, True])
def test_refine_config_refuses_thread_counts(threads):
    with pytest.raises(ConfigError, match="threads"):
        RefineConfig(threads=threads)


@pytest.mark.parametrize("field,value", [("layer", 5), ("layer", " "), ("response", 3), ("momentum", "x")])
def test_refine_config_refuses_wrong_types(field, value):
    with pytest.raises(ConfigError, match=field):
        RefineConfig(**{field: value})


def test_refine_config_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="bogus"):
        RefineConfig.from_dict({"bogus": 1})


def test_refine_refuses_a_config_of_the_wrong_type(small_run):
    with pytest.raises(ConfigError, match="config"):
        refine(small_run.path, 5)
    with pytest.raises(ConfigError, match="unknown key"):
        refine(small_run.path, {"layers": "conv3"})
    with pytest.raises(ConfigError, match="k"):
        refine(small_run.path, {"k": 0})


def test_refine_refuses_tensors_as_datasets(small_run):
    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="train: expected a convscope.data.ImageDataset"):
        refine(small_run.model, RefineConfig(**FAST), train=x, test=x, normalization=small_run.normalization)


def test_refine_accepts_a_dict_config(small_run):
    res = refine(small_run.path, dict(FAST))
    assert res.config == RefineConfig(**FAST)
    assert res.layer == "conv3"


def test_refine_refuses_a_response_layer_before_the_refined_layer(small_run):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="response 'conv1'.*before"):
        refine(small_run.path, RefineConfig(layer="conv3", response="conv1", **FAST))
    assert time.perf_counter() - t0 < 60


def test_refine_accepts_a_response_layer_after_the_refined_layer(small_run):
    res = refine(small_run.path, RefineConfig(layer="conv2", response="relu3", **FAST))
    assert (res.layer, res.response) == ("conv2", "relu3")


# -- refine CLI -----------------------------------------------------------------------------------------------------

def test_cli_refine_out_not_writable_fails_before_running(cli, small_run):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--out", "/proc/forbidden")
    _refused(r, "--out")
    assert "baseline" not in r.stdout            # nothing ran


def test_cli_refine_out_is_a_file(cli, small_run, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--out", f)
    _refused(r, "--out", "not a folder")
    assert f.read_text() == "x"


def test_cli_refine_huge_seed(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI[:4], "--seeds", "99999999999999999999999",
            "--out", tmp_path / "o")
    _refused(r, "--seeds")


def test_cli_refine_threads_above_cpu_count(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--threads", "100000", "--out", tmp_path / "o")
    _refused(r, "--threads", "CPU count")


def test_cli_refine_mean_not_numbers(cli, tmp_path):
    model = tmp_path / "m.py"
    model.write_text("from torch import nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                     "        super().__init__(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(10))\n")
    r = cli("experiment", "refine", "--model-file", f"{model}:Net", "--mean", "abc", "--out", tmp_path / "o",
            *FAST_CLI)
    _refused(r, "--mean", "comma-separated numbers")


def test_cli_refine_response_before_layer(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--layer", "conv3", "--response", "conv1",
            "--out", tmp_path / "o")
    _refused(r, "response 'conv1'")


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
    _refused(cli("matrix", small_run.path, "--layer", "0"), "--layer", "numeric indices")
    _refused(cli("matrix", small_run.path, "--layer", "Conv2d"), "--layer", "conv1, conv2, conv3")
