"""Inspection tools against brute force, hand counts, published figures and the gradient."""

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.data import load
from convscope.data.dataset import ImageDataset
from convscope.errors import ConfigError
from convscope.inspect import (activation_sparsity, capture, edge_experiment, empirical_receptive_field,
                               hook_count, list_layers, receptive_fields, topk)
from convscope.models import create_model
from convscope.data.normalize import Normalization

IDENTITY = Normalization((0.0,), (1.0,))

IDENTITY = Normalization.identity()  # these models take raw [0, 1] pixels, said explicitly


class Branchy(nn.Module):
    """Not a Sequential: attributes, a functional op and a residual addition."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.act(self.stem(x))
        h = h + self.body(h)
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


def test_hooks_are_removed_on_success_and_on_failure():
    model = Branchy()
    x = torch.randn(2, 1, 8, 8)
    with capture(model, ["stem", "body.0"]) as acts:
        model(x)
        assert hook_count(model) == 2 + 2    # one per layer, and the model's own pair that counts calls per forward
    assert hook_count(model) == 0 and set(acts) == {"stem", "body.0"}
    with pytest.raises(RuntimeError), capture(model, ["stem", "head"]):
        model(torch.randn(2, 3, 8, 8))  # wrong channels: the forward raises
    assert hook_count(model) == 0
    with pytest.raises(ConfigError, match="unknown layer.*'nope'.*valid names: stem, act, body"), \
            capture(model, ["nope"]):
        pass
    assert hook_count(model) == 0


def test_capture_observes_without_modifying():
    torch.manual_seed(0)
    model = create_model("fast", width=4).eval()  # in-place ReLUs follow the BN outputs we capture
    x = torch.randn(3, 1, 28, 28)
    plain = model(x)
    with capture(model, ["bn1", "relu1"]) as acts:
        hooked = model(x)
    assert torch.equal(plain, hooked)
    assert (acts["bn1"] < 0).any() and torch.equal(acts["relu1"], acts["bn1"].clamp_min(0))  # pre-ReLU kept intact


def test_list_layers_on_any_module():
    rows = {r.name: r for r in list_layers(Branchy(), (1, 8, 8))}
    assert rows["stem"].output_shape == (4, 8, 8) and rows["head"].output_shape == (3,)
    assert rows["body.0"].parameters == 4 * 4 * 9 + 4


def test_sparsity_of_a_hand_built_relu_layer():
    # one conv with weight 1 and bias -t on constant images: the output is relu(sum - t), known exactly
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.copy_(torch.tensor([-100.0, -300.0]))
    model = nn.Sequential(conv, nn.ReLU())
    pixels = torch.tensor([0, 50, 150, 250], dtype=torch.uint8)
    images = pixels.repeat_interleave(3)[:, None, None, None].expand(12, 1, 2, 2).contiguous()
    ds = ImageDataset(images, torch.zeros(12, dtype=torch.int64), ("x",), "hand", "test", "test")
    raw = Normalization((0.0,), (1 / 255,))  # model input = raw pixel values 0..255
    (res,) = activation_sparsity(model, ds, raw, threshold=0.0, batch_size=5)
    # channel 0: zero where pixel <= 100 (0, 50: 6 of 12 images); channel 1: zero everywhere (pixel <= 300)
    assert res.channel_zero_fraction == [0.5, 1.0]
    assert res.zero_fraction == pytest.approx((6 * 4 + 12 * 4) / (12 * 8))
    assert res.dead_channels == 1 and res.dead_units == 4 and res.units == 8
    assert sum(res.hist_counts) == 12 * 8


def test_edge_experiment_equals_direct_numpy():
    images = load("digits", "test").images[:300]
    res = edge_experiment(images, "sobel-x")
    x = images[:, 0].numpy().astype(np.int64)
    k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += k[i, j] * padded[:, i:i + 28, j:j + 28]   # cross-correlation, as conv2d
    np.testing.assert_array_equal(res.nonzero_input, (x != 0).sum((1, 2)))
    np.testing.assert_array_equal(res.nonzero_before, (out != 0).sum((1, 2)))
    np.testing.assert_array_equal(res.nonzero_after, (out > 0).sum((1, 2)))
    with pytest.raises(ConfigError, match="unknown 'canny'"):
        edge_experiment(images, "canny")


def _vgg16(c=1):
    layers, cin = [], 1
    for n in (2, 2, 3, 3, 3):  # convolutions per VGG block
        for _ in range(n):
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()]
            cin = c
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def _alexnet_v2(c=1):
    return nn.Sequential(nn.Conv2d(1, c, 11, 4), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(c, c, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(3, 2))


def test_receptive_fields_match_published_values():
    # Araujo, Norris & Sim (Distill 2019), Table 1: VGG 16 -> 212 at pool5; AlexNet v2 -> 195 at pool5
    vgg = receptive_fields(_vgg16(), (1, 224, 224))
    last = list(vgg)[-1]
    assert vgg[last].size == (212, 212) and vgg[last].jump == (32, 32)
    alex = receptive_fields(_alexnet_v2(), (1, 224, 224))
    assert alex[list(alex)[-1]].size == (195, 195) and alex[list(alex)[-1]].jump == (32, 32)


@pytest.mark.parametrize("name", ["lenet5", "fast", "pytorch-example", "keras-example"])
def test_receptive_fields_equal_the_gradient_field(name):
    model = create_model(name)
    fields = receptive_fields(model, (1, 28, 28))
    for layer, f in fields.items():
        if f.is_global or not isinstance(dict(model.named_modules())[layer], (nn.Conv2d, nn.MaxPool2d)):
            continue
        for unit in ((0, 0), (f.output_hw[0] // 2, f.output_hw[1] // 2), (f.output_hw[0] - 1, f.output_hw[1] - 1)):
            t, l, b, r = f.box(*unit)
            want = (max(t, 0), max(l, 0), min(b, 27), min(r, 27))
            assert empirical_receptive_field(model, layer, (1, 28, 28), unit) == want, (layer, unit)


def test_dilation_and_rectangular_kernels():
    model = nn.Sequential(nn.Conv2d(1, 2, (3, 5), dilation=(2, 1), padding=(2, 0)), nn.ReLU(),
                          nn.Conv2d(2, 2, 3, stride=2, dilation=3))
    f = receptive_fields(model, (1, 32, 32))["2"]
    assert f.size == (5 + 2 * 3 * 1, 5 + 2 * 3 * 1) and f.jump == (2, 2) and f.start == (-2, 0)
    t, l, b, r = f.box(3, 4)
    assert empirical_receptive_field(model, "2", (1, 32, 32), (3, 4)) == (max(t, 0), max(l, 0), b, r)


def test_non_chain_models_are_refused_by_the_formula():
    with pytest.raises(ConfigError, match="empirical_receptive_field"):
        receptive_fields(create_model("resnet-small"), (3, 32, 32))
    assert empirical_receptive_field(Branchy(), "body.0", (1, 9, 9)) == (2, 2, 6, 6)


def test_topk_equals_brute_force():
    torch.manual_seed(0)
    model = create_model("fast", width=4).eval()
    ds = load("digits", "test").subset(torch.arange(300))
    norm = Normalization((0.13,), (0.31,))
    res = topk(model, ds, ["relu1", "relu3", "fc"], k=5, norm=norm, batch_size=64)
    with torch.no_grad(), capture(model, ["relu1", "relu3", "fc"]) as acts:
        model(norm.apply(ds.images))
    for layer in ("relu1", "relu3", "fc"):
        a = acts[layer]
        flat = a.reshape(a.shape[0], a.shape[1], -1).double()
        for c in range(a.shape[1]):
            best = []
            for i in range(len(ds)):
                v, p = flat[i, c].max(0)
                best.append((-float(v), i, int(p)))
            best.sort()  # value descending, then index ascending
            width = a.shape[3] if a.ndim == 4 else 1
            want = [(i, p // width, p % width, -v) for v, i, p in best[:5]]
            got = [(r.index, r.y, r.x, r.value) for r in res[layer][c]]
            assert got == want, (layer, c)


def test_topk_ties_are_deterministic():
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    images = torch.full((10, 1, 3, 3), 7, dtype=torch.uint8)  # every image, every position ties
    ds = ImageDataset(images, torch.zeros(10, dtype=torch.int64), ("x",), "ties", "test", "test")
    res = topk(model, ds, ["0"], k=4, batch_size=3, norm=IDENTITY)
    assert [(r.index, r.y, r.x) for r in res["0"][0]] == [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]



def test_commands_on_a_run(small_run, tmp_path, cli):
    run = str(small_run.path)
    r = cli("layers", run)
    assert r.returncode == 0 and "Flatten" in r.stdout and "32x3x3" in r.stdout  # small_run: width 8
    r = cli("sparsity", run, "--limit", "500")
    assert r.returncode == 0, r.stderr
    data = json.loads((small_run.path / "inspect" / "sparsity-digits-test.json").read_text())
    assert [layer["name"] for layer in data["layers"]] == ["relu1", "relu2", "relu3"] and data["images"] == 500
    r = cli("rf", run)
    assert r.returncode == 0 and r.stdout.count("gradient agrees") == 6
    r = cli("topk", run, "--layer", "relu3", "--k", "4", "--limit", "300")
    assert r.returncode == 0, r.stderr
    top = json.loads((small_run.path / "inspect" / "topk-relu3.json").read_text())
    assert len(top["channels"]) == 32 and all(len(c) == 4 for c in top["channels"])
    assert (small_run.path / "inspect" / "topk-relu3-patches.png").stat().st_size > 5000
    for cmd in (["filters", run, "--layer", "conv1,conv2"], ["filters", run, "--layer", "Conv2d"],
                ["features", run, "--index", "2"]):
        r = cli(*cmd)
        assert r.returncode == 0, r.stderr
    r = cli("topk", run, "--layer", "nope")
    assert r.returncode == 2 and "valid names: conv1, bn1, relu1" in r.stderr
    r = cli("topk", run, "--layer", "4")
    assert r.returncode == 2 and "named by role" in r.stderr
    r = cli("edges", "--limit", "200", "--out", str(tmp_path))
    assert r.returncode == 0 and "ReLU zeroes" in r.stdout
    assert json.loads((tmp_path / "edges-sobel-x-digits.json").read_text())["images"] == 200


def test_commands_on_a_user_model_file(tmp_path, cli):
    from safetensors.torch import save_file

    (tmp_path / "mynet.py").write_text(
        "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.c1 = nn.Conv2d(1, 3, 3)\n        self.c2 = nn.Conv2d(3, 5, 3, stride=2)\n"
        "        self.fc = nn.Linear(5, 10)\n"
        "    def forward(self, x):\n"
        "        x = F.relu(self.c1(x))\n        x = F.relu(self.c2(x))\n"
        "        return self.fc(x.mean((2, 3)))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import mynet
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    save_file(mynet.Net().state_dict(), tmp_path / "w.safetensors")
    base = ["--model-file", f"{tmp_path / 'mynet.py'}:Net", "--weights", str(tmp_path / "w.safetensors"),
            "--out", str(tmp_path / "out")]
    r = cli("topk", *base, "--layer", "c2", "--k", "3", "--limit", "100")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "out" / "topk-c2.json").read_text())["channels"]) == 5
    r = cli("rf", *base)   # F.relu between modules: no chain formula, the gradient's field instead
    assert r.returncode == 0 and "empirical fields" in r.stdout
    assert "c2" in r.stdout and "size 5x5" in r.stdout
    r = cli("sparsity", *base, "--limit", "100", "--layers", "c1,c2")
    assert r.returncode == 0 and "c2" in r.stdout


def test_track_sparsity_adds_a_per_epoch_column(tmp_path):
    import convscope

    run = convscope.train({"model": "fast", "model_args": {"width": 4}, "train_subset": 512, "epochs": 2,
                           "batch_size": 128, "threads": 2, "track_sparsity": True}, out=tmp_path / "r", progress=False)
    epochs = [m for m in run.metrics if m["kind"] == "epoch"]
    assert [sorted(m["sparsity"]) for m in epochs] == [["relu1", "relu2", "relu3"]] * 2
    probe = load("digits", "test").subset(torch.arange(1000))
    final = {r.name: r.zero_fraction for r in activation_sparsity(run.model, probe, run.normalization)}
    assert epochs[-1]["sparsity"] == {k: round(v, 6) for k, v in final.items()}
