"""Feature visualization: objectives rise, seeds reproduce bit for bit, the natural baseline is topk's,
any channel count and model shape works, and nothing is left on the model or in global state."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.inspect import hook_count, topk, visualize
from convscope.inspect import objectives as O
from convscope.inspect import vis_transforms as T
from convscope.inspect.param import FourierParam, PixelParam

IDENTITY = Normalization.identity()  # these models take raw [0, 1] pixels, said explicitly


class NoFeatures(nn.Module):
    """No ``.features``, functional ReLUs, a module used twice, any input channel count."""

    def __init__(self, c_in: int = 1, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 7 * 7, classes)

    def forward(self, x):
        h = self.pool(F.relu(self.conv1(x)))       # (B, 6, 14, 14)
        h = self.pool(torch.relu(self.conv2(h)))   # (B, 8, 7, 7): pool reused
        return self.fc(h.flatten(1))


def _model(c_in=1, seed=0):
    torch.manual_seed(seed)
    return NoFeatures(c_in).eval()


@pytest.fixture(scope="module")
def digits():
    return load("digits", "test").subset(torch.arange(300))


def test_objective_rises_and_images_are_uint8_in_shape():
    model = _model()
    res = visualize(model, "conv2", [0, 3, 5], input_shape=(1, 28, 28), steps=40, seed=1, measure="mean",
                    norm=IDENTITY)
    assert res.images.dtype == np.uint8 and res.images.shape == (3, 1, 28, 28)
    assert res.inputs.dtype == torch.float32 and res.inputs.shape == (3, 1, 28, 28)
    assert res.history.shape == (40, 3)
    start, end = res.history[:3].mean(0), res.history[-3:].mean(0)
    assert (end > start + 1e-3).all(), (start, end)
    # the reported value is the measure on the returned (quantized) image itself
    with torch.no_grad():
        maps = F.relu(model.conv1(res.inputs))
        out = model.conv2(model.pool(maps))
    want = out[torch.arange(3), [0, 3, 5]].mean((1, 2))
    np.testing.assert_allclose(res.values, want.numpy(), rtol=1e-5, atol=1e-6)
    assert hook_count(model) == 0


@pytest.mark.parametrize("param", ["fourier", "pixel"])
def test_same_seed_same_image_bit_for_bit(param):
    model = _model()
    kw = {"input_shape": (1, 28, 28), "steps": 12, "param": param, "norm": IDENTITY}
    a = visualize(model, "conv2", [1, 2], seed=7, **kw)
    b = visualize(model, "conv2", [1, 2], seed=7, **kw)
    c = visualize(model, "conv2", [1, 2], seed=8, **kw)
    assert np.array_equal(a.images, b.images) and torch.equal(a.inputs, b.inputs)
    assert np.array_equal(a.history, b.history)
    assert not np.array_equal(a.images, c.images)


def test_no_global_state_touched():
    model = _model()
    model.train()
    rng = torch.random.get_rng_state()
    visualize(model, "conv1", [0], input_shape=(1, 28, 28), steps=3, tv=0.1, l2=0.1, blur=0.1, norm=IDENTITY)
    assert torch.equal(rng, torch.random.get_rng_state())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert hook_count(model) == 0


def test_natural_baseline_equals_topk_top1_and_brute_force(digits):
    model = _model()
    norm = Normalization((0.13,), (0.31,))
    res = visualize(model, "conv2", [0, 1, 2, 7], digits, steps=2, measure="max", norm=norm)
    top = topk(model, digits, ["conv2"], 1, norm)["conv2"]
    assert res.natural_values == [top[c][0].value for c in (0, 1, 2, 7)]
    assert res.natural_indices == [top[c][0].index for c in (0, 1, 2, 7)]
    # mean and neuron measures: brute force over every image
    with torch.no_grad():
        x = norm.apply(digits.images)
        a = model.conv2(model.pool(F.relu(model.conv1(x))))                      # (N, 8, 14, 14)
    for measure, per_image in (("mean", a.mean((2, 3))), ("neuron", a[:, :, 7, 7])):
        r = visualize(model, "conv2", [0, 5], digits, steps=2, measure=measure, norm=norm)
        np.testing.assert_allclose(r.natural_values, per_image[:, [0, 5]].max(0).values.double().numpy(), rtol=1e-6)
        assert r.natural_indices == per_image[:, [0, 5]].argmax(0).tolist()
        # side by side: every measure's comparison, the same brute-force best natural values
        for m, want in (("mean", a.mean((2, 3))), ("max", a.amax((2, 3))), ("neuron", a[:, :, 7, 7])):
            c = r.comparisons[m]
            best = want[:, [0, 5]].max(0).values.double().numpy()
            np.testing.assert_allclose(c["natural_values"], best, rtol=1e-6)
            assert c["natural_nonpositive"] == [ch for ch, b in zip([0, 5], best) if b <= 0]
            assert c["beats"] == sum(v > n for v, n in zip(c["values"], c["natural_values"]))
        assert r.comparisons[measure]["values"] == r.values
        assert f"by the {'mean of each' if measure == 'mean' else 'centre unit'}" in r.headline()
    assert hook_count(model) == 0


def test_a_bare_model_needs_its_normalization_a_run_carries_it(small_run, digits):
    from convscope.inspect import projections

    model = small_run.model
    for call in (lambda: visualize(model, "conv3", [0], digits, steps=1),
                 lambda: topk(model, digits, ["conv3"], 1),
                 lambda: projections(model, digits, "conv3", [0], k=1)):
        with pytest.raises(ConfigError, match=r"norm: required .* pass norm=run.normalization .* or pass the run"):
            call()
    by_run = topk(small_run, digits, ["conv3"], 2)["conv3"]
    assert by_run == topk(model, digits, ["conv3"], 2, small_run.normalization)["conv3"]
    assert by_run != topk(model, digits, ["conv3"], 2, Normalization.identity())["conv3"]
    v = visualize(small_run, "conv3", [0, 1], digits, steps=2)
    assert v.natural_values == [by_run[c][0].value for c in (0, 1)]     # max by default: topk's measure


@pytest.mark.parametrize("c_in", [1, 3, 5])
def test_any_channel_count_and_class_logits(c_in):
    model = _model(c_in)
    res = visualize(model, None, [0, 3], input_shape=(c_in, 28, 28), steps=25, param="fourier", norm=IDENTITY)
    assert res.images.shape == (2, c_in, 28, 28)
    with torch.no_grad():
        logits = model(res.inputs)
    np.testing.assert_allclose(res.values, logits[[0, 1], [0, 3]].numpy(), rtol=1e-5, atol=1e-6)
    assert (res.history[-1] > res.history[0]).all()


def test_objectives_compose_and_describe_themselves():
    torch.manual_seed(0)
    acts = {"l": torch.randn(3, 4, 5, 5), O.OUTPUT: torch.randn(3, 6), O.IMAGE: torch.rand(3, 1, 5, 5)}
    ch = O.channel("l", [0, 1, 2])
    ne = O.neuron("l", 2, 1, 3)
    obj = ch + 0.5 * ne - O.class_logit(4) + 0.1 * O.total_variation()   # TV is minus a penalty
    img = acts[O.IMAGE]
    tv = (img[:, :, 1:] - img[:, :, :-1]).abs().flatten(1).mean(1) + \
        (img[..., 1:] - img[..., :-1]).abs().flatten(1).mean(1)
    want = (acts["l"][[0, 1, 2], [0, 1, 2]].mean((1, 2)) + 0.5 * acts["l"][:, 2, 1, 3] - acts[O.OUTPUT][:, 4]
            - 0.1 * tv)
    torch.testing.assert_close(obj(acts), want)
    text = str(obj)
    for part in ("channel(l, [0, 1, 2], mean)", "neuron(l, 2, (1, 3))", "class_logit(4)", "total_variation"):
        assert part in text
    assert set(obj.layers) == {"l", O.OUTPUT, O.IMAGE}
    same = {"l": acts["l"][[0, 0, 0]]}
    assert torch.allclose(O.diversity("l")(same), torch.full((3,), -1.0))   # identical images: similarity 1
    with pytest.raises(ConfigError, match="one per image"):
        O.channel("l", [0, 1])(acts)


def test_diversity_objective_spreads_a_batch():
    model = _model()
    obj = O.channel("conv2", 1) + 2.0 * O.diversity("conv2")
    res = visualize(model, "conv2", [1, 1, 1], input_shape=(1, 28, 28), steps=30, objective=obj, seed=3, norm=IDENTITY)
    assert "diversity(conv2)" in res.objective
    assert res.history[-1].mean() > res.history[0].mean()


def test_params_stay_in_range_and_transforms_keep_size():
    g = torch.Generator().manual_seed(0)
    for p in (PixelParam((2, 3, 9, 11), g), FourierParam((2, 3, 9, 11), g), FourierParam((2, 1, 28, 28), g)):
        with torch.no_grad():
            p.params[0].mul_(1000)                 # extreme parameters still give valid pixels
        img = p()
        assert img.min() >= 0 and img.max() <= 1 and img.shape[2:] == p().shape[2:]
    x = torch.rand(2, 1, 28, 28)
    out = T.apply(T.standard((28, 28)), x, torch.Generator().manual_seed(1), (28, 28))
    assert out.shape == x.shape
    assert T.fit(torch.rand(1, 1, 20, 20), (28, 28)).shape == (1, 1, 28, 28)


def test_errors_leave_no_hooks():
    model = _model()
    with pytest.raises(ConfigError, match="conv2 has 8 channels"):
        visualize(model, "conv2", [8], input_shape=(1, 28, 28), steps=2, norm=IDENTITY)
    with pytest.raises(ConfigError, match="unknown layer"):
        visualize(model, "nope", [0], input_shape=(1, 28, 28), steps=2, norm=IDENTITY)

    def boom(a):
        raise RuntimeError("objective failed")
    with pytest.raises(RuntimeError, match="objective failed"):
        visualize(model, "conv2", [0], input_shape=(1, 28, 28), steps=2, objective=O.Objective(boom, "boom", ["conv2"]),
                  norm=IDENTITY)
    assert hook_count(model) == 0


def test_cli_visualize_writes_grid_and_json(small_run, tmp_path):
    r = subprocess.run([sys.executable, "-m", "convscope", "visualize", str(small_run.path), "--layer", "conv3",
                        "--channels", "0-2", "--steps", "8", "--limit", "200", "--out", str(tmp_path)],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "visualize-conv3.json").read_text())
    assert data["channels"] == [0, 1, 2] and len(data["natural_values"]) == 3
    assert (tmp_path / "visualize-conv3.png").stat().st_size > 1000
    r = subprocess.run([sys.executable, "-m", "convscope", "visualize", str(small_run.path), "--class", "3",
                        "--steps", "4", "--no-natural", "--out", str(tmp_path)], check=False, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "visualize-logits.json").read_text())["channels"] == [3]
