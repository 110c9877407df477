"""Top-k streaming cost against one plain inference pass over the same data (the issue's bound: 1.5x).

    python bench/topk_overhead.py

Model: `fast` (width 32); data: Fashion-MNIST test (10,000 images) if installed, else the embedded digits;
k = 9; layers: every ReLU. Both paths run the same batches in eval mode under no_grad; median of 5 runs.
Writes bench/results/topk_overhead.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope.data import load  # noqa: E402
from convscope.inspect import topk  # noqa: E402
from convscope.models import create_model, default_activation_layers  # noqa: E402
from convscope.data.normalize import Normalization  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    try:
        ds = load("fashion-mnist", "test", download=False)
    except Exception:  # noqa: BLE001 - any missing-data error: fall back to the embedded set
        ds = load("digits", "all")
    model = create_model("fast").eval()
    norm = Normalization.of(ds.images)
    layers = default_activation_layers(model)

    def plain():
        with torch.no_grad():
            for i in range(0, len(ds), 500):
                model(norm.apply(ds.images[i:i + 500]))

    def streaming():
        topk(model, ds, layers, k=9, norm=norm, batch_size=500)

    plain(), streaming()  # warm up
    t_plain, t_topk = [], []
    for _ in range(5):
        t = time.perf_counter()
        plain()
        t_plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        streaming()
        t_topk.append(time.perf_counter() - t)
    result = {"benchmark": "topk_overhead", "provenance": provenance(), "dataset": f"{ds.name} {ds.split}",
              "images": len(ds), "layers": layers, "k": 9, "plain_seconds": statistics.median(t_plain),
              "topk_seconds": statistics.median(t_topk)}
    result["ratio"] = result["topk_seconds"] / result["plain_seconds"]
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "results" / "topk_overhead.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
