"""Latency of one Draw-page update for the main job's model, beside its floor (a bare forward).

    python bench/serve_latency.py [--run RUN]

Model: the main job (`convscope train` defaults: fast2, width 32; trained once into bench/.cache, or --run).
Three paths on the same 39 canvas frames
(280 x 280 PNG, as draw.js sends them), 10 rounds each, torch 1 thread:
  forward      run.model(x) on the prepared 28 x 28 input (the floor)
  in-process   PNG decode + prepare_canvas_image + forward with every layer captured + quantized maps
  http         a real `convscope serve` process, POST /api/run/ID/predict over loopback, JSON parsed
Writes bench/results/serve_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance
from _serve import drawing_frames, main_job_run, percentile, start_server, stop_server

from convscope.web.compute import predict_with_maps, prepare_canvas_image
from convscope.web.runs import RunEntry
from convscope.web.security import decode_image


def timed(fn, frames, rounds: int = 10) -> list[float]:
    out = []
    for _ in range(rounds):
        for f in frames:
            t = time.perf_counter()
            fn(f)
            out.append(1000 * (time.perf_counter() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a run of the main job (default: trained once into bench/.cache)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()                    # the machine is shared: say how busy it was
    run_path = (args.run or main_job_run()).resolve()
    frames = drawing_frames()
    entry = RunEntry(run_path.name, run_path)
    run = entry.run
    inputs = {f: prepare_canvas_image(decode_image(f), run.input_shape) for f in frames}

    def forward(f):
        with torch.no_grad():
            run.model(run.preprocess(inputs[f]))

    def in_process(f):
        predict_with_maps(entry, prepare_canvas_image(decode_image(f), run.input_shape))

    proc, base = start_server(run_path)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            def http(f):
                r = client.post(f"/api/run/{run_path.name}/predict", content=f, headers={"content-type": "image/png"})
                r.raise_for_status()
                r.json()
            for f in frames[:5]:
                http(f)                                   # warm-up (layer list, first allocations)
            results = {}
            for name, fn in (("forward", forward), ("in_process", in_process), ("http", http)):
                fn(frames[0])
                ms = timed(fn, frames)
                results[name] = {"p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
                                 "p99_ms": percentile(ms, 99), "n": len(ms)}
            size = len(client.post(f"/api/run/{run_path.name}/predict", content=frames[-1],
                                   headers={"content-type": "image/png"}).content)
    finally:
        stop_server(proc)
    width = (run.meta.get("model_args") or {}).get("width", 32)
    out = {"model": f"{run.meta.get('model')} (width {width}), the main job", "run": str(run_path),
           "torch_threads": 1, "results": results, "load_average": {"start": load_start, "end": os.getloadavg()},
           "http_over_forward_p50": results["http"]["p50_ms"] / results["forward"]["p50_ms"],
           "response_bytes": size, "goal_ms": 100, "provenance": provenance()}
    Path(__file__).resolve().parent.joinpath("results", "serve_latency.json").write_text(json.dumps(out, indent=2))
    for k, v in results.items():
        print(f"{k:>11}: p50 {v['p50_ms']:.2f} ms  p90 {v['p90_ms']:.2f} ms  p99 {v['p99_ms']:.2f} ms")
    print(f"response {size / 1024:.0f} KiB; http / forward (p50) = {out['http_over_forward_p50']:.1f}x")


if __name__ == "__main__":
    main()
