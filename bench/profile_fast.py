"""Where a training step of the `fast` recipe spends its time (torch.profiler, CPU), on Fashion-MNIST batches,
and what each memory-bound fix saves per step.

    python bench/profile_fast.py                       # profile `fast` (and `fast2`) steps
    python bench/profile_fast.py --compare             # CPU ms per step of each variant, interleaved

Writes bench/results/profile_fast.json: the top operators by self CPU time over 30 steps after 5 warm-up
steps, with their share of the total; with --compare, bench/results/step_cost_speed.json: thread CPU
milliseconds per training step (batch creation included) of each variant, measured round-robin so every
variant sees the same machine, and its ratio to `fast` as it is today.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

from convscope.training.config import config_from_dict
from convscope.training.loop import Trainer

RESULTS = Path(__file__).parent / "results"
F2 = {"model": "fast2", "model_args": {"extra": 0}}  # fast2 without its conv after pool3
# name -> (TrainConfig overrides, knobs): knobs as in bench/speed_worker.py
COMPARE: dict[str, tuple[dict, dict]] = {
    "fast (today)": ({}, {}),
    "fast + fused uint8 augmentation": ({}, {"fused_aug": True}),
    "fast, fp32 (no bf16 autocast)": ({"precision": "fp32"}, {}),
    "fast, channels-first": ({"channels_last": False}, {}),
    "fast2: pool before BN-ReLU": (F2, {}),
    "fast2 + fused aug": (F2, {"fused_aug": True}),
    "fast2 + fused aug, fp32": ({**F2, "precision": "fp32"}, {"fused_aug": True}),
    "fast2 + fused aug, whitening 3x3": ({**F2, "model_args": {"whiten": 3, "extra": 0}}, {"fused_aug": True}),
    "fast2 + fused aug, width 24": ({**F2, "model_args": {"width": 24, "extra": 0}}, {"fused_aug": True}),
    "fast2 + fused aug, width 48": ({**F2, "model_args": {"width": 48, "extra": 0}}, {"fused_aug": True}),
    "fast2 + fused aug, extra conv after pool3": ({**F2, "model_args": {"extra": 1}}, {"fused_aug": True}),
    "fast2 + fused aug, extra conv after every pool": ({**F2, "model_args": {"extra": 3}}, {"fused_aug": True}),
    "fast2 + fused aug, EMA off": ({**F2, "ema": 0.0}, {"fused_aug": True}),
    "fast2 + fused aug, batch 128": ({**F2, "batch_size": 128}, {"fused_aug": True}),
    "fast2 + fused aug, batch 512": ({**F2, "batch_size": 512}, {"fused_aug": True}),
    "fast2 + fused aug + torch.compile": (F2, {"fused_aug": True, "compile": True}),
}


def make(over: dict, knobs: dict, root: Path, threads: int) -> Trainer:
    cfg = config_from_dict({"dataset": "fashion-mnist", "hflip": True, "threads": threads,
                            "checkpoint_every": 10**9, "log_every": 10**9, **over})
    root.mkdir(parents=True, exist_ok=True)
    tr = Trainer(cfg, root, progress=False)
    if knobs.get("fused_aug"):
        from convscope.training.speed import use_fused_batch

        use_fused_batch(tr)
    if knobs.get("compile"):
        from convscope.training.speed import maybe_compile

        maybe_compile(tr.model, True)
    return tr


def cpu_with_children() -> float:
    """Process CPU seconds plus reaped children's (torch.compile runs the C++ compiler in subprocesses)."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def steps(tr: Trainer, order: torch.Tensor, n: int) -> None:
    bs = tr.cfg.batch_size
    for _ in range(n):
        i = tr.step % (len(order) // bs)
        x, y = tr._batch(order[i * bs:(i + 1) * bs])
        tr._train_step(x, y)
        tr.step += 1


def compare(threads: int, rounds: int, only: list[str] | None, out_path: Path) -> None:
    torch.set_num_threads(threads)
    order = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))
    names = [n for n in COMPARE if not only or n in only or n == "fast (today)"]
    with tempfile.TemporaryDirectory() as tmp:
        trs = {n: make(*COMPARE[n], Path(tmp) / str(i), threads) for i, n in enumerate(names)}
        warm = {}
        for n, tr in trs.items():                  # warm-up (and, for torch.compile, the compilation)
            c = cpu_with_children()
            steps(tr, order, 3)
            warm[n] = cpu_with_children() - c
        per_image: dict[str, list[float]] = {n: [] for n in trs}
        for _ in range(rounds):
            for n, tr in trs.items():
                k = max(2, 2560 // tr.cfg.batch_size)   # ~2,560 images a turn
                c = time.thread_time() if threads == 1 else time.process_time()
                steps(tr, order, k)
                dt = (time.thread_time() if threads == 1 else time.process_time()) - c
                per_image[n].append(dt / (k * tr.cfg.batch_size))
    base = statistics.median(per_image["fast (today)"])
    rows = []
    for n, v in per_image.items():
        m = statistics.median(v)
        bs = trs[n].cfg.batch_size
        rows.append({"variant": n, "config": COMPARE[n][0], "knobs": COMPARE[n][1],
                     "cpu_ms_per_step_256": round(1e3 * m * 256, 2), "batch_size": bs,
                     "ratio_vs_fast": round(m / base, 3), "warmup_cpu_s": round(warm[n], 2),
                     "per_round_us_per_image": [round(1e6 * x, 1) for x in v]})
        print(f"{n:<40} {1e3 * m * 256:7.1f} CPU ms / 256 images   x{m / base:.3f}   warm-up {warm[n]:.1f} s",
              flush=True)
    out = {"benchmark": "step_cost_speed", "machine": machine(), "threads": threads, "rounds": rounds,
           "clock": "thread CPU time (1 thread) / process CPU time, batch creation + optimizer step + EMA",
           "rows": rows}
    out_path.write_text(json.dumps(out, indent=2) + "\n")


def profile_model(over: dict, knobs: dict, threads: int) -> dict:
    torch.set_num_threads(threads)
    order = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        tr = make(over, knobs, Path(tmp) / "run", threads)
        steps(tr, order, 5)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            steps(tr, order, 30)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:20]
    rows = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / 30,
             "share": e.self_cpu_time_total / total, "calls_per_step": e.count / 30} for e in top]
    return {"total_self_ms_per_step": total / 1e3 / 30, "top": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--out", type=Path, default=RESULTS / "step_cost_speed.json", help="--compare's JSON file")
    args = ap.parse_args()
    if args.compare:
        compare(args.threads, args.rounds, args.only, args.out)
        return
    res = {"benchmark": "profile_fast", "machine": machine(), "steps": 30, "batch": 256, "threads": args.threads}
    for key, over, knobs in (("fast", {}, {}), ("fast2_fused_aug", F2, {"fused_aug": True})):
        p = profile_model(over, knobs, args.threads)
        res[key] = p
        print(f"\n{key}: {p['total_self_ms_per_step']:.1f} ms per step")
        for r in p["top"][:12]:
            print(f"  {r['op']:<45} {r['self_ms_per_step']:8.2f} ms/step  {100 * r['share']:5.1f}%")
    # the first round's layout, kept for the README's figures: the `fast` profile at the top level
    res.update(total_self_ms_per_step=res["fast"]["total_self_ms_per_step"], top=res["fast"]["top"])
    (RESULTS / "profile_fast.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
