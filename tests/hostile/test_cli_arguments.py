"""Impossible numbers on the command line are usage errors naming the flag (exit 2), found at parse time."""

import pytest

from convscope.cli import build_parser

CASES = [
    (["topk", "RUN", "--layer", "relu3", "--k", "-3"], "--k", "must be [1, 1000]"),
    (["topk", "RUN", "--layer", "relu3", "--k", "0"], "--k", "must be [1, 1000]"),
    (["topk", "RUN", "--channels", "0"], "--channels", "at least 1"),
    (["topk", "RUN", "--show", "-1"], "--show", "at least 0"),
    (["sparsity", "RUN", "--limit", "-1"], "--limit", "at least 0"),
    (["sparsity", "RUN", "--threshold", "nan"], "--threshold", "finite"),
    (["features", "RUN", "--channels", "-4"], "--channels", "at least 1"),
    (["predict", "RUN", "x.png", "--top", "0"], "--top", "at least 1"),
    (["matrix", "--input", "4x4", "--kernel", "3", "--max-memory", "inf"], "--max-memory", "finite"),
    (["matrix", "--input", "4x4", "--kernel", "3", "--max-memory", "0"], "--max-memory", "positive"),
    (["matrix", "--input", "4x4", "--kernel", "3", "--seed", "-1"], "--seed", "at least 0"),
    (["data", "show", "digits", "--per-class", "0"], "--per-class", "at least 1"),
    (["edges", "--tolerance", "-1"], "--tolerance", "at least 0"),
    (["visualize", "RUN", "--layer", "conv3", "--steps", "0"], "--steps", "at least 1"),
    (["experiment", "refine", "RUN", "--layer", "conv3", "--lr", "nan"], "--lr", "finite"),
    (["experiment", "refine", "RUN", "--layer", "conv3", "--k", "abc"], "--k", "whole number"),
    # Python's int() reads other scripts' digits ("\u0662" is 2); a config's int fields take ASCII digits only
    (["experiment", "refine", "RUN", "--threads", "\u0662"], "--threads", "whole number"),
    (["experiment", "refine", "RUN", "--seeds", "0,\u0661"], "--seeds", "comma-separated integers"),
    (["visualize", "RUN", "--layer", "conv3", "--steps", "\u0665"], "--steps", "whole number"),
]


@pytest.mark.parametrize("argv, flag, words", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_impossible_numbers_are_usage_errors(argv, flag, words, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and flag in err and words in err, err


def test_mean_and_std_must_be_finite_and_std_positive(tmp_path, cli):
    model = tmp_path / "m.py"
    model.write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                     "        self.c = torch.nn.Conv2d(1, 2, 3)\n    def forward(self, x):\n        return self.c(x)\n")
    for flag, value in (("--std", "0"), ("--std", "-1"), ("--mean", "nan"), ("--std", "x")):
        r = cli("layers", "--model-file", f"{model}:Net", "--input-shape", "1x8x8", flag, value)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr, (flag, value, r.stderr)


@pytest.mark.parametrize("where", ["under /proc", "a file"])
def test_an_output_path_the_file_system_refuses_is_a_clear_error(tmp_path, cli, where):
    """Each command that writes (a picture, a folder of results) names the path and what to do, no traceback."""
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"x")
    target = {"under /proc": "/proc/convscope-x", "a file": str(blocker)}[where]
    for argv in (["data", "show", "digits", "--out", f"{target}/grid.png"],
                 ["matrix", "--input", "4x4", "--kernel", "3", "--png", f"{target}/m.png"],
                 ["edges", "--limit", "50", "--out", target]):
        r = cli(*argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (argv, r.stderr)
        assert "convscope: error:" in r.stderr and target in r.stderr, (argv, r.stderr)


def test_an_input_shape_the_model_cannot_take_is_refused_by_every_command(tmp_path, cli):
    """`filters` reads only weights, yet an impossible --input-shape is named, not silently ignored."""
    model = tmp_path / "m.py"
    model.write_text("import torch\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                     "        self.c = torch.nn.Conv2d(1, 2, 3)\n    def forward(self, x):\n        return self.c(x)\n")
    for shape, words in (("0x0x0", "three positive integers"), ("3x28x28", "cannot take an image of shape")):
        r = cli("filters", "--model-file", f"{model}:Net", "--input-shape", shape, "--out", tmp_path / "o")
        assert r.returncode == 2 and "--input-shape" in r.stderr and words in r.stderr, (shape, r.stderr)
        assert "Traceback" not in r.stderr
    r = cli("filters", "--model-file", f"{model}:Net", "--input-shape", "1x8x8", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr


def test_evaluate_names_a_plain_tensor_given_as_dataset():
    import torch

    from convscope.data import Normalization
    from convscope.errors import ConfigError
    from convscope.training.evaluate import evaluate

    with pytest.raises(ConfigError, match="^dataset: expected a convscope.data.ImageDataset"):
        evaluate(torch.nn.Flatten(), torch.zeros(2, 1, 8, 8), Normalization((0.5,), (0.25,)))
