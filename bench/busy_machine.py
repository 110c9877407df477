"""A busy machine (issue 26): the main job's time with one CPU-bound program of someone else's beside it, per
thread setting, against its time on the same machine without that program.

    PYTHONPATH=. python bench/busy_machine.py [--repeats 2] [--full-repeats 1] [--short-only]

The "busy" condition is one Python busy loop (``while True: pass``, pinned to nothing) that this script starts
before the timed command and ends after it. Each setting is a set of environment variables given to a fresh
``convscope train`` process:

    before     torch's default as convscope ran it before this change: one thread per CPU and libgomp's default
               wait (spin 300,000 times, then sleep) -- OMP_NUM_THREADS=<CPUs> GOMP_SPINCOUNT=300000
    default    nothing set: convscope's defaults now (a waiting thread spins 10,000 times, then sleeps:
               GOMP_SPINCOUNT=10000; threads = CPUs other programs leave free, re-counted as the run goes)
    passive    the default thread count, but waiting threads sleep at once (OMP_WAIT_POLICY=PASSIVE; the CLI then
               leaves the spin count alone): round 3's first default, 16% slower on a quiet machine
    others     a fixed thread count with passive waiting, to show which part matters

Two jobs: "short" (--epochs 2 --train-subset 2048: ~16 steps x 2; the figure is the training seconds from
summary.json, start-up and evaluation excluded) and "full" (`convscope train --quiet`, the main job, process
start to exit; for `before`, `default`, `passive` and `1 thread` only, to bound the run time). Quiet and busy runs
alternate setting by setting (ABAB) so that drift in the other load of this shared machine hits both alike.
A run is stopped at --cap seconds (--full-cap for the full job) and recorded as at least that. Writes
bench/results/busy_machine.json: per setting and job, the median quiet and busy seconds, busy/quiet, and each
against `before` quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CPUS = str(len(os.sched_getaffinity(0)))
SETTINGS: dict[str, dict[str, str]] = {
    "before (threads=CPUs, libgomp default spin)": {"OMP_NUM_THREADS": CPUS, "GOMP_SPINCOUNT": "300000"},
    "default (spin 10,000)": {},
    "default threads, passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread, passive": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    f"{CPUS} threads, passive": {"OMP_NUM_THREADS": CPUS, "OMP_WAIT_POLICY": "PASSIVE"},
}
FULL = ("before (threads=CPUs, libgomp default spin)", "default (spin 10,000)", "default threads, passive",
        "1 thread, passive")
JOBS = {"short": ["--epochs", "2", "--train-subset", "2048"], "full": []}
WAIT_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def timed(job: str, env: dict[str, str], cap: float) -> dict:
    """One fresh `convscope train` process: wall seconds (start to exit), training seconds, accuracy, threads."""
    base = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "convscope", "train", "--quiet", "--out", f"{tmp}/run", *JOBS[job]]
        t0, load = time.perf_counter(), os.getloadavg()[0]
        try:
            subprocess.run(cmd, env={**base, "PYTHONPATH": str(ROOT), **env}, cwd=tmp, check=True,
                           capture_output=True, timeout=cap)
        except subprocess.TimeoutExpired:
            return {"wall_s": cap, "train_s": cap, "capped": True, "load_1min": load}
        wall = time.perf_counter() - t0
        summary = json.loads(Path(tmp, "run", "summary.json").read_text())
        epochs = [json.loads(line) for line in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()]
    return {"wall_s": round(wall, 2), "train_s": summary["seconds"], "test_accuracy": summary["test_accuracy"],
            "threads_end": summary["threads"], "load_1min": load,
            "threads_per_epoch": [e.get("threads") for e in epochs if e.get("kind") == "epoch"]}


def busy_loop() -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)   # running before the job starts, as another user's program would be
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the short job")
    ap.add_argument("--full-repeats", type=int, default=1, help="rounds of the full main job")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds after which a short run is stopped")
    ap.add_argument("--full-cap", type=float, default=240.0, help="seconds after which a full run is stopped")
    ap.add_argument("--short-only", action="store_true")
    ap.add_argument("--full-only", action="store_true", help="only the full main job")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), metavar="NAME",
                    help="only these settings (default: all); the first is the reference of the ratios")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "busy_machine.json")
    a = ap.parse_args()
    settings = {n: SETTINGS[n] for n in (a.settings or SETTINGS)}
    jobs = ["short"] if a.short_only else ["full"] if a.full_only else ["short", "full"]
    runs: dict[str, dict[str, dict[str, list]]] = {}
    loads = [os.getloadavg()]
    rounds = [(job, rep) for job in jobs for rep in range(a.repeats if job == "short" else a.full_repeats)]
    for job, rep in rounds:
        for name, env in settings.items():
            if job == "full" and name not in FULL and a.settings is None:
                continue
            for cond in ("quiet", "busy") if rep % 2 == 0 else ("busy", "quiet"):   # ABBA across repeats
                other = busy_loop() if cond == "busy" else None
                try:
                    r = timed(job, env, a.cap if job == "short" else a.full_cap)
                finally:
                    if other is not None:
                        other.kill()
                        other.wait()
                runs.setdefault(job, {}).setdefault(name, {"quiet": [], "busy": []})[cond].append(r)
                print(f"{job:5} {name:<46} {cond:5} wall {r['wall_s']:7.1f} s  train {r['train_s']:7.1f} s  "
                      f"load {r['load_1min']:.1f}", flush=True)
        loads.append(os.getloadavg())
    key = {"short": "train_s", "full": "wall_s"}
    before = next(iter(settings))
    table: dict[str, dict[str, dict]] = {}
    for job, per in runs.items():
        ref = statistics.median(r[key[job]] for r in per[before]["quiet"])
        for name, conds in per.items():
            q = statistics.median(r[key[job]] for r in conds["quiet"])
            b = statistics.median(r[key[job]] for r in conds["busy"])
            table.setdefault(job, {})[name] = {
                "quiet_s": round(q, 2), "busy_s": round(b, 2), "busy_over_quiet": round(b / q, 2),
                "quiet_vs_before_quiet": round(q / ref, 2), "busy_vs_before_quiet": round(b / ref, 2),
                "capped": any(r.get("capped") for c in conds.values() for r in c)}
    result = {"benchmark": "busy_machine", "provenance": provenance(),
              "goal": "main job with one busy program beside it within 2.5x its quiet time (issue 26)",
              "busy_program": "python -c 'while True: pass' (one process, no affinity)",
              "measured": {"short": "training seconds (summary.json), --epochs 2 --train-subset 2048",
                           "full": "wall seconds of `convscope train --quiet`, process start to exit"},
              "settings": settings, "load_average_1_5_15_min": loads, "table": table, "runs": runs}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for job, per in table.items():
        print(f"\n{job}: median seconds ({key[job]})")
        for name, row in per.items():
            print(f"  {name:<46} quiet {row['quiet_s']:7.1f}  busy {row['busy_s']:7.1f}  busy/quiet "
                  f"{row['busy_over_quiet']:5.2f}  quiet vs before {row['quiet_vs_before_quiet']:5.2f}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
