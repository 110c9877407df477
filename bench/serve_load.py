"""Load: 50 concurrent clients sending drawing updates to a real `convscope serve` for 30 s (loopback only).

    python bench/serve_load.py [--clients 50] [--seconds 30]

Each client loops over 39 canvas frames (280 x 280 PNG), one request at a time, as a browser tab does while
the user draws. Reported: requests, throughput, latency p50/p99 (as the client sees it, queueing included),
errors (non-200 or transport errors; goal 0), and the server's RSS after a warm-up, after the load, and after
a second load of the same length (goal: no growth beyond the caches). The server has 1 torch thread; the
clients share the same 2 cores. Writes bench/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance
from _serve import drawing_frames, main_job_run, percentile, rss_mb, start_server, stop_server


async def load(base: str, rid: str, clients: int, seconds: float, frames: list[bytes]) -> dict:
    lat: list[float] = []
    errors: dict[str, int] = {}
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        async def one(k: int) -> None:
            i = k
            while time.monotonic() < end:
                f = frames[i % len(frames)]
                i += 1
                t = time.perf_counter()
                try:
                    r = await client.post(f"/api/run/{rid}/predict", content=f, headers={"content-type": "image/png"})
                    ok = r.status_code == 200 and "probabilities" in r.json()
                    key = None if ok else f"status {r.status_code}"
                except httpx.HTTPError as e:
                    key = type(e).__name__
                if key is None:
                    lat.append(1000 * (time.perf_counter() - t))
                else:
                    errors[key] = errors.get(key, 0) + 1
        t0 = time.monotonic()
        await asyncio.gather(*(one(k) for k in range(clients)))
        wall = time.monotonic() - t0
    return {"requests": len(lat) + sum(errors.values()), "ok": len(lat), "errors": sum(errors.values()),
            "error_kinds": errors, "seconds": wall, "throughput_per_s": len(lat) / wall,
            "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    run_path = main_job_run()
    frames = drawing_frames()
    proc, base = start_server(run_path)
    try:
        asyncio.run(load(base, run_path.name, 4, 3, frames))          # warm-up: layer list, allocator pools
        rss_warm = rss_mb(proc.pid)
        first = asyncio.run(load(base, run_path.name, args.clients, args.seconds, frames))
        rss_after = rss_mb(proc.pid)
        second = asyncio.run(load(base, run_path.name, args.clients, args.seconds, frames))
        rss_after2 = rss_mb(proc.pid)
    finally:
        stop_server(proc)
    out = {"clients": args.clients, "seconds": args.seconds, "model": "fast (width 32), the main job",
           "load": first, "repeat": second,
           "rss_mb": {"after_warmup": rss_warm, "after_load": rss_after, "after_second_load": rss_after2},
           "provenance": provenance()}
    Path(__file__).resolve().parent.joinpath("results", "serve_load.json").write_text(json.dumps(out, indent=2))
    for name, r in (("load", first), ("repeat", second)):
        print(f"{name}: {r['requests']} requests in {r['seconds']:.1f} s ({r['throughput_per_s']:.0f}/s), "
              f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, errors {r['errors']} {r['error_kinds']}")
    print(f"server RSS: {rss_warm:.0f} MB after warm-up, {rss_after:.0f} MB after the load, "
          f"{rss_after2:.0f} MB after the second")


if __name__ == "__main__":
    main()
