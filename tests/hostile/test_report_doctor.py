"""An independent attack on eval, report, doctor, tensorboard, lr-find and their data (session 37, helper 41),
each finding fixed where the value enters: a diverged run's made-up accuracy (eval) and traceback (report),
doctor's tracebacks on edited fields and its trust in another run's diagnostics, a half-written tensorboard
folder left by Ctrl-C or a failure, a `view with` line TensorBoard cannot follow, an infinite lr sweep, a raw
torch error for a model that cannot take the data, an output folder found unwritable only after the sweep, a
test split that asked for the training files, and folder layouts read as something else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convscope
from convscope.errors import ConfigError, SettingWarning
from convscope.training.doctor import examine
from convscope.training.lr_find import lr_find
from convscope.training import RunError

from .conftest import refused

BASE = {"train_subset": 512, "threads": 1, "deterministic": True, "batch_size": 64, "schedule": "constant"}
DIVERGING = {**BASE, "model": "fast", "model_args": {"width": 8}, "train_subset": 256, "epochs": 1, "lr": 1e8}
LIMITED = ("import resource, signal, sys\n"          # as test_writes.py: a real size limit, SIGXFSZ ignored
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
           "from convscope.cli import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Path:
    """A narrow `fast` trained at lr 1e8 with diagnostics: its scores are NaN on every test image (checked)."""
    path = tmp_path_factory.mktemp("div") / "run"
    with pytest.warns(SettingWarning):            # "lr 1e+08 is far above the usual range": the user goes ahead
        run = convscope.train({**DIVERGING, "diagnose": 1}, out=path, progress=False)
    assert run.summary["non_finite_test_scores"] == run.summary["test_images"] > 0
    return path


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ok") / "run"
    convscope.train({**BASE, "model": "mlp", "epochs": 2, "diagnose": 2}, out=path, progress=False)
    return path


def test_eval_and_report_refuse_a_diverged_runs_nan_scores(diverged, cli, tmp_path):
    r = cli("eval", diverged, "--threads", "1")
    refused(r, "the model's scores are NaN or infinite for 2,000 of 2,000 images (the run diverged)")
    assert "accuracy" not in r.stdout
    r = cli("report", diverged, "-o", tmp_path / "r.html", "--threads", "1")
    refused(r, "NaN or infinite")
    assert not list(tmp_path.iterdir())


def test_trains_summary_says_a_diverged_runs_accuracy_is_meaningless(cli, tmp_path):
    r = cli("train", "--model", "fast", "--model-arg", "width=8", "--train-subset", "256", "--batch-size", "64",
            "--epochs", "1", "--lr", "1e8", "--schedule", "constant", "--threads", "1", "--deterministic",
            "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "(meaningless: scores NaN or infinite on 2,000 test images; the run diverged)" in r.stdout


@pytest.mark.parametrize("edit, words", [
    (lambda L: L[1].update(loss="abc"), "record 2 (diag) has 'loss' = \"abc\""),
    (lambda L: L[0].update(classes=0), "the header's 'classes' = 0"),
    (lambda L: L[0].update(classes="ten"), "the header's 'classes' = \"ten\""),
    (lambda L: L[1].update(activations=[]), "record 2 (diag), 'activations' = []"),
    (lambda L: L[0].update(activation_layers=None), "the header's 'activation_layers' = null"),
    (lambda L: L[1].update(step="x"), "record 2 (diag) has 'step' = \"x\""),
])
def test_doctor_names_an_edited_field_instead_of_a_traceback(healthy, tmp_path, cli, edit, words):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    (run / "model.json").unlink()                  # an unfinished run: no digests to catch the edit first
    lines = [json.loads(x) for x in (run / "diagnostics.jsonl").read_text().splitlines()]
    edit(lines)
    (run / "diagnostics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    refused(cli("doctor", run), words, "fix or delete that line")


def test_doctor_refuses_another_runs_diagnostics_in_a_finished_run(healthy, diverged, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    shutil.copy(diverged / "diagnostics.jsonl", run / "diagnostics.jsonl")
    with pytest.raises(RunError, match="SHA-256 differs from the one recorded in model.json"):
        examine(run)


def test_doctor_reports_every_run_as_json_lines_and_says_when_nothing_was_observed(healthy, diverged, tmp_path,
                                                                                     cli):
    empty = tmp_path / "empty"
    shutil.copytree(healthy, empty)
    (empty / "model.json").unlink()
    header = (empty / "diagnostics.jsonl").read_text().splitlines()[0]
    (empty / "diagnostics.jsonl").write_text(header + "\n")
    r = cli("doctor", tmp_path / "missing", empty, diverged)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "missing" in r.stderr
    assert "0 steps observed" in r.stdout and "nothing to judge" in r.stdout and str(diverged) in r.stdout
    r = cli("doctor", healthy, diverged, "--json")
    assert r.returncode == 0, r.stderr
    runs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["run"] for x in runs] == [str(healthy), str(diverged)] and runs[1]["findings"]


def test_tensorboard_leaves_no_half_written_folder_when_a_write_fails(healthy, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    r = subprocess.run([sys.executable, "-c", LIMITED, "tensorboard", str(run)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{run / 'tensorboard'}" in r.stderr and "File too large" in r.stderr
    assert not [p.name for p in run.iterdir() if "tensorboard" in p.name]


def test_tensorboard_force_replaces_only_its_event_files_and_points_at_one_folder(healthy, tmp_path, cli):
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "c" / "run"
    for run in (a, b):
        shutil.copytree(healthy, run)
    r = cli("tensorboard", a, b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"view with: tensorboard --logdir {tmp_path}"   # one folder above both
    (a / "tensorboard" / "notes.md").write_text("mine")
    refused(cli("tensorboard", a, "--force"), "holds 'notes.md', which convscope did not write")
    assert (a / "tensorboard" / "notes.md").read_text() == "mine"


def test_lr_find_refuses_an_overflowing_range_and_an_unwritable_folder_before_the_sweep(cli, tmp_path):
    refused(cli("lr-find", "--train-subset", "512", "--threads", "1", "--end", "1e308", "--out", tmp_path / "a.png"),
            "--end: 1e+308 / start 1e-07 overflows a float")
    refused(cli("lr-find", "--train-subset", "512", "--threads", "1", "--out", "/proc/x.png"),
            "--out /proc/x.png: cannot write in the folder /proc")
    assert not list(tmp_path.iterdir())


def test_lr_find_names_a_model_that_cannot_take_the_data():
    with pytest.raises(ConfigError, match=r"^model: the model cannot take an image of shape \(1, 28, 28\).*give a "
                                          r"model built for 'digits' images"):
        lr_find({"train_subset": 512, "threads": 1}, steps=10, model=torch.nn.Linear(3, 2))


def test_lr_find_says_which_train_flags_its_sweep_ignores(cli, tmp_path):
    r = cli("lr-find", "--train-subset", "512", "--threads", "1", "--steps", "5", "--epochs", "3", "--tensorboard",
            "--out", tmp_path / "lf.png")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert "convscope: warning: --epochs, --tensorboard: not used by lr-find" in r.stderr


def test_reports_default_output_that_is_a_users_file_names_the_way_out(healthy, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(healthy, run)
    (run / "report.html").write_text("<html><title>mine</title></html>")
    refused(cli("report", run, "--threads", "1"), f"give -o a new file name such as {run / 'report-convscope.html'}")
    assert (run / "report.html").read_text() == "<html><title>mine</title></html>"


def test_a_test_split_needs_only_its_own_files(tmp_path):
    """`eval --dataset mnist` with only the t10k files asked for the training files too."""
    from convscope.data.sources import FASHION_MNIST, fetch

    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for name in names:
        shutil.copy(Path("/usr/share/datasets/fashion-mnist") / name, tmp_path / name)
    assert set(fetch(FASHION_MNIST, tmp_path, download_missing=False, names=names)) == set(names)


def test_folder_dataset_layouts_that_would_mislead_are_named(tmp_path, cli, healthy):
    from PIL import Image

    for c in "ab":
        (tmp_path / "F" / "test" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(torch.zeros(28, 28, dtype=torch.uint8).numpy()).save(tmp_path / "F" / "test" / c /
                                                                                   f"{i}.png")
    refused(cli("eval", healthy, "--dataset", f"folder:{tmp_path / 'F'}"), "has test/ with class folders but no train/")
    refused(cli("eval", healthy, "--dataset", "folder:"), "no path after 'folder:'")


def test_the_web_apps_training_view_shows_no_confusion_for_a_diverged_run(diverged):
    from convscope.web import compute
    from convscope.web.runs import RunEntry

    view = compute.training_data(RunEntry(diverged.name, diverged.resolve()))
    assert view.confusion is None and view.accuracy is None
    assert "the model's scores are NaN or infinite" in view.confusion_error
