"""Digests of the final weights of the deterministic reference commands, recorded per machine.

    python bench/weight_digests.py            # run every case here; add or replace this machine's record
    python bench/weight_digests.py --check    # run every case; compare with this machine's record, write nothing

A `--deterministic` run repeats bit for bit on one machine, but oneDNN chooses kernels by CPU, so the digests
differ between an AMD EPYC and an Intel Xeon. The record therefore keys each set of digests by the machine that
made it (CPU model, vector-ISA flags, torch build: ``tests/reference_weights.py:machine_key``), and the test suite
compares against a record only on a matching machine. The cases and the digest function are the tests'
(``tests/reference_weights.py``), so this script and the tests cannot drift apart.

Writes bench/results/weight_digests.json: {"provenance": (the last write's commit, command, machine), "records":
[{"machine", "commit", "date", "digests": {case: {"command", "named_values_sha256", "file_sha256", "seconds"}}}]}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from convscope._atomic import atomic_write_bytes  # noqa: E402
from convscope.benchmark import machine, provenance  # noqa: E402
from convscope.models.weights import sha256_file  # noqa: E402
from tests.reference_weights import CASES, RECORD, digest, load_record, machine_key  # noqa: E402


def run_case(args: list[str], out: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "convscope", *args, "--quiet", "--out", str(out)], cwd=out.parent,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"convscope {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with this machine's record; write nothing")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    opts = ap.parse_args()
    facts = machine()
    record = load_record()
    mine = next((r for r in record["records"] if machine_key(r["machine"]) == machine_key(facts)), None)
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in opts.cases:
            out = Path(tmp) / case
            seconds = run_case(CASES[case], out)
            digests[case] = {"command": "convscope " + " ".join(CASES[case]), "named_values_sha256": digest(out),
                             "file_sha256": sha256_file(out / "model.safetensors"), "seconds": round(seconds, 1)}
            print(f"{case:22s} {digests[case]['named_values_sha256'][:16]}  {seconds:6.1f} s", flush=True)
    if opts.check:
        if mine is None:
            print(f"no record for this machine ({facts['cpu']}, torch {facts['torch']})")
            return 1
        bad = [c for c in digests if c in mine["digests"]
               and mine["digests"][c]["named_values_sha256"] != digests[c]["named_values_sha256"]]
        print("differs from the record: " + ", ".join(bad) if bad else "all equal to this machine's record")
        return 1 if bad else 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    entry = {"machine": facts, "commit": commit.stdout.strip() or None,
             "date": datetime.date.today().isoformat(),
             "digests": {**(mine or {}).get("digests", {}), **digests}}
    record["records"] = [r for r in record["records"] if r is not mine] + [entry]
    record["provenance"] = provenance()   # the last writer; each record keeps its own machine and commit
    atomic_write_bytes(RECORD, (json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
