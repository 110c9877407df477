"""The third attack's findings in commands and the Python API (issue 28, half b): writer flags that replaced a
run's own files, a layer called more than once per forward, tracebacks, unbounded API counts, the dtype rule and
minor wording. Each test failed before its fix."""

from __future__ import annotations

import json

import pytest

from convscope.errors import ConfigError

from .conftest import refused

# -- F3: every writer flag goes through the one guard (_check.output_file / replaceable) ---------------------------

# (command line with {T} for the target, the flag the refusal names); the target is a run's own curve.png
WRITERS = [
    (["matrix", "--input", "4x4", "--kernel", "3x3", "--png", "{T}"], "--png"),
    (["matrix", "--input", "4x4", "--kernel", "3x3", "--svd", "--svd-png", "{T}"], "--svd-png"),
    (["data", "show", "digits", "--out", "{T}"], "--out"),
    (["lr-find", "--epochs", "1", "--steps", "5", "--out", "{T}"], "--out"),
    (["report", "{RUN}", "-o", "{T}"], "-o"),
]


@pytest.mark.parametrize("argv,flag", WRITERS, ids=[" ".join(a[:2]) + " " + f for a, f in WRITERS])
def test_no_writer_flag_replaces_a_runs_own_file(small_run, tmp_path, cli, argv, flag):
    # was: `matrix --png RUN/curve.png` rc 0, "wrote .../curve.png": the run's training curve replaced
    target = small_run.path / "curve.png"
    before = target.read_bytes()
    args = [str(target) if a == "{T}" else str(small_run.path) if a == "{RUN}" else a for a in argv]
    refused(cli(*args, cwd=tmp_path), f"{flag}: {target} ")
    assert target.read_bytes() == before


def test_lr_find_refuses_a_json_beside_its_plot_that_is_not_an_earlier_sweep(tmp_path, cli):
    notes = tmp_path / "plot.json"
    notes.write_text('{"mine": 1}')
    refused(cli("lr-find", "--epochs", "1", "--out", tmp_path / "plot.png", cwd=tmp_path),
            f"--out: {notes} exists and is not the JSON of an earlier lr-find sweep")
    assert notes.read_text() == '{"mine": 1}' and not (tmp_path / "plot.png").exists()


def test_a_writer_replaces_its_own_earlier_picture_and_marks_it(tmp_path, cli):
    png = tmp_path / "m.png"
    for _ in range(2):      # the second run replaces the first's picture: it carries the command's mark
        r = cli("matrix", "--input", "4x4", "--kernel", "3x3", "--png", png, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert b"tEXtconvscope-output\0matrix" in png.read_bytes()[:4096]
    # another command's picture is not matrix's to replace (nor the reverse)
    refused(cli("data", "show", "digits", "--out", png, cwd=tmp_path), f"--out: {png} exists and is not a picture "
            "an earlier `convscope data show` wrote")


def test_the_library_writer_checks_the_path_too(small_run):
    import numpy as np

    from convscope.matrix.display import spectrum_png

    target = small_run.path / "curve.png"
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="exists and is not a picture an earlier `convscope matrix` wrote"):
        spectrum_png(np.array([2.0, 1.0]), target, "t", output="matrix")
    assert target.read_bytes() == before


def test_bench_out_refuses_a_file_that_is_not_earlier_results(tmp_path, cli):
    notes = tmp_path / "notes.json"
    notes.write_text("mine")
    r = cli("bench", "--smoke", "--out", notes, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"--out: {notes} exists and is not the results of an earlier benchmark" in r.stderr
    assert notes.read_text() == "mine"


# -- F4: a module called more than once per forward ----------------------------------------------------------------

def _shared_relu_model():
    import torch
    from torch import nn

    class SharedReLU(nn.Module):      # one self.relu after both convs: a very common pattern
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(4 * 24 * 24, 10)

        def forward(self, x):
            x = self.relu(self.conv1(x))      # (B, 4, 26, 26)
            x = self.relu(self.conv2(x))      # (B, 4, 24, 24)
            return self.fc(x.flatten(1))

    torch.manual_seed(0)
    return SharedReLU().eval()


def _digits(n: int = 12):
    import torch

    from convscope.data.dataset import ImageDataset
    from convscope.data.normalize import Normalization

    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    ds = ImageDataset(images, torch.arange(n) % 10, tuple(map(str, range(10))), "rand", "test", "test")
    return ds, Normalization((0.5,), (0.25,))


def test_topk_and_sparsity_refuse_a_layer_that_runs_twice_per_forward_naming_it():
    # was: topk ranked the per-image max over both calls, sparsity counted 2 calls' activations as one 1x28x28
    from convscope.inspect import activation_sparsity, topk

    model = _shared_relu_model()
    ds, norm = _digits()
    for call in (lambda: topk(model, ds, ["relu"], k=3, norm=norm),
                 lambda: activation_sparsity(model, ds, norm, ["relu"])):
        with pytest.raises(ConfigError, match="layer 'relu' runs more than once in one forward pass .*self.relu1"):
            call()


def test_topk_of_a_layer_that_runs_once_in_such_a_model_matches_pytorch():
    import torch

    from convscope.inspect import topk

    model = _shared_relu_model()
    ds, norm = _digits()
    res = topk(model, ds, ["conv1"], k=3, norm=norm)
    with torch.no_grad():
        out = model.conv1(norm.apply(ds.images))          # (N, 4, 26, 26): the reference, by hand
    best = out.flatten(2).amax(2)                           # (N, 4): each image's peak per channel
    for c in range(4):
        want = torch.argsort(best[:, c], descending=True)[:3].tolist()
        assert [r.index for r in res["conv1"][c]] == want
        for r in res["conv1"][c]:
            assert r.value == pytest.approx(float(out[r.index, c, r.y, r.x]), rel=1e-5)
            assert r.value == pytest.approx(float(best[r.index, c]), rel=1e-5)
    d = res.to_dict()      # F12: every result type has to_dict(), plain JSON
    assert json.loads(res.to_json()) == d and d["conv1"][0][0]["index"] == res["conv1"][0][0].index


def test_layers_lists_a_reused_module_with_its_calls():
    from convscope.inspect import list_layers

    rows = {r.name: r for r in list_layers(_shared_relu_model(), (1, 28, 28))}
    assert rows["relu"].calls == 2 and rows["relu"].output_shape == (4, 26, 26)   # the first call's
    assert rows["conv2"].calls == 1 and rows["conv2"].output_shape == (4, 24, 24)
    assert "first of 2 calls per forward" in repr(rows and list_layers(_shared_relu_model(), (1, 28, 28)))


# -- F6: tracebacks ------------------------------------------------------------------------------------------------

def test_tensorboard_refuses_a_metrics_record_holding_a_list_naming_the_field(small_run, tmp_path):
    import shutil

    from convscope.runs.rundir import RunError
    from convscope.training.tensorboard import convert

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run, ignore=shutil.ignore_patterns("tensorboard"))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 3, "loss": [1, 2]}\n')
    # was: TypeError: must be real number, not list (training/tensorboard.py)
    with pytest.raises(RunError, match=r"metrics.jsonl: record \d+ \(step\) has 'loss' = \[1, 2\]; expected a number"):
        convert(run, force=True)
    assert not (run / "tensorboard").exists()


def test_features_of_a_layer_without_feature_maps_is_a_usage_error(small_run, tmp_path, cli):
    # was: matplotlib "ValueError: Number of rows must be a positive integer, not 0" (inspect/pictures.py)
    from convscope.inspect import list_layers

    flat = next(r.name for r in list_layers(small_run.model, small_run.input_shape) if len(r.output_shape) == 1)
    refused(cli("features", small_run.path, "--layers", flat, "--out", tmp_path / "o"),
            f"--layers {flat}: no feature maps there")


@pytest.mark.parametrize("index", [10**9, -13, 12])
def test_subset_refuses_an_index_outside_the_dataset(index):
    from convscope.errors import DataError

    ds, _ = _digits(12)
    with pytest.raises(DataError, match=f"indices: {index} is outside rand .*0..11"):
        ds.subset([0, index])
    assert ds.subset([-12, 11]).labels.tolist() == [ds.labels[0].item(), ds.labels[11].item()]


# -- F8: unbounded counts of the Python API ------------------------------------------------------------------------

def test_sparsity_bins_and_edge_keep_are_bounded():
    import numpy as np

    from convscope.inspect import activation_sparsity
    from convscope.inspect.edges import edge_experiment

    ds, norm = _digits()
    with pytest.raises(ConfigError, match=r"^bins: must be \[1, 10000\], got 1000000000"):
        activation_sparsity(_shared_relu_model(), ds, norm, ["conv1"], bins=10**9)
    for keep in (-1, 10**6, 2.5):
        with pytest.raises(ConfigError, match="^keep: "):
            edge_experiment(np.zeros((2, 8, 8), np.uint8), keep=keep)
    assert len(edge_experiment(np.zeros((3, 8, 8), np.uint8), keep=2).outputs) == 2


def test_train_epochs_from_the_api_are_bounded():
    import convscope

    with pytest.raises(ConfigError, match="epochs must lie in .1, 100000.*got 1180591620717411303424"):
        convscope.train({"epochs": 2**70}, progress=False)


# -- F11: the dtype a model computes in; a complex output ----------------------------------------------------------

def test_a_float32_model_with_a_small_fp16_parameter_first_gets_float32_input():
    import torch
    from torch import nn

    from convscope.models.forward import model_dtype
    from convscope.models.probe import zeros_forward

    class Net(nn.Module):          # the attack's mf/uintparam.py
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Parameter(torch.zeros(3, dtype=torch.float16))   # registered before fc
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)) + self.q.float().sum()

    m = Net()
    assert model_dtype(m) == torch.float32
    out = zeros_forward(m, (1, 28, 28))          # was: "the model cannot take an image of shape (1, 28, 28)"
    torch.testing.assert_close(out, m.fc.bias.detach()[None].expand(1, 10))
    assert model_dtype(nn.Linear(4, 4).half()) == torch.float16


def test_a_model_file_with_complex_output_is_refused_at_load(tmp_path):
    from convscope.inspect.target import from_model_file

    f = tmp_path / "complexout.py"
    f.write_text("import torch, torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
                 "        super().__init__(); self.fc = nn.Linear(784, 10)\n"
                 "    def forward(self, x):\n        y = self.fc(x.flatten(1)); return torch.complex(y, y)\n")
    for scores in (True, False):     # also for topk / layers, which read no scores
        with pytest.raises(ConfigError, match="complex"):
            from_model_file(f"{f}:Net", None, (1, 28, 28), "digits", tmp_path / "o", scores=scores)


# -- F12: minor wording, silently ignored flags --------------------------------------------------------------------

def test_explain_layer_given_with_methods_that_use_none_is_refused():
    from convscope.configs import ExplainConfig

    # was: `explain r1 img --method saliency --layer nope` rc 0, the flag ignored
    with pytest.raises(ConfigError, match=r"^layer: only gradcam and guided_gradcam run at a layer.*\(saliency\)"):
        ExplainConfig(method=("saliency",), layer="nope")
    assert ExplainConfig(method=("saliency", "gradcam"), layer="conv1").layer == "conv1"
    assert ExplainConfig(layer="conv1").layer == "conv1"       # all methods: gradcam among them


def test_explain_cli_names_the_layer_flag(small_run, tmp_path, cli):
    from PIL import Image

    img = tmp_path / "one.png"
    Image.new("L", (28, 28)).save(img)
    refused(cli("explain", small_run.path, img, "--method", "saliency", "--layer", "nope", "--out", tmp_path / "o"),
            "--layer: only gradcam and guided_gradcam run at a layer")


def test_a_bad_model_arg_from_a_config_file_names_the_file(tmp_path, cli):
    cfg = tmp_path / "negwidth.yaml"
    cfg.write_text("model: fast2\nmodel_args:\n  width: -5\nepochs: 1\ntrain_subset: 64\n")
    r = cli("train", "--config", cfg, "--out", tmp_path / "run", cwd=tmp_path)
    refused(r, f"{cfg}: model_args: fast2: width must be a positive whole number")
    r = cli("train", "--model", "fast2", "--model-arg", "width=-5", "--epochs", "1", "--out", tmp_path / "run2",
            cwd=tmp_path)
    refused(r, "width must be a positive whole number")
    assert f"{cfg}" not in r.stderr


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    from convscope.training.configfile import read_config_file

    for suffix, text in ((".json", '{"epochs": 3}'), (".yaml", "epochs: 3\n"), (".toml", "epochs = 3\n")):
        f = tmp_path / f"bom{suffix}"
        f.write_bytes(b"\xef\xbb\xbf" + text.encode())      # was (JSON): "decode using utf-8-sig"
        assert read_config_file(f) == {"epochs": 3}
