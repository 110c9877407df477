"""One training run of a recipe variant in this process, timed like convscope/benchmark.py, plus CPU time.

    python bench/speed_worker.py VARIANT_JSON DATASET SEED [--eval-images N]

VARIANT_JSON: {"config": {...TrainConfig overrides...}, "knobs": {...}} — knobs are the speed-branch
changes that are not config keys yet (they patch the trainer instance, never the library):
  fused_aug: true          the uint8 one-gather batch (convscope/data/augment_speed.py; bit-identical)
  compile: true            torch.compile of the trained model (convscope/training/speed.py)
  tta_shifts: k            evaluation also averages translations by +-k pixels (convscope/training/speed.py)
  yardstick: true          no evaluation at all: time the steps of the run (one epoch of pytorch-example)

Prints one JSON line. Times: ``wall`` from process start (as the harness: imports, data, model, compile
included; evaluation excluded) and ``cpu`` = this process's CPU seconds since its start (+ finished
children, e.g. the C++ compiler), evaluation's CPU excluded. With --threads 1 the CPU clock is what a
quiet machine's wall clock would show, and it barely moves when other jobs share the cores.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


def cpu_seconds() -> float:
    """CPU seconds of this process since it started, all threads, plus reaped children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("variant")
    ap.add_argument("dataset")
    ap.add_argument("seed", type=int)
    ap.add_argument("--eval-images", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from convscope.benchmark import THRESHOLDS, process_age

    t0 = time.perf_counter() - process_age()
    import tempfile

    import torch

    from convscope.training.config import config_from_dict, recipe
    from convscope.training.loop import make_trainer

    spec = json.loads(args.variant)
    knobs = spec.get("knobs", {})
    over = dict(spec.get("config", {}))
    base = recipe(over.pop("recipe", "fast"))
    cfg = config_from_dict({"dataset": args.dataset, "seed": args.seed, "threads": args.threads,
                            "checkpoint_every": 10**9, **over}, base)
    every_images = args.eval_images or (10_000 if args.dataset != "digits" else 2_000)
    log: list[dict] = []
    state = {"eval_wall": 0.0, "eval_cpu": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "run").mkdir()
        torch.set_num_threads(args.threads)
        trainer = make_trainer(cfg, Path(tmp) / "run", progress=False)
        cls = type(trainer)
        every = max(1, round(every_images / cfg.batch_size))
        if knobs.get("fused_aug"):
            from convscope.training.speed import use_fused_batch

            use_fused_batch(trainer)
        if knobs.get("compile"):
            from convscope.training.speed import maybe_compile

            maybe_compile(trainer.model, True)
        eval_fn = cls.evaluate
        if knobs.get("tta_shifts"):
            from convscope.training.speed import shift_tta_evaluate

            def eval_fn(self, ds, _k=knobs["tta_shifts"]):
                return shift_tta_evaluate(self, ds, _k)

        def timed_eval(self, ds, _orig=eval_fn):
            t, c = time.perf_counter(), cpu_seconds()
            res = _orig(self, ds)
            state["eval_wall"] += time.perf_counter() - t
            state["eval_cpu"] += cpu_seconds() - c
            return res

        def step(self, x, y, _orig=cls._train_step):
            ok = _orig(self, x, y)
            last = (self.step + 1) == self.total_steps
            if knobs.get("yardstick"):
                if last:
                    log.append({"step": self.step + 1, "images": (self.step + 1) * cfg.batch_size,
                                "wall": time.perf_counter() - t0, "cpu": cpu_seconds(), "test_accuracy": None})
                return ok
            if (self.step + 1) % every == 0 or last:
                acc = self.evaluate(self.test_set).accuracy
                log.append({"step": self.step + 1, "images": (self.step + 1) * cfg.batch_size,
                            "wall": round(time.perf_counter() - t0 - state["eval_wall"], 3),
                            "cpu": round(cpu_seconds() - state["eval_cpu"], 3), "test_accuracy": acc})
            return ok

        trainer.evaluate = timed_eval.__get__(trainer)
        trainer._train_step = step.__get__(trainer)
        trainer.save = lambda: None
        if knobs.get("yardstick"):
            trainer._end_epoch = lambda seconds, images: setattr(trainer, "epoch", trainer.epoch + 1)
        setup_wall, setup_cpu = time.perf_counter() - t0, cpu_seconds()
        trainer.run()
        extra = {}
        if not knobs.get("yardstick"):  # the same final weights, scored with translation TTA too (+-1, +-2 px)
            from convscope.training.speed import shift_tta_evaluate

            for k in (1, 2):
                extra[f"final_accuracy_shift_tta_{k}"] = shift_tta_evaluate(trainer, trainer.test_set, k).accuracy
    out = {"variant": spec, "dataset": args.dataset, "seed": args.seed, "threads": args.threads,
           "setup_wall": setup_wall, "setup_cpu": setup_cpu, "log": log, "final_accuracy": log[-1]["test_accuracy"],
           "wall": log[-1]["wall"], "cpu": log[-1]["cpu"], "train_images": log[-1]["images"],
           "load_avg": os.getloadavg()[0], **extra}
    if knobs.get("yardstick"):  # the epoch alone, without imports and data loading
        out["epoch_wall"], out["epoch_cpu"] = out["wall"] - setup_wall, out["cpu"] - setup_cpu
    for t in THRESHOLDS.get(args.dataset, []):
        hit = next((e for e in log if e["test_accuracy"] is not None and e["test_accuracy"] >= t), None)
        out[f"cpu_to_{t}"] = hit["cpu"] if hit else None
        out[f"wall_to_{t}"] = hit["wall"] if hit else None
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
