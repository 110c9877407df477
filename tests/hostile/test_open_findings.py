"""The findings of issue 28 still open after its third round, each class fixed where the value enters: the tune
sampler seed and study folder, unbounded work, outputs that replaced files not ours, half-written sets of files,
a model file that imports its neighbour, explain on a blank image, the short lr-find sweep and tensorboard over
several runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope._atomic import atomic_write_text, output_set
from convscope.errors import ConfigError, ConvscopeError

from .conftest import refused

LIMITED = ("import resource, signal, sys\n"          # as test_writes.py: a real size limit, SIGXFSZ ignored
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
           "from convscope.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _digit(path: Path, value: int = 255) -> Path:
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 12:16] = value   # a 1
    Image.fromarray(a).save(path)
    return path


# -- 1. the tune sampler seed: the one seed check, numpy's range --------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5"])
def test_a_sampler_seed_outside_numpys_range_is_a_usage_error_and_writes_nothing(tmp_path, cli, seed):
    # was: numpy's "ValueError: Seed must be between 0 and 2**32 - 1" traceback, after the study folder was made
    refused(cli("tune", "--sampler-seed", seed, "--trials", "1", "--out", tmp_path / "s"), "--sampler-seed")
    assert not (tmp_path / "s").exists()


def test_the_library_checks_the_sampler_seed_with_the_one_seed_check(tmp_path):
    from convscope.tune import tune

    with pytest.raises(ConfigError, match=r"^seed: must be \[0, 4294967295\], got 4294967296"):
        tune({"epochs": 1}, trials=1, seed=2**32, out=tmp_path / "s")
    with pytest.raises(ConfigError, match="^seed: expected a whole number"):
        tune({"epochs": 1}, trials=1, seed=True, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.filterwarnings("ignore:The number of trials is too small:UserWarning")   # Optuna's, for 1 trial
def test_a_large_valid_sampler_seed_runs_a_trial(tmp_path):
    # the per-worker seed (seed * 1,000,003 + ...) passed 2**32 for every seed from 4295 up: each crashed in numpy
    from convscope.tune import tune

    res = tune({"model": "fast", "model_args": {"width": 4}, "train_subset": 100, "epochs": 1, "batch_size": 32,
                "schedule": "constant",
                "threads": 1}, trials=1, seed=2**32 - 1, out=tmp_path / "s", quiet=True,
               space={"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True}})
    assert res.best_trial == 0 and (tmp_path / "s" / "best.yaml").is_file()


# -- 2, 9. unbounded work ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [{"type": "int", "low": 1, "high": 10**9},
                                  {"type": "categorical", "choices": [1, 10**9]}])
def test_a_space_that_can_ask_for_a_billion_epochs_is_refused_naming_file_and_key(tmp_path, spec):
    from convscope.tune import load_space

    space = tmp_path / "space.yaml"
    space.write_text(f"epochs: {spec}\n".replace("'", ""))
    with pytest.raises(ConfigError) as info:
        load_space(space)
    msg = str(info.value)
    assert msg.startswith(f"{space}: epochs: 1000000000 is not a valid epochs") and "[1, 100000]" in msg
    assert "years of training" in msg


@pytest.mark.parametrize("args, words", [
    (("train", "--epochs", "1000000000"), ["--epochs must lie in [1, 100000], got 1000000000", "years"]),
    (("train", "--check", "--check-batch", "100000"), ["--check-batch", "[1, 1024]", "one small batch"]),
    (("train", "--check", "--check-steps", "1000000000"), ["--check-steps", "[1, 10000]"]),
    (("lr-find", "--steps", "1000000000"), ["--steps: must be [5, 10000]", "each step trains one batch"]),
    (("data", "show", "digits", "--per-class", "1000000000"), ["--per-class: must be [1, 64]", "panel"]),
    (("tune", "--trials", "1000000000"), ["--trials: must be [1, 10000]", "weeks"]),
])
def test_unbounded_counts_are_usage_errors_naming_flag_bound_and_why(tmp_path, cli, args, words):
    # were: a run of a billion epochs, a 20-minute --check, a MemoryError traceback (--per-class), ...
    refused(cli(*args, cwd=tmp_path, timeout=120), *words)
    assert list(tmp_path.iterdir()) == []


def test_the_library_bounds_the_same_counts():
    from convscope.training.config import config_from_dict
    from convscope.training.sanity import check

    with pytest.raises(ConfigError, match=r"epochs must lie in \[1, 100000\]"):
        config_from_dict({"epochs": 100_001}).validate()
    assert config_from_dict({"epochs": 100_000}).validate().schedule.epochs == 100_000   # the bound itself is fine
    with pytest.raises(ConfigError, match=r"^batch: must be \[1, 1024\]"):
        check(batch=1025)


# -- 3. tune --out: never a run's folder or a folder of other files ------------------------------------------------

def test_tune_refuses_a_run_folder_and_a_folder_of_other_files_and_changes_nothing(tmp_path, cli, small_run):
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "thesis.tex").write_text("keep")
    before = {p: _files(p) for p in (small_run.path, other)}
    refused(cli("tune", "--trials", "1", "--out", small_run.path), "--out", "is a training run's folder",
            "model.json")
    refused(cli("tune", "--trials", "1", "--out", other), "--out", "is not empty (thesis.tex)",
            "holds no convscope study")
    assert {p: _files(p) for p in (small_run.path, other)} == before


def test_a_study_folder_and_an_empty_one_are_accepted(tmp_path):
    from convscope.tune.study import check_study_folder

    (tmp_path / "empty").mkdir()
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.db").write_bytes(b"")
    for name in ("new", "empty", "study"):
        assert check_study_folder(tmp_path / name) == tmp_path / name


# -- 4. outputs replace only earlier outputs of ours ---------------------------------------------------------------

def test_report_never_replaces_a_file_that_is_not_a_report(tmp_path, cli, small_run):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    refused(cli("report", small_run.path, "-o", notes), f"-o: {notes} exists and is not a convscope report")
    assert notes.read_text() == "my notes"
    report = tmp_path / "r.html"
    r = cli("report", small_run.path, "-o", report)
    assert r.returncode == 0, r.stderr
    first = report.read_bytes()
    report.write_bytes(first.replace(b"<h1>", b"<h1>EDITED"))
    assert cli("report", small_run.path, "-o", report).returncode == 0   # an earlier report: replaced
    assert report.read_bytes() == first


def test_predict_show_replaces_only_its_own_pictures(tmp_path, cli, small_run):
    img = _digit(tmp_path / "one.png")
    mine = tmp_path / "one.prepared.png"
    mine.write_text("the user's file")
    refused(cli("predict", small_run.path, img, "--show"), f"--show: {mine} exists and is not a picture an earlier "
                                                           "predict --show wrote")
    assert mine.read_text() == "the user's file"
    mine.unlink()
    assert cli("predict", small_run.path, img, "--show").returncode == 0
    ours = mine.read_bytes()
    assert Image.open(mine).text["Software"] == "convscope predict --show"
    assert cli("predict", small_run.path, img, "--show").returncode == 0 and mine.read_bytes() == ours


def test_predict_show_refuses_two_images_sharing_one_picture(tmp_path, cli, small_run):
    png = _digit(tmp_path / "photo.png")
    jpg = tmp_path / "photo.jpg"
    Image.open(png).save(jpg)
    refused(cli("predict", small_run.path, png, jpg, "--show"), "would both write", "photo.prepared.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.png"]


# -- 5. a set of files: all or none --------------------------------------------------------------------------------

def test_output_set_undoes_new_files_restores_replaced_ones_and_removes_made_folders(tmp_path):
    (tmp_path / "old.json").write_text("old")
    with pytest.raises(ConvscopeError), output_set():
        atomic_write_text(tmp_path / "old.json", "new")
        atomic_write_text(tmp_path / "out" / "deep" / "a.png", "a")
        assert (tmp_path / "old.json").read_text() == "new"          # readers see each file at once
        raise ConvscopeError("the third file failed")
    assert _files(tmp_path) == {"old.json": b"old"} and not (tmp_path / "out").exists()
    with output_set():                                                 # success: no trace of the undo log
        atomic_write_text(tmp_path / "old.json", "new")
    assert _files(tmp_path) == {"old.json": b"new"} and os.listdir(tmp_path) == ["old.json"]


@pytest.mark.parametrize("args", [("topk", "--layer", "relu1", "--k", "2"), ("sparsity",)])
def test_a_command_past_the_size_limit_leaves_no_half_set(tmp_path, small_run, args):
    # was: topk-relu1.json (or sparsity-*.json) written, its picture not: a set that looked complete
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", LIMITED, args[0], str(small_run.path), *args[1:], "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    refused(r, "cannot write", "File too large")
    assert r.stderr.count("convscope: error:") == 1
    assert not out.exists()
    out.mkdir()
    (out / "topk-relu1.json").write_text("an earlier result")
    r = subprocess.run([sys.executable, "-c", LIMITED, args[0], str(small_run.path), *args[1:], "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and _files(out) == {"topk-relu1.json": b"an earlier result"}


# -- 6. a model file that imports its neighbour ---------------------------------------------------------------------

MODEL = textwrap.dedent("""
    from torch import nn
    from helpers import block

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = block(1, 4)
            self.fc = nn.Linear(4 * 28 * 28, 10)

        def forward(self, x):
            return self.fc(self.b(x).flatten(1))
""")


def test_a_model_file_imports_a_module_beside_it_as_a_script_would(tmp_path, cli):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mymodel.py").write_text(MODEL)
    (tmp_path / "m" / "helpers.py").write_text("from torch import nn\n\ndef block(i, o):\n"
                                              "    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())\n")
    r = cli("layers", "--model-file", f"{tmp_path}/m/mymodel.py:Net", cwd=tmp_path)   # was: No module named 'helpers'
    assert r.returncode == 0, r.stderr
    assert "b.0" in r.stdout and "fc" in r.stdout


def test_a_syntax_error_in_the_neighbour_names_the_neighbour(tmp_path, cli):
    (tmp_path / "mymodel.py").write_text(MODEL)
    (tmp_path / "helpers.py").write_text("def block(:\n")
    r = cli("layers", "--model-file", f"{tmp_path}/mymodel.py:Net")
    refused(r, f"{tmp_path}/helpers.py, line 1 (imported by your model file)", "that file is not valid Python")


# -- 7. explain on a blank image: refused as predict refuses it ---------------------------------------------------

@pytest.mark.parametrize("value", [0, 255])
def test_explain_refuses_a_blank_image_as_predict_does(tmp_path, cli, small_run, value):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((28, 28), value, np.uint8)).save(blank)
    p = cli("predict", small_run.path, blank)
    e = cli("explain", small_run.path, blank, "--method", "saliency", "--out", tmp_path / "ex")
    refused(p, "blank.png: no ink found")
    refused(e, "blank.png: no ink found")
    assert e.stderr.splitlines()[-1] == p.stderr.splitlines()[-1]     # the same refusal, word for word
    assert not (tmp_path / "ex").exists()


# -- 8. lr-find and tensorboard ---------------------------------------------------------------------------------

def test_a_short_lr_sweep_says_too_few_steps_to_judge():
    # was: a 10-step sweep of a model that trains said "no learning rate trains this model as it is"
    from convscope.training.lr_find import lr_find

    res = lr_find({"model": "fast", "model_args": {"width": 4}, "train_subset": 256, "batch_size": 64,
                   "threads": 1}, steps=10)   # 1e-7 to 10: 8 decades, 1.25 steps each
    assert res.suggested is None and res.note.startswith("10 steps over 8 decades of lr are too few to judge whether "
                                                         "the model trains")
    assert "--steps 40 or more" in res.note and "no learning rate" not in res.note


def test_tensorboard_checks_every_run_before_writing_any(tmp_path, small_run, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    assert cli("tensorboard", run).returncode == 0
    before = _files(run / "tensorboard")
    r = cli("tensorboard", "--force", run, tmp_path / "nope")
    refused(r, "nope: no config.json")
    assert _files(run / "tensorboard") == before   # was: the good run's events replaced, then the error
