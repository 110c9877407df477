"""The hostile sweep of issue 16: several hundred hostile inputs across data, configs, run directories, kills,
predict, the inspection commands, the matrix command and the Python API; each case runs in its own process
(forked from a server that has torch and convscope loaded) under a wall-clock timeout and an address-space
limit (resource.setrlimit), and its outcome is classified as

    clear error    a convscope error (exit 2, "convscope: error: ..." or argparse's usage error), no traceback
    correct        exit 0 and the result checks out (or an expected success)
    your model     the user's own model code raised: "convscope: error: your model raised ..." with the frames
                   of their code (exit 1), as issue 16 asks
    traceback      a Python traceback (or MemoryError) where a message is due
    hang           still running at the timeout
    wrong result   exit 0 where the input should have been refused, or a result that fails its check
    loss           data lost or a boundary crossed (a file written outside where it should be)

Writes bench/results/hostile_sweep.json and prints the table. Run: PYTHONPATH=. python bench/hostile_sweep.py
(--only SUBSTRING runs a subset; --timeout S changes the default per-case timeout).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_cases import CHECKS, SCENARIOS, Case, build_cases, make_workspace

CATEGORIES = ("clear error", "correct", "your model", "traceback", "hang", "wrong result", "loss")
FINE = ("clear error", "correct", "your model")
AS_LIMIT_EXTRA = 3 << 30  # address space a case may add to the server's (torch's mappings included in the base)


@dataclass
class Outcome:
    id: str
    area: str
    category: str
    rc: int | None
    seconds: float
    expect: str
    issue: bool
    note: str = ""
    stderr_tail: str = field(default="", repr=False)


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(case: Case, ws: str, out_path: str, err_path: str) -> None:
    """Runs inside the forked process: limits, redirected output, then the CLI or the Python snippet."""
    limit = _vm_size() + AS_LIMIT_EXTRA
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    out_fd, err_fd = os.open(out_path, flags), os.open(err_path, flags)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os.chdir(ws)
    import traceback

    import torch

    torch.set_num_threads(1)
    rc = 0
    try:
        if case.kind == "cli":
            from convscope.cli import main

            rc = int(main(case.argv) or 0)
        else:
            from convscope.errors import ConvscopeError

            ns: dict = {"WS": Path(ws)}
            try:
                exec(case.code, ns)  # noqa: S102 (our own case table)
                print(f"RESULT: {ns.get('result')!r}"[:4000])
            except ConvscopeError as e:
                print(f"convscope: error: {e}", file=sys.stderr)
                rc = 2
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 (what the user would see: a traceback)
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def classify(case: Case, rc: int | None, out: str, err: str, ws: Path, seconds: float) -> tuple[str, str]:
    if rc is None:
        return "hang", f"no answer after {case.timeout} s"
    if case.check is not None:
        verdict = CHECKS[case.check](rc, out, err, ws)
        if verdict is not None:
            return verdict
    if rc == 1 and "convscope: error: your model raised" in err:   # the user's code raised: their frames shown
        return "your model", [ln for ln in err.splitlines() if "your model raised" in ln][0][:200]
    if rc == 1 and "Traceback" not in err and "error" in err.lower():  # a command that reports and exits 1
        return "clear error", ([ln for ln in err.strip().splitlines() if "error" in ln.lower()][-1:] or [""])[0][:200]
    if "Traceback" in err or "MemoryError" in err or rc not in (0, 2):
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or [f"exit {rc}"]
        return "traceback", last[0][:200]
    if rc == 2:
        return "clear error", ([ln for ln in err.strip().splitlines() if "error" in ln][-1:] or [""])[0][:200]
    if case.expect == "error":
        return "wrong result", "accepted without a word"
    return "correct", ""


def run_case(ctx, case: Case, ws: Path, tmp: Path, number: int) -> Outcome:
    out_path, err_path = tmp / f"{number:04d}.out", tmp / f"{number:04d}.err"
    t0 = time.perf_counter()
    if case.kind == "scenario":
        try:
            category, note = SCENARIOS[case.scenario](ws, case.timeout)
        except Exception as e:  # noqa: BLE001 (a scenario's own failure is reported, not raised)
            category, note = "traceback", f"scenario failed: {type(e).__name__}: {e}"
        dt = time.perf_counter() - t0
        return Outcome(case.id, case.area, category, None, round(dt, 2), case.expect,
                       category not in FINE, note)
    p = ctx.Process(target=_child, args=(case, str(ws), str(out_path), str(err_path)))
    p.start()
    p.join(case.timeout)
    rc: int | None
    if p.is_alive():
        p.kill()
        p.join()
        rc = None
    else:
        rc = p.exitcode
    dt = time.perf_counter() - t0
    out = out_path.read_text(errors="replace") if out_path.exists() else ""
    err = err_path.read_text(errors="replace") if err_path.exists() else ""
    category, note = classify(case, rc, out, err, ws, dt)
    return Outcome(case.id, case.area, category, rc, round(dt, 2), case.expect,
                   category not in FINE or (case.expect == "ok" and category != "correct"),
                   note, err[-600:])


def table(outcomes: list[Outcome]) -> str:
    areas = sorted({o.area for o in outcomes})
    w = max(len(a) for a in areas + ["total"]) + 2
    head = f"{'area':<{w}}" + "".join(f"{c:>14}" for c in CATEGORIES) + f"{'cases':>8}"
    lines = [head, "-" * len(head)]
    for a in areas + ["total"]:
        sel = [o for o in outcomes if a == "total" or o.area == a]
        n = Counter(o.category for o in sel)
        lines.append(f"{a:<{w}}" + "".join(f"{n.get(c, 0):>14}" for c in CATEGORIES) + f"{len(sel):>8}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only cases whose id or area contains this (A|B: either)")
    ap.add_argument("--timeout", type=float, default=30.0, help="default per-case timeout, seconds")
    ap.add_argument("--work", type=Path, default=Path("/tmp/convscope-hostile-sweep"))
    ap.add_argument("--merge", action="store_true", help="with --only: replace those cases in the existing --out")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hostile_sweep.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ws = make_workspace(args.work)
    all_cases = build_cases(ws, args.timeout)
    ids_all = [c.id for c in all_cases]
    wanted = args.only.split("|")  # alternatives: --only "topk --k|predict"
    cases = [c for c in all_cases if any(w in c.id or w in c.area for w in wanted)]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "numpy", "convscope", "convscope.cli", "convscope.inspect",
                                "convscope.conv", "convscope.matrix", "hostile_cases"])
    tmp = ws / "_io"
    tmp.mkdir(exist_ok=True)
    outcomes = []
    for i, case in enumerate(cases, 1):
        o = run_case(ctx, case, ws, tmp, i)
        outcomes.append(o)
        flag = "" if not o.issue else "   <--"
        print(f"[{i:>3}/{len(cases)}] {o.area:<9} {o.id:<52} {o.category:<13} {o.seconds:>6.1f}s {o.note[:90]}{flag}",
              flush=True)
    print()
    print(table(outcomes))
    from _machine import provenance

    merged_into = None
    if args.merge and args.out.exists():  # keep the other cases of the last full run
        fresh = {o.id for o in outcomes}
        last = json.loads(args.out.read_text())
        merged_into = last.get("provenance")  # the full run these cases are merged into
        kept = [Outcome(**c) for c in last["cases"] if c["id"] not in fresh]
        order = {cid: i for i, cid in enumerate(ids_all)}
        outcomes = sorted(kept + outcomes, key=lambda o: order.get(o.id, 10**6))
        print("\nmerged with the last full run:\n" + table(outcomes))
    result = {"benchmark": "hostile_sweep", "provenance": provenance(), "seconds": round(time.perf_counter() - t0, 1),
              "merged_subset": args.only if args.merge else None,  # seconds then count only the rerun subset
              "merged_into": merged_into,
              "counts": dict(Counter(o.category for o in outcomes)),
              "by_area": {a: dict(Counter(o.category for o in outcomes if o.area == a))
                          for a in sorted({o.area for o in outcomes})},
              "cases": [asdict(o) for o in outcomes]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{len(outcomes)} cases in {result['seconds']} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
