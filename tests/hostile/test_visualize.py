"""Hostile inputs to feature visualization and projections (issue 16): each ends in a correct result or a
ConfigError naming the argument, never a traceback, a MemoryError or NaN in the results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from convscope.data import Normalization, load
from convscope.errors import ConfigError
from convscope.inspect.projection import project, projections
from convscope.inspect.visualize import parse_channels, visualize

IDENTITY = Normalization.identity()  # these models take raw [0, 1] pixels, said explicitly
MODEL = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.flat(self.relu2(self.conv2(self.pool(self.relu1(self.conv1(x)))))))
"""
S = (1, 28, 28)


def _net() -> nn.Module:
    ns: dict = {}
    exec(MODEL, ns)
    return ns["Net"]()


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return _net()


@pytest.fixture(scope="module")
def ds():
    return load("digits", "test").subset(torch.arange(20))


@pytest.fixture(scope="module")
def x(ds) -> torch.Tensor:
    return ds.images[:2].float() / 255


# -- item 4: a fully connected layer's channel is its unit -------------------------------------------------------------

def test_visualize_fc_layer(net):
    v = visualize(net, "fc", [0, 9], input_shape=S, steps=2, norm=IDENTITY)
    assert v.channels == [0, 9] and v.images.shape == (2, 1, 28, 28)
    assert all(math.isfinite(a) for a in v.values)
    assert len(visualize(net, "fc", input_shape=S, steps=1, measure="max", norm=IDENTITY).channels) == 10


# -- items 11, 15, 16: layer and channel arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["ReLU", "Conv2d", "relu1,relu2"])
def test_visualize_refuses_a_layer_matching_several(net, layer):
    with pytest.raises(ConfigError, match=r"layer .* matches 2 layers \((relu1|conv1), "):
        visualize(net, layer, input_shape=S, steps=1, norm=IDENTITY)


@pytest.mark.parametrize("text, words", [("0-999999999", "out of range"), ("", "no channel"), (",", "no channel"),
                                         ("3-1", "backwards"), ("4", "out of range"), ("-1", "expected indices")])
def test_parse_channels_bounds_before_expanding(text, words):
    with pytest.raises(ConfigError, match=f"--channels .*{words}"):
        parse_channels(text, 4)


def test_parse_channels_without_a_count_bounds_the_range():
    with pytest.raises(ConfigError, match="out of range"):
        parse_channels("0-999999999")
    assert parse_channels("0,2-3", 4) == [0, 2, 3]


# -- items 17, 18: the API's arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"), (dict(steps=-1), "steps"), (dict(tv=float("nan")), "tv"), (dict(l2=-math.inf), "l2"),
    (dict(blur=-1.0), "blur"), (dict(lr=float("nan")), "lr"), (dict(lr=-1.0), "lr"), (dict(seed=2.5), "seed"),
    (dict(seed=-1), "seed"), (dict(channels="0-3"), "channels"), (dict(channels=2.5), "channels"),
    (dict(channels=[]), "channels"), (dict(channels=-1), "channels"), (dict(channels=[4]), "channels"),
    (dict(transforms=[5]), "transforms"), (dict(transforms="bogus"), "transforms"),
    (dict(input_shape=(1, 0, 0)), "input_shape"), (dict(input_shape=(3, 28, 28)), "input_shape"),
    (dict(input_shape=(1, 30000, 30000)), "input_shape"), (dict(param="bogus"), "param"),
    (dict(dataset=torch.zeros(2, 1, 28, 28)), "dataset"),
])
def test_visualize_validates_arguments(net, kwargs, name):
    kw = dict(input_shape=S, steps=1, norm=IDENTITY) | kwargs
    with pytest.raises(ConfigError, match=name):
        visualize(net, "conv1", **kw)


@pytest.mark.parametrize("model", [np.zeros(3), "conv1"])
def test_visualize_refuses_a_non_module(model):
    with pytest.raises(ConfigError, match="model"):
        visualize(model, "conv1", input_shape=S, steps=1, norm=IDENTITY)


@pytest.mark.parametrize("layer", [3, ["conv1"], "", ",", None])
def test_visualize_layer_type(net, layer):
    if layer is None:         # None is the class logits: valid
        assert visualize(net, None, [3], input_shape=S, steps=1, norm=IDENTITY).channels == [3]
        return
    with pytest.raises(ConfigError, match="layer"):
        visualize(net, layer, input_shape=S, steps=1, norm=IDENTITY)


def test_visualize_takes_arrays_of_channel_indices(net):
    assert visualize(net, "conv1", np.array([0, 2]), input_shape=S, steps=1, norm=IDENTITY).channels == [0, 2]
    assert visualize(net, "conv1", torch.tensor(3), input_shape=S, steps=1, norm=IDENTITY).channels == [3]


def test_visualize_a_model_without_parameters():
    # like topk, a parameter-free model is a valid (if plain) subject: a result, not a StopIteration
    v = visualize(nn.Sequential(nn.ReLU()), "0", [0], input_shape=S, steps=1, norm=IDENTITY)
    assert v.images.shape == (1, 1, 28, 28)


def test_a_non_finite_objective_stops_with_an_error(net):
    from convscope.inspect import objectives as O

    bad = O.channel("conv1", [0]) + O.Objective(lambda a: torch.full((1,), float("nan")), "nan", [])
    with pytest.raises(ConfigError, match="non-finite"):
        visualize(net, "conv1", [0], input_shape=S, steps=2, objective=bad, norm=IDENTITY)


@pytest.mark.parametrize("flag", ["l2", "tv"])
def test_huge_finite_weights_give_finite_results_or_an_error(net, flag):
    try:
        v = visualize(net, "conv1", [0], input_shape=S, steps=2, **{flag: 1e308}, norm=IDENTITY)
    except ConfigError as e:
        assert "non-finite" in str(e) and flag in str(e)
    else:
        assert np.isfinite(v.history).all() and all(math.isfinite(a) for a in v.values)
        json.dumps(v.to_dict(), allow_nan=False)


# -- items 6, 7: projections() and project() ---------------------------------------------------------------------------

@pytest.mark.parametrize("channels, words", [([99], "has 4 channels"), ([], "empty"), ([-1], "has 4 channels"),
                                             ("0", "list")])
def test_projections_checks_channels(net, ds, channels, words):
    with pytest.raises(ConfigError, match=f"channels.*{words}"):
        projections(net, ds, "conv1", channels, k=2, norm=IDENTITY)


def test_projections_refuses_a_type_matching_several_layers_and_a_tensor(net, ds):
    with pytest.raises(ConfigError, match="matches 2 layers"):
        projections(net, ds, "ReLU", [0], k=2, norm=IDENTITY)
    with pytest.raises(ConfigError, match="dataset"):
        projections(net, ds.images, "conv1", [0], k=2, norm=IDENTITY)
    with pytest.raises(ConfigError, match="k"):
        projections(net, ds, "conv1", [0], k=0, norm=IDENTITY)


@pytest.mark.parametrize("make, units, words", [
    (lambda x, ds: ds.images[:2], [(0, 0, 0)] * 2, "inputs: expected a float tensor"),
    (lambda x, ds: x.tolist(), [(0, 0, 0)] * 2, "inputs: expected a float tensor"),
    (lambda x, ds: x * float("nan"), [(0, 0, 0)] * 2, "inputs: hold NaN"),
    (lambda x, ds: x, [(99, 0, 0)] * 2, r"units: \(99, 0, 0\) is outside"),
    (lambda x, ds: x, [(0, 100, 100)] * 2, r"units: \(0, 100, 100\) is outside"),
    (lambda x, ds: x, [(-1, 0, 0)] * 2, r"units: \(-1, 0, 0\) is outside"),
    (lambda x, ds: x, [(0, -1, 0)] * 2, r"units: \(0, -1, 0\) is outside"),
    (lambda x, ds: x, [(0, 0)] * 2, "units: expected one"),
    (lambda x, ds: x, [(0, 0, 0)], "1 units for 2 images"),
])
def test_project_checks_inputs_and_units(net, x, ds, make, units, words):
    with pytest.raises(ConfigError, match=words):
        project(net, make(x, ds), "conv1", units)


def test_project_valid_inputs(net, x):
    p = project(net, x, "conv1", [(0, 1, 1), (3, 27, 27)])
    assert tuple(p.shape) == (2, 1, 28, 28) and torch.isfinite(p).all()
    assert tuple(project(net, x, "fc", [(9, 0, 0)] * 2).shape) == (2, 1, 28, 28)
    assert torch.equal(project(net, x, "conv1", np.array([(0, 1, 1), (3, 27, 27)])), p)


# -- items 5, 11, 15, 16: the CLI --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vis") / "models.py"
    path.write_text(MODEL)
    return path


def _target(model_file, tmp_path):
    return ["--model-file", f"{model_file}:Net", "--input-shape", "1x28x28", "--out", str(tmp_path)]


@pytest.mark.parametrize("args, flag", [
    (["visualize", "--layer", "ReLU"], "--layer"), (["visualize", "--layer", "Conv2d"], "--layer"),
    (["visualize", "--layer", "conv1", "--channels", "0-999999999"], "--channels"),
    (["visualize", "--layer", "conv1", "--channels", ""], "--channels"),
    (["visualize", "--layer", "conv1", "--channels", "4"], "--channels"),
    (["visualize", "--class", "3", "--layer", "conv1"], "--layer"),
    (["visualize", "--class", "10"], "--class"),
    (["project", "--layer", "ReLU"], "--layer"), (["project", "--layer", "conv1", "--channels", "4"], "--channels"),
    (["project", "--layer", "conv1", "--channels", ","], "--channels"),
])
def test_cli_refusals(cli, model_file, tmp_path, args, flag):
    r = cli(*args[:1], *_target(model_file, tmp_path), "--steps" if args[0] == "visualize" else "--k", "2",
            "--limit", "20", *args[1:], *(["--no-natural"] if args[0] == "visualize" else []))
    assert r.returncode == 2 and "Traceback" not in r.stderr and flag in r.stderr, r.stderr


def test_cli_fc_and_project_default_channels(cli, model_file, tmp_path):
    r = cli("visualize", *_target(model_file, tmp_path), "--steps", "2", "--no-natural", "--layer", "fc")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "visualize-fc.json").read_text())["channels"] == list(range(10))
    r = cli("project", *_target(model_file, tmp_path), "--limit", "20", "--k", "2", "--layer", "conv1")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "project-conv1.json").read_text())["channels"] == [0, 1, 2, 3]
