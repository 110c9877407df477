"""First visits to unit pages of the main job's model (fast2 on the embedded digits) in a real `convscope serve`:
the server is started, its log line "unit pages ready" awaited (the background precomputation of every layer's
top-k images and sparsity), then one unit of every layer is opened for the first time; each visit is timed from
request to the whole HTML page (with its inline pictures) received.

    python bench/unit_pages.py [--run RUN] [--repeats 3]

Writes bench/results/unit_pages.json: seconds from start to "ready", and per layer the first-visit latency.
Not a test: it measures this machine (named in the result), with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402
from _serve import free_port, main_job_run  # noqa: E402


def one_server(run: Path, seed: int) -> dict:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    try:
        for line in proc.stdout:                      # the server's own report that the unit pages are ready
            if "unit pages ready for" in line:
                break
        ready = time.perf_counter() - t0
        base = f"http://127.0.0.1:{port}"
        rid = httpx.get(base + "/api/runs").json()["runs"][0]["id"]
        layers = httpx.get(f"{base}/api/run/{rid}/layers").json()["layers"]
        rng = random.Random(seed)
        visits = []
        for li in layers:
            ch = rng.randrange(li["shape"][0])
            t = time.perf_counter()
            r = httpx.get(f"{base}/run/{rid}/unit/{li['name']}/{ch}", timeout=120)
            dt = time.perf_counter() - t
            assert r.status_code == 200 and 'class="pending"' not in r.text and "img" in r.text, r.text[:300]
            visits.append({"layer": li["name"], "channel": ch, "seconds": round(dt, 4), "bytes": len(r.content)})
        return {"ready_seconds": round(ready, 2), "visits": visits}
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a run of the main job (default: trained once into bench/.cache)")
    ap.add_argument("--repeats", type=int, default=3, help="fresh servers (cold caches each time)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "unit_pages.json")
    args = ap.parse_args()
    run = args.run or main_job_run()
    load_start = os.getloadavg()                    # the machine is shared: say how busy it was
    rounds = [one_server(run, seed) for seed in range(args.repeats)]
    lat = [v["seconds"] for r in rounds for v in r["visits"]]
    result = {"benchmark": "unit_pages", "provenance": provenance(), "run": str(run),
              "load_average": {"start": load_start, "end": os.getloadavg()},
              "model": json.loads((run / "model.json").read_text()).get("model"),
              "first_visit_seconds": {"median": round(statistics.median(lat), 4), "max": round(max(lat), 4),
                                      "visits": len(lat)},
              "ready_seconds": [r["ready_seconds"] for r in rounds], "rounds": rounds}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("model", "first_visit_seconds", "ready_seconds")}, indent=2))


if __name__ == "__main__":
    main()
