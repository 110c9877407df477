"""How long the served page's audit button takes, against what it says first: the trust audit of the main job's
model (fast2 on the embedded digits) on the first N test images, by the same function the button and
`convscope explain --audit` call (convscope.inspect.audit_files.write_audit, into a temporary folder), each row
timed; the model's forward + backward seconds per image measured as the server measures it
(convscope.web.audit_job.pass_seconds). Each row's cost in such passes per image is what
convscope/web/audit_job.py's PASSES holds; the result says how far the estimate was from the real time.

    python bench/audit_estimate.py [--run RUN] [--images 40]

Writes bench/results/audit_estimate.json (--out: the calibration run behind PASSES is
bench/results/audit_estimate_calibration.json). Not a test: it measures this machine (named in the result).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402
from _serve import main_job_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a run of the main job (default: trained once into bench/.cache)")
    ap.add_argument("--images", type=int, default=40, help="test images audited (the button's default is 500)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "audit_estimate.json")
    args = ap.parse_args()
    import torch

    from convscope.inspect.audit_files import write_audit
    from convscope.web import audit_job, compute
    from convscope.web.runs import RunEntry

    torch.set_num_threads(1)                     # as `convscope serve` runs its model
    run_path = (args.run or main_job_run()).resolve()
    entry = RunEntry(run_path.name, run_path)
    per_pass = audit_job.pass_seconds(entry)
    estimate = audit_job.row_seconds(entry, args.images)
    run = entry.run
    ds = compute.test_dataset(run)
    x = run.preprocess(ds.images[:args.images])
    rows, t0 = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table, _ = write_audit(run.model, x, Path(tmp), dataset=ds.name, split=ds.split,
                               on_row=lambda r: rows.__setitem__(r.method, r.seconds))
    total = time.perf_counter() - t0
    result = {"benchmark": "audit_estimate", "provenance": provenance(), "run": str(run_path),
              "model": run.meta.get("model"), "images": args.images, "pass_seconds_per_image": per_pass,
              "rows": {m: {"seconds": round(s, 2), "passes_per_image": round(s / (args.images * per_pass), 1),
                           "estimate_seconds": round(estimate[m], 2)} for m, s in rows.items()},
              "total_seconds": round(total, 1), "estimate_seconds": round(sum(estimate.values()), 1),
              "estimate_over_actual": round(sum(estimate.values()) / total, 3),
              "verdicts": {r.method: r.verdict for r in table}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))


if __name__ == "__main__":
    main()
