"""`convscope train --engine numpy`: the from-scratch layers train LeNet-5, and the run is a normal run."""

import json
import signal
import subprocess
import sys
from pathlib import Path

from convscope.data import load
from convscope.training import load_run
from convscope.training.evaluate import evaluate


LAUNCHER = Path(__file__).parents[1] / "training" / "launcher.py"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=600)


def test_numpy_engine_trains_lenet5_to_97_percent(tmp_path):
    out = tmp_path / "np"
    r = cli("train", "--engine", "numpy", "--model", "lenet5", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.97
    # the exported weights load into the PyTorch model and give the same accuracy (float32 vs float32)
    run = load_run(out)
    torch_acc = evaluate(run.model, load("digits", "test"), run.normalization).accuracy
    assert abs(torch_acc - summary["test_accuracy"]) <= 1 / 2000


def test_numpy_engine_resumes_bit_identically(tmp_path):
    args = ["train", "--engine", "numpy", "--model", "lenet5", "--train-subset", "512", "--batch-size", "64",
            "--epochs", "2", "--checkpoint-every", "3", "--threads", "1", "--quiet", "--conv-algorithm", "im2col"]
    r = cli(*args, "--out", str(tmp_path / "ref"))
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, str(LAUNCHER), "--kill-at", "step:10", "--", *args, "--out",
                        str(tmp_path / "k")], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL
    r = cli("train", "--resume", str(tmp_path / "k"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k/model.safetensors").read_bytes() == (tmp_path / "ref/model.safetensors").read_bytes()


def test_numpy_engine_refuses_what_it_cannot_run(tmp_path):
    r = cli("train", "--engine", "numpy", "--model", "resnet-small", "--out", str(tmp_path / "x"), "--quiet")
    assert r.returncode == 2 and "layer1: Sequential has no NumPy twin" in r.stderr
    r = cli("train", "--engine", "numpy", "--optimizer", "adadelta", "--out", str(tmp_path / "y"), "--quiet")
    assert r.returncode == 2 and "sgd and adam" in r.stderr


def test_numpy_engine_weights_are_those_of_0_1(tmp_path, v0_1):
    """`--deterministic` NumPy training gives bit-for-bit the weights 0.1's own code gives on this machine."""
    from tests.reference_weights import CASES_0_1, digest, recorded_digest, run_v0_1, today

    r = cli(*today("numpy_lenet5"), "--out", str(tmp_path / "np"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_v0_1(v0_1, ["train", *CASES_0_1["numpy_lenet5"]], tmp_path / "v01")
    assert r.returncode == 0, r.stderr
    assert digest(tmp_path / "np") == digest(tmp_path / "v01")
    if (recorded := recorded_digest("numpy_lenet5")) is not None:
        assert digest(tmp_path / "np") == recorded
