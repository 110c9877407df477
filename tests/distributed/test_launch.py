"""The launcher's command line, a dead rank stopping its peers with a message, and sharded evaluation.
(`launch` itself runs in test_train_distributed.py, through `convscope train --nproc 2`.)"""

import json
import os
import socket
import subprocess
import sys

import torch

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.distributed.launch import strip_option, torchrun_command
from convscope.models import create_model
from convscope.training.evaluate import evaluate

from .conftest import HERE, torchrun

WORKER = HERE / "_ranks_worker.py"


def test_strip_option_and_command():
    assert strip_option(["train", "--nproc", "2", "--epochs", "1", "--nproc=3"], "--nproc") == \
        ["train", "--epochs", "1"]
    cmd = torchrun_command(2, ["train", "--epochs", "1"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "convscope",
                       "train", "--epochs", "1"]


def test_killed_rank_gives_peers_a_clear_error_without_an_agent(tmp_path):
    """As on several machines (no common agent): plain processes joined through MASTER_ADDR/PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, str(WORKER), "kill", str(tmp_path)],
                              env={**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "RANK": str(r),
                                   "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(2)]
    try:
        errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert procs[1].returncode == -9, errs[1][-2000:]
    assert procs[0].returncode == 0, errs[0][-2000:]
    got = json.loads((tmp_path / "rank0.json").read_text())
    assert "another rank died or stopped answering" in got["error"] and "--resume" in got["error"]
    assert got["seconds"] < 35                               # within the group's 30 s timeout, or sooner


def test_sharded_evaluate_equals_one_process(tmp_path):
    r = torchrun(3, WORKER, "evaluate", tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads((tmp_path / "eval.json").read_text())
    torch.manual_seed(0)
    model = create_model("fast", 1, 28, 10, width=4)
    ref = evaluate(model, load("digits", "test"), Normalization((0.13,), (0.31,)), 300)
    assert got == json.loads(json.dumps({"accuracy": ref.accuracy, "loss": ref.loss, "per_class": ref.per_class,
                                         "n": ref.n, "confusion": ref.confusion.tolist()}))
