"""Findings of the second independent attack on the surfaces of issue 28 (/work/notes/attack2.md) outside the
training settings (those are in test_train_plausibility.py): each class fixed where the value enters."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError, DataError
from convscope.inspect import attribute, visualize
from convscope.inspect import objectives as O
from convscope.models import create_model
from convscope.training.config import config_from_dict, read_config_file

from .conftest import refused


@pytest.mark.parametrize("kwargs, words", [
    ({"width": 0}, "fast2: width must be a positive whole number of channels, got 0"),
    ({"width": -1}, "got -1"),
    ({"width": 2.5}, "got 2.5"),
    ({"widths": [8, 16]}, "fast2: widths must be 3 positive channel counts, e.g. [32, 64, 128], got [8, 16]"),
    ({"widths": [8, 0, 16]}, "got [8, 0, 16]"),
])
def test_a_bad_model_width_is_reported_under_the_name_given(kwargs, words):
    # F7: `--model-arg width=0` said "widths must be ..., got None": the argument the user never gave
    with pytest.raises(ConfigError) as info:
        create_model("fast2", 1, (28, 28), 10, **kwargs)
    assert words in str(info.value)
    assert create_model("fast2", 1, (28, 28), 10, width=4)[0].out_channels == 4   # a valid width still builds


def test_a_data_folder_that_is_a_file_is_refused_even_for_the_embedded_digits(tmp_path):
    # F8: `--data-dir FILE` was accepted when the dataset did not read it
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(DataError, match=rf"^{afile}: not a folder; the data folder \(--data-dir, root=\)"):
        load("digits", "test", root=afile)
    assert len(load("digits", "test", root=tmp_path)) == len(load("digits", "test"))   # a folder: as before


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("method, words", [
    (lambda m, i, t: torch.zeros(3), "returned maps of shape (3,); a method returns one map per image, (2, 8, 8)"),
    (lambda m, i, t: np.zeros((2, 5, 5)), "returned maps of shape (2, 5, 5)"),
    (lambda m, i, t: np.zeros((3, 8, 8)), "returned maps of shape (3, 8, 8)"),
    (lambda m, i, t: torch.zeros(2, 8, 8, dtype=torch.complex64), "returned complex maps"),
    (lambda m, i, t: np.array([["a"] * 8] * 8 * 2).reshape(2, 8, 8), "returned <U1 values"),
])
def test_a_custom_attribution_method_is_held_to_the_map_contract(method, words):
    # F9: a callable's output was returned as it came: (3,) maps for 2 images, 5x5 maps for 8x8 images
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ConfigError) as info:
        attribute(_Net(), x, method, target=0)
    assert words in str(info.value)


def test_a_custom_method_keeping_the_contract_is_returned_exactly():
    x = torch.randn(2, 1, 8, 8)
    model = _Net()

    def gradient(m, inp, target):   # plain input gradient of the target logit: the reference
        inp = inp.clone().requires_grad_(True)
        m(inp).gather(1, target[:, None]).sum().backward()
        return inp.grad[:, 0]

    want = gradient(model, x, torch.tensor([1, 1])).numpy()
    got = attribute(model, x, gradient, target=1)
    assert got.dtype == np.float32 and got.shape == (2, 8, 8)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_normalization_refuses_meta_tensors():
    # F10: run.preprocess(meta images) returned a meta tensor, with nothing computed
    norm = Normalization((0.5,), (0.25,))
    with pytest.raises(ConfigError, match="meta tensor holds shapes without values") as info:
        norm.apply(torch.zeros(2, 1, 28, 28, dtype=torch.uint8, device="meta"), (1, 28, 28))
    assert info.value.arg == "images"
    x = norm.apply(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(x, torch.full((1, 1, 2, 2), 2.0))   # (1 - 0.5) / 0.25


# ---- objectives and visualize (F11-F15, F19) ------------------------------------------------------------------

def _acts():
    return {"conv": torch.arange(16.0).reshape(1, 2, 2, 4)}   # (B=1, C=2, H=2, W=4)


@pytest.mark.parametrize("build, words", [
    (lambda: O.channel("conv", 1.5), "units: expected a unit index (a whole number >= 0) or a list of them"),
    (lambda: O.channel("conv", "3"), "units: expected a unit index"),
    (lambda: O.channel("conv", -1), "units: unit -1 is negative"),
    (lambda: O.channel("conv", [0, -2]), "units: unit -2 is negative"),
    (lambda: O.class_logit(-1), "classes: unit -1 is negative"),
    (lambda: O.neuron("conv", 0, y=-1, x=0), "neuron: y must be a whole number >= 0"),
    (lambda: O.neuron("conv", 0, y=0, x=1.5), "neuron: x must be a whole number >= 0"),
    (lambda: O.blur(-1), "sigma: must be"),
    (lambda: O.blur(0), "sigma: must be"),
    (lambda: O.l2(float("nan")), "center: must be a finite number"),
])
def test_objectives_check_their_arguments_where_they_are_written(build, words):
    # F11, F13, F14: a float unit was a bare TypeError; -1 silently meant the last row or unit; a NaN centre was
    # reported at step 1 as "lower the regularizer weights"
    with pytest.raises(ConfigError) as info:
        build()
    assert words in str(info.value)


def test_a_neuron_outside_the_map_is_refused_in_words_and_inside_it_is_that_value():
    # F12: y=100 on a 2x4 map was an IndexError
    with pytest.raises(ConfigError, match=r"position \(y=100, x=100\) is outside conv's 2x4 map; give y in 0..1"):
        O.neuron("conv", 0, y=100, x=100)(_acts())
    assert O.neuron("conv", 1, y=1, x=3)(_acts()).item() == 15.0   # channel 1 = 8..15, (1, 3) is its last value
    assert O.channel("conv", (0,))(_acts()).item() == 3.5          # a tuple of units, one per image


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def test_visualize_takes_the_input_shape_a_run_records_and_checks_transforms_first():
    # F15: a loaded run was asked for input_shape although it records it; F19: a one-argument transform was a
    # bare TypeError from inside the optimization
    run = SimpleNamespace(model=_Conv(), normalization=Normalization((0.5,), (0.25,)), input_shape=(1, 12, 12))
    res = visualize(run, "conv", 0, steps=2, transforms=None)
    assert res.images.shape == (1, 1, 12, 12)
    with pytest.raises(ConfigError, match=r"transforms: '<lambda>' cannot be called as t\(x, generator\)"):
        visualize(run, "conv", 0, steps=2, transforms=[lambda x: x])
    with pytest.raises(ConfigError, match="give input_shape"):   # a bare model has no record
        visualize(run.model, "conv", 0, steps=2, norm=run.normalization)


# ---- Normalization (F17, F18) and YAML numbers (F20) ------------------------------------------------------------

def test_normalize_refuses_integer_images_and_statistics_that_overflow():
    norm = Normalization((0.5,), (0.25,))
    with pytest.raises(ConfigError, match=r"x: Normalization.normalize takes float images .* got a torch.uint8"):
        norm.normalize(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))    # read as 0..1: [-2, 1018]
    assert torch.equal(norm.normalize(torch.tensor([[[[0.0, 1.0]]]])), torch.tensor([[[[-2.0, 2.0]]]]))
    for mean, std in (((0.1,), (1e-300,)), ((0.1,), (5e-7,)), ((1e300,), (1.0,)), ((0.1,), (1e7,))):
        with pytest.raises(ConfigError, match="not statistics of pixels on the"):
            Normalization(mean, std)
    # the floor Normalization.of uses for a constant channel stays valid, and its input stays finite
    flat = Normalization.of(torch.full((2, 1, 3, 3), 7, dtype=torch.uint8))
    assert flat.std == (1e-6,) and torch.isfinite(flat.apply(torch.zeros(1, 1, 3, 3, dtype=torch.uint8))).all()


@pytest.mark.parametrize("text, key, value", [
    ("lr: 1e-2\n", "lr", 0.01), ("weight_decay: 5e-4\n", "weight_decay", 5e-4), ("lr: 1.0e5\n", "lr", 1e5),
    ("step_gamma: +2E+0\n", "step_gamma", 2.0), ("lr: .5e-1\n", "lr", 0.05),
])
def test_yaml_reads_exponent_floats_as_json_toml_and_the_flags_do(tmp_path, text, key, value):
    # F20: YAML 1.1 read `1e-2` as a string, refused as "wrong type: expected float"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert read_config_file(path)[key] == value
    assert config_from_dict(read_config_file(path), source=str(path)).flat()[key] == value


def test_yaml_exponent_seed_is_refused_as_a_seed_and_quoted_numbers_stay_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1e23\n")
    with pytest.raises(ConfigError, match="seed"):
        config_from_dict(read_config_file(path), source=str(path))
    path.write_text('name: "1e5"\nlr: 1e\n')
    assert read_config_file(path) == {"name": "1e5", "lr": "1e"}
    import yaml

    assert yaml.safe_load("lr: 1e-2") == {"lr": "1e-2"}   # PyYAML's own loader is left as it is


# ---- visualize and the inspection commands' flags (F22, F23) ---------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["layers", "RUN", "--mean", "0.5"], "--mean: for --model-file only; the run RUN carries its own"),
    (["visualize", "RUN", "--layer", "conv1", "--std", "0.5", "--weights", "w.safetensors"],
     "--weights, --std: for --model-file only"),
    (["experiment", "refine", "RUN", "--mean", "0.5"], "--mean: for --model-file only"),
    (["visualize", "RUN", "--layer", "conv1", "--neuron", "--measure", "mean"],
     "--neuron: neuron is the measure 'neuron' (the centre unit); it contradicts measure 'mean'"),
])
def test_flags_a_run_would_silently_ignore_are_refused(tmp_path, cli, argv, words):
    # F22: `visualize RUN --mean 0.5 --std 0.5` gave the numbers of the run's own normalization; F23: --neuron
    # silently replaced an explicit --measure mean. Refused before the run is read (RUN need not exist)
    run = str(tmp_path / "run")
    r = cli(*[run if a == "RUN" else a for a in argv])
    refused(r, words.replace("RUN", run))


def test_visualize_config_neuron_and_measure():
    from convscope.configs import VisualizeConfig

    assert VisualizeConfig(neuron=True).measure == "neuron"            # the default measure gives way
    assert VisualizeConfig(neuron=True, measure="neuron").measure == "neuron"
    with pytest.raises(ConfigError, match="contradicts measure 'mean'"):
        VisualizeConfig(neuron=True, measure="mean")


# ---- attribution through models no gradient flows through (F24, F25) -------------------------------------------

class _NoGraph(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        if self.mode == "in place":
            x.mul_(1.0)
        out = self.fc(self.relu(self.conv(x)).flatten(1))
        return out.detach() if self.mode == "detached" else out


@pytest.mark.parametrize("mode", ["detached", "in place"])
@pytest.mark.parametrize("method", ["saliency", "gradcam", "guided_backprop"])
def test_gradient_methods_on_a_model_without_a_graph_say_so(mode, method):
    # F24/F25: autograd's RuntimeError ("element 0 of tensors does not require grad") came out raw
    with pytest.raises(ConfigError, match=rf"method: {method} needs the gradient .* none flows through this model"):
        attribute(_NoGraph(mode), torch.randn(2, 1, 8, 8), method, target=0)
    # occlusion needs no gradient: it still answers, and exactly as for the same model with its graph
    x = torch.randn(2, 1, 8, 8)
    model = _NoGraph(mode)
    plain = _NoGraph("plain")
    plain.load_state_dict(model.state_dict())
    np.testing.assert_allclose(attribute(model, x, "occlusion", target=0), attribute(plain, x, "occlusion", target=0))
