"""Validation at the boundary: the one validators module (convscope/_check.py), the typed configs whose field
metadata drives both the checks and the CLI flags, and the holes a new user found: `eval` on a dataset whose
classes differ from the model's, `report -o` at one of the run's own files, duplicate class names in model.json,
and model.json itself covered by a SHA-256."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope
from convscope.data.normalize import Normalization
from convscope import _check
from convscope.configs import ATTRIBUTION_METHODS, PARAMS, ExplainConfig, RefineConfig, VisualizeConfig
from convscope.errors import ConfigError
from convscope.runs import rundir as rd
from convscope.training.checkpoint import CheckpointError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1" / "finished-run"


# -- the validators ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, False, 1.0, "3", None, np.float32(2)])
def test_integer_refuses_bools_floats_and_text(value):
    with pytest.raises(ConfigError, match=r"^top_k: expected a whole number") as e:
        _check.integer(value, "top_k", 1)
    assert e.value.arg == "top_k"

IDENTITY = Normalization.identity()  # these models take raw [0, 1] pixels, said explicitly


def test_integer_range_and_numpy_ints():
    assert _check.integer(np.int64(3), "k", 1, 5) == 3 and type(_check.integer(np.int64(3), "k", 1)) is int
    with pytest.raises(ConfigError, match=r"^k: must be at least 1, got 0"):
        _check.integer(0, "k", 1)
    with pytest.raises(ConfigError, match=r"^k: must be \[1, 5\], got 6"):
        _check.integer(6, "k", 1, 5)


@pytest.mark.parametrize("value, words", [(float("nan"), "finite"), (float("inf"), "finite"), (True, "a number"),
                                          ("0.1", "a number"), (0.0, "positive"), (-1, "positive")])
def test_number_is_finite_and_in_range(value, words):
    with pytest.raises(ConfigError, match=words):
        _check.number(value, "lr", 0, lo_open=True)
    assert _check.number(1, "lr", 0, lo_open=True) == 1.0


def test_names_refuse_a_bare_string_and_unknown_names():
    with pytest.raises(ConfigError, match=r"variants: .*\('top',\)"):
        _check.names("top", "variants", ("top",))
    with pytest.raises(ConfigError, match="unknown \\['bogus'\\]; valid: top, full"):
        _check.names(["bogus"], "variants", ("top", "full"))
    assert _check.names(["full"], "variants", ("top", "full")) == ("full",)


# -- the configs: one declaration drives the check and the flag ---------------------------------------------------

CONFIGS = {"experiment refine": RefineConfig, "visualize": VisualizeConfig, "explain": ExplainConfig}


def _subparser(argv: list[str]) -> argparse.ArgumentParser:
    from convscope.cli import build_parser

    p = build_parser()
    for word in argv:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return p


@pytest.mark.parametrize("command", list(CONFIGS))
def test_every_config_field_is_a_flag_with_the_fields_default(command):
    """No default restated by hand in cli/: each flag's default is the config field's, and parsing no flags gives
    the config's defaults."""
    from convscope.cli._options import config_from_args, flag

    cls, p = CONFIGS[command], _subparser(command.split())
    actions = {a.dest: a for a in p._actions}
    for f, meta in _check.options(cls):
        if not meta["cli"]:
            continue
        assert flag(f.name, meta) in actions[f.name].option_strings, f.name
        assert actions[f.name].default == f.default, f.name
    args = p.parse_args(["RUN"] if command != "explain" else ["RUN"])
    assert config_from_args(cls, args) == cls()


def test_a_flag_refuses_what_the_config_refuses_naming_the_flag(capsys):
    from convscope.cli import build_parser

    for argv, words in ((["experiment", "refine", "RUN", "--momentum", "1"], "--momentum: must be [0, 1)"),
                        (["experiment", "refine", "RUN", "--variants", "top,bogus"], "--variants: unknown"),
                        (["experiment", "refine", "RUN", "--seeds", "1,1"], "--seeds: repeated"),
                        (["visualize", "RUN", "--seed", str(2**63)], "--seed: must be [0,"),
                        (["explain", "RUN", "--method", "nope"], "--method: unknown ['nope']")):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err, (argv, err)
    for cls, kw, words in ((RefineConfig, {"momentum": 1.0}, "^momentum: must be"),
                           (VisualizeConfig, {"seed": 2**63}, "^seed: must be"),
                           (ExplainConfig, {"method": ("nope",)}, "^method: unknown")):
        with pytest.raises(ConfigError, match=words):
            cls(**kw)


def test_the_configs_choices_are_the_libraries():
    from convscope.inspect.attribution import METHODS
    from convscope.inspect.param import PARAMS as LIBRARY_PARAMS

    assert tuple(METHODS) == ATTRIBUTION_METHODS and set(PARAMS) == set(LIBRARY_PARAMS)


def test_library_errors_name_python_arguments_and_the_cli_names_flags(small_run, tmp_path, cli):
    from convscope.inspect.visualize import visualize

    with pytest.raises(ConfigError, match=r"^steps: must be at least 1"):
        visualize(small_run.model, "conv1", [0], input_shape=(1, 28, 28), steps=0, norm=IDENTITY)
    with pytest.raises(ConfigError, match=r"^config: expected a convscope.configs.VisualizeConfig"):
        visualize(small_run.model, "conv1", [0], input_shape=(1, 28, 28), config={"steps": 1}, norm=IDENTITY)
    r = cli("visualize", small_run.path, "--layer", "conv1", "--channels", "0", "--steps", "2", "--no-natural",
            "--l2", "1e300", "--out", tmp_path)
    assert r.returncode == 2 and "--l2" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("module", ["_check.py", "configs.py", "cli/_options.py", "cli/experiment_cmd.py",
                                    "cli/visualize_cmd.py", "cli/explain_cmd.py", "cli/inspect_cmd.py"])
def test_the_configs_and_their_commands_import_no_torch_at_module_level(module):
    """The parsers are built from the configs' metadata at start-up: neither may import torch (or numpy) there."""
    import ast

    tree = ast.parse((Path(convscope.__file__).parent / module).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and not n.level}
    assert not names & {"torch", "numpy"}, (module, names)


# -- eval on a dataset whose classes differ from the model's --------------------------------------------------------

def _folder(root: Path, classes: list[str], n: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("classes, words", [(["cat", "dog"], "2 classes (cat, dog) where the model has 10"),
                                            (["0", "1"], "2 classes (0, 1) where the model has 10"),
                                            ([*map(str, range(10)), "x"], "11 classes (0, 1, 2,")])
def test_eval_refuses_a_dataset_with_other_classes(small_run, tmp_path, cli, classes, words):
    """Before: a reshape traceback (cat/dog), or an accuracy over unrelated labels ("0", "1" lined up with the
    model's first two outputs)."""
    from convscope.data import load
    from convscope.training.evaluate import evaluate

    root = _folder(tmp_path / "imgs", classes)
    r = cli("eval", small_run.path, "--dataset", f"folder:{root}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--dataset: " in r.stderr and words in r.stderr, r.stderr
    assert not (Path(small_run.path) / "eval").exists() or not list((Path(small_run.path) / "eval").glob("*imgs*"))
    ds = load(f"folder:{root}", "test")
    with pytest.raises(ConfigError, match=r"^dataset: .*" + words.replace("(", r"\(").replace(")", r"\)")):
        evaluate(small_run.model, ds, small_run.normalization, classes=small_run.classes)


def test_evaluate_refuses_the_models_classes_in_another_order(small_run):
    import torch

    from convscope.data import ImageDataset
    from convscope.training.evaluate import evaluate

    ds = ImageDataset(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 2, 3]),
                      tuple(str(d) for d in range(9, -1, -1)), "reversed", "test", "memory")
    with pytest.raises(ConfigError, match="^dataset: 'reversed' has the same names in another order"):
        evaluate(small_run.model, ds, small_run.normalization, classes=small_run.classes)
    assert evaluate(small_run.model, ds, small_run.normalization).n == 4    # without names: only the width


def test_evaluate_without_class_names_still_refuses_a_width_mismatch(small_run, tmp_path):
    from convscope.data import load
    from convscope.training.evaluate import evaluate

    ds = load(f"folder:{_folder(tmp_path / 'imgs', ['cat', 'dog'])}", "test")
    with pytest.raises(ConfigError, match=r"^dataset: .* 2 classes but the model gives \(10,\) outputs"):
        evaluate(small_run.model, ds, small_run.normalization)


def test_eval_of_an_rgb_folder_says_how_to_convert_it(small_run, tmp_path, cli):
    rng = np.random.default_rng(0)
    for d in range(10):
        (tmp_path / "rgb" / str(d)).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(tmp_path / "rgb" / str(d) / "a.png")
    r = cli("eval", small_run.path, "--dataset", f"folder:{tmp_path / 'rgb'}", "--split", "train")
    assert r.returncode == 2 and "images are (3, 28, 28), the model takes (1, 28, 28)" in r.stderr, r.stderr
    assert "folder:PATH?channels=1" in r.stderr
    r = cli("eval", small_run.path, "--dataset", f"folder:{tmp_path / 'rgb'}?channels=1", "--split", "train")
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stderr


def test_eval_accepts_a_folder_with_the_models_classes(small_run, tmp_path, cli):
    root = _folder(tmp_path / "digits", [str(d) for d in range(10)], n=2)
    r = cli("eval", small_run.path, "--dataset", f"folder:{root}", "--split", "train")
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stderr


# -- report -o at one of the run's own files ----------------------------------------------------------------------

@pytest.fixture
def run_copy(small_run, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(small_run.path, path)
    return path


@pytest.mark.parametrize("name", ["model.safetensors", "model.json", "config.json", "summary.json", "curve.png",
                                  "metrics.jsonl", "model.json.sha256", "notes.txt"])
def test_report_refuses_to_overwrite_the_runs_own_files(run_copy, cli, name):
    from convscope.web import build_report

    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"^out: .*report.html"):
        build_report(run_copy, run_copy / name)
    r = cli("report", run_copy, "-o", run_copy / name)
    assert r.returncode == 2 and "-o: " in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before   # nothing written
    convscope.load_run(run_copy)


def test_report_refuses_a_symlink_to_the_weights(run_copy, tmp_path):
    from convscope.web import build_report

    (tmp_path / "link.html").symlink_to(run_copy / "model.safetensors")
    with pytest.raises(ConfigError, match="own model.safetensors"):
        build_report(run_copy, tmp_path / "link.html")


# -- model.json: duplicate class names, and its own SHA-256 ---------------------------------------------------------

def _rewrite_meta(run: Path, **changes) -> None:
    """Edit model.json and re-record its digest (a consistent edit: only the content check can refuse it)."""
    meta = {**json.loads((run / rd.META).read_text()), **changes}
    text = json.dumps(meta)
    (run / rd.META).write_text(text)
    (run / rd.META_SHA256).write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  {rd.META}\n")


def test_duplicate_class_names_are_refused(run_copy):
    _rewrite_meta(run_copy, classes=["0", "1", "2", "3", "4", "5", "6", "7", "7", "9"])
    with pytest.raises(CheckpointError, match=r"classes names '7' more than once"):
        convscope.load_run(run_copy)


def test_model_json_is_covered_by_its_own_sha256(run_copy):
    recorded = (run_copy / rd.META_SHA256).read_text().split()
    assert recorded == [hashlib.sha256((run_copy / rd.META).read_bytes()).hexdigest(), "model.json"]
    meta = json.loads((run_copy / rd.META).read_text())
    meta["classes"] = [f"c{i}" for i in range(10)]          # structurally valid: before, loaded silently
    (run_copy / rd.META).write_text(json.dumps(meta, indent=2) + "\n")
    with pytest.raises(CheckpointError, match=r"model.json: SHA-256 differs .* model.json.sha256"):
        convscope.load_run(run_copy)
    (run_copy / rd.META_SHA256).write_text("not a digest\n")
    with pytest.raises(CheckpointError, match="model.json.sha256: expected one line"):
        convscope.load_run(run_copy)


def test_an_edited_input_shape_is_reported_as_an_edit_of_model_json(run_copy):
    """Before: the digest was checked last, so the model was first built from the edited shape and the error
    blamed the weights with a torch size-mismatch dump."""
    meta = json.loads((run_copy / rd.META).read_text())
    meta["input_shape"] = [3, 28, 28]
    meta["normalization"] = {"mean": [0.1], "std": [0.3]}
    (run_copy / rd.META).write_text(json.dumps(meta, indent=2) + "\n")
    with pytest.raises(CheckpointError, match=r"model.json: SHA-256 differs") as e:
        convscope.load_run(run_copy)
    assert "size mismatch" not in str(e.value) and "model.safetensors" not in str(e.value)


def test_runs_written_before_the_digest_still_load(tmp_path):
    assert not (FIXTURE / rd.META_SHA256).exists()
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    loaded = convscope.load_run(run)
    assert loaded.classes == tuple(str(d) for d in range(10))


def test_all_fields_of_the_configs_have_help_and_a_kind():
    for cls in CONFIGS.values():
        for f in dataclasses.fields(cls):
            meta = f.metadata["option"]
            assert meta["help"] and meta["kind"] in ("int", "float", "str", "choice", "bool", "ints", "names")
