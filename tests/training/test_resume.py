"""Kill-and-resume with a real SIGKILL in a real subprocess, Ctrl-C, and files that must be refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import convscope
from convscope.training import CheckpointError, RunError, load_run
from convscope.training.checkpoint import load_state
from tests.conftest import as_from_a_terminal

# 768 stratified digits, batch 64: 12 steps an epoch, 3 epochs; checkpoints every 5 steps and at epoch ends.
# Dropout, translation and cutout make every RNG matter; diagnostics every 3 steps must not (and must continue
# their file without a duplicate or a gap).
ARGS = ["--model", "mlp", "--train-subset", "768", "--batch-size", "64", "--epochs", "3", "--threads", "1",
        "--deterministic", "--checkpoint-every", "5", "--dropout", "0.2", "--translate", "2", "--cutout", "6",
        "--precision", "fp32", "--no-channels-last", "--quiet", "--diagnose", "3"]


LAUNCHER = Path(__file__).with_name("launcher.py")


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=300,
                          **kw)


def cli_killed_at(point, *args):
    """The command in a fresh process that SIGKILLs itself at ``point`` (see launcher.py)."""
    return subprocess.run([sys.executable, str(LAUNCHER), "--kill-at", point, "--", *args], capture_output=True,
                          text=True, timeout=300)


def _diagnostics(path):
    lines = [json.loads(x) for x in (path / "diagnostics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k != "seconds"} for m in lines]   # time spent legitimately differs


def _epoch_lines(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    drop = {"seconds", "images_per_s"}  # wall-clock figures legitimately differ
    return [{k: v for k, v in m.items() if k not in drop} for m in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli("train", *ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("fault", ["step:3", "step:17", "write:checkpoint.safetensors:4",
                                   "write:checkpoint.safetensors:1", "write:model.safetensors:1"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference, fault):
    out = tmp_path / "run"
    r = cli_killed_at(fault, "train", *ARGS, "--out", str(out))
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    assert not (out / "model.json").exists()
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _epoch_lines(out) == _epoch_lines(reference)
    assert _diagnostics(out) == _diagnostics(reference)
    assert [d["step"] for d in _diagnostics(out)[1:]] == list(range(0, 36, 3))
    assert not list(out.glob(".*.part"))


def test_kill_at_a_random_moment(tmp_path, reference):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "train", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_save_and_exit_cleanly(tmp_path, reference, sig):
    """Ctrl-C, and SIGTERM (kill, systemd, batch schedulers): the run saves at the step's end and exits with the
    shell's code for the signal; --resume finishes it bit-identical to an uninterrupted run."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "train", *ARGS, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    # the signal lands right after the first step is logged; the run has 36 steps left, so it is always mid-run
    assert proc.returncode == 128 + sig and "checkpoint saved" in err and f"--resume {out}" in err
    assert signal.Signals(sig).name in err
    assert "Traceback" not in err
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def test_ctrl_c_ignored_by_the_parent_stays_ignored(tmp_path, reference):
    """A script's background job (``convscope train &``) starts with Ctrl-C ignored, so that the script's Ctrl-C
    leaves it running: the run must not take that Ctrl-C as its own (it used to stop and save), and trains to the
    end as if none came."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "train", *ARGS, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "SIGINT" not in err, (proc.returncode, err)
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def cli_signalled_at(point, sig, *args, times=1):
    """The command, through `convscope.cli.main`, in a fresh process that sends itself ``sig`` at ``point``."""
    return subprocess.run([sys.executable, str(LAUNCHER), "--kill-at", point, "--signal", sig.name[3:],
                           "--times", str(times), "--", *args], capture_output=True, text=True, timeout=300)


def test_ctrl_c_while_torch_loads_stops_cleanly(tmp_path):
    """Ctrl-C inside torch's own import of NumPy (torch only warns when that import fails): the command used to go
    on with a half-loaded NumPy, then crash with chained ImportErrors or train to the end ignoring Ctrl-C."""
    r = cli_signalled_at("import:numpy", signal.SIGINT, "train", *ARGS, "--out", str(tmp_path / "run"))
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "SIGINT while starting" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_last_epochs_end_stops_there_with_a_checkpoint(tmp_path, reference, sig):
    """The signal lands while the last epoch's checkpoint is written (after its evaluation): the run stops there,
    saved, with the signal's exit status, rather than finishing as if nothing came; --resume completes it."""
    out = tmp_path / "run"
    # checkpoints of ARGS' 36 steps: one before the first step, every 5 steps and at each 12-step epoch's end
    last = 1 + len({*range(5, 36, 5), 12, 24, 36})
    r = cli_signalled_at(f"write:checkpoint.safetensors:{last}", sig, "train", *ARGS, "--out", str(out))
    assert r.returncode == 128 + sig, (r.returncode, r.stderr)
    assert f"{sig.name} at step 36; checkpoint saved" in r.stderr and "Traceback" not in r.stderr
    assert not (out / "model.safetensors").exists()
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _epoch_lines(out) == _epoch_lines(reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_results_are_written_waits_for_them(tmp_path, reference, sig):
    """Ctrl-C or SIGTERM during the final writes: they finish first (before: no weights, no summary, and after
    SIGTERM a stale lock and no message), then the command says so and exits with the signal's status."""
    out = tmp_path / "run"
    r = cli_signalled_at("write:model.safetensors:1", sig, "train", *ARGS, "--out", str(out))
    assert r.returncode == 128 + sig, (r.returncode, r.stderr)
    assert f"{sig.name} while the run wrote its results; they were written first: {out} is complete" in r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert (out / "summary.json").exists() and (out / "curve.png").exists() and not (out / ".lock").exists()
    assert load_run(out).summary["test_accuracy"] == load_run(reference).summary["test_accuracy"]


def test_resume_keeps_whole_lines_when_the_metrics_file_lost_its_end(tmp_path, reference):
    """A crash can lose the end of metrics.jsonl (fsynced checkpoints, unsynced logs): the resumed run keeps its
    whole lines and says what is missing; cutting to the recorded length used to pad the file with NUL bytes."""
    out = tmp_path / "run"
    r = cli_killed_at("step:17", "train", *ARGS, "--out", str(out))
    assert r.returncode == -signal.SIGKILL, r.stderr
    metrics = out / "metrics.jsonl"
    data = metrics.read_bytes()
    metrics.write_bytes(data[:-30])                      # the checkpoint (step 15) recorded more than this
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "metrics.jsonl: " in r.stderr and "bytes shorter than when the checkpoint was saved" in r.stderr
    text = metrics.read_text()
    assert "\0" not in text
    lines = [json.loads(x) for x in text.splitlines()]   # every line whole
    assert lines[-1]["kind"] == "epoch" and lines[-1]["step"] == 36
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def test_a_second_ctrl_c_stops_at_once_and_says_what_was_not_saved(tmp_path, reference):
    """Two Ctrl-Cs, the second while the step's checkpoint is being written: out at once (that write abandoned,
    the previous checkpoint intact), saying so; --resume continues from the previous checkpoint."""
    out = tmp_path / "run"
    r = cli_signalled_at("write:checkpoint.safetensors:3", signal.SIGINT, "train", *ARGS, "--out", str(out), times=2)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "SIGINT twice: stopped at once, without saving the step it was in" in r.stderr
    assert f"--resume {out}" in r.stderr and "Traceback" not in r.stderr
    assert load_state(out / "checkpoint.safetensors")["loop"]["step"] == 5 and not list(out.glob(".*.part"))
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("module", ["convscope.training.engines.torch", "sympy"])
def test_a_signal_during_set_up_stops_it_whole_and_leaves_no_run_folder(tmp_path, sig, module):
    """The set-up (threads, data, model, optimizer) runs with the signals held, then stops before the first step.
    ``sympy``: --deterministic loads torch's compiler config, where a Ctrl-C inside the import left modules
    half-loaded and the clean-up failed with a traceback; a SIGTERM killed the process and left a folder holding
    only its lock."""
    out = tmp_path / "run"
    r = cli_signalled_at(f"import:{module}", sig, "train", *ARGS, "--out", str(out))
    assert r.returncode == 128 + sig, (r.returncode, r.stderr)
    assert f"{sig.name} during the set-up; stopped before the first step; nothing was kept" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_a_signal_during_a_resumes_set_up_leaves_the_run_as_it_was(tmp_path, reference):
    out = tmp_path / "run"
    assert cli_killed_at("step:17", "train", *ARGS, "--out", str(out)).returncode == -signal.SIGKILL
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != ".lock"}
    r = cli_signalled_at("import:convscope.training.engines.torch", signal.SIGTERM, "train", "--resume", str(out))
    assert r.returncode == 143, (r.returncode, r.stderr)
    assert f"SIGTERM during the set-up; stopped before training; the run is as it was: continue with convscope " \
           f"train --resume {out}" in r.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != ".lock"} == before
    assert cli("train", "--resume", str(out), "--quiet").returncode == 0
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def test_resume_refuses_a_run_whose_checkpoint_is_gone(tmp_path):
    """Steps were trained but checkpoint.safetensors is gone: starting again from step 0 under the same name, as
    resume did, would pass a restarted run off as a continued one."""
    out = tmp_path / "run"
    r = cli_killed_at("step:17", "train", *ARGS, "--out", str(out))
    assert r.returncode == -signal.SIGKILL, r.stderr
    (out / "checkpoint.safetensors").unlink()
    metrics = (out / "metrics.jsonl").read_bytes()
    r = cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 2, r.stderr
    # the last line before the kill: epoch 1's, at step 12 (step lines come every 10 steps)
    assert "checkpoint.safetensors is missing, but metrics.jsonl records training up to step 12" in r.stderr
    assert f"Delete {out / 'metrics.jsonl'} to train it again from the start" in r.stderr
    assert (out / "metrics.jsonl").read_bytes() == metrics                  # nothing touched
    (out / "metrics.jsonl").unlink()
    assert cli("train", "--resume", str(out), "--quiet").returncode == 0


def test_resuming_a_finished_run_just_loads_it(reference):
    r = cli("train", "--resume", str(reference), "--quiet")
    assert r.returncode == 0 and "test accuracy" in r.stdout


def _copy_run(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_tampered_weights_refused(tmp_path, reference):
    run = _copy_run(reference, tmp_path / "r")
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-5] ^= 0x01                                   # one bit of one weight
    (run / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: SHA-256"):
        load_run(run)


def test_truncated_weights_refused(tmp_path, reference):
    run = _copy_run(reference, tmp_path / "r")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_run(run)


def test_pickle_weights_refused_without_unpickling(tmp_path, reference):
    run = _copy_run(reference, tmp_path / "r")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, run / "model.safetensors")
    meta = json.loads((run / "model.json").read_text())
    from convscope.training.checkpoint import sha256_file

    meta["sha256"]["model.safetensors"] = sha256_file(run / "model.safetensors")  # even with a matching hash
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="pickle"):
        load_run(run)
    assert not marker.exists()


def test_tampered_and_truncated_checkpoints_refused(tmp_path, reference):
    ck = reference / "checkpoint.safetensors"
    data = bytearray(ck.read_bytes())
    bad = tmp_path / "tampered.safetensors"
    data[-3] ^= 0x10
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_state(bad)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_state(cut)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a convscope checkpoint"):
        load_state(foreign)


def test_unwritable_run_directory_is_an_error(tmp_path, tiny):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match="cannot write the run directory"):
        convscope.train(tiny, out=blocker / "run", progress=False)


def test_full_disk_is_an_error_not_a_silent_success(tmp_path):
    # RLIMIT_FSIZE makes every write past 40 KB fail with EFBIG, as a full disk fails with ENOSPC
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))\n"
        "from convscope.cli import main\n"
        f"sys.exit(main(['train', '--model', 'lenet5', '--epochs', '1', '--train-subset', '256', '--quiet', "
        f"'--out', {str(tmp_path / 'run')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "cannot save the checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "model.json").exists()


def test_existing_run_is_not_overwritten(tmp_path, reference):
    r = cli("train", "--out", str(reference), "--quiet")
    assert r.returncode == 2 and "already holds a run" in r.stderr


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to record threads=2")
def test_resume_on_fewer_cpus_uses_the_cpus_it_may_use(tmp_path):
    """A run recorded with threads=2, resumed under `taskset -c 0`: it warns and trains with 1 thread (2 spinning
    threads on 1 CPU made a resumed run 33x slower), and config.json records the count that ran."""
    out = tmp_path / "run"
    args = [("2" if prev == "--threads" else a) for prev, a in zip([None, *ARGS[:-1]], ARGS, strict=True)]
    r = cli_killed_at("step:17", "train", *args, "--out", str(out))
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    assert json.loads((out / "config.json").read_text())["runtime"]["threads"] == 2
    r = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "convscope", "train", "--resume", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "recorded threads=2, but this process may use 1 CPU" in r.stderr and "--threads N" in r.stderr
    assert json.loads((out / "config.json").read_text())["runtime"]["threads"] == 1
    assert json.loads((out / "summary.json").read_text())["threads"] == 1


def test_resume_takes_threads_and_checks_them(tmp_path, reference):
    """--threads is how a run uses the machine, not what it trains: --resume accepts it, bounded like train's."""
    out = tmp_path / "run"
    r = cli_killed_at("step:17", "train", *ARGS, "--out", str(out))
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    too_many = len(os.sched_getaffinity(0)) + 1
    r = cli("train", "--resume", str(out), "--threads", str(too_many))
    assert r.returncode == 2 and "--threads" in r.stderr and f"got {too_many}" in r.stderr, r.stderr
    r = cli("train", "--resume", str(out), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
