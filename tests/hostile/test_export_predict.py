"""An independent attack on `convscope export` and `convscope predict` (session 37, helper 40), each finding fixed
where the value enters: a diverged run's NaN scores (exported as "checked, max difference 0", predicted as
"nan%"), a user's file that mentions a convscope run (replaced as if an earlier export), a model whose forward
depends on the batch size (exported with its batch axis fixed), torch.export's pages of graph dump, legal long
file names, an interrupted run, the output path checked only after the export, and the files --show wrote
before a later image failed."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import convscope
from convscope._atomic import NAME_MAX, atomic_write_bytes
from convscope.cli.export_cmd import OPSETS as CLI_OPSETS
from convscope.data import load
from convscope.errors import ConfigError, SettingWarning
from convscope.training import RunError
from convscope.training.export import OPSETS, ExportError, earlier_export, export_onnx
from tests.conftest import run_cli

pytest.importorskip("onnxruntime")


class BatchDependent(nn.Module):
    """The run's model, but a batch of exactly 2 (the exporter's example) is centred across the batch."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        y = self.net(x)
        return y - y.mean(0, keepdim=True) if x.shape[0] == 2 else y


class DataDependent(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        y = self.net(x)
        if y.sum() > 0:   # a branch on the values: torch.export cannot trace it
            return y
        return -y


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Path:
    """A run trained at lr 1e8: its weights overflow, so its scores are NaN (checked, not assumed)."""
    path = tmp_path_factory.mktemp("diverged") / "run"
    with pytest.warns(SettingWarning):   # "lr 1e+08 is far above the usual range": the user goes ahead
        run = convscope.train({"model": "fast", "model_args": {"width": 8}, "train_subset": 256, "epochs": 1,
                               "batch_size": 64, "lr": 1e8, "schedule": "constant", "threads": 1,
                               "deterministic": True}, out=path, progress=False)
    images = load("digits", "test").images[:4]
    assert not torch.isfinite(run.logits(run.preprocess(images))).all()
    return path


def test_a_diverged_runs_export_is_refused_not_checked_as_identical(diverged, tmp_path):
    run = convscope.load_run(diverged)
    target = tmp_path / "d.onnx"
    with pytest.raises(ExportError, match=r"NaN or infinite scores.*nothing was written to"):
        export_onnx(run, target)
    assert not target.exists() and not list(tmp_path.iterdir())


def test_predict_refuses_a_diverged_runs_nan_scores_and_writes_nothing(diverged, tmp_path):
    from PIL import Image

    img = tmp_path / "digit.png"
    Image.fromarray(load("digits", "test").images[0, 0].numpy()).save(img)
    r = run_cli("predict", str(diverged), str(img), "--show")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nan%" not in r.stdout, (r.stdout, r.stderr)
    assert "holds NaN or infinite scores" in r.stderr and "digit.png" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png"]


def test_predict_writes_no_prepared_picture_when_a_later_image_fails(small_run, tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(load("digits", "test").images[0, 0].numpy()).save(good)
    (tmp_path / "empty.png").write_bytes(b"")
    r = run_cli("predict", str(small_run.path), str(good), str(tmp_path / "empty.png"), "--show")
    assert r.returncode == 2 and "empty.png" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.png", "good.png"]


def test_a_users_file_that_mentions_a_convscope_run_is_never_replaced(small_run, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("My notes: a convscope run of fast2 got 99%.\n")
    with pytest.raises(ConfigError, match="exists and is not an ONNX file an earlier convscope export wrote"):
        export_onnx(small_run, notes, check=False)
    assert notes.read_text() == "My notes: a convscope run of fast2 got 99%.\n"
    first = export_onnx(small_run, tmp_path / "m.onnx", check=False).path   # a real earlier export: replaced
    assert earlier_export(first.read_bytes()[:4096])
    assert export_onnx(small_run, first, input="normalized", check=False).input_name == "input"


def test_a_forward_that_depends_on_the_batch_size_is_refused_not_exported_with_a_fixed_batch(small_run, tmp_path):
    run = dataclasses.replace(small_run, model=BatchDependent(small_run.model))
    with pytest.raises(ExportError, match="batch axis fixed at 2"):
        export_onnx(run, tmp_path / "b.onnx", check=False)
    assert not list(tmp_path.iterdir())


def test_a_data_dependent_branch_gives_one_line_naming_the_models_line(small_run, tmp_path, capfd):
    run = dataclasses.replace(small_run, model=DataDependent(small_run.model))
    with pytest.raises(ExportError) as e:
        export_onnx(run, tmp_path / "d.onnx", check=False)
    text = str(e.value)
    assert "\x1b" not in text and "\n" not in text
    assert f"at {__file__} line " in text and "in forward: `if y.sum() > 0:" in text
    err = capfd.readouterr().err
    assert "def forward" not in err and "symbolic_shapes" not in err, err[:2000]   # no graph dump, no torch logs
    assert not list(tmp_path.iterdir())


def test_weights_changed_in_memory_are_not_recorded_as_the_runs_file_and_modes_come_back(small_run, tmp_path):
    model = copy.deepcopy(small_run.model)
    run = dataclasses.replace(small_run, model=model)
    assert export_onnx(run, tmp_path / "a.onnx", check=False).metadata["convscope.weights_sha256"] == \
        small_run.meta["sha256"]["model.safetensors"]
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    model.train()
    held = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][0]
    held.eval()
    meta = export_onnx(run, tmp_path / "b.onnx", check=load("digits", "test")).metadata
    assert "convscope.weights_sha256" not in meta and "changed in memory" in meta["convscope.weights"]
    assert model.training and not held.training


def test_a_legal_name_of_255_bytes_is_written(tmp_path):
    for name in ("b" * (NAME_MAX - 5) + ".onnx", "é" * ((NAME_MAX - 5) // 2) + ".onnx"):
        atomic_write_bytes(tmp_path / name, b"x")
        assert (tmp_path / name).read_bytes() == b"x"
    assert sorted(len(os.fsencode(p.name)) for p in tmp_path.iterdir()) == [NAME_MAX, NAME_MAX]


def test_an_interrupted_run_says_how_to_finish_it(small_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    (run / "model.json").unlink()                           # what a Ctrl-C before the end leaves: a checkpoint
    assert (run / "checkpoint.safetensors").is_file()
    with pytest.raises(RunError, match=rf"it is still training, or it was stopped before it finished; a stopped run "
                                       rf"finishes with `convscope train --resume {run}`"):
        convscope.load_run(run)


def test_the_cli_names_onnx_and_checks_the_path_before_the_export(small_run, tmp_path):
    run = str(small_run.path)
    cases = {(run, "--onnx", run): f"--onnx: {run} is a folder",
             (run, "--onnx", str(tmp_path / "out") + "/"): "names a folder (it ends with a slash)",
             (run, "--onnx", "-"): "--onnx: expected a file path",
             (run, "--onnx", "/proc/x.onnx"): "--onnx /proc/x.onnx: cannot write in the folder /proc",
             (run, "--onnx", str(tmp_path / "m.onnx"), "--no-check", "--split", "train"):
                 "--split chooses the data the export is checked on, and --no-check runs no check"}
    for args, words in cases.items():
        r = run_cli("export", *args)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = run_cli("export", run, "--onnx", str(tmp_path / "m.onnx"), "--opset", "0")
    assert r.returncode == 2 and f"must be [{OPSETS[0]}, {OPSETS[1]}], got 0" in r.stderr
    assert CLI_OPSETS == OPSETS
    assert not list(tmp_path.iterdir())


def test_only_a_real_exports_protobuf_fields_mark_it_replaceable(small_run, tmp_path):
    real = export_onnx(small_run, tmp_path / "m.onnx", check=False).path.read_bytes()[:4096]
    assert earlier_export(real)
    for fake in (b"\x08 notes: 2 convscope run foo", b"convscope run ", b"\x08\x0a\x3a\x0econvscope run x",
                 real[:20]):
        assert not earlier_export(fake), fake


def test_a_convscope_0_1_run_exports_with_its_files_digest(tmp_path):
    """0.1's weights have numeric keys, renamed at load: the export still records the file's SHA-256."""
    run = convscope.load_run(Path(__file__).parents[1] / "fixtures" / "v0.1" / "finished-run")
    meta = export_onnx(run, tmp_path / "old.onnx", check=False).metadata
    assert meta["convscope.weights_sha256"] == run.meta["sha256"]["model.safetensors"]


def test_a_failed_export_leaves_no_folder_it_made(diverged, tmp_path):
    r = run_cli("export", str(diverged), "--onnx", str(tmp_path / "nf" / "deep" / "x.onnx"))
    assert r.returncode == 2 and "nothing was written" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


def test_resume_clears_a_killed_tensorboard_conversions_folder(tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "--model", "mlp", "--train-subset", "256", "--epochs", "2", "--batch-size", "64",
                "--threads", "1", "--out", str(run))
    assert r.returncode == 0, r.stderr
    (run / "model.json").unlink()                       # as if stopped before the end
    (run / ".tensorboard.part").mkdir()                 # what a kill -9 of `convscope tensorboard RUN` leaves
    (run / ".tensorboard.part" / "events.out.tfevents.1").write_bytes(b"x")
    r = run_cli("train", "--resume", str(run), "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert not (run / ".tensorboard.part").exists() and (run / "model.json").exists()
