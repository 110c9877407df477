"""Hostile inputs to the refine experiment (RefineConfig, refine() and `convscope experiment refine`): each
ends in a result or a clear convscope error that names the argument at fault, before any long work."""

from __future__ import annotations

import time

import pytest
import torch

from convscope._cpus import cpu_limit
from convscope.errors import ConfigError
from convscope.experiments import RefineConfig, refine

from .conftest import refused

FAST = {"train_limit": 100, "test_limit": 50, "seeds": (0,), "variants": ("top",), "steps": 1, "eval_every": 1,
        "k": 1, "bn": ("frozen",), "bn_images": 20, "threads": 1}


FAST_CLI = ["--train-limit", "100", "--test-limit", "50", "--seeds", "0", "--variants", "top", "--steps", "1",
            "--eval-every", "1", "--k", "1", "--bn", "frozen", "--bn-images", "20"]


S = (1, 28, 28)


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


@pytest.mark.parametrize("threads", [0, -1, cpu_limit() + 1, 100000, 1.5, True])
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
    refused(r, "--out")
    assert "baseline" not in r.stdout            # nothing ran


def test_cli_refine_out_is_a_file(cli, small_run, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--out", f)
    refused(r, "--out", "not a folder")
    assert f.read_text() == "x"


def test_cli_refine_huge_seed(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI[:4], "--seeds", "99999999999999999999999",
            "--out", tmp_path / "o")
    refused(r, "--seeds")


def test_cli_refine_threads_above_the_cpus_it_may_use(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--threads", "100000", "--out", tmp_path / "o")
    refused(r, "--threads", "the CPUs this process may use")


def test_cli_refine_mean_not_numbers(cli, tmp_path):
    model = tmp_path / "m.py"
    model.write_text("from torch import nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                     "        super().__init__(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(10))\n")
    r = cli("experiment", "refine", "--model-file", f"{model}:Net", "--mean", "abc", "--out", tmp_path / "o",
            *FAST_CLI)
    refused(r, "--mean", "comma-separated numbers")


def test_cli_refine_response_before_layer(cli, small_run, tmp_path):
    r = cli("experiment", "refine", small_run.path, *FAST_CLI, "--layer", "conv3", "--response", "conv1",
            "--out", tmp_path / "o")
    refused(r, "response 'conv1'")
