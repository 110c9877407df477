"""Findings of the second independent attack on the surfaces of issue 28 (/work/notes/attack2.md) outside the
training settings (those are in test_train_plausibility.py): each class fixed where the value enters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError, DataError
from convscope.inspect import attribute
from convscope.models import create_model


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
