"""Training throughput: 1 process x 2 threads against 2 processes x 1 thread (DistributedDataParallel, gloo),
the same config and global batch, on this machine; on a GPU machine also 1 process on 1 GPU.

    python bench/distributed_throughput.py [--epochs 3] [--subset 4096] [--width 32] [--repeats 2]

Each configuration runs `convscope train` as a subprocess (the 2-process one with `--nproc 2`), alternating,
`--repeats` times; the figure is the median over runs of the last epoch's images/s (training steps only:
evaluation excluded). Writes bench/results/distributed_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402


def run(args: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "convscope", "train", *args, "--out", str(out), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "epoch"]
    return {"images_per_s": epochs[-1]["images_per_s"], "test_accuracy": epochs[-1]["test_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--subset", type=int, default=4096, help="training images (digits)")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    common = ["--model", "fast", "--model-arg", f"width={a.width}", "--train-subset", str(a.subset),
              "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--checkpoint-every", "1000"]
    configs = {"1 process x 2 threads": [*common, "--threads", "2", "--device", "cpu"],
               "1 process x 1 thread": [*common, "--threads", "1", "--device", "cpu"],   # control: threading cost
               "2 processes x 1 thread": [*common, "--threads", "1", "--device", "cpu", "--nproc", "2"]}
    if torch.cuda.is_available():
        configs["1 process x 1 GPU"] = [*common, "--device", "cuda"]
    runs: dict[str, list[dict]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for i, (name, args) in enumerate(configs.items()):
                res = run(args, Path(tmp) / f"{rep}-{i}")
                runs[name].append(res)
                print(f"{name:<24} run {rep + 1}: {res['images_per_s']:8.0f} img/s  "
                      f"test accuracy {res['test_accuracy']:.4f}", flush=True)
    median = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    base = median["1 process x 2 threads"]
    result = {"benchmark": "distributed_throughput", "provenance": provenance(), "config": vars(a),
              "load_average_1_5_15_min": os.getloadavg(),   # the 2 cores are shared: other work skews figures
              "args": configs, "runs": runs, "median_images_per_s": median,
              "ratio_to_1x2": {k: v / base for k, v in median.items()}}
    print(json.dumps({"median_images_per_s": median, "ratio_to_1x2": result["ratio_to_1x2"]}, indent=2))
    out = Path(__file__).resolve().parent / "results" / "distributed_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
