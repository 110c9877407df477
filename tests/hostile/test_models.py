"""Issue #28, classes 2, 3 and 8 through the CLI: user models (--model-file) that do not fit the contract, a
model that exits or gives NaN scores, NaN weights, and an unbounded --steps. Each must end with exit status 1
or 2 and a message naming the class, the file or the flag — never exit 0, never a convscope traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

MODELS = '''
from torch import nn


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3, 10)

    def scores(self, x):                       # (B, 1, H, W) -> (B, 10)
        return self.fc(self.conv(x).mean((2, 3)))


class Good(Base):
    def forward(self, x):
        return self.scores(x)


class OneD(Base):
    def forward(self, x):
        return self.scores(x)[:, 0]


class Indices(Base):
    def forward(self, x):
        return self.scores(x).argmax(1, keepdim=True)


class FeatureMap(Base):
    def forward(self, x):
        return self.conv(x)


class Exits(Base):
    def forward(self, x):
        raise SystemExit(0)


class NeedsWidth(Base):
    def __init__(self, width):
        super().__init__()


class NaNScores(Base):
    def forward(self, x):
        return self.scores(x) * float("nan")
'''


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def models(tmp_path):
    f = tmp_path / "mymodels.py"
    f.write_text(MODELS)
    from PIL import Image
    Image.frombytes("L", (8, 8), bytes(range(0, 256, 4))).save(tmp_path / "x.png")
    return f


@pytest.mark.parametrize("cls, words", [("OneD", "shape (2,)"), ("Indices", "torch.int64"),
                                        ("FeatureMap", "feature map")])
@pytest.mark.parametrize("command", ["visualize --class 0", "explain"])
def test_outputs_off_the_contract_refused_by_every_command_that_reads_class_scores(models, tmp_path, cls, words,
                                                                                   command):
    extra = [tmp_path / "x.png"] if command == "explain" else []
    r = cli(*command.split(), "--model-file", f"{models}:{cls}", "--input-shape", "1x8x8", "--out", tmp_path / "o",
            *extra)
    assert r.returncode == 2, r.stderr
    assert f"--model-file {models}:{cls}" in r.stderr and words in r.stderr and "convscope expects a classifier" \
        in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("cls", ["OneD", "Indices", "FeatureMap"])
def test_commands_that_read_no_class_scores_take_any_output(models, cls):
    """layers, filters and visualize --layer look inside the network: a feature extractor (conv layers only) is a
    legitimate model for them, so its output is not held to the classifier contract."""
    r = cli("layers", "--model-file", f"{models}:{cls}", "--input-shape", "1x8x8")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_constructor_arguments_named(models):
    r = cli("layers", "--model-file", f"{models}:NeedsWidth", "--input-shape", "1x8x8")
    assert r.returncode == 2 and "class NeedsWidth needs argument(s) width" in r.stderr and str(models) in r.stderr


def test_model_exiting_zero_is_not_success(models):
    r = cli("layers", "--model-file", f"{models}:Exits", "--input-shape", "1x8x8")
    assert r.returncode == 1 and "your model raised SystemExit(0)" in r.stderr and "not exit the program" in r.stderr


def test_nan_scores_refused_by_explain(models, tmp_path):
    r = cli("explain", "--model-file", f"{models}:NaNScores", "--input-shape", "1x8x8", "--out", tmp_path / "o",
            tmp_path / "x.png")
    assert r.returncode == 2 and "NaN or infinite scores" in r.stderr, r.stderr
    r = cli("explain", "--model-file", f"{models}:Good", "--input-shape", "1x8x8", "--out", tmp_path / "g",
            tmp_path / "x.png")
    assert r.returncode == 0, r.stderr                                  # the control: a fitting model explains


def test_nan_weights_refused_at_load(models, tmp_path):
    torch.manual_seed(0)
    sys.path.insert(0, str(models.parent))
    try:
        import mymodels
    finally:
        sys.path.remove(str(models.parent))
    state = mymodels.Good().state_dict()
    state["conv.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, tmp_path / "w.safetensors")
    r = cli("layers", "--model-file", f"{models}:Good", "--weights", tmp_path / "w.safetensors",
            "--input-shape", "1x8x8")
    assert r.returncode != 0 and "NaN" in r.stderr and "conv.weight" in r.stderr and "Traceback" not in r.stderr, \
        r.stderr


def test_visualize_steps_bounded(models, tmp_path):
    r = cli("visualize", "--model-file", f"{models}:Good", "--input-shape", "1x8x8", "--out", tmp_path / "o",
            "--steps", 1_000_000_000)
    assert r.returncode == 2 and "--steps" in r.stderr and "at most 100,000" in r.stderr
