"""NumPy reference conv2d, forward + backward, per algorithm, beside PyTorch CPU fp32 in the same run.

    python bench/reference_speed.py

Each NumPy step is the reference Conv2d layer's forward then backward (the layer keeps the forward's
im2col columns for its backward, as the NumPy training engine runs it).
Shapes: every conv layer of LeNet-5 at batch 64 (1->6 5x5 pad 2 on 28x28; 6->16 5x5 on 14x14), and the
cs231n reference (x 100x3x31x31, 25 filters 3x3, stride 2, pad 1). Median of repeats, float32. Writes
bench/results/reference_speed.json and prints a markdown table (ratio = NumPy time / PyTorch time).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope.reference import ALGORITHMS, Conv2d  # noqa: E402

CASES = [
    ("LeNet-5 conv1, batch 64", (64, 1, 28, 28), (6, 1, 5, 5), 1, 2),
    ("LeNet-5 conv2, batch 64", (64, 6, 14, 14), (16, 6, 5, 5), 1, 0),
    ("cs231n 100x3x31x31, 25 3x3, s2 p1", (100, 3, 31, 31), (25, 3, 3, 3), 2, 1),
]


def median_time(fn, min_time=0.5, max_reps=50):
    fn()  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    for name, xs, ws, s, p in CASES:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        dy = rng.standard_normal(tuple(F.conv2d(xt, wt, bt, s, p).shape)).astype(np.float32)
        dyt = torch.tensor(dy)

        def torch_step():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, s, p).backward(dyt)

        t_torch = median_time(torch_step)
        rows.append({"case": name, "algorithm": "pytorch", "seconds": t_torch, "ratio": 1.0})
        for alg in ALGORITHMS:
            layer = Conv2d(w, b, s, p, algorithm=alg)

            def np_step(layer=layer):
                layer.forward(x)
                layer.backward(dy)

            t = median_time(np_step, min_time=0.3, max_reps=10 if alg == "direct" else 50)
            rows.append({"case": name, "algorithm": alg, "seconds": t, "ratio": t / t_torch})
        for r in rows[-5:]:
            print(r, flush=True)
    out = {"benchmark": "reference_speed", "provenance": provenance(), "numpy": np.__version__, "rows": rows}
    (Path(__file__).parent / "results" / "reference_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    print("\n| case | PyTorch (ms) | " + " | ".join(f"{a} (ms, x)" for a in ALGORITHMS) + " |")
    print("|---|---|" + "---|" * len(ALGORITHMS))
    for name, *_ in CASES:
        rs = {r["algorithm"]: r for r in rows if r["case"] == name}
        cells = " | ".join(f"{1e3 * rs[a]['seconds']:.2f} ({rs[a]['ratio']:.1f}x)" for a in ALGORITHMS)
        print(f"| {name} | {1e3 * rs['pytorch']['seconds']:.2f} | {cells} |")


if __name__ == "__main__":
    main()
