"""Issue 16, part B: one process per run directory, with real processes. A second ``convscope train`` on the
same ``--out`` (or ``--resume`` of a run in progress) is refused, naming the holder's PID; a SIGKILLed run's
lock is released by the kernel, so the run resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import convscope
from convscope.training import load_run

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--model", "mlp", "--train-subset", "256", "--batch-size", "32", "--epochs", "1", "--threads", "1",
        "--precision", "fp32", "--no-channels-last", "--translate", "0", "--quiet"]

# A run that stops after its first step until the file GO exists (holding its run directory meanwhile).
HOLDER = """
import sys, time
from pathlib import Path
import convscope
from convscope.training import Callback

out, ready, go = map(Path, sys.argv[1:4])

class Pause(Callback):
    def on_step_end(self, loop, result):
        if loop.step == 1:
            ready.write_text("ready")
            t = time.monotonic()
            while not go.exists() and time.monotonic() - t < 120:
                time.sleep(0.05)

convscope.train(dict(model="mlp", train_subset=256, batch_size=32, epochs=1, threads=1, precision="fp32",
                     translate=0), out=out, progress=False, callbacks=[Pause()])
"""


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    t = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t < seconds, "the holder never got to its first step"
        time.sleep(0.05)


def _epochs(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in lines if m["kind"] == "step"]
    assert steps == sorted(set(steps)), "metrics.jsonl interleaves two runs"
    return [m for m in lines if m["kind"] == "epoch"]


def test_a_second_process_on_a_run_in_progress_is_refused_naming_the_holder(tmp_path):
    out, ready, go = tmp_path / "r", tmp_path / "ready", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, out, ready, go], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, holder)
        for second in (["--out", out, *ARGS], ["--resume", out, "--quiet"]):
            r = cli("train", *second)
            assert r.returncode == 2, r.stderr
            assert f"in use by another convscope process (PID {holder.pid})" in r.stderr, r.stderr
        go.write_text("go")
        _, err = holder.communicate(timeout=300)
        assert holder.returncode == 0, err
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert len(_epochs(out)) == 1 and not (out / ".lock").exists()
    assert load_run(out).summary["epochs"] == 1


def test_two_processes_started_together_on_one_out(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "convscope", "train", "--out", str(out), *ARGS]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results                 # exactly one run; the other is told why
    refused = next(err for rc, err in results if rc == 2)
    assert "in use by another convscope process" in refused or "already holds a run" in refused, refused
    assert len(_epochs(out)) == 1
    load_run(out)


def test_a_killed_run_leaves_a_stale_lock_that_resume_takes_over(tmp_path):
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, str(ROOT / "tests/training/launcher.py"), "--kill-at", "step:3", "--",
                        "train", "--out", str(out), *ARGS], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr                      # SIGKILL: no clean-up ran
    stale = (out / ".lock").read_text().strip()
    assert stale.isdigit() and int(stale) != os.getpid()     # the dead process's PID, lock released by the OS
    r = cli("train", "--resume", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert not (out / ".lock").exists() and len(_epochs(out)) == 1


def test_write_probe_names_are_per_process(tmp_path):
    out = tmp_path / "r"
    (out / ".write-test").mkdir(parents=True)   # what another process's probe (or a leftover) looks like
    run = convscope.train(dict(model="mlp", train_subset=128, batch_size=32, epochs=1, threads=1), out=out,
                          progress=False)   # 4 steps: 2 of onecycle would warn (its first has rate 0)
    assert run.summary["epochs"] == 1 and (out / ".write-test").is_dir()
