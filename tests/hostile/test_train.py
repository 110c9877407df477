"""Hostile input to training (issue 16, part B): run names, configs and config files, non-finite options
and results, set-up failures, changed data on resume, logs through a pipe, flips, user models and --nproc. Each
test fails on the code before its fix."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convscope
from convscope.errors import ConfigError, ConvscopeError
from convscope.training import Callback, load_run, resume
from convscope.training.config import FLOAT_KEYS, TrainConfig, config_from_dict, read_config_file
from convscope.runs.rundir import RunError, json_safe, write_json

TINY = dict(model="mlp", train_subset=256, batch_size=64, epochs=1, threads=1, precision="fp32",
            channels_last=False, translate=0, ema=0.0)


def cli(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


class within:
    """Fail if the block runs longer than ``seconds`` (SIGALRM; a hang shows as a failure, not a stuck suite)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self):
        def alarm(signum, frame):
            raise AssertionError(f"still running after {self.seconds} s")

        self.old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)


class StopAt(Callback):
    """Raise at step ``n`` (after the checkpoint of step n - 1): a crashed run, resumable."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_end(self, loop, result) -> None:
        if loop.step == self.n:
            raise RuntimeError("crash for the test")


# ---- 2. run names stay inside --runs-dir ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "../x", "ABSOLUTE", "a/b", "a\\b", "", ".", "..", " "])
def test_run_names_that_leave_the_runs_dir_are_refused(tmp_path, name):
    name = str(tmp_path / "elsewhere") if name == "ABSOLUTE" else name
    runs = tmp_path / "deep" / "runs"
    with pytest.raises(ConfigError, match="name"):
        convscope.train({**TINY, "name": name}, runs_dir=runs, progress=False)
    with pytest.raises(ConfigError, match="name"):
        config_from_dict({"name": name})
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere (tmp_path included)


def test_a_plain_run_name_still_works(tmp_path):
    assert config_from_dict({"name": "my-run.v2_1"}).run_name == "my-run.v2_1"


# ---- 3. YAML bombs and config files that are not config files ---------------------------------------------
BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_quickly(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    with within(10), pytest.raises(ConfigError, match="alias"):
        read_config_file(bomb)
    # through the command, in a process whose address space is capped at 2 GiB: the expansion would need ~4 GB
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
            "from convscope.cli import main; sys.exit(main(sys.argv[1:]))")
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, "train", "--config", bomb, "--out", tmp_path / "r"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "alias" in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - t < 60 and not (tmp_path / "r").exists()


def test_yaml_without_aliases_still_loads(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.05\nmodel_args: {width: 16}\nepochs: 3\n")
    assert read_config_file(f) == {"lr": 0.05, "model_args": {"width": 16}, "epochs": 3}


def test_config_files_that_are_not_config_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)          # 2 MB of comments
    binary = tmp_path / "bin.json"
    binary.write_bytes(bytes(range(256)) * 4)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)                                   # nobody writes: reading it would block forever
    for path, words in [(big, "at most"), (binary, "not UTF-8"), (folder, "directory"), (fifo, "regular file")]:
        with within(10), pytest.raises(ConfigError, match=words) as e:
            read_config_file(path)
        assert str(path) in str(e.value)


def test_corrupt_or_binary_config_json_on_resume(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="crash for the test"):
        convscope.train({**TINY, "checkpoint_every": 1}, out=out, progress=False, callbacks=[StopAt(2)])
    cfg = out / "config.json"
    for content in (b'{"lr": 0.1, "epo', b"\x00\xff\xfe binary \x80", b"[1, 2]", b'{"lr": "fast"}'):
        cfg.write_bytes(content)
        with pytest.raises(ConfigError, match="config.json"):
            resume(out, progress=False)
    cfg.unlink()
    cfg.mkdir()
    with pytest.raises(ConvscopeError, match="config.json"):
        resume(out, progress=False)


# ---- 4. finite numbers only; summary.json without bare NaN -----------------------------------------------
def test_every_float_option_is_listed():
    assert {"lr", "momentum", "weight_decay", "label_smoothing", "ema", "grad_clip", "warmup_epochs", "step_gamma",
            "val_fraction", "dropout", "rotate", "scale", "aspect", "stroke", "blur"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_float_options_are_refused_by_name(key, value):
    with pytest.raises(ConfigError, match=rf"^{key} must be a finite number"):
        config_from_dict({key: value})
    with pytest.raises(ConfigError, match=rf"^{key} must be a finite number"):
        TrainConfig().replace(**{key: value}).validate()


def test_nan_on_the_command_line_and_in_json(tmp_path):
    r = cli("train", "--lr", "nan", "--out", tmp_path / "r")
    assert r.returncode == 2 and "lr must be a finite number" in r.stderr and not (tmp_path / "r").exists()
    f = tmp_path / "c.json"
    f.write_text('{"momentum": NaN}')
    with pytest.raises(ConfigError, match="momentum must be a finite"):
        config_from_dict(read_config_file(f))


def test_json_safe_replaces_nan_and_notes_it(tmp_path):
    summary = {"test_accuracy": 0.1, "test_loss": math.nan, "per_class_accuracy": {"0": math.inf, "1": 0.5},
               "history": [1.0, -math.inf]}
    safe = json_safe(summary)
    assert safe["test_loss"] is None and safe["per_class_accuracy"] == {"0": None, "1": 0.5}
    assert safe["history"] == [1.0, None] and safe["test_accuracy"] == 0.1
    assert safe["non_finite"]["keys"] == ["test_loss", "per_class_accuracy.0", "history[1]"]
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", summary)     # never a bare NaN in a .json file
    write_json(tmp_path / "x.json", safe)
    json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))


class PoisonWeights(Callback):
    """At the last epoch's end, every weight becomes NaN: the final evaluation's loss is NaN."""

    def on_epoch_end(self, loop, record) -> None:
        import torch

        with torch.no_grad():
            for p in loop.model.parameters():
                p.fill_(math.nan)


def test_a_nan_model_writes_a_strict_json_summary(tmp_path):
    run = convscope.train(TINY, out=tmp_path / "r", progress=False, callbacks=[PoisonWeights()])
    text = (tmp_path / "r/summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))
    assert summary["test_loss"] is None and "test_loss" in summary["non_finite"]["keys"]
    assert load_run(run.path).summary["test_loss"] is None


class PoisonAfterLastStep(Callback):
    """After the last training step every weight becomes NaN: the last epoch's evaluation is NaN."""

    def on_step_end(self, loop, result) -> None:
        if loop.step == loop.total_steps:
            PoisonWeights.on_epoch_end(self, loop, None)


def test_a_nan_model_writes_strict_json_metrics(tmp_path):
    convscope.train(TINY, out=tmp_path / "r", progress=False, callbacks=[PoisonAfterLastStep()])
    lines = [json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))
             for line in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    last = [m for m in lines if m["kind"] == "epoch"][-1]
    assert last["test_loss"] is None and "test_loss" in last["non_finite"]["keys"]


# ---- 5. a set-up failure leaves nothing behind -------------------------------------------------------------
def _folder_dataset(root: Path, sizes: dict[str, tuple[int, int]], n: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, (h, w) in sizes.items():
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(d / f"{i}.png")
    return root


@pytest.mark.parametrize("case", ["unknown model", "unknown model argument", "impossible model argument",
                                  "impossible validation fraction", "fixed dropout", "mixed image sizes",
                                  "mixed sizes in one split", "hflip on digits"])
def test_set_up_failures_leave_no_run_behind(tmp_path, case):
    extra = {"unknown model": {"model": "nope"}, "unknown model argument": {"model_args": {"bogus": 1}},
             "impossible model argument": {"model": "fast", "model_args": {"width": -3}},
             "impossible validation fraction": {"train_subset": 20, "val_fraction": 0.99},
             "fixed dropout": {"model": "fast", "dropout": 0.5}, "hflip on digits": {"hflip": True},
             "mixed image sizes": {"dataset": f"folder:{tmp_path / 'data'}", "train_subset": 0},
             "mixed sizes in one split": {"dataset": f"folder:{tmp_path / 'data'}", "train_subset": 0}}[case]
    if case == "mixed image sizes":
        _folder_dataset(tmp_path / "data", {"train": (8, 8), "test": (10, 10)})
    if case == "mixed sizes in one split":
        _folder_dataset(tmp_path / "data", {"train": (8, 8), "test": (8, 8)})
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "data/train/b/odd.png")
    out = tmp_path / "runs" / "r"
    with pytest.raises(ConvscopeError):              # ConfigError, or DataError for the folder's own sizes
        convscope.train({**TINY, **extra}, out=out, progress=False)
    assert not out.exists()
    # a pre-existing folder of the user's keeps its content, and gets nothing of ours
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConvscopeError):
        convscope.train({**TINY, **extra}, out=mine, progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_after_a_set_up_failure_the_same_out_trains(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ConfigError):
        convscope.train({**TINY, "model": "fast", "model_args": {"width": -3}}, out=out, progress=False)
    run = convscope.train(TINY, out=out, progress=False)
    assert run.summary["test_accuracy"] > 0.3 and sorted(p.name for p in out.iterdir())[0] == "checkpoint.safetensors"


# ---- 8. resuming on changed data is refused ----------------------------------------------------------------
def test_resume_refuses_changed_training_data(tmp_path):
    data = _folder_dataset(tmp_path / "data", {"train": (8, 8), "test": (8, 8)}, n=40)
    cfg = {**TINY, "dataset": f"folder:{data}", "train_subset": 0, "batch_size": 8, "epochs": 2,
           "checkpoint_every": 2}
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="crash for the test"):
        convscope.train(cfg, out=out, progress=False, callbacks=[StopAt(3)])
    victim = data / "train" / "a" / "0.png"
    original = victim.read_bytes()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(victim)        # one image edited after the kill
    with pytest.raises(RunError, match="training data differ"):
        resume(out, progress=False)
    victim.write_bytes(original)                                      # restored: the run continues
    run = resume(out, progress=False)
    assert run.summary["epochs"] == 2


# ---- 10. logs through a pipe ------------------------------------------------------------------------------
def test_progress_through_a_pipe_is_one_line_per_epoch(tmp_path):
    # bytes, not text: text mode would turn the bar's carriage returns into newlines
    r = subprocess.run([sys.executable, "-m", "convscope", "train", "--model", "mlp", "--train-subset", "512",
                        "--batch-size", "16", "--epochs", "2", "--threads", "1", "--out", str(tmp_path / "r")],
                       capture_output=True, timeout=300)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err
    epoch_lines = [ln for ln in out.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epoch_lines] == ["1/2", "2/2"]
    assert b"\r" not in r.stderr and len(err) < 2000, err[:500]   # 64 steps, no bar redraws


# ---- 11. flips by default where the dataset allows them ---------------------------------------------------
def test_fashion_mnist_trains_with_flips_and_flip_tta_by_default(tmp_path):
    common = ["--dataset", "fashion-mnist", "--epochs", "1", "--threads", "1", "--quiet", "--model", "mlp"]
    r = cli("train", *common, "--train-subset", "2000", "--out", tmp_path / "on")
    assert r.returncode == 0, r.stderr
    written = json.loads((tmp_path / "on/config.json").read_text())
    assert written["augment"]["hflip"] is True and written["eval"]["tta"] is True
    assert json.loads((tmp_path / "on/model.json").read_text())["tta"] is True
    r = cli("train", *common, "--train-subset", "200", "--no-hflip", "--out", tmp_path / "off")
    assert r.returncode == 0, r.stderr
    written = json.loads((tmp_path / "off/config.json").read_text())
    assert written["augment"]["hflip"] is False and written["eval"]["tta"] is False


# ---- 9. user models --------------------------------------------------------------------------------------
USER_MODELS = '''
import torch
from torch import nn


class NoParams(nn.Module):
    def forward(self, x):
        return torch.relu(x).flatten(1)


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        raise ValueError("boom in my forward")  # line 18
'''


def test_user_models_without_parameters_or_with_their_own_bugs(tmp_path):
    f = tmp_path / "mymodels.py"
    f.write_text(USER_MODELS)
    r = cli("layers", "--model-file", f"{f}:NoParams", "--input-shape", "1x8x8")
    assert r.returncode == 2 and "no parameters" in r.stderr and "StopIteration" not in r.stderr, r.stderr
    r = cli("layers", "--model-file", f"{f}:Raises", "--input-shape", "1x8x8")
    assert r.returncode == 1, r.stderr
    assert "your model raised ValueError: boom in my forward" in r.stderr
    assert f'File "{f}", line 18, in forward' in r.stderr       # the user's frame is shown
    assert "convscope/" not in r.stderr.split("your model raised")[0]   # only the user's frames
    (tmp_path / "bad.py").write_text("class Net(:\n")
    r = cli("layers", "--model-file", f"{tmp_path / 'bad.py'}:Net", "--input-shape", "1x8x8")
    assert r.returncode == 2 and "line 1" in r.stderr and "not valid Python" in r.stderr


# ---- train --nproc (item 31) ----------------------------------------------------------------------------------


def test_nproc_bounds():
    from convscope.cli.launch import check_nproc

    check_nproc(1)
    with pytest.raises(ConfigError, match="--nproc 100000: this machine has"):
        check_nproc(100_000)


@pytest.mark.parametrize("value, match", [("0", "--nproc: must be at least 1"), ("-1", "--nproc: must be at least 1"),
                                          ("1000", "--nproc 1000: this machine has")])
def test_cli_nproc(cli, tmp_path, value, match):
    r = cli("train", "--nproc", value, "--out", tmp_path / "r", "--epochs", "1", "--train-subset", "64", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert match in r.stderr
