"""Issue 28, classes 2, 3 and 7: a user model that breaks the output contract, non-finite values, and Python API
arguments of the wrong kind end in one convscope error naming what is wrong (never a traceback from deep inside
convscope or Captum, a silent exit 0, or a "result" computed from NaNs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from convscope.cli import main
from convscope.conv.conv_matrix import conv_matrix
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError, ConvscopeError
from convscope.inspect import edge_experiment
from convscope.inspect.objectives import channel
from convscope.models.output import check_logits

MODEL = """import sys
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self{args}):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        out = self.fc(torch.relu(self.conv(x)).flatten(1))
        {body}
"""


def _model_file(tmp_path, body="return out", args=""):
    path = tmp_path / "m.py"
    path.write_text(MODEL.format(body=body, args=args))
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "img.png")
    return [f"--model-file={path}:Net", "--input-shape", "1x8x8"]


def _run(capsys, *args) -> tuple[int, str]:
    try:
        rc = main([*map(str, args)])
    except SystemExit as e:
        rc = e.code
    captured = capsys.readouterr()
    return rc, captured.err


@pytest.mark.parametrize("body, words", [
    ("return out[:, 0]", ["its output", "shape (2,)", "(B, 1)"]),                     # 1-D
    ("return out.argmax(1, keepdim=True)", ["torch.int64", "logits"]),              # integer class indices
    ("return out[:, :, None, None].expand(-1, -1, 2, 2)", ["feature map", "flatten"]),  # 4-D
    ("return out, out", ["tuple", "class scores alone"]),
    ("return out[:1]", ["1 row(s) for 2 image(s)", "one row per input image"]),     # keeps only the first image
    ("return out.mean(0, keepdim=True)", ["1 row(s) for 2 image(s)"]),              # mixes the batch
])
def test_explain_refuses_a_model_breaking_the_output_contract(tmp_path, capsys, body, words):
    # before: Captum or an index error deep inside convscope raised a traceback
    rc, err = _run(capsys, "explain", *_model_file(tmp_path, body), "--method", "saliency", "--out", tmp_path / "o",
                   tmp_path / "img.png")
    assert rc == 2 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "o" / "explain-img.png").exists()


def test_a_model_class_needing_constructor_arguments_is_named(tmp_path, capsys):
    rc, err = _run(capsys, "explain", *_model_file(tmp_path, args=", width"), "--method", "saliency", "--out",
                   tmp_path / "o", tmp_path / "img.png")
    assert rc == 2 and "Traceback" not in err and "class Net needs argument(s) width" in err, err


def test_a_model_that_calls_sys_exit_0_is_not_a_silent_success(tmp_path, capsys):
    # before: exit status 0 and no output at all
    rc, err = _run(capsys, "explain", *_model_file(tmp_path, "sys.exit(0)"), "--method", "saliency", "--out",
                   tmp_path / "o", tmp_path / "img.png")
    assert rc == 1 and "your model raised SystemExit(0)" in err and "m.py" in err, err


def test_nan_scores_are_refused_not_predicted_as_class_0(tmp_path, capsys):
    # before: "predicted 0" and NaN maps written, exit 0
    rc, err = _run(capsys, "explain", *_model_file(tmp_path, "return out * float('nan')"), "--method", "saliency",
                   "--out", tmp_path / "o", tmp_path / "img.png")
    assert rc == 2 and "NaN or infinite scores" in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "explain-img.json").exists()


def test_nan_weights_are_refused_where_they_are_loaded(tmp_path, capsys):
    args = _model_file(tmp_path)
    import importlib.util

    spec = importlib.util.spec_from_file_location("m_nan", tmp_path / "m.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    state = mod.Net().state_dict()
    state["fc.weight"][0, 0] = float("nan")
    save_file(state, tmp_path / "w.safetensors")
    rc, err = _run(capsys, "topk", *args, "--weights", tmp_path / "w.safetensors", "--layer", "conv",
                   "--dataset", "digits", "--out", tmp_path / "o")
    assert rc == 2 and "NaN or infinite weights" in err and "fc.weight (1 of 384)" in err, err


def test_check_logits_is_the_contract_oracle():
    ok = torch.zeros(4, 3)
    assert check_logits(ok, batch=4, classes=3) is ok
    with pytest.raises(ConfigError, match="gives 3 class scores per image, but 10"):
        check_logits(ok, classes=10)
    with pytest.raises(ConfigError, match="NaN or infinite scores \\(1 of 4 image\\(s\\), first #2\\)"):
        bad = ok.clone()
        bad[2, 1] = float("inf")
        check_logits(bad, finite=True)


@pytest.mark.parametrize("mean, std, words", [
    ((0.5,), (0.0,), "std: each must be positive"),
    ((0.5,), (-0.2,), "std: each must be positive"),
    ((0.5,), (float("nan"),), "finite"),
    ((0.5, 0.5), (0.2,), "2 mean(s) and 1 std(s)"),
    ((), (), "non-empty"),
    (("a",), (0.2,), "tuple of numbers"),
])
def test_normalization_is_refused_at_construction(mean, std, words):
    # before: Normalization(std=0) was accepted and apply() returned inf
    with pytest.raises(ConfigError) as e:
        Normalization(mean, std)
    assert words in str(e.value)


def test_preprocess_refuses_rgb_images_for_a_grayscale_model():
    norm = Normalization((0.1,), (0.3,))
    rgb = torch.zeros(2, 3, 28, 28, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="convert RGB to grayscale"):
        norm.apply(rgb, (1, 28, 28))
    assert norm.apply(rgb[:, :1], (1, 28, 28)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("weight", [torch.ones(1, 1, 3, 3, dtype=torch.complex64),
                                    torch.full((1, 1, 3, 3), float("nan"))])
def test_conv_matrix_refuses_complex_or_non_finite_weights(weight):
    # before: complex weights lost their imaginary part without a word
    with pytest.raises(ConvscopeError):
        conv_matrix(weight, (4, 4))


def test_edges_refuses_a_kernel_whose_response_overflows():
    # before: overflow to inf reported "0.0% non-zero" and "ReLU zeroes 100%"
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ConvscopeError, match="(?i)overflow|finite"):
        edge_experiment(images, kernel=np.full((3, 3), 1e308))


def test_objective_plus_a_string_is_a_clear_type_error():
    # a TypeError as Python's own, and a convscope error in words (ConfigTypeError)
    with pytest.raises(TypeError, match="objective [+] str: objectives combine with objectives and finite numbers"):
        channel("conv", 0) + "x"
