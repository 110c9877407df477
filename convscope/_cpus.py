"""How many CPUs this process may use, and how many of them other programs are using right now (issue 26).

torch's default is one intra-op thread per CPU of the machine, and its OpenMP runtime (GNU libgomp in the CPU
wheels) spins up to 300,000 iterations at every barrier before it sleeps. Both assume the machine is ours. When
another program keeps a core busy, a 2-thread process on 2 cores waits at every operator for whichever of its
threads the kernel has just descheduled: the main job took 6 min instead of 26 s, and a 2-thread process ran at
123 img/s against 1,577 img/s for a 1-thread one (docs/speed.md, "A busy machine").

So convscope (1) makes waiting OpenMP threads spin 10,000 times instead of 300,000 before they sleep
(:func:`openmp_env_defaults`, applied by the CLI before torch loads: the runtime reads it only once), (2) counts
the CPUs it may use from the affinity mask and the cgroup quota, not the machine (:func:`cpu_limit`), and (3)
gives a run as many threads as there are CPUs that no other program is running on (:func:`free_cpus`),
re-counted during training (convscope.training.cpu_share). A user's OMP_NUM_THREADS, OMP_WAIT_POLICY,
GOMP_SPINCOUNT or ``--threads`` always wins. No torch here, and nothing of convscope: the CLI calls this before
importing torch, and _check bounds every ``threads`` by :func:`cpu_limit`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path

# Any of these set by the user: their choice of waiting stands (KMP_*: Intel's runtime, libiomp5).
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


# libgomp (torch's CPU wheels on Linux): spin this many times at a barrier, then sleep. Its own default is 300,000
# (~3 ms): beside one busy program the main job took 8.2x its quiet time. 0 (OMP_WAIT_POLICY=PASSIVE) kept it
# within 1.4x but cost 16% of quiet speed; 10,000 kept it within 1.6x at full quiet speed (2-core Intel Xeon,
# bench/results/busy_machine.json and busy_machine_wait.json).
SPIN_COUNT = "10000"


def openmp_env_defaults(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` in ``environ`` unless the user chose how OpenMP threads wait
    (any of :data:`WAIT_VARS` set); returns what it set. Must run before torch is imported: the OpenMP runtime
    reads its environment once, when it loads. Child processes (torchrun workers, tune jobs) inherit it. Only GNU
    libgomp reads it; other OpenMP runtimes keep their own default."""
    if any(v in environ for v in WAIT_VARS):
        return {}
    environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return {"GOMP_SPINCOUNT": SPIN_COUNT}


def parse_quota(cpu_max: str | None = None, quota_us: str | None = None, period_us: str | None = None
                ) -> float | None:
    """CPUs allowed by a cgroup quota: cgroup v2's ``cpu.max`` text ("200000 100000", or "max ...": no quota), or
    v1's cfs_quota_us / cfs_period_us (-1: no quota). None when there is no quota or the text is unreadable."""
    try:
        if cpu_max is not None:
            quota, _, period = cpu_max.strip().partition(" ")
            if quota == "max":
                return None
            q, p = float(quota), float(period or 100000)
        elif quota_us is not None and period_us is not None:
            q, p = float(quota_us), float(period_us)
        else:
            return None
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def read_quota() -> float | None:
    """This process's cgroup CPU quota in CPUs (v2, else v1), None when there is none or it cannot be read."""
    try:
        return parse_quota(cpu_max=CGROUP_V2.read_text())
    except OSError:
        pass
    try:
        return parse_quota(quota_us=CGROUP_V1[0].read_text(), period_us=CGROUP_V1[1].read_text())
    except OSError:
        return None


def cpu_limit(affinity: Iterable[int] | None = None, quota: float | None = None, *, read: bool = True) -> int:
    """The CPUs this process may use: the CPUs it may run on (``affinity``, default ``os.sched_getaffinity``),
    capped by the cgroup quota in CPUs (``quota``, rounded up; read from /sys/fs/cgroup when ``read`` and not
    given). At least 1."""
    if affinity is None:
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    n = len(set(affinity))
    if quota is None and read:
        quota = read_quota()
    if quota is not None:
        n = min(n, math.ceil(quota - 1e-9))
    return max(1, n)


def runnable_now() -> int | None:
    """Threads running or ready to run on the whole machine right now (``procs_running`` of /proc/stat, which
    counts the thread reading it); None where the file is absent (not Linux)."""
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"procs_running "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def own_runnable() -> int:
    """This process's threads that are running or ready to run (state R in /proc/self/task/*/stat): a thread
    that spins at an OpenMP barrier counts, so it is not mistaken for another program's work."""
    n = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:   # the thread ended between listing and reading
            continue
        if stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] == b"R":   # the field after "(name)", which may hold spaces
            n += 1
    return max(1, n)


def others_runnable() -> int | None:
    """Threads of OTHER processes running or ready to run right now (one sample); None where unknown."""
    total = runnable_now()
    return None if total is None else max(0, total - own_runnable())


def free_cpus(limit: int, others: Sequence[float]) -> int:
    """Threads to use: the ``limit`` CPUs less those other programs keep busy, judged by the mean of
    ``others`` (samples of :func:`others_runnable`), rounded to the nearest CPU; at least 1, all of ``limit``
    when there are no samples. One busy program on 2 CPUs leaves 1: two threads would each wait for the other
    whenever the kernel runs that program in its place."""
    if not others:
        return limit
    busy = sum(others) / len(others)
    return max(1, min(limit, limit - math.floor(busy + 0.5)))


def env_threads(environ: Mapping[str, str]) -> bool:
    """Whether the user fixed the thread count in the environment: OMP_NUM_THREADS or MKL_NUM_THREADS a positive
    integer (OpenMP's list form ``4,2`` by its first entry). A blank or invalid value (``0``, ``-1``, ``abc``) is
    no choice: libgomp says "Invalid value" and torch takes its default, so convscope chooses the count instead."""
    def positive(text: str) -> bool:
        first = text.split(",")[0].strip()
        return first.isascii() and first.isdigit() and int(first) > 0
    return any(positive(environ.get(v, "")) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
