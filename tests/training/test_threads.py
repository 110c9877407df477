"""torch's threads for one piece of work (convscope.training.threads, issue 26): the one primitive behind training,
the inspection commands, serve, refine and the benchmark. Each decision is tested from injected inputs (other
programs' running threads, the environment), the setting and its restoring on the real torch, and the wiring
through real subprocesses pinned to one CPU (``os.sched_setaffinity``), where the machine's load cannot change
the answer: no timing, no busy loop beside the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from convscope import _cpus
from convscope.errors import ConfigError
from convscope.training.threads import cpu_threads, start_count

ROOT = Path(__file__).resolve().parents[2]
LIMIT = _cpus.cpu_limit()
NO_ENV: dict[str, str] = {}                 # a user who fixed nothing in the environment


@pytest.fixture
def torch_threads():
    """torch's thread count as the test found it, given back afterwards whatever the test did."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_an_explicit_count_wins_over_the_environment_and_the_load():
    assert start_count(3, environ={"OMP_NUM_THREADS": "1"}, others=[9, 9]) == 3


def test_the_users_omp_or_mkl_num_threads_leave_torch_alone():
    assert start_count(None, environ={"OMP_NUM_THREADS": "2"}, others=[0]) is None
    assert start_count(None, environ={"MKL_NUM_THREADS": "1"}, whole=True) is None
    assert start_count(None, environ={"OMP_NUM_THREADS": " "}, others=[0]) == LIMIT     # blank: not a choice
    assert start_count(None, environ={"OMP_NUM_THREADS": "2,1"}, others=[0]) is None      # OpenMP's list form
    for invalid in ("0", "-1", "abc", "\u0661"):   # libgomp: "Invalid value", torch's default: convscope chooses
        assert start_count(None, environ={"OMP_NUM_THREADS": invalid}, others=[0]) == LIMIT, invalid


def test_the_load_aware_count_leaves_the_cpus_other_programs_keep_busy():
    assert start_count(None, environ=NO_ENV, others=[0, 0, 0]) == LIMIT
    assert start_count(None, environ=NO_ENV, others=[1, 1, 1, 1, 1]) == max(1, LIMIT - 1)
    assert start_count(None, environ=NO_ENV, others=[LIMIT + 5] * 5) == 1                 # never below one
    assert start_count(None, environ=NO_ENV, whole=True, others=[LIMIT + 5]) == LIMIT     # whole: not the load
    assert 1 <= start_count(None, environ=NO_ENV) <= LIMIT                                # the real machine, looked at


def test_the_count_is_set_inside_and_the_callers_comes_back(torch_threads):
    torch.set_num_threads(2)
    with cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with cpu_threads(None, environ=NO_ENV, others=[LIMIT + 5] * 5) as n:                  # every CPU busy
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with cpu_threads(None, environ={"OMP_NUM_THREADS": "1"}) as n:                         # the user's: untouched
        assert n == 2 and torch.get_num_threads() == 2


def test_the_callers_count_comes_back_after_an_exception_and_after_a_change_inside(torch_threads):
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="the work failed"), cpu_threads(1):
        raise RuntimeError("the work failed")
    assert torch.get_num_threads() == 2
    with cpu_threads(None, environ={"OMP_NUM_THREADS": "2"}):
        torch.set_num_threads(1)            # what CpuShare does between steps
    assert torch.get_num_threads() == 2


# ---- the wiring, in real processes --------------------------------------------------------------------------------

MODEL = """
    import torch
    from torch import nn

    class Net(nn.Module):       # records the thread count each forward runs on, one line per forward
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 3, 3)
            self.fc = nn.Linear(3, 10)

        def forward(self, x):
            with open(__file__ + ".threads", "a") as f:
                f.write(f"{torch.get_num_threads()}\\n")
            return self.fc(torch.relu(self.c1(x)).mean((2, 3)))
    """

_MAIN = """
    import json, os, torch
    if {PIN}:
        os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})   # one CPU, as `taskset -c N` gives
    torch.set_num_threads(2)                                         # the caller's count, whatever the CPUs
    from convscope.cli import main
    rc = main({ARGS!r})
    print(json.dumps({{"rc": rc, "after": torch.get_num_threads()}}))
    """


def _main(args: list[str], pin: bool, env: dict[str, str]) -> dict:
    """``convscope.cli.main(args)`` in a fresh interpreter whose torch runs 2 threads (pinned to one CPU when
    ``pin``): its exit status and torch's count afterwards."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = textwrap.dedent(_MAIN.format(PIN=pin, ARGS=args))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**clean, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **env})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_an_inspection_command_runs_its_model_on_the_chosen_count_and_restores_the_callers(tmp_path):
    """``convscope sparsity`` on a model file that records the thread count of each forward. The caller's torch
    runs 2 threads; the command's forwards run on: ``--threads 1``; the one CPU the process may use when pinned
    (the load-aware count, not torch's 2); the user's OMP_NUM_THREADS=2 even when pinned (the user's choice
    wins). The caller's 2 comes back every time."""
    from safetensors.torch import save_file

    (tmp_path / "net.py").write_text(textwrap.dedent(MODEL))
    sys.path.insert(0, str(tmp_path))
    try:
        import net
    finally:
        sys.path.pop(0)
    save_file(net.Net().state_dict(), tmp_path / "w.safetensors")
    seen = tmp_path / "net.py.threads"
    base = ["sparsity", "--model-file", f"{tmp_path / 'net.py'}:Net", "--weights", str(tmp_path / "w.safetensors"),
            "--limit", "40", "--layers", "c1", "--quiet", "--out", str(tmp_path / "out")]
    for args, pin, env, expected in ((["--threads", "1"], False, {}, 1), ([], True, {}, 1),
                                     ([], True, {"OMP_NUM_THREADS": "2"}, 2)):
        seen.unlink(missing_ok=True)
        out = _main(base + args, pin, env)
        counts = {int(line) for line in seen.read_text().split()}
        assert out == {"rc": 0, "after": 2} and counts == {expected}, (args, pin, env, counts)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
@pytest.mark.parametrize("omp, warned", [("2", True), ("1", False)])
def test_the_users_omp_num_threads_above_the_cpus_it_may_use_is_honoured_with_a_warning(omp, warned):
    """Pinned to one CPU with OMP_NUM_THREADS=2 (torch caps the variable by the machine's CPUs, not by the
    affinity mask): the user's 2 threads stay, since the user chose them, but a warning says that they will wait
    for each other (2 spinning threads on 1 CPU made a run 33x slower) and how to avoid it."""
    code = textwrap.dedent("""
        import json, os, warnings
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from convscope.training.threads import cpu_threads
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with cpu_threads(None) as n:
                pass
        print(json.dumps({"threads": n, "warnings": [str(w.message) for w in seen]}))
        """)
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**clean, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": omp})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["threads"] == int(omp)
    if warned:
        assert out["warnings"] == [f"OMP_NUM_THREADS={omp}: 2 threads on 1 CPU this process may use (affinity "
                                   "mask / cgroup quota): the threads will wait for each other, which can make "
                                   "every step many times slower; unset it (convscope then counts the free CPUs) "
                                   "or give --threads 1"]
    else:
        assert out["warnings"] == []


def test_an_inspection_command_refuses_more_threads_than_the_cpus_it_may_use(tmp_path):
    from tests.conftest import run_cli

    r = run_cli("edges", "--limit", "10", "--threads", str(LIMIT + 1), "--out", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (f"argument --threads: must be at most {LIMIT} (the CPUs this process may use: affinity mask / cgroup "
            "quota)") in r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad, words", [(0, "must be at least 1, got 0"), (-1, "must be at least 1, got -1"),
                                        (1.5, "whole number"),
                                        (True, "whole number")])
def test_cpu_threads_refuses_what_no_command_would_take(bad, words):
    """The API below the commands refuses what is not a count: 0 is not 'automatic' (None is), and a negative or
    non-integer count never reaches torch; torch's count is untouched."""
    before = torch.get_num_threads()
    with pytest.raises(ConfigError, match=words), cpu_threads(bad):
        pass
    assert torch.get_num_threads() == before
