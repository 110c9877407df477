"""Time to accuracy on a small CPU: our `fast` recipe beside the recipes people copy, in one invocation.

    python bench/time_to_accuracy.py                       # Fashion-MNIST + embedded digits, 3 seeds each
    python bench/time_to_accuracy.py --smoke               # seconds-long check that the harness works (CI)
    python bench/time_to_accuracy.py --recipes fast:epochs=14,tta=true --datasets fashion-mnist
    convscope bench                                        # the short version: digits, 1 seed, 60 s a run

Every run is a fresh process; its clock starts when the operating system started that process, so
importing torch, loading the data and building the model count. The test accuracy is evaluated every
`--eval-images` training images; evaluation time is measured and *not* counted. Checkpoint writes are
switched off for every recipe alike (the peers' scripts write none). Peers, reimplemented from their
published facts:

* pytorch-example — PyTorch's official MNIST example: its network, Adadelta lr 1.0, StepLR gamma 0.7 per
  epoch, batch 64, 14 epochs.
* keras-example — the Keras MNIST convnet: its network, Adam, batch 128, 15 epochs, 10% validation split.

Also measured in the same run: this machine's peak fp32 and bf16 matmul FLOP/s, each recipe's achieved
training FLOP/s (3x forward FLOPs per image: forward, and backward for inputs and weights), and the
**yardstick**: one epoch of the PyTorch example recipe on Fashion-MNIST, timed by the same clock (process start
to the end of the epoch, evaluation excluded), run once before and once after the recipes. Every time to
accuracy is also reported as a ratio to the yardstick's mean, which stays comparable across machines and hours
(the same command can take 2x longer in one hour than in another). The load average at each run's start is
recorded beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ._progress import track
from .runs.callbacks import Callback

_IMPORTED = time.perf_counter()
THRESHOLDS = {"fashion-mnist": [0.90, 0.91, 0.92, 0.93, 0.94], "digits": [0.97, 0.98, 0.985, 0.99]}
PEERS = ("pytorch-example", "keras-example")
YARDSTICK = ("pytorch-example:epochs=1", "fashion-mnist")


def process_age() -> float:
    """Seconds since the OS started this process (Linux /proc), else since this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def parse_recipe(spec: str) -> tuple[str, dict]:
    """``"fast:epochs=14,tta=true"`` -> ("fast", {"epochs": 14, "tta": True}); values are JSON."""
    name, _, extra = spec.partition(":")
    overrides = {}
    for item in filter(None, extra.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


# ---- worker: one recipe, one dataset, one seed, in its own process -------------------------------------------

class AccuracyClock(Callback):
    """A training callback: the test accuracy every ``every`` steps (and at the last step) against training wall
    time since ``t0`` with evaluation time taken out; stops the run once that time passes ``max_seconds``."""

    def __init__(self, every: int, max_seconds: float, t0: float) -> None:
        self.every, self.max_seconds, self.t0 = every, max_seconds, t0
        self.eval_s = 0.0                 # seconds spent evaluating (the loop's epoch-end evaluations included)
        self.log: list[dict] = []

    def on_eval(self, loop, split, result, seconds) -> None:
        self.eval_s += seconds

    def on_step_end(self, loop, result) -> None:
        if loop.step % self.every and loop.step != loop.total_steps:
            return
        t = time.perf_counter()
        acc = loop.engine.evaluate(loop.data.test).accuracy
        self.eval_s += time.perf_counter() - t
        wall = time.perf_counter() - self.t0 - self.eval_s
        self.log.append({"step": loop.step, "images": loop.step * loop.cfg.optim.batch_size, "wall": round(wall, 3),
                         "test_accuracy": acc})
        if wall > self.max_seconds:       # out of time: stop after this step
            loop.request_stop()


def worker(spec: str, dataset: str, seed: int, eval_images: int, max_seconds: float, smoke: bool,
           threads: int, extra_overrides: dict | None = None) -> dict:
    """One run of recipe ``spec`` (``name:key=value,...``; ``extra_overrides`` on top, for values such as
    ``model_args`` dicts that a spec string cannot carry): the accuracy log against the clock, and the rates."""
    import tempfile

    import torch

    from .models import flops_per_image
    from .training.config import config_from_dict, recipe
    from .training.loop import Loop
    from .training.setup import prepare
    from .training.runtime import torch_settings

    t0 = time.perf_counter() - process_age()
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    name, extra = parse_recipe(spec)
    overrides = {"dataset": dataset, "seed": seed, "threads": threads, "checkpoint_every": 10**9, **extra,
                 **(extra_overrides or {})}
    if smoke:
        overrides.update(epochs=1, train_subset=1024)
    cfg = config_from_dict(overrides, recipe(name))
    with tempfile.TemporaryDirectory() as tmp, torch_settings(cfg):
        cfg, data = prepare(cfg)     # the run's settings: the batch size may be the dataset's
        clock = AccuracyClock(max(1, round(eval_images / cfg.optim.batch_size)), max_seconds, t0)
        # no checkpoint writes, for every recipe alike (the peers' scripts write none)
        loop = Loop(cfg, data, Path(tmp), progress=False, callbacks=[clock], checkpoints=False)
        setup = time.perf_counter() - t0          # imports, data loading, model building
        loop.run()
        fwd = flops_per_image(loop.model.float().cpu(), data.train.shape)
    log = clock.log
    wall = log[-1]["wall"]
    train_images = log[-1]["images"]
    out = {"recipe": spec, "dataset": dataset, "seed": seed, "log": log, "final_accuracy": log[-1]["test_accuracy"],
           "best_accuracy": max(e["test_accuracy"] for e in log), "wall_seconds": wall, "eval_seconds": clock.eval_s,
           "setup_seconds": setup, "train_images": train_images,
           "images_per_s": train_images / max(wall - setup, 1e-9), "forward_flops_per_image": fwd,
           "train_flops_per_image": 3 * fwd, "bf16": cfg.runtime.precision == "bf16",
           "batch_size": cfg.optim.batch_size, "epochs_run": loop.epoch, "torch_threads": torch.get_num_threads(),
           "config": cfg.flat(), "load_average_at_start": load_average}   # flat keys, as the results files hold them
    out["achieved_flops"] = out["images_per_s"] * out["train_flops_per_image"]
    for t in THRESHOLDS.get(dataset, []):
        hit = next((e for e in log if e["test_accuracy"] >= t), None)
        out[f"time_to_{t}"] = hit["wall"] if hit else None
    return out


# ---- controller --------------------------------------------------------------------------------------------

def peak_flops(threads: int) -> dict:
    """Matmul FLOP/s of this machine on ``threads`` threads: a 2048 x 2048 product repeated for a second, fp32 and
    bf16. The caller's thread count comes back afterwards."""
    import torch

    from .training.threads import cpu_threads

    res = {}
    with cpu_threads(threads):
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
            a @ b
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < 1.0:
                a @ b
                n += 1
            res[name] = 2 * 2048**3 * n / (time.perf_counter() - t)
    return res


def summarize(runs: list[dict], yardstick: float | None = None) -> list[dict]:
    """Per (dataset, recipe): means over seeds, how many seeds reached each threshold, per-seed times, and
    (given the yardstick's seconds) every time as a ratio to it."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["recipe"]), []).append(r)
    rows = []
    for (ds, rec), rs in groups.items():
        row = {"dataset": ds, "recipe": rec, "seeds": len(rs),
               "final_accuracy": statistics.mean(r["final_accuracy"] for r in rs),
               "best_accuracy": statistics.mean(r["best_accuracy"] for r in rs),
               "wall_seconds": statistics.mean(r["wall_seconds"] for r in rs),
               "images_per_s": statistics.mean(r["images_per_s"] for r in rs),
               "achieved_gflops": statistics.mean(r["achieved_flops"] for r in rs) / 1e9}
        for t in THRESHOLDS.get(ds, []):
            times = [r[f"time_to_{t}"] for r in rs]
            row[f"time_to_{t}"] = statistics.mean(times) if all(x is not None for x in times) else None
            row[f"reached_{t}"] = sum(x is not None for x in times)
            row[f"per_seed_time_to_{t}"] = times
            if yardstick:
                row[f"ratio_to_{t}"] = None if row[f"time_to_{t}"] is None else row[f"time_to_{t}"] / yardstick
                row[f"worst_ratio_to_{t}"] = (max(times) / yardstick) if all(x is not None for x in times) else None
        row["per_seed_final_accuracy"] = [r["final_accuracy"] for r in rs]
        row["min_final_accuracy"] = min(row["per_seed_final_accuracy"])
        if yardstick:
            row["ratio_total"] = row["wall_seconds"] / yardstick
        rows.append(row)
    return rows


def table(rows: list[dict], peaks: dict, yardstick: float | None = None) -> str:
    lines = []
    if yardstick:
        lines.append(f"\nyardstick (one epoch of pytorch-example on Fashion-MNIST): {yardstick:.1f} s; "
                     "cells: seconds (x yardstick), mean over seeds; n/m seeds where not every seed got there")
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        ths = THRESHOLDS.get(ds, [])
        lines.append(f"\n**{ds}** (mean over seeds; seconds of wall time from process start, evaluation excluded)\n")
        lines.append("| recipe | " + " | ".join(f"to {100 * t:g}%" for t in ths) +
                     " | final acc. | total s | train img/s | GFLOP/s (% of bf16 / fp32 peak) |")
        lines.append("|---|" + "---|" * (len(ths) + 4))
        for r in (r for r in rows if r["dataset"] == ds):
            cells = []
            for t in ths:
                v = r[f"time_to_{t}"]
                if v is not None:
                    cells.append(f"{v:.1f}" + (f" ({v / yardstick:.2f}x)" if yardstick else ""))
                else:
                    cells.append("—" if r[f"reached_{t}"] == 0 else f"{r[f'reached_{t}']}/{r['seeds']} seeds")
            g = r["achieved_gflops"]
            lines.append(f"| {r['recipe']} | " + " | ".join(cells) +
                         f" | {100 * r['final_accuracy']:.2f}% (min {100 * r['min_final_accuracy']:.2f}%) | "
                         f"{r['wall_seconds']:.1f} | {r['images_per_s']:.0f} | "
                         f"{g:.1f} ({100 * g * 1e9 / peaks['bf16']:.1f}% / {100 * g * 1e9 / peaks['fp32']:.1f}%) |")
    return "\n".join(lines)


def machine() -> dict:
    """CPU model and flags, core count, versions: recorded beside every result."""
    import platform

    import torch

    flags, model = [], platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    keep = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    return {"cpu": model, "cores": os.cpu_count(), "cpu_flags": sorted(keep), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def provenance(argv: list[str] | None = None) -> dict:
    """What makes a result file evidence: the git commit it was measured on (``dirty``: the tree had uncommitted
    changes to tracked files outside bench/results/), the command that wrote it, the machine, and when (UTC).
    ``commit`` is None when the code does not run from a git checkout (an installed package); the rest is recorded
    anyway."""
    import shlex
    from datetime import datetime, timezone

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # bench/results/ is what benchmarks write, not code: a script that merges into its results file as it goes
    # (the ablations) would otherwise mark its own later runs dirty
    status = (git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
              if commit else None)
    args = list(sys.argv if argv is None else argv)
    head = Path(args[0]) if args else Path("python")
    if head.name in ("__main__.py", "convscope") and head.parent.name in ("convscope", "bin"):
        command = ["convscope", *args[1:]]  # `python -m convscope ...` or the console script
    else:
        with contextlib.suppress(ValueError):
            head = head.resolve().relative_to(root)
        command = ["python", str(head), *args[1:]]
    return {"commit": commit, "dirty": None if status is None else bool(status), "command": shlex.join(command),
            "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None, default_out: Path | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["fast", "keras-example", "pytorch-example"],
                    help="recipe names, each optionally with overrides: fast:epochs=14,tta=true")
    ap.add_argument("--datasets", nargs="+", default=["fashion-mnist", "digits"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--peer-seeds", type=int, default=None,
                    help="seeds for the peer recipes (pytorch-example, keras-example); default: --seeds")
    ap.add_argument("--yardstick", type=int, default=2, help="yardstick runs, split before and after the "
                    "recipes (0: none; ratios are then not reported)")
    ap.add_argument("--eval-images", type=int, default=0, help="evaluate every N training images "
                    "(default: 10,000 for Fashion-MNIST, 2,000 for digits)")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="stop a run after this much training wall time")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="1 epoch on 1,024 images per run: checks the harness only")
    ap.add_argument("--out", type=Path, default=default_out, help="JSON results file")
    ap.add_argument("--worker", nargs=3, metavar=("RECIPE", "DATASET", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        rec, ds, seed = args.worker
        every = args.eval_images or (10_000 if ds != "digits" else 2_000)
        print(json.dumps(worker(rec, ds, int(seed), every, args.max_seconds, args.smoke, args.threads)))
        return
    if args.out:   # checked before minutes of runs: new, or the results of an earlier run of this harness
        from ._check import replaceable

        replaceable(args.out, "--out", b'"benchmark": "time_to_accuracy"', "the results of an earlier benchmark",
                    f"give --out a new file name, or move {args.out.name} away first")
    peaks = peak_flops(args.threads)
    print(f"peak matmul: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    def run_one(rec: str, ds: str, seed: int) -> dict:
        cmd = [sys.executable, "-m", "convscope.benchmark", "--worker", rec, ds, str(seed),
               "--max-seconds", str(args.max_seconds), "--threads", str(args.threads),
               "--eval-images", str(args.eval_images)]
        if args.smoke:
            cmd.append("--smoke")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{ds} {rec} seed {seed} failed:\n{r.stderr[-3000:]}")
        out = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{ds} {rec} seed {seed}: final {100 * out['final_accuracy']:.2f}% after "
              f"{out['wall_seconds']:.1f} s, {out['images_per_s']:.0f} img/s", flush=True)
        return out

    # the yardstick's runs before and after the recipes' (run, recipe, dataset, seed)
    jobs = [("yardstick", *YARDSTICK, seed) for seed in range((args.yardstick + 1) // 2)]
    for ds in args.datasets:
        for rec in args.recipes:
            peer = parse_recipe(rec)[0] in PEERS
            n = args.peer_seeds if peer and args.peer_seeds is not None else args.seeds
            jobs += [("recipe", rec, ds, seed) for seed in range(n)]
    jobs += [("yardstick", *YARDSTICK, seed) for seed in range(args.yardstick // 2)]
    yard_runs, runs = [], []
    for kind, rec, ds, seed in track(jobs, "bench: training runs", unit="run"):
        (yard_runs if kind == "yardstick" else runs).append(run_one(rec, ds, seed))
    yardstick = statistics.mean(r["wall_seconds"] for r in yard_runs) if yard_runs else None
    rows = summarize(runs, yardstick)
    result = {"benchmark": "time_to_accuracy", "provenance": provenance(), "smoke": args.smoke, "peak_flops": peaks,
              "thresholds": THRESHOLDS, "yardstick_seconds": yardstick,
              "yardstick_runs": [{k: r[k] for k in ("seed", "wall_seconds", "setup_seconds", "load_average_at_start")}
                                 for r in yard_runs], "summary": rows, "runs": runs}
    if args.out:
        from ._atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(table(rows, peaks, yardstick))


if __name__ == "__main__":
    main()
