"""Issue 28, class 4 continued: training settings judged against the data they train on (refused when they
cannot make sense on images of that size, warned about when merely unusual), and config values from a file
named by their file, as flags are named by their flag."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.errors import ConfigError, SettingWarning, warnings_in_words
from convscope.training import resume, train
from convscope.training.config import config_from_dict, read_config_file
from convscope.training.setup import prepare

from .conftest import refused

SMALL = {"train_subset": 200, "batch_size": 50}   # 20 digits per class: loading, not training


def _folder(root: Path, size: int, classes=("a", "b"), n: int = 4) -> str:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return f"folder:{root}"


@pytest.mark.parametrize("values, words", [
    ({"translate": 1000}, ["translate: a shift of up to 1000 px on 28x28 images", "give 0 to 13 px"]),
    ({"translate": 14}, ["translate: a shift of up to 14 px", "give 0 to 13 px"]),
    ({"cutout": 28}, ["cutout: a 28 px square on 28x28 images can erase the whole image", "give 0 to 27 px"]),
    ({"cutout": 100}, ["cutout: a 100 px square", "give 0 to 27 px"]),
    ({"scale": 10.0}, ["scale: a zoom by up to 11x on 28x28 images shrinks an image to 2.5 px", "give 0 to 6 "]),
    ({"aspect": 10.0, "scale": 3.0}, ["aspect: a stretch by up to 11x with a zoom by up to 4x on 28x28 images",
                                      "leaves 2.1 px across; give 0 to 2.06 "]),
    ({"rotate": 120.0}, ["rotate: rotations of up to 120 degrees on dataset 'digits' give 6s and 9s the same",
                         "give 0 to 90 degrees"]),
])
def test_augmentations_that_cannot_make_sense_on_28_px_digits_are_refused(values, words):
    with pytest.raises(ConfigError) as info:
        prepare(config_from_dict({**SMALL, **values}))
    assert all(w in str(info.value) for w in words), str(info.value)
    assert info.value.arg == ("aspect" if "aspect" in values else next(iter(values)))


def test_the_largest_valid_values_pass_and_warn_about_nothing():
    # the hand-computed edges on 28 px: shift 13 keeps the centre inside; cutout 27 leaves a row; a 7x zoom
    # leaves 4 px, and with a 4x zoom a stretch of 1 + 2.06 ((28 / 4 / 4) ** 2 = 3.06); 90 degrees only touch
    # (a 6 at +90 is a 9 at -90, a single angle)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values in ({"translate": 13}, {"cutout": 27}, {"scale": 6.0}, {"aspect": 2.06, "scale": 3.0},
                       {"rotate": 90.0}):
            cfg, _ = prepare(config_from_dict({**SMALL, **values}))
            assert all(cfg.flat()[k] == v for k, v in values.items())


def test_the_limits_follow_the_image_size(tmp_path):
    tiny = _folder(tmp_path / "d8", 8)                                   # 8x8 images: shifts up to 3 px
    with pytest.raises(ConfigError, match=r"translate: a shift of up to 4 px on 8x8 images.*give 0 to 3 px"):
        prepare(config_from_dict({"dataset": tiny, "translate": 4, "batch_size": 8}))
    assert prepare(config_from_dict({"dataset": tiny, "translate": 3, "batch_size": 8}))[0].augment.translate == 3
    # a dataset default is never refused: 4x4 images keep the generic default shift of 2
    small = _folder(tmp_path / "d4", 4)
    assert prepare(config_from_dict({"dataset": small, "batch_size": 8}))[0].augment.translate == 2
    # rotations past 90 degrees are refused only where they swap labels (6 and 9), not on other data
    assert prepare(config_from_dict({"dataset": tiny, "rotate": 180.0, "batch_size": 8}))[0].augment.rotate == 180


@pytest.mark.parametrize("values, words", [
    ({"train_subset": 3, "batch_size": 3}, "train_subset 3 is fewer images than the 10 classes: only 3 classes"),
    ({"train_subset": 10, "val_fraction": 0.5, "batch_size": 5}, "only 5 of the 10 classes have a training image"),
    ({"train_subset": 9000, "batch_size": 64}, "train_subset 9000 is more than the 8000 training images"),
    ({"train_subset": 100, "batch_size": 128}, "batch_size 128 is larger than the training set (100 images)"),
    ({**SMALL, "schedule": "cosine", "epochs": 4, "warmup_epochs": 2.0}, "warmup_epochs 2 is half or more of the run"),
    ({**SMALL, "epochs": 4, "warmup_epochs": 1.0}, "warmup_epochs 1 has no effect with the onecycle schedule"),
    ({**SMALL, "momentum": 0.995}, "momentum 0.995 is above 0.99: SGD then averages the gradients of about 200 steps"),
    ({**SMALL, "optimizer": "adam", "lr": 0.1}, "lr 0.1 is far above the usual range of adam (1e-06 to 0.03)"),
    ({**SMALL, "optimizer": "sgd", "lr": 1e-6}, "lr 1e-06 is far below the usual range of sgd"),
    ({**SMALL, "optimizer": "adadelta", "lr": 100.0}, "lr 100 is far above the usual range of adadelta"),
    ({**SMALL, "lr": 0.0}, "lr 0: the weights never change"),
    # one step of onecycle has rate 0: the model stays as initialised (--lr 1e10 then scores as --lr 0 does)
    ({"train_subset": 200, "epochs": 1}, "a onecycle run of 1 step (200 images, batch_size 256, 1 epoch): its "
                                         "first step has learning rate 0"),
    ({"train_subset": 100, "batch_size": 50, "epochs": 1}, "a onecycle run of 2 steps"),
    # options the run cannot use
    ({**SMALL, "model": "lenet5", "engine": "numpy", "precision": "bf16"}, "precision bf16: the numpy engine"),
    ({**SMALL, "conv_algorithm": "fft"}, "conv_algorithm fft: only the numpy engine"),
])
def test_unusual_settings_are_warned_about_in_words_and_the_run_goes_on(values, words):
    with pytest.warns(SettingWarning) as record:
        cfg, _ = prepare(config_from_dict(values))
    assert any(words in str(w.message) for w in record), [str(w.message) for w in record]
    assert cfg.flat()["lr"] == values.get("lr", 0.1)   # nothing is changed behind the user's back


def test_more_threads_than_cores_are_refused_before_the_run(tmp_path):
    from convscope._cpus import cpu_limit

    limit = cpu_limit()   # the real bound on this machine (tests/training/test_cpu_share.py pins it to 1 and 2)
    with pytest.raises(ConfigError, match=rf"^threads: must be at most {limit} \(the CPUs this process may use: "
                                          r"affinity mask / cgroup quota\), got 1000: more threads than CPUs"):
        train({**SMALL, "threads": 1000}, out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    assert prepare(config_from_dict({**SMALL, "threads": limit}))[0].runtime.threads == limit


def test_usual_settings_and_the_recipes_warn_about_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingWarning)
        for values in ({**SMALL, "momentum": 0.99}, {**SMALL, "optimizer": "adam", "lr": 1e-3}, {**SMALL, "epochs": 1},
                       {**SMALL, "model": "lenet5", "engine": "numpy", "conv_algorithm": "fft"},
                       {**SMALL, "schedule": "cosine", "epochs": 4, "warmup_epochs": 1.9}, {"train_subset": 10,
                                                                                             "batch_size": 10}):
            prepare(config_from_dict(values))


def test_the_cli_prints_each_warning_once_in_words(capsys):
    with warnings_in_words():
        for _ in range(3):   # a tune study's trials would give the same warning each time
            warnings.warn("lr 20 is far above", SettingWarning, stacklevel=1)
        warnings.warn("batch_size 9 is larger", SettingWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == ["convscope: warning: lr 20 is far above",
                                                    "convscope: warning: batch_size 9 is larger"]


def test_cli_refusals_name_the_flag_or_the_config_file_that_gave_the_value(tmp_path, cli):
    r = cli("train", "--translate", "1000", "--out", tmp_path / "a")
    refused(r, "convscope: error: --translate: a shift of up to 1000 px on 28x28 images", "give 0 to 13 px")
    assert not (tmp_path / "a").exists()
    conf = tmp_path / "c.yaml"
    conf.write_text("augment:\n  cutout: 40\n")
    r = cli("train", "--config", conf, "--out", tmp_path / "b")
    refused(r, f"convscope: error: {conf}: cutout: a 40 px square on 28x28 images", "give 0 to 27 px")
    r = cli("train", "--config", conf, "--cutout", "30", "--out", tmp_path / "b")   # the flag wins: it is named
    refused(r, "convscope: error: --cutout: a 30 px square")
    r = cli("train", "--epochs", "1", "--train-subset", "64", "--batch-size", "128", "--model", "mlp", "--quiet",
            "--out", tmp_path / "w")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("convscope: warning: batch_size 128 is larger than the training set (64 images)") == 1


@pytest.mark.parametrize("name, text", [
    ("e.yaml", "epochs: -1\n"), ("s.yaml", "schedule:\n  epochs: -1\n"), ("e.toml", "epochs = -1\n"),
    ("e.json", '{"epochs": -1}'),
])
def test_range_errors_from_a_config_file_name_the_file_and_the_key(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config_from_dict(read_config_file(path), source=str(path))
    assert str(info.value) == f"{path}: epochs must be at least 1, got -1"


def test_range_errors_from_flags_and_python_name_the_flag_and_the_key(tmp_path, cli):
    refused(cli("train", "--epochs", "0"), "convscope: error: --epochs must be at least 1, got 0")
    refused(cli("train", "--momentum", "1.5"), "convscope: error: --momentum must lie in [0, 1), got 1.5")
    with pytest.raises(ConfigError) as info:
        config_from_dict({"lr": -1})
    assert str(info.value) == "lr must not be negative, got -1.0" and info.value.arg == "lr"


def test_a_bad_value_in_a_recorded_run_config_names_that_file(tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"optim": {"lr": -1.0}}))
    with pytest.raises(ConfigError, match=rf"^{run / 'config.json'}: lr must not be negative"):
        resume(run, progress=False)
    refused(cli("train", "--resume", run), f"{run / 'config.json'}: lr must not be negative")


def test_a_tune_space_and_the_best_config_name_their_files(tmp_path, cli):
    space = tmp_path / "space.yaml"
    space.write_text("epochs:\n  type: int\n  low: -2\n  high: 3\n")
    refused(cli("tune", "--trials", "1", "--space", space, "--out", tmp_path / "study"),
            f"{space}: epochs: -2 is not a valid epochs (int): epochs must be at least 1, got -2")
    # a space whose end a trial would be refused for on these images: refused before the study starts
    space.write_text("scale: {type: float, low: 0.0, high: 3.0}\naspect: {type: float, low: 0.0, high: 3.0}\n")
    refused(cli("tune", "--trials", "1", "--space", space, "--out", tmp_path / "study"),
            f"{space}: scale = 3.0, aspect = 3.0 on this study's data: aspect: a stretch by up to 4x with a zoom by "
            "up to 4x on 28x28 images leaves 3.5 px across")
    assert not (tmp_path / "study").exists()
    best = tmp_path / "best.yaml"   # what `tune` writes, edited by hand: `train --config best.yaml`
    best.write_text("optim:\n  lr: 0.05\n  momentum: 2.0\n")
    refused(cli("train", "--config", best), f"{best}: momentum must lie in [0, 1), got 2.0")
