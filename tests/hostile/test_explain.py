"""Hostile inputs (issue 16): ``attribute`` / ``audit_method`` and ``convscope explain`` at their argument boundary:
targets, Grad-CAM layers, inputs, steps, --method, the IMAGE positional and hostile image files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscope.cli import main
from convscope.errors import ConfigError, DataError
from convscope.inspect import attribute, audit_method, deletion_insertion, hook_count

from .conftest import outcome, png_header_only


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3)).eval()


def _x(n=4):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))


# -- target ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [3, -1, 10 ** 23, 2.5, "1", True, [0, 1], [0, 1, 2, 5],
                                    [[0, 1, 2, 1]], torch.tensor([1.0]), torch.tensor([[0, 1], [2, 1]]),
                                    np.array([0.0, 1.0, 2.0, 1.0])])
def test_target_must_be_class_indices_in_range_one_or_one_per_image(target):
    # before: 3 -> IndexError, -1 -> Captum error, [0, 1] -> AssertionError, '1' -> TypeError, 2.5 -> silently 2
    model = _net()
    err = outcome(lambda: attribute(model, _x(), "saliency", target=target))
    assert isinstance(err, ConfigError) and str(err).startswith("target:"), err
    assert "0..2" in str(err)
    assert hook_count(model) == 0


def test_valid_targets_of_every_form_give_the_same_maps():
    model, x = _net(), _x()
    per_image = attribute(model, x, "saliency", target=[2, 2, 2, 2])
    for t in (2, np.int64(2), torch.tensor(2), torch.tensor([2]), [2], np.array([2, 2, 2, 2]), (2, 2, 2, 2)):
        np.testing.assert_array_equal(attribute(model, x, "saliency", target=t), per_image)
    mixed = attribute(model, x, "saliency", target=torch.tensor([0, 1, 2, 0]))
    np.testing.assert_allclose(mixed[1], attribute(model, x[1:2], "saliency", target=1)[0], rtol=1e-4, atol=1e-7)


# -- Grad-CAM layer ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gradcam", "guided_gradcam"])
@pytest.mark.parametrize("layer", ["5", "6", "Linear", "Flatten"])
def test_gradcam_refuses_a_layer_without_spatial_output(method, layer):
    # before: "Input and output must have the same number of spatial dimensions" / IndexError
    model = _net()
    err = outcome(lambda: attribute(model, _x(), method, layer=layer))
    assert isinstance(err, ConfigError) and f"layer {layer!r}" in str(err)
    assert "not a feature map" in str(err) and "0, 1, 2, 3, 4" in str(err)   # the spatial layers, named
    assert hook_count(model) == 0


def test_gradcam_refuses_a_type_matching_several_layers_and_takes_one_matching_one():
    # before: 'ReLU' silently meant the first ReLU
    model, x = _net(), _x()
    with pytest.raises(ConfigError, match=r"layer 'ReLU': matches 2 layers \(1, 4\)"):
        attribute(model, x, "gradcam", layer="ReLU")
    np.testing.assert_array_equal(attribute(model, x, "gradcam", layer="MaxPool2d"),
                                  attribute(model, x, "gradcam", layer="2"))
    with pytest.raises(ConfigError, match="layer: expected a layer name"):
        attribute(model, x, "gradcam", layer=3)
    with pytest.raises(ConfigError, match="layer ' ': unknown layer"):
        attribute(model, x, "gradcam", layer=" ")
    assert hook_count(model) == 0


# -- inputs, model, method, steps ------------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda x: (x * 255).clamp(0, 255).to(torch.uint8), "dtype torch.uint8"),
    (lambda x: x.tolist(), "got list"),
    (lambda x: x.numpy(), "got ndarray"),
    (lambda x: x[:0], "empty"),
    (lambda x: x * float("nan"), "NaN"),
    (lambda x: x.clone().index_fill_(0, torch.tensor([2]), float("inf")), "infinite"),
    (lambda x: x[0], "shape"),
])
def test_inputs_must_be_a_finite_float_batch(make, words):
    # before: uint8/list/numpy -> tracebacks, empty -> traceback, NaN -> silently NaN maps
    model = _net()
    bad = make(_x())
    for call in (lambda: attribute(model, bad, "saliency"), lambda: audit_method(model, bad, "saliency", steps=2)):
        err = outcome(call)
        assert isinstance(err, ConfigError) and str(err).startswith("inputs:") and words in str(err), err


@pytest.mark.parametrize("model", [None, np.zeros(3), "model"])
def test_model_must_be_a_module(model):
    for call in (lambda: attribute(model, _x(), "saliency"), lambda: audit_method(model, _x(), "saliency")):
        err = outcome(call)
        assert isinstance(err, ConfigError) and str(err).startswith("model:")


@pytest.mark.parametrize("method", [None, "bogus", 3, ["saliency"]])
def test_method_must_be_known_or_callable(method):
    for call in (lambda: attribute(_net(), _x(), method), lambda: audit_method(_net(), _x(), method)):
        err = outcome(call)
        assert isinstance(err, ConfigError) and str(err).startswith("method:")


@pytest.mark.parametrize("steps", [0, -1, 2.5, True, "3"])
def test_audit_steps_must_be_a_positive_int(steps):
    # before: steps=0 -> ZeroDivisionError after the attribution had run
    model, x = _net(), _x()
    err = outcome(lambda: audit_method(model, x, "saliency", steps=steps))
    assert isinstance(err, ConfigError) and str(err).startswith("steps:")
    maps = attribute(model, x, "saliency")
    err = outcome(lambda: deletion_insertion(model, x, maps, steps=steps))
    assert isinstance(err, ConfigError) and str(err).startswith("steps:")
    with pytest.raises(ConfigError, match="maps: expected one"):
        deletion_insertion(model, x, maps[:2])


def test_audit_with_a_bad_target_fails_before_any_work():
    with pytest.raises(ConfigError, match="target: 7 is not a class"):
        audit_method(_net(), _x(), "saliency", target=7)


# -- the command line --------------------------------------------------------------------------------------------

def _explain(capsys, *args) -> tuple[int, str]:
    try:
        rc = main(["explain", *map(str, args)])
    except SystemExit as e:       # argparse's usage errors
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("flags, words", [
    (["--method", "saliency", "--target", "10"], ["--target", "0..9"]),
    (["--method", "saliency", "--target", "99999999999999999999999"], ["--target", "0..9"]),
    (["--method", "saliency", "--target", "-1"], ["--target"]),
    (["--method", ","], ["--method", "saliency"]),
    (["--method", " , "], ["--method", "saliency"]),
    (["--method", "gradcam", "--layer", "fc"], ["--layer 'fc'", "not a feature map", "relu3"]),
    (["--method", "gradcam", "--layer", "flatten"], ["--layer 'flatten'", "not a feature map"]),
    (["--method", "guided_gradcam", "--layer", "fc"], ["--layer 'fc'", "not a feature map"]),
    (["--method", "gradcam", "--layer", "ReLU"], ["--layer 'ReLU'", "relu1, relu2, relu3"]),
    (["--audit", "--limit", "2", "--method", "saliency", "--target", "10"], ["--target", "0..9"]),
    (["--audit", "--limit", "2", "--method", "gradcam", "--layer", "fc"], ["--layer 'fc'"]),
    (["--audit", "--limit", "2", "--method", ","], ["--method"]),
])
def test_cli_refuses_bad_flags_naming_them(small_run, tmp_path, capsys, flags, words):
    rc, err = _explain(capsys, small_run.path, "--out", tmp_path, *flags)
    assert rc == 2 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert not list(tmp_path.glob("explain-*")) and not (tmp_path / "audit.json").exists()


def _stroke(path) -> None:
    """A 28x28 PNG with one white vertical stroke on black: ink that the one image path takes (a blank image is
    refused with "no ink found", as by predict)."""
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 13:15] = 255
    Image.fromarray(img).save(path)


def test_cli_image_after_the_options(small_run, tmp_path, cli):
    # before: "unrecognized arguments" (argparse had given IMAGE's slot away with RUN's)
    _stroke(tmp_path / "one.png")
    r = cli("explain", small_run.path, "--out", tmp_path, "--method", "saliency", "--target", "3",
            tmp_path / "one.png")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "explain-one.json").read_text())
    assert data["target"] == 3 and set(data["maps"]) == {"saliency"}
    r = cli("explain", small_run.path, "--out", tmp_path, "--method", "saliency", tmp_path / "one.png", "--bogus")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr and "--bogus" in r.stderr   # still refused


def test_cli_image_positional_keeps_its_other_places(small_run, tmp_path, capsys):
    _stroke(tmp_path / "a.png")
    rc, err = _explain(capsys, "--out", tmp_path, "--method", "saliency", small_run.path, tmp_path / "a.png")
    assert rc == 0, err
    rc, err = _explain(capsys, small_run.path, tmp_path / "a.png", "--out", tmp_path, "--method", "gradcam",
                       "--layer", "relu2")
    assert rc == 0, err
    assert json.loads((tmp_path / "explain-a.json").read_text())["layer"] == "relu2"


@pytest.fixture
def hostile_images(tmp_path, fifo):
    d = tmp_path / "images"
    d.mkdir()
    (d / "bomb.png").write_bytes(png_header_only(30000, 30000))
    (d / "dir.png").mkdir()
    os.symlink("/dev/zero", d / "devzero.png")
    os.symlink(fifo, d / "fifo.png")
    (d / "text.png").write_text("not an image\n")
    (d / "empty.png").write_bytes(b"")
    return d


@pytest.mark.parametrize("name, words", [("bomb.png", "decompression bomb"), ("dir.png", "is a folder"),
                                         ("devzero.png", "character device"), ("fifo.png", "FIFO"),
                                         ("text.png", "not a readable image"), ("empty.png", "empty file"),
                                         ("missing.png", "no such image file")])
def test_cli_hostile_image_files_are_named_for_what_they_are(small_run, hostile_images, tmp_path, capsys, name,
                                                             words):
    # before: a bomb -> DecompressionBombError traceback; a FIFO, folder or device -> "no such file"
    from convscope.cli import explain_cmd

    path = hostile_images / name
    err = outcome(lambda: explain_cmd._read_image(path, (1, 28, 28)), seconds=10)
    assert isinstance(err, DataError) and str(path) in str(err) and words in str(err), err
    if name in ("bomb.png", "fifo.png"):
        rc, stderr = _explain(capsys, small_run.path, path, "--out", tmp_path / "o", "--method", "saliency")
        assert rc == 2 and "Traceback" not in stderr and words in stderr, stderr


def test_cli_model_file_takes_its_one_positional_as_the_image(tmp_path, capsys):
    # before: with --model-file the IMAGE landed in RUN's slot: "give a RUN or --model-file, not both"
    (tmp_path / "m.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3, padding=1)\n"
        "        self.fc = nn.Linear(2 * 8 * 8, 3)\n\n    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).flatten(1))\n")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "z.png")
    base = ["--model-file", f"{tmp_path / 'm.py'}:M", "--input-shape", "1x8x8", "--out", tmp_path / "o"]
    rc, err = _explain(capsys, *base, "--method", "saliency,gradcam", tmp_path / "z.png")
    assert rc == 0, err
    assert set(json.loads((tmp_path / "o" / "explain-z.json").read_text())["maps"]) == {"saliency", "gradcam"}
    rc, err = _explain(capsys, *base, "--method", "saliency", "--target", "3", tmp_path / "z.png")
    assert rc == 2 and "--target: 3 is not a class" in err and "0..2" in err and "list" not in err, err
