"""Issue #28, classes 2, 3, 7, 8 at the Python API: a model output that breaks the contract, non-finite values,
arguments that used to end in a torch traceback, and upper bounds on work — each a ConfigError naming the
argument. Each case was a traceback, a silent wrong answer or an unbounded run before the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.configs import STEPS_MAX, TOPK_MAX, RefineConfig, VisualizeConfig
from convscope.conv.conv_matrix import conv_matrix
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.inspect.attribution import attribute
from convscope.inspect.edges import edge_experiment
from convscope.inspect.objectives import channel
from convscope.models.forward import check_device, model_input
from convscope.models.output import check_logits, output_classes


def _net(out_fn=None) -> nn.Module:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.fc = nn.Linear(3, 4)

        def forward(self, x):                                  # (B, 1, H, W) -> (B, 4)
            y = self.fc(self.conv(x).mean((2, 3)))
            return out_fn(y, self.conv(x)) if out_fn else y
    return Net()


# ---- class 2: the output contract, checked in one place -------------------------------------------------------

@pytest.mark.parametrize("out, words", [
    (torch.zeros(2), "(2,)"), (torch.zeros(2, 4, dtype=torch.int64), "torch.int64"),
    (torch.zeros(2, 3, 5, 5), "feature map"), ((torch.zeros(2, 4),), "tuple"), (torch.zeros(3, 4), "(3, 4)"),
])
def test_check_logits_refuses_outputs_off_the_contract(out, words):
    with pytest.raises(ConfigError, match="convscope expects a classifier") as e:
        check_logits(out, "mynet", batch=2)
    assert words in str(e.value) and "mynet" in str(e.value)


def test_check_logits_class_count_and_finite():
    good = torch.randn(2, 4)
    assert check_logits(good, batch=2, classes=4, finite=True) is good          # the contract kept: passed through
    with pytest.raises(ConfigError, match="4 class scores per image, but 10 are needed"):
        check_logits(good, classes=10)
    bad = good.clone()
    bad[1, 2] = float("nan")
    check_logits(bad)                                                         # finiteness only when asked
    with pytest.raises(ConfigError, match=r"NaN or infinite scores \(1 of 2 image\(s\), first #1\)"):
        check_logits(bad, finite=True)


@pytest.mark.parametrize("fn", [lambda y, f: y.argmax(1), lambda y, f: f, lambda y, f: y[:, 0]])
def test_output_classes_checks_the_model_once_at_load(fn):
    assert output_classes(_net(), (1, 8, 8)) == 4
    with pytest.raises(ConfigError, match="convscope expects a classifier"):
        output_classes(_net(fn), (1, 8, 8), "--model-file net.py:Net")


# ---- class 3: non-finite values -------------------------------------------------------------------------------

@pytest.mark.parametrize("mean, std, words", [
    ((0.5,), (0.0,), "must be positive"), ((0.5,), (-1.0,), "must be positive"),
    ((0.5,), (float("nan"),), "finite"), ((float("inf"),), (1.0,), "finite"),
    ((0.1, 0.2, 0.3), (1.0,), "3 mean(s) and 1 std(s)"), ((), (), "non-empty"), (("a",), (1.0,), "numbers"),
])
def test_normalization_refused_at_construction(mean, std, words):
    with pytest.raises(ConfigError) as e:
        Normalization(mean, std)
    assert words in str(e.value)


def test_normalization_valid_values_still_normalize():
    n = Normalization([0.5], [0.25])
    x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(n.apply(x), torch.full((1, 1, 2, 2), 2.0))          # (1 - 0.5) / 0.25


@pytest.mark.parametrize("weight, words", [
    (torch.ones(1, 1, 3, 3, dtype=torch.complex64), "complex"), (torch.ones(1, 1, 3, 3, dtype=torch.bool), "bool"),
    (torch.full((1, 1, 3, 3), float("nan")), "NaN"), (np.full((1, 1, 3, 3), np.inf), "NaN or infinite"),
    (torch.ones(1, 1, 3, 3, device="meta"), "meta"),
])
def test_conv_matrix_refuses_meaningless_weights(weight, words):
    with pytest.raises(ConfigError) as e:
        conv_matrix(weight, (1, 4, 4))
    assert words in str(e.value)


def test_conv_matrix_integer_weights_taken_exactly():
    w = torch.arange(9, dtype=torch.int64).reshape(1, 1, 3, 3)
    m = np.asarray(conv_matrix(w, (1, 4, 4), padding=1).todense() if hasattr(conv_matrix(w, (1, 4, 4)), "todense")
                   else conv_matrix(w, (1, 4, 4), padding=1))
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(x, w.double(), padding=1).flatten()      # PyTorch is the oracle
    assert np.allclose(m @ x.flatten().numpy(), ref.numpy())


def test_edges_kernel_overflow_refused():
    images = torch.full((2, 1, 6, 6), 255, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="overflow float64"):
        edge_experiment(images, kernel=[[1e308, 1e308], [1e308, 1e308]])
    r = edge_experiment(images, kernel=[[1e300, 0], [0, -1e300]])              # large but finite: still counted
    assert r is not None


# ---- class 7: tracebacks become argument errors ---------------------------------------------------------------

def test_objective_arithmetic_with_non_numbers_is_a_type_error():
    obj = channel("conv", 0)
    with pytest.raises(TypeError, match="unsupported operand"):
        obj + "x"
    with pytest.raises(TypeError, match="unsupported operand"):
        "x" - obj
    with pytest.raises(ConfigError):
        obj * float("nan")
    acts = {"conv": torch.arange(8.0).reshape(1, 2, 2, 2)}
    assert torch.allclose((2 * obj + 1)(acts), 2 * obj(acts) + 1)             # numbers still combine


@pytest.mark.parametrize("device, words", [("tpu", "not a device"), ("meta", "shapes without values"),
                                           (123, "expected a device name"), ("", "expected a device name")])
def test_check_device_refuses_unusable_devices(device, words):
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=words):
        check_device(device, "map_location")


def test_model_input_converts_float64_and_refuses_int_and_meta():
    net = _net()
    x = model_input(net, torch.randn(2, 1, 8, 8, dtype=torch.float64))
    assert x.dtype == torch.float32
    with pytest.raises(ConfigError, match="floating-point tensor, got dtype torch.int64"):
        model_input(net, torch.zeros(2, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="meta tensor"):
        model_input(net, torch.zeros(2, 1, 8, 8, device="meta"))
    with pytest.raises(ConfigError, match=r"expected images \(B, 1, 8, 8\)"):
        model_input(net, torch.zeros(2, 3, 8, 8), input_shape=(1, 8, 8))


def test_attribute_accepts_float64_inputs_like_float32():
    torch.manual_seed(0)
    net = _net().eval()
    x = torch.randn(2, 1, 8, 8)
    a32 = attribute(net, x, "saliency", 0)
    a64 = attribute(net, x.double(), "saliency", 0)
    m32 = a32.maps if hasattr(a32, "maps") else a32
    m64 = a64.maps if hasattr(a64, "maps") else a64
    assert torch.allclose(torch.as_tensor(m32).float(), torch.as_tensor(m64).float(), atol=1e-6)


def test_preprocess_rgb_for_a_grayscale_model_refused_with_the_rule():
    n = Normalization((0.5,), (0.5,))
    with pytest.raises(ConfigError, match="0.299 R"):
        n.apply(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), input_shape=(1, 8, 8))


# ---- class 8: upper bounds on work ---------------------------------------------------------------------------

def test_step_and_k_bounds():
    VisualizeConfig(steps=STEPS_MAX)
    with pytest.raises(ConfigError, match="at most 100,000, got 1,000,000,000"):
        VisualizeConfig(steps=1_000_000_000)
    with pytest.raises(ConfigError, match="steps"):
        RefineConfig(steps=STEPS_MAX + 1)
    with pytest.raises(ConfigError, match="k"):
        RefineConfig(k=TOPK_MAX + 1)
