"""Evaluation speed per batch size (issue 26): the default model's test-set forward (the per-epoch evaluation of
every run, `eval`, the web app's test-set pages) at several batch sizes, interleaved round by round in one process.

    python bench/eval_batch.py [--rounds 5] [--threads 2]

For the digits (2,000 test images) and Fashion-MNIST (10,000, with flip averaging as the recipe evaluates), an
untrained fast2 in eval mode, bf16 autocast and channels-last as training evaluates it; the weights do not change
the cost. Writes bench/results/eval_batch.json: median milliseconds per full test-set pass, and each batch size's
ratio to 1024 (the default before this round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope.training.config import config_from_dict  # noqa: E402
from convscope.training.evaluate import predict_logits  # noqa: E402
from convscope.training.setup import build_model, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = (128, 256, 512, 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_batch.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {}
    for dataset in ("digits", "fashion-mnist"):
        cfg, data = prepare(config_from_dict({"dataset": dataset}))
        model = build_model(cfg, data).to(memory_format=torch.channels_last).eval()
        tta = cfg.eval.tta and data.test.hflip_ok

        def run(bs: int) -> None:
            predict_logits(model, data.test.images, data.norm, batch_size=bs, bf16=True, channels_last=True, tta=tta)

        run(256)   # warm-up: first-call allocations and kernel selection
        ms: dict[int, list[float]] = {bs: [] for bs in SIZES}
        for _ in range(a.rounds):
            for bs in SIZES:
                t = time.perf_counter()
                run(bs)
                ms[bs].append(1e3 * (time.perf_counter() - t))
        med = {bs: statistics.median(v) for bs, v in ms.items()}
        out[dataset] = {"images": len(data.test), "flip_averaging": bool(tta),
                        "ms_per_pass": {str(bs): round(m, 1) for bs, m in med.items()},
                        "ratio_to_1024": {str(bs): round(m / med[1024], 2) for bs, m in med.items()}}
        print(dataset, out[dataset]["ms_per_pass"], out[dataset]["ratio_to_1024"], flush=True)
    result = {"benchmark": "eval_batch", "provenance": provenance(), "threads": a.threads, "rounds": a.rounds,
              "results": out}
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
