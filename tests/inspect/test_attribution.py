"""Each attribution method equals a direct Captum call with the documented reduction; Grad-CAM equals the
textbook formula computed by hand; targets, layers, hooks and the global RNG behave."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum import attr
from torch import nn

from convscope.errors import ConfigError
from convscope.inspect import ATTRIBUTION_METHODS, attribute, hook_count
from convscope.models import create_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 7 * 7, 3)).double().eval()


@pytest.fixture(scope="module")
def data():
    x = torch.randn(5, 2, 14, 14, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return _net(), x, torch.tensor([0, 1, 2, 1, 0])


def _direct(model, x, method, target):
    """Captum called directly, with the parameters and reductions documented in METHODS."""
    xr = x.clone().requires_grad_()
    layer = model[3]
    if method == "saliency":
        return attr.Saliency(model).attribute(xr, target=target).amax(1)
    if method == "smoothgrad":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return attr.NoiseTunnel(attr.Saliency(model)).attribute(
                xr, nt_type="smoothgrad", nt_samples=16, stdevs=0.15 * float(x.max() - x.min()), target=target).amax(1)
    if method == "integrated_gradients":
        return attr.IntegratedGradients(model).attribute(xr, target=target, n_steps=32).sum(1)
    if method == "gradcam":
        cam = attr.LayerGradCam(model, layer).attribute(xr, target=target, relu_attributions=True)
        return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    if method == "occlusion":
        return attr.Occlusion(model).attribute(xr, sliding_window_shapes=(2, 2, 2), strides=(2, 1, 1),
                                               target=target).mean(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "guided_backprop":
            return attr.GuidedBackprop(model).attribute(xr, target=target).sum(1)
        if method == "deconvnet":
            return attr.Deconvolution(model).attribute(xr, target=target).sum(1)
        return attr.GuidedGradCam(model, layer).attribute(xr, target=target).sum(1)


@pytest.mark.parametrize("method", list(ATTRIBUTION_METHODS))
def test_each_method_equals_a_direct_captum_call(data, method):
    model, x, target = data
    got = attribute(model, x, method, target, layer="3")
    want = _direct(model, x, method, target).detach().numpy()
    assert got.shape == (5, 14, 14) and got.dtype == np.float32
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-5, atol=1e-7)
    assert np.abs(got).max() > 0
    assert hook_count(model) == 0


def test_gradcam_equals_the_textbook_formula(data):
    model, x, target = data
    xr = x.clone().requires_grad_()
    a = model[:4](xr)                                             # (N, 6, 7, 7): the layer's output
    logits = model[4:](a)
    (g,) = torch.autograd.grad(logits[torch.arange(5), target].sum(), a)
    weights = g.mean((2, 3), keepdim=True)                        # channel weights: spatially averaged gradients
    cam = F.relu((weights * a).sum(1)).detach()                   # ReLU of the weighted sum, (N, 7, 7)
    got = attribute(model, x, "gradcam", target, layer="3", upsample=False)
    assert got.shape == (5, 7, 7)
    np.testing.assert_allclose(got, cam.numpy(), rtol=1e-6, atol=1e-9)
    up = attribute(model, x, "gradcam", target, layer="3")
    want = F.interpolate(cam[:, None], size=(14, 14), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(up, want.numpy(), rtol=1e-6, atol=1e-9)


def test_default_target_is_the_prediction_and_rng_is_left_alone(data):
    model, x, _ = data
    pred = model(x).argmax(1)
    rng = torch.random.get_rng_state()
    a = attribute(model, x, "smoothgrad")
    assert torch.equal(rng, torch.random.get_rng_state())
    np.testing.assert_array_equal(a, attribute(model, x, "smoothgrad", pred))
    assert not np.array_equal(a, attribute(model, x, "smoothgrad", pred, seed=1))
    np.testing.assert_array_equal(attribute(model, x, "saliency", 2), attribute(model, x, "saliency", [2] * 5))


def test_fast_model_with_inplace_relus_every_method_and_no_hooks():
    torch.manual_seed(0)
    model = create_model("fast", width=4).eval()
    x = torch.randn(3, 1, 28, 28)
    for m in ATTRIBUTION_METHODS:
        assert attribute(model, x, m).shape == (3, 28, 28)
    assert attribute(model, x, "gradcam", layer="relu2", upsample=False).shape == (3, 14, 14)
    assert hook_count(model) == 0 and not model.training


def test_errors_name_the_argument_and_leave_no_hooks(data):
    model, x, _ = data
    with pytest.raises(ConfigError, match="method: 'lime' is not one of saliency"):
        attribute(model, x, "lime")
    with pytest.raises(ConfigError, match="unknown layer"):
        attribute(model, x, "gradcam", layer="nope")
    with pytest.raises(ConfigError, match="model-ready"):
        attribute(model, x[0], "saliency")
    with pytest.raises(ConfigError, match="no Conv2d"):
        attribute(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double(), torch.randn(1, 1, 2, 2).double(), "gradcam")
    with pytest.raises(RuntimeError):
        attribute(model, torch.randn(1, 3, 14, 14, dtype=torch.float64), "guided_gradcam", 0, layer="3")
    assert hook_count(model) == 0


def test_cli_explain_index_and_image(small_run, tmp_path):
    from PIL import Image

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "convscope", "explain", str(small_run.path), *args,
                               "--out", str(tmp_path)], check=False, capture_output=True, text=True, timeout=300)
    r = cli("--index", "3", "--method", "saliency,gradcam", "--limit", "10")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "explain-test-3.json").read_text())
    assert set(data["maps"]) == {"saliency", "gradcam"} and np.array(data["maps"]["gradcam"]).shape == (28, 28)
    assert data["methods"]["gradcam"]["layer"] == "relu3" and "note: gradcam at layer 'relu3'" in r.stdout
    assert data["methods"]["gradcam"]["degenerate_fraction"] in (0.0, 1.0)
    assert (tmp_path / "explain-test-3.png").stat().st_size > 1000
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    r = cli(str(tmp_path / "blank.png"), "--method", "occlusion", "--target", "4", "--prepare", "none")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "explain-blank.json").read_text())["target"] == 4
    r = cli(str(tmp_path / "blank.png"), "--method", "saliency")       # the run's default (mnist): refused as predict
    assert r.returncode == 2 and "blank.png: no ink found" in r.stderr, r.stderr
    assert not (tmp_path / "explain-blank.json").exists() or json.loads(
        (tmp_path / "explain-blank.json").read_text())["target"] == 4   # the --prepare none answer above, untouched


def test_cli_explain_takes_any_size_as_predict_does(small_run, tmp_path):
    """Before: an IMAGE not of the model's 28 x 28 was refused. Now it is prepared exactly as `predict`
    prepares it: the map explains the same input predict classifies."""
    from PIL import Image

    from convscope.data import load
    from convscope.data.prepare import prepare_image

    digit = load("digits", "test").images[3, 0].numpy()                   # a real test digit, 28 x 28
    big = np.asarray(Image.fromarray(digit).resize((112, 112), Image.NEAREST))
    Image.fromarray(255 - big).save(tmp_path / "big.png")                  # dark ink on white paper, 112 x 112
    for prepare, words in (("mnist", "centred by the centre of mass"), ("none", "resized 112 x 112 to 28 x 28")):
        r = subprocess.run([sys.executable, "-m", "convscope", "explain", str(small_run.path),
                            str(tmp_path / "big.png"), "--method", "saliency", "--prepare", prepare,
                            "--out", str(tmp_path / prepare)],
                           check=False, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert f"note: prepared: {prepare}" in r.stdout and words in r.stdout
        data = json.loads((tmp_path / prepare / "explain-big.json").read_text())
        assert np.array(data["maps"]["saliency"]).shape == (28, 28)
        # the explained input is predict's: same prediction as the model on prepare_image's tensor
        x = prepare_image(tmp_path / "big.png", small_run.input_shape, mode=prepare).tensor[None]
        with torch.no_grad():
            assert data["predicted"] == int(small_run.model.eval()(small_run.preprocess(x)).argmax())


# -- Grad-CAM's default layer and constant-map warnings (issue 23) ------------------------------------------------

@pytest.mark.parametrize("name, want", [("fast", "relu3"), ("fast2", "relu4"), ("lenet5", "relu2"),
                                        ("resnet-small", "layer3.1.relu2"), ("pytorch-example", "relu2")])
def test_default_gradcam_layer_is_the_last_conv_blocks_activation(name, want):
    from convscope.inspect.attribution import default_gradcam_layer

    model = create_model(name, in_channels=1, image_size=(28, 28), num_classes=10).eval()
    layer, reason = default_gradcam_layer(model, torch.zeros(1, 1, 28, 28))
    assert layer == want and "nonlinearity" in reason


class _Functional(nn.Module):
    """conv -> BN -> F.relu -> pool: no ReLU module to hook."""

    def __init__(self):
        super().__init__()
        self.c1, self.bn, self.pool = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 7 * 7, 3)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.bn(self.c1(x)))).flatten(1))


class _SharedReLU(nn.Module):
    """One ReLU module used after the conv and again in the head: Captum would see its last (2-D) call."""

    def __init__(self):
        super().__init__()
        self.c1, self.relu, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Linear(4 * 14 * 14, 3)

    def forward(self, x):
        return self.fc(self.relu(self.fc_in(x)))

    def fc_in(self, x):
        return self.relu(self.c1(x)).flatten(1)


def test_default_gradcam_layer_from_the_graph_and_its_fallbacks():
    from convscope.inspect.attribution import default_gradcam_layer

    x = torch.zeros(1, 1, 14, 14)
    layer, reason = default_gradcam_layer(_Functional().eval(), x)
    assert layer == "pool" and "function call (relu)" in reason          # found in the torch.fx graph
    layer, reason = default_gradcam_layer(_SharedReLU().eval(), x)
    assert layer == "c1" and "no nonlinearity module" in reason        # stated fallback
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 12 * 12, 3)).eval()
    assert default_gradcam_layer(plain, x)[0] == "0"
    with pytest.raises(ConfigError, match="layer: the model runs no Conv2d"):
        default_gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(196, 3)), x)


def test_gradcam_default_is_not_blank_on_a_trained_model(small_run):
    from convscope.data import load
    from convscope.inspect.attribution import explain

    x = small_run.normalization.apply(load("digits", "test").images[:100])
    res = explain(small_run.model, x, "gradcam")
    assert res.layer == "relu3" and res.degenerate_fraction <= 0.05
    assert res.to_dict()["layer_reason"].startswith("the first nonlinearity")


def test_constant_maps_are_reported_with_their_share(data):
    from convscope.inspect.attribution import DegenerateMapWarning, explain

    model, x, target = data

    def half_blank(m, inputs, t):
        maps = np.random.default_rng(0).random((len(inputs), *inputs.shape[2:]))
        maps[1], maps[3] = 0.0, 2.5                                   # all-zero and flat
        return maps
    res = explain(model, x, half_blank, target)
    assert res.degenerate_indices == [1, 3] and res.degenerate_fraction == pytest.approx(0.4)
    assert "2 of 5 maps (40.0%)" in res.warning and res.to_dict()["degenerate_fraction"] == pytest.approx(0.4)
    with pytest.warns(DegenerateMapWarning, match="2 of 5 maps"):
        attribute(model, x, half_blank, target)
    assert explain(model, x, "saliency", target).warning is None
