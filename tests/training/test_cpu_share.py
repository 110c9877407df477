"""A busy machine (issue 26): the CPUs a run may use (affinity, cgroup quota), the CPUs other programs leave
free, the OpenMP wait policy the CLI sets before torch loads, and the overrides that always win.

Timing is not tested here (bench/busy_machine.py measures it); what is tested is each decision, from the real
/proc and real subprocesses where they run, and from the functions' inputs where a fake machine is needed."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from convscope import _cpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLEAN = {k: v for k, v in os.environ.items() if k not in (*_cpus.WAIT_VARS, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _py(code: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> dict:
    """Run ``code`` in a fresh interpreter (this checkout); it prints one JSON object, returned here."""
    r = subprocess.run([*prefix, sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env={**CLEAN, "PYTHONPATH": ROOT, **(env or {})}, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- the CPU budget from its inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, cpus", [
    ({"cpu_max": "200000 100000"}, 2.0), ({"cpu_max": "150000 100000\n"}, 1.5), ({"cpu_max": "max 100000"}, None),
    ({"cpu_max": "50000"}, 0.5),                                      # period left out: the kernel's 100 ms
    ({"quota_us": "-1", "period_us": "100000"}, None), ({"quota_us": "25000", "period_us": "50000"}, 0.5),
    ({"cpu_max": "garbage"}, None), ({}, None)])
def test_parse_quota_reads_cgroup_v2_and_v1(kwargs, cpus):
    assert _cpus.parse_quota(**kwargs) == cpus


@pytest.mark.parametrize("affinity, quota, limit", [
    ({0, 1, 2, 3}, None, 4), ({0, 1, 2, 3}, 1.5, 2), ({0, 1, 2, 3}, 0.5, 1), ({0, 1}, 8.0, 2), ({3}, None, 1),
    ({0, 1, 2, 3}, 2.0, 2)])
def test_cpu_limit_is_the_affinity_capped_by_the_quota_rounded_up(affinity, quota, limit):
    assert _cpus.cpu_limit(affinity, quota, read=False) == limit


@pytest.mark.parametrize("limit, samples, threads", [
    (2, [], 2),                  # nothing known: every CPU
    (2, [0, 0, 0], 2), (2, [1, 1, 1], 1), (2, [0, 1, 0, 0], 2),     # a brief blip is not a busy machine
    (2, [1, 1, 0, 1], 1), (2, [6, 9], 1),                            # never below one thread
    (4, [1, 1], 3), (16, [2, 3, 2], 14), (1, [0], 1)])
def test_free_cpus_leaves_the_cpus_other_programs_keep_busy(limit, samples, threads):
    assert _cpus.free_cpus(limit, samples) == threads


def test_the_real_machine_is_read():
    quota = _cpus.read_quota()
    assert _cpus.cpu_limit() == min(len(os.sched_getaffinity(0)), math.ceil(quota) if quota else 10**9)
    assert _cpus.runnable_now() >= 1                       # at least this thread, reading it
    assert _cpus.own_runnable() >= 1 and _cpus.others_runnable() >= 0


def test_own_spinning_openmp_threads_are_not_counted_as_other_programs():
    """A process whose OpenMP worker spins at a barrier (OMP_WAIT_POLICY=ACTIVE) sees it as its own running
    thread: 2 of its threads are runnable right after a parallel operator."""
    out = _py("""
        import json, torch
        from convscope import _cpus
        torch.set_num_threads(2)
        x = torch.randn(512, 512)
        counts = []
        for _ in range(20):
            x @ x                           # a parallel region; its worker then spins at the barrier
            counts.append(_cpus.own_runnable())
        print(json.dumps({"max": max(counts)}))
        """, env={"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"})
    assert out["max"] >= 2


# ---- the OpenMP wait policy: set by the CLI before torch loads, a user's choice wins -------------------------------

def test_openmp_env_defaults_set_a_short_spin_only_when_the_user_chose_nothing():
    env: dict[str, str] = {}
    assert _cpus.openmp_env_defaults(env) == {"GOMP_SPINCOUNT": "10000"} and env == {"GOMP_SPINCOUNT": "10000"}
    for var, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000"), ("KMP_BLOCKTIME", "0")):
        env = {var: value}
        assert _cpus.openmp_env_defaults(env) == {} and env == {var: value}


_CLI_ENV = """
    import json, os, sys
    from convscope.cli import main
    main(["models"])                                # a real command; it loads torch after main() set the env
    print(json.dumps({k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                     | {"torch": "torch" in sys.modules}))
    """


def test_the_cli_sets_a_short_spin_before_torch_loads_and_keeps_the_users_choice():
    ours = _py(_CLI_ENV)
    assert ours["GOMP_SPINCOUNT"] == "10000" and ours["OMP_WAIT_POLICY"] is None
    theirs = _py(_CLI_ENV, {"OMP_WAIT_POLICY": "PASSIVE"})
    assert theirs["OMP_WAIT_POLICY"] == "PASSIVE" and theirs["GOMP_SPINCOUNT"] is None
    mine = _py(_CLI_ENV, {"GOMP_SPINCOUNT": "1000"})
    assert mine["OMP_WAIT_POLICY"] is None and mine["GOMP_SPINCOUNT"] == "1000"


def test_the_cli_leaves_the_environment_alone_once_torch_is_loaded():
    """In a process that imported torch first (a notebook calling the CLI's main), the runtime has read its
    environment already: setting it would only leak into child processes."""
    out = _py("import torch\n" + textwrap.dedent(_CLI_ENV))
    assert out["GOMP_SPINCOUNT"] is None and out["OMP_WAIT_POLICY"] is None


# ---- the thread count a run starts with --------------------------------------------------------------------------

_START = """
    import json, torch
    from convscope.training.config import config_from_dict
    from convscope.training.runtime import torch_settings
    before = torch.get_num_threads()
    out = {}
    for name, over in {CASES}.items():
        with torch_settings(config_from_dict(over)) as share:
            out[name] = [torch.get_num_threads(), len(share)]
    out["restored"] = torch.get_num_threads() == before
    print(json.dumps(out))
    """


@pytest.mark.skipif(not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2, reason="needs taskset, 2 CPUs")
def test_one_allowed_cpu_gives_one_thread_and_the_overrides_win():
    """``taskset -c 0``: the run may use 1 CPU, so it gets 1 thread and nothing to re-count; ``--threads 2`` and a
    user's OMP_NUM_THREADS=2 still give 2 (the user asked for it)."""
    cases = {"default": {}, "deterministic": {"deterministic": True}, "threads 2": {"threads": 2}}
    code = _START.replace("{CASES}", repr(cases))
    pinned = _py(code, prefix=("taskset", "-c", "0"))
    assert pinned == {"default": [1, 0], "deterministic": [1, 0], "threads 2": [2, 0], "restored": True}
    env = _py(code, {"OMP_NUM_THREADS": "2"}, prefix=("taskset", "-c", "0"))
    assert env["default"] == [2, 0]                         # torch follows OMP_NUM_THREADS; convscope leaves it
    free = _py(code)                                        # the whole machine: re-counted unless fixed
    limit = _cpus.cpu_limit()
    assert 1 <= free["default"][0] <= limit and free["default"][1] == (1 if limit > 1 else 0)
    assert free["deterministic"] == [limit, 0]              # not load-dependent: reproducible


def test_a_run_records_its_threads_per_epoch_unless_they_are_fixed(tmp_path):
    import convscope

    small = {"model": "fast", "model_args": {"width": 8}, "train_subset": 256, "epochs": 2, "batch_size": 64}
    free = convscope.train(small, out=tmp_path / "free", progress=False)
    epochs = [json.loads(s) for s in (free.path / "metrics.jsonl").read_text().splitlines()]
    counts = [e["threads"] for e in epochs if e["kind"] == "epoch"]
    if _cpus.cpu_limit() > 1 and not _cpus.env_threads(os.environ):
        assert len(counts) == 2 and all(1 <= c <= _cpus.cpu_limit() for c in counts)
        assert free.summary["threads"] == counts[-1]
    fixed = convscope.train({**small, "threads": 1}, out=tmp_path / "fixed", progress=False)
    epochs = [json.loads(s) for s in (fixed.path / "metrics.jsonl").read_text().splitlines()]
    assert fixed.summary["threads"] == 1 and not any("threads" in e for e in epochs)


def test_deterministic_runs_still_reproduce_bit_for_bit(tmp_path):
    import convscope
    import torch

    cfg = {"model": "fast", "model_args": {"width": 8}, "train_subset": 256, "epochs": 1, "batch_size": 64,
           "deterministic": True}
    a = convscope.train(cfg, out=tmp_path / "a", progress=False)
    b = convscope.train(cfg, out=tmp_path / "b", progress=False)
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), k
    assert a.summary["threads"] == b.summary["threads"] == _cpus.cpu_limit()


# ---- --threads is bounded by the CPUs the process may use, not the machine's count ---------------------------------

_PINNED = """
    import json, os, subprocess, sys
    os.sched_setaffinity(0, {CPUS})                 # what `taskset` does; inherited by the CLI child below
    from convscope._check import threads
    from convscope.errors import ConfigError
    try:
        threads(2)
        api = "accepted"
    except ConfigError as e:
        api = str(e)
    cli = subprocess.run([sys.executable, "-m", "convscope", "train", "--model", "mlp", "--train-subset", "64",
                          "--epochs", "1", "--threads", "2", "--quiet", "--out", {OUT!r}],
                         capture_output=True, text=True)
    print(json.dumps({"api": api, "rc": cli.returncode, "stderr": cli.stderr}))
    """


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or _cpus.cpu_limit() < 2,
                    reason="needs 2 CPUs this process may use (affinity and cgroup quota)")
def test_threads_beyond_the_allowed_cpus_are_refused_with_the_limit_and_why(tmp_path):
    """Pinned to one CPU (whichever this machine numbers first), ``--threads 2`` is refused by the check and by
    ``convscope train`` before the run directory exists, naming the limit and where it comes from; with two
    CPUs allowed the same count is accepted (the check, then a real 1-epoch run that records 2 threads)."""
    cpus = sorted(os.sched_getaffinity(0))
    one = _py(_PINNED.replace("{CPUS}", repr({cpus[0]})).replace("{OUT!r}", repr(str(tmp_path / "one"))))
    why = ("threads: must be at most 1 (the CPUs this process may use: affinity mask / cgroup quota), got 2: more "
           "threads than CPUs only slow a run down; give 1 or fewer, or leave it out for a count that follows the "
           "machine's load")
    assert one["api"] == why
    assert one["rc"] == 2 and "--" + why in one["stderr"] and "Traceback" not in one["stderr"]
    assert not (tmp_path / "one").exists()
    two = _py(_PINNED.replace("{CPUS}", repr(set(cpus[:2]))).replace("{OUT!r}", repr(str(tmp_path / "two"))))
    assert two["api"] == "accepted" and two["rc"] == 0, two["stderr"]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["threads"] == 2
