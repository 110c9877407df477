"""The shared core: scoped probes, JSON forms of results, 0.1 runs under named layers, library reports that the
thin CLI prints."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import convscope
from convscope.errors import ConfigError
from convscope.inspect import eval_mode, hook_count, layer_input_shapes, receptive_field_report, receptive_fields
from convscope.matrix.report import conv_layer_in_model, describe_conv
from convscope.matrix.spectrum import dense_singular_values, layer_spectrum
from convscope.models import create_model, resolve_layers, upgrade_state_dict

FIXTURES = Path(__file__).parent / "fixtures"


def test_eval_mode_restores_the_mode_on_success_and_on_error():
    model = create_model("fast", width=4)
    model.train()
    model.bn1.eval()  # a mixed state is restored as a whole train() call would set it: train mode
    with eval_mode(model):
        assert not model.training and not model.bn1.training
    assert model.training
    with pytest.raises(RuntimeError), eval_mode(model):
        model(torch.zeros(1, 3, 28, 28))  # wrong channel count
    assert model.training and model.bn1.training


def test_layer_input_shapes_and_no_hook_left():
    model = create_model("fast", width=4)
    shapes = layer_input_shapes(model, (1, 28, 28))
    assert shapes["conv1"] == (1, 28, 28) and shapes["conv2"] == (4, 14, 14) and shapes["fc"] == (16 * 3 * 3,)
    assert hook_count(model) == 0 and model.training


def test_every_zoo_model_names_its_layers_by_role():
    for name in ("fast", "lenet5", "mlp", "pytorch-example", "keras-example", "resnet-small"):
        model = create_model(name)
        names = [n for n, _ in model.named_modules() if n]
        assert not any(part.isdigit() for n in names for part in n.split(".")[:1]), (name, names)
    resnet = dict(create_model("resnet-small").named_modules())
    assert isinstance(resnet["layer1.0.conv1"], nn.Conv2d) and isinstance(resnet["layer3.1.shortcut"], nn.Sequential)


def test_layer_types_and_comma_strings_resolve_in_model_order():
    model = create_model("fast", width=4)
    assert resolve_layers(model, "ReLU") == ["relu1", "relu2", "relu3"]
    assert resolve_layers(model, "conv2, Conv2d") == ["conv2", "conv1", "conv3"]
    with pytest.raises(ConfigError, match="named by role"):
        resolve_layers(model, ["4"])
    with pytest.raises(ConfigError, match="layers: expected a list of layer names"):
        resolve_layers(model, [3])


def test_results_give_plain_json():
    model = create_model("fast", width=4)
    rep = receptive_field_report(model, (1, 28, 28))
    data = json.loads(json.dumps(rep.to_dict()))   # only JSON types: would raise otherwise
    rows = {r["layer"]: r for r in data["rows"]}
    assert rows["conv2"]["size"] == [8, 8] and rows["conv2"]["jump"] == [2, 2] and rows["fc"]["is_global"]
    spec = layer_spectrum(torch.randn(2, 1, 3, 3, dtype=torch.float64), (1, 4, 4))
    d = spec.to_dict()
    assert "values" not in d and d["exact"] and json.dumps(d)


def test_receptive_field_report_checks_every_spatial_layer_by_gradient():
    model = create_model("lenet5")
    rep = receptive_field_report(model, (1, 28, 28))
    spatial = [r for r in rep.rows if r.type in ("Conv2d", "MaxPool2d")]
    assert rep.method == "chain formula" and len(spatial) == 4 and all(r.agrees for r in spatial)
    assert {r.layer: r.size for r in spatial} == {n: f.size for n, f in receptive_fields(model, (1, 28, 28)).items()
                                                  if n in {r.layer for r in spatial}}

    class Functional(nn.Module):   # a functional op between modules: the chain formula cannot see it
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    rep = receptive_field_report(Functional(), (1, 9, 9))
    assert rep.method == "gradient" and "not the previous layer's output" in rep.reason
    assert {r.layer: r.empirical_box for r in rep.rows} == {"a": (3, 3, 5, 5), "b": (2, 2, 6, 6)}


def test_describe_conv_is_the_lecture_matrix():
    res = describe_conv(torch.randn(1, 1, 3, 3), (1, 4, 4), symbolic=True, spectrum=True)
    r = res.report
    assert r.shape == (4, 16) and r.nonzeros == 36 and math.isclose(r.density, 36 / 64)
    assert r.entries["0,0"] == "w11" and r.entries["3,15"] == "w33" and len(r.entries) == 36
    dense = np.linalg.svd(res.matrix.toarray(), compute_uv=False)
    assert r.spectrum.largest == pytest.approx(dense[0], rel=1e-12)
    assert "w11 w12 w13   0 w21" in res.symbolic_text


def test_layer_spectrum_picks_fft_dense_or_interval():
    torch.manual_seed(0)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    circ = layer_spectrum(w, (2, 8, 8), padding=1, padding_mode="circular")
    dense = dense_singular_values(w, (2, 8, 8), padding=1, padding_mode="circular")
    assert circ.method.startswith("exact, FFT") and np.allclose(circ.values, np.sort(dense)[::-1], atol=1e-9)
    zeros = layer_spectrum(w, (2, 8, 8), padding=1)
    assert zeros.method == "exact, dense SVD"
    iv = layer_spectrum(w, (2, 8, 8), padding=1, dense_limit=10)
    assert not iv.exact and iv.lower <= zeros.largest * (1 + 1e-9) and zeros.largest <= iv.upper * (1 + 1e-9)
    layer = nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False)
    assert layer_spectrum(layer, (2, 8, 8)).method.startswith("exact, FFT")  # the layer's own settings


def test_conv_layer_in_model_finds_the_input_shape():
    model = create_model("fast", width=4)
    conv, shape = conv_layer_in_model(model, "conv3", (1, 28, 28))
    assert conv is model.conv3 and shape == (8, 7, 7)
    with pytest.raises(ConfigError, match="conv layers: conv1, conv2, conv3"):
        conv_layer_in_model(model, "relu1", (1, 28, 28))


def test_a_run_saved_by_0_1_loads_under_named_layers(tmp_path):
    from convscope.training.checkpoint import load_weights

    path = tmp_path / "old"
    shutil.copytree(FIXTURES / "v0.1" / "finished-run", path)
    run = convscope.load_run(path)
    raw = load_weights(path / "model.safetensors")
    assert all(k.split(".")[0].isdigit() for k in raw)          # the file really holds 0.1's numeric keys
    assert torch.equal(run.model.conv2.weight, raw["4.weight"]) and torch.equal(run.model.fc.bias, raw["13.bias"])
    ds = convscope.data.load("digits", "test")
    from convscope.training.evaluate import evaluate

    acc = evaluate(run.model, ds, run.normalization, tta=run.tta).accuracy
    assert acc == pytest.approx(run.summary["test_accuracy"], abs=1e-9)   # the same predictions as in 0.1


def test_upgrade_refuses_a_state_that_does_not_fit():
    model = create_model("fast", width=4)
    with pytest.raises(ConfigError, match="'0.weight'.*conv1.weight"):
        upgrade_state_dict(model, {"0.weight": torch.zeros(5, 1, 3, 3)}, "w.safetensors")
    resnet = create_model("resnet-small")
    old = {f"{i}.{k}": v for i, (_, child) in enumerate(
        [("stem", resnet.conv1), ("bn", resnet.bn1)]) for k, v in child.state_dict().items()}
    assert set(upgrade_state_dict(resnet, old)) == {f"conv1.{k}" for k in resnet.conv1.state_dict()} | {
        f"bn1.{k}" for k in resnet.bn1.state_dict()}
