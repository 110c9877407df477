"""What each recipe choice buys, measured side by side.

Round 2 (issue 15, default): every variant in its own process (bench/speed_worker.py), interleaved seed by
seed with the baseline (`fast` as it is today) and with the yardstick — one epoch of PyTorch's example recipe
on Fashion-MNIST — so a figure is a ratio taken in one run, not an absolute time on a shared machine.

    python bench/recipe_ablation.py --dataset digits --seeds 3 [--only NAME ...] [--jobs 2] [--yardsticks 2]
    python bench/recipe_ablation.py --round 1                  # the first round (4-epoch Fashion-MNIST runs)

Round 2 writes bench/results/recipe_ablation_speed_<dataset>.json: per run the test accuracy at every
evaluation, with process CPU seconds and wall seconds from process start (evaluation excluded); per variant
the per-seed figures and their ratio to the baseline's and to the yardstick epoch's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

RESULTS = Path(__file__).parent / "results"
BASE = "fast (today)"
YARDSTICK = {"config": {"recipe": "pytorch-example", "epochs": 1}, "knobs": {"yardstick": True}}
F2 = {"model": "fast2", "model_args": {"extra": 0}}  # fast2 without its conv after pool3
# name -> {"config": TrainConfig overrides (+ "recipe"), "knobs": speed-branch patches (bench/speed_worker.py)}
VARIANTS: dict[str, dict] = {
    BASE: {},
    "fused uint8 augmentation": {"knobs": {"fused_aug": True}},
    "torch.compile (cold cache)": {"knobs": {"compile": True}},
    "pool before BN-ReLU (fast2)": {"config": F2},
    "fast2 + fused aug": {"config": F2, "knobs": {"fused_aug": True}},
    "fast2 + fused aug + shift TTA 1": {"config": F2, "knobs": {"fused_aug": True, "tta_shifts": 1}},
    "fast2 + whitening 3x3": {"config": {"model": "fast2", "model_args": {"whiten": 3, "extra": 0}}, "knobs": {"fused_aug": True}},
    "fast2, batch 128, lr 0.07": {"config": {**F2, "batch_size": 128, "lr": 0.07}, "knobs": {"fused_aug": True}},
    "fast2, batch 512, lr 0.2": {"config": {**F2, "batch_size": 512, "lr": 0.2}, "knobs": {"fused_aug": True}},
    "fast2, 10 epochs": {"config": {**F2, "epochs": 10}, "knobs": {"fused_aug": True}},
    "fast2, 8 epochs": {"config": {**F2, "epochs": 8}, "knobs": {"fused_aug": True}},
    "fast2, 16 epochs": {"config": {**F2, "epochs": 16}, "knobs": {"fused_aug": True}},
    "fast2, width 24": {"config": {**F2, "model_args": {"width": 24, "extra": 0}}, "knobs": {"fused_aug": True}},
    "fast2, width 48": {"config": {**F2, "model_args": {"width": 48, "extra": 0}}, "knobs": {"fused_aug": True}},
    "fast2, extra conv after pool3": {"config": {**F2, "model_args": {"extra": 1}}, "knobs": {"fused_aug": True}},
    "fast2, extra conv after every pool": {"config": {**F2, "model_args": {"extra": 3}}, "knobs": {"fused_aug": True}},
    "fast2, label smoothing 0": {"config": {**F2, "label_smoothing": 0.0}, "knobs": {"fused_aug": True}},
    "fast2, EMA 0.995": {"config": {**F2, "ema": 0.995}, "knobs": {"fused_aug": True}},
    "fast2, EMA off": {"config": {**F2, "ema": 0.0}, "knobs": {"fused_aug": True}},
    "fast2, translate 1": {"config": {**F2, "translate": 1}, "knobs": {"fused_aug": True}},
    "fast2, lr 0.2": {"config": {**F2, "lr": 0.2}, "knobs": {"fused_aug": True}},
    "fast2, cosine schedule": {"config": {**F2, "schedule": "cosine"}, "knobs": {"fused_aug": True}},
}


def run_worker(spec: dict, dataset: str, seed: int, threads: int, eval_images: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).parent / "speed_worker.py"), json.dumps(spec), dataset, str(seed),
           "--threads", str(threads), "--eval-images", str(eval_images)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{spec} {dataset} seed {seed} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict], dataset: str, thresholds: list[float]) -> dict:
    yard = [r["epoch_cpu"] for r in runs if r["name"] == "yardstick"]
    yard_cpu = statistics.median(yard) if yard else None
    by: dict[str, list[dict]] = {}
    for r in runs:
        if r["name"] != "yardstick":
            by.setdefault(r["name"], []).append(r)
    base = {r["seed"]: r for r in by.get(BASE, [])}
    rows = []
    for name, rs in by.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        row = {"variant": name, "spec": rs[0]["variant"], "seeds": [r["seed"] for r in rs],
               "final_accuracy": [r["final_accuracy"] for r in rs],
               "mean_final_accuracy": statistics.mean(r["final_accuracy"] for r in rs),
               "cpu_seconds": [r["cpu"] for r in rs], "setup_cpu": [round(r["setup_cpu"], 2) for r in rs],
               # training CPU per image relative to the baseline's, same seed (the throughput ratio)
               "cpu_ratio_vs_base": [round(r["cpu"] / base[r["seed"]]["cpu"], 3) for r in rs if r["seed"] in base]}
        for t in thresholds:
            per = [r[f"cpu_to_{t}"] for r in rs]
            row[f"cpu_to_{t}"] = per
            row[f"reached_{t}"] = sum(x is not None for x in per)
            if yard_cpu:
                row[f"yardstick_ratio_to_{t}"] = [None if x is None else round(x / yard_cpu, 3) for x in per]
        rows.append(row)
    return {"yardstick_epoch_cpu": yard, "yardstick_epoch_cpu_median": yard_cpu, "variants": rows}


def round2(args: argparse.Namespace) -> None:
    from convscope.benchmark import THRESHOLDS

    names = [n for n in VARIANTS if not args.only or n in args.only or (n == BASE and not args.no_base)]
    tasks = []
    for seed in range(args.seed0, args.seed0 + args.seeds):
        for n in names:
            spec = json.loads(json.dumps(VARIANTS[n]))
            if args.epochs and "epochs" not in spec.get("config", {}):
                spec.setdefault("config", {})["epochs"] = args.epochs
            if args.hflip:
                spec.setdefault("config", {})["hflip"] = True
            tasks.append((n, spec, args.dataset, seed))
    step = max(1, len(tasks) // max(1, args.yardsticks))
    for i in range(args.yardsticks):          # spread through the run, so each sees the same machine
        tasks.insert(min(len(tasks), i * (step + 1)), ("yardstick", YARDSTICK, "fashion-mnist", 0))
    out = args.out or RESULTS / f"recipe_ablation_speed_{args.dataset}.json"
    runs: list[dict] = []

    def one(task):
        n, spec, ds, seed = task
        r = run_worker(spec, ds, seed, args.threads, args.eval_images)
        r["name"] = n
        acc = "" if r["final_accuracy"] is None else f"{100 * r['final_accuracy']:.2f}%"
        print(f"{n:<40} seed {seed}  {acc:>7}  cpu {r['cpu']:.1f} s  wall {r['wall']:.1f} s  "
              f"load {r['load_avg']:.1f}", flush=True)
        return r

    t = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, tasks):
            runs.append(r)
            res = {"benchmark": "recipe_ablation_speed", "machine": machine(), "dataset": args.dataset,
                   "threads_per_run": args.threads, "parallel_runs": args.jobs,
                   "clock": "process CPU seconds from process start, evaluation excluded (1 thread: what a "
                            "quiet machine's wall clock shows); wall seconds recorded too",
                   "summary": summarize(runs, args.dataset, THRESHOLDS.get(args.dataset, [])), "runs": runs}
            from convscope._atomic import atomic_write_text

            atomic_write_text(out, json.dumps(res, indent=2) + "\n")
    print(f"done in {time.perf_counter() - t:.0f} s -> {out}")


# ---- round 1: the first speed round's 4-epoch Fashion-MNIST comparison (in-process) -------------------------

PLAIN = {"dataset": "fashion-mnist", "epochs": 4, "hflip": True, "threads": 2, "checkpoint_every": 10**9,
         "ema": 0.0, "tta": False, "model_args": {"head": "max"}}
ROUND1 = {
    "max head (old default)": {},
    "flatten head": {"model_args": {"head": "flatten"}},
    "average head": {"model_args": {"head": "avg"}},
    "extra conv in last block": {"model_args": {"head": "max", "extra": 1}},
    "peak lr 0.2": {"lr": 0.2},
    "width 48": {"model_args": {"head": "max", "width": 48}},
    "flatten + EMA + TTA (default)": {"model_args": {"head": "flatten"}, "ema": 0.99, "tta": True},
    "flatten + extra + EMA + TTA": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99, "tta": True},
    "flatten + extra + EMA + TTA, batch 512, lr 0.2": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99,
                                                       "tta": True, "batch_size": 512, "lr": 0.2},
    "default, 12 epochs": {"model_args": {"head": "flatten"}, "ema": 0.99, "tta": True, "epochs": 12},
    "extra conv, 12 epochs": {"model_args": {"head": "flatten", "extra": 1}, "ema": 0.99, "tta": True, "epochs": 12},
}


def round1(only: list[str] | None) -> None:
    import convscope

    results = []
    for name, over in ROUND1.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run = convscope.train({**PLAIN, **over}, out=Path(tmp) / "run", progress=False)
            epochs = [m for m in run.metrics if m["kind"] == "epoch"]
            results.append({"variant": name, "config": {**PLAIN, **over},
                            "test_accuracy_per_epoch": [m["test_accuracy"] for m in epochs],
                            "final_test_accuracy": run.summary["test_accuracy"],
                            "train_seconds": run.summary["seconds"], "wall_seconds": time.perf_counter() - t})
        print(f"{name:<50} {100 * results[-1]['final_test_accuracy']:.2f}%  {results[-1]['train_seconds']:.1f} s",
              flush=True)
    out = {"benchmark": "recipe_ablation", "machine": machine(), "results": results}
    (RESULTS / "recipe_ablation.json").write_text(json.dumps(out, indent=2) + "\n")


def table(path: Path) -> str:
    """Markdown: each variant's accuracy per seed, time to each threshold as a ratio to the yardstick epoch."""
    res = json.loads(path.read_text())
    sm = res["summary"]
    ths = [k[len("reached_"):] for k in sm["variants"][0] if k.startswith("reached_")] if sm["variants"] else []
    lines = [(f"yardstick epoch: {sm['yardstick_epoch_cpu_median'] or float('nan'):.1f} CPU s (median of "
             f"{len(sm['yardstick_epoch_cpu'])}); ratios below = CPU seconds from process start / that"),
             "", "| variant | CPU vs today | final acc. per seed | " + " | ".join(f"to {100 * float(t):g}%" for t in ths)
             + " |", "|---|---|---|" + "---|" * len(ths)]
    for v in sm["variants"]:
        cells = []
        for t in ths:
            per = v.get(f"yardstick_ratio_to_{t}") or v[f"cpu_to_{t}"]
            cells.append(" / ".join("—" if x is None else f"{x:.2f}" for x in per))
        ratio = statistics.mean(v["cpu_ratio_vs_base"]) if v["cpu_ratio_vs_base"] else float("nan")
        accs = " / ".join(f"{100 * a:.2f}" for a in v["final_accuracy"])
        lines.append(f"| {v['variant']} | {ratio:.2f} | {accs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--round", type=int, default=2, choices=(1, 2))
    ap.add_argument("--only", nargs="+", help="variant names to run (the baseline always runs)")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed0", type=int, default=0, help="first seed")
    ap.add_argument("--epochs", type=int, default=0, help="override every variant's epochs (0: its own)")
    ap.add_argument("--hflip", action="store_true", help="train with flips (Fashion-MNIST)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once")
    ap.add_argument("--yardsticks", type=int, default=1, help="yardstick epochs interleaved with the runs")
    ap.add_argument("--eval-images", type=int, default=0)
    ap.add_argument("--no-base", action="store_true", help="skip the baseline (it ran beside these elsewhere)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", type=Path, help="print the markdown table of a round-2 results file and exit")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
    elif args.round == 1:
        round1(args.only)
    else:
        round2(args)


if __name__ == "__main__":
    main()
