"""`torchrun --nproc_per_node 2 -m convscope topk RUN --layer relu3` writes the same JSON as one process,
from rank 0 only, and prints once."""

import subprocess
import sys

from .conftest import torchrun


def test_torchrun_topk_cli_equals_single_process(tmp_path, small_run):
    run = small_run.path
    args = ["topk", str(run), "--layer", "relu3", "--k", "4", "--limit", "1200"]
    r = torchrun(2, "-m", "convscope", *args, "--out", tmp_path / "two")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("layer relu3:") == 1                       # rank 0 prints, rank 1 does not
    one = subprocess.run([sys.executable, "-m", "convscope", *args, "--out", str(tmp_path / "one")], check=False,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "two" / "topk-relu3.json").read_bytes() == (tmp_path / "one" / "topk-relu3.json").read_bytes()
