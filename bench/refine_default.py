"""What the default `convscope experiment refine` costs on the main job's run (issue #23 (e): "a default run that
finishes in <= 10 min on two free cores").

    python bench/refine_default.py                                # the documented command, no options
    python bench/refine_default.py --label one-thread -- --threads 1
    python bench/refine_default.py --run RUN                      # another trained run

Runs exactly what docs/refine.md documents, `convscope experiment refine RUN` (plus the flags after ``--``), as a
child process on a copy of the run (so the run itself gets no experiments/ folder), and records:

- wall seconds of the command, and its CPU seconds (user + system of the child, ``RUSAGE_CHILDREN``): on a shared
  machine the wall time says little, the CPU time is the work done; with 1 torch thread the CPU time is close to
  the wall time the command would take on one free core (it neither waits on disk nor on the network);
- the 1/5/15-minute load averages at the start and the end, the torch threads the child ran with;
- refine's own seconds and each variant's (results.json), where the time goes.

The main job's run is `convscope train --deterministic`; it is reused from ``--runs``/main (where
bench/lecture_tables.py's trust stage trains it) or trained there. Results go into bench/results/refine_default.json
under ``--label`` (other labels' entries are kept: before/after pairs sit side by side), with provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from convscope._atomic import atomic_write_text  # noqa: E402
from convscope.benchmark import provenance  # noqa: E402

OUT = ROOT / "bench" / "results" / "refine_default.json"
RUNS = ROOT / "bench" / ".cache" / "lecture"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main_run(folder: Path) -> Path:
    """The main job's run in ``folder``/main: reused, or trained (``convscope train --deterministic``)."""
    import trust_tables

    path = folder / "main"
    if not (path / "summary.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"training the main job's model (`convscope train --deterministic`) into {path}", flush=True)
        path = trust_tables.train_main(folder)
    return path


def measure(run: Path, extra: list[str]) -> dict:
    """Run `convscope experiment refine` on a copy of ``run``; its cost and refine's own timing."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("experiments"))
        cmd = [sys.executable, "-m", "convscope", "experiment", "refine", str(copy), *extra]
        load0, cpu0, t0 = os.getloadavg(), _children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall, cpu, load1 = time.perf_counter() - t0, _children_cpu() - cpu0, os.getloadavg()
        res = json.loads(next((copy / "experiments").glob("refine-*/results.json")).read_text())
    per_variant: dict[str, float] = {}
    for r in res["runs"]:
        per_variant[r["variant"]] = per_variant.get(r["variant"], 0.0) + r["seconds"]
    return {"command": " ".join(["convscope", "experiment", "refine", "RUN", *extra]),
            "wall_seconds": wall, "cpu_seconds": cpu, "cpu_per_wall": cpu / wall,
            "load_average": {"start": list(load0), "end": list(load1)},            # 1, 5, 15 minutes
            "refine_seconds": res["seconds"], "variant_seconds": per_variant, "config": res["config"],
            "threads": res["versions"]["threads"], "nice": os.nice(0),
            "baseline_test_accuracy": res["baseline"]["test_accuracy"],
            "maximize_change_frozen": res["paired"]["frozen"]["maximize"]["change"]
            if "maximize" in res["paired"].get("frozen", {}) else None}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a trained run (default: the main job's, in --runs/main)")
    ap.add_argument("--runs", type=Path, default=RUNS, help="where the main job's run is reused or trained")
    ap.add_argument("--label", default="default", help="the entry's name in the results file")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(own)
    prov = provenance(["bench/refine_default.py", *argv])       # before anything runs
    run = args.run or main_run(args.runs)
    entry = {"provenance": prov, "run": str(run), **measure(run, extra)}
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "refine_default"}
    results.setdefault("entries", {})[args.label] = entry
    atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")
    print(f"{args.label}: {entry['wall_seconds']:.0f} s wall, {entry['cpu_seconds']:.0f} s CPU "
          f"({entry['threads']} torch threads), load average {entry['load_average']['start'][0]:.1f} -> "
          f"{entry['load_average']['end'][0]:.1f}; wrote {args.out}")
    return entry


if __name__ == "__main__":
    main()
