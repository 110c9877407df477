"""Distributed training on real processes (torchrun, CPU, gloo): the same run as one process up to the
reduction order, rank-0 files, a checkpoint written by 2 processes resumed by 1 and by 2, a killed rank."""

import json
import shutil
import subprocess
import sys
import time

import pytest

import convscope

from .conftest import HERE, torchrun

WORKER = HERE / "_train_worker.py"
# LeNet-5 has no BatchNorm, so 2 processes compute the 1-process model exactly up to the order of float sums
LENET = {"model": "lenet5", "model_args": {}, "train_subset": 512, "epochs": 2, "batch_size": 64,
         "precision": "fp32", "threads": 1, "log_every": 1, "checkpoint_every": 4}
LOSS_TOL = 1e-5   # per-step loss, absolute; measured: <= 3e-7 (fp32 sums in another order)


def _lines(run, kind):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == kind]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    path = tmp_path_factory.mktemp("one") / "run"
    convscope.train(LENET, out=path, progress=False)
    return path


def test_killed_rank_stops_the_job_and_resume_at_1_and_2_processes_matches_one_process(tmp_path, one_process):
    run = tmp_path / "run"
    t = time.monotonic()
    r = torchrun(2, WORKER, "train", run, json.dumps(LENET), 10, timeout=180)   # rank 1 dies at step 10 of 16
    assert r.returncode != 0
    assert time.monotonic() - t < 150
    assert "exitcode  : -9" in r.stderr or "Signal 9" in r.stderr            # torchrun names the dead rank
    assert not (run / "summary.json").exists()
    assert (run / "checkpoint.safetensors").exists()                          # step 8's, by rank 0
    shutil.copytree(run, tmp_path / "again")

    convscope.resume(run, progress=False)                                     # ... continued by one process
    r = torchrun(2, WORKER, "resume", tmp_path / "again", timeout=180)        # ... and by two
    assert r.returncode == 0, r.stderr[-3000:]

    ref = [x["loss"] for x in _lines(one_process, "step")]
    assert len(ref) == 16
    for path in (run, tmp_path / "again"):
        steps = _lines(path, "step")
        assert [x["step"] for x in steps] == list(range(16))                  # each step logged once (rank 0)
        assert max(abs(a - x["loss"]) for a, x in zip(ref, steps)) < LOSS_TOL
        assert [e["epoch"] for e in _lines(path, "epoch")] == [1, 2]
        acc = json.loads((path / "summary.json").read_text())["test_accuracy"]
        ref_acc = json.loads((one_process / "summary.json").read_text())["test_accuracy"]
        assert abs(acc - ref_acc) <= 2 / 2000                                 # at most 2 of 2,000 test images


def test_cli_nproc_2_with_batchnorm_reaches_the_one_process_accuracy_band(tmp_path):
    """`convscope train --nproc 2`: BatchNorm normalises per process (32 of 64 images), so the curve is not the
    1-process curve, but the accuracy lands in the same band."""
    args = ["train", "--model", "fast", "--model-arg", "width=8", "--train-subset", "1024", "--epochs", "2",
            "--batch-size", "64", "--threads", "1", "--quiet"]
    r = subprocess.run([sys.executable, "-m", "convscope", *args, "--nproc", "2", "--out", str(tmp_path / "two")],
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test accuracy") == 1                               # rank 0 reports
    one = subprocess.run([sys.executable, "-m", "convscope", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=240, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    acc = {k: json.loads((tmp_path / k / "summary.json").read_text())["test_accuracy"] for k in ("one", "two")}
    assert acc["one"] > 0.6 and abs(acc["two"] - acc["one"]) < 0.08, acc
