"""Speed rounds 2 and 3 (issues 15 and 26), the number of steps: every idea tried on Fashion-MNIST, kept or not.

Each variant is the plain default recipe (``convscope train --dataset fashion-mnist``: fast2, flips, EMA, mirror
TTA, label smoothing, one-cycle) with a few settings changed, trained in its own process for a short budget;
the log holds the test accuracy after every epoch (evaluation time excluded from the clock).

    python bench/recipe_ablation2.py [--only NAME ...] [--seeds 0 1] [--jobs 2] [--threads 1]
    python bench/recipe_ablation2.py --table
    python bench/recipe_ablation2.py --round 3 --only "batch 128, lr 0.05, 5 epochs" --seeds 0 1 2 3 4

Round 3 starts from the Fashion-MNIST defaults round 2 left (6 epochs of 256 at lr 0.1, no shifts) and writes
its own results file; every round-3 variant states its epochs, batch and lr, so its label keeps its meaning.

Accuracy per epoch does not depend on the machine's load, so variants may run ``--jobs`` at a time (each on
``--threads`` threads) to explore; the images/s they report are then only comparable within one run.
Results are merged (by variant and seed) into bench/results/recipe_ablation_round2_fashion-mnist.json; each run
records the commit it ran on, the file the command and machine of its last merge.

Lookahead, progressive resizing and shift TTA were rejected by this ablation and removed from convscope (issue
22): their variants stay in VARIANTS and their rows in the results file (``--table`` prints them), but the driver
refuses to run them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance  # noqa: E402

from convscope._atomic import atomic_write_text  # noqa: E402

DATASET = "fashion-mnist"


def results_file(round_: str | int) -> Path:
    """Round 2 and 3's Fashion-MNIST files, and ``3-digits`` -> recipe_ablation_round3_digits.json."""
    number, dataset = str(round_).partition("-")[0], ROUND_DATASET[str(round_)]
    return Path(__file__).parent / "results" / f"recipe_ablation_round{number}_{dataset}.json"


ROUND_DATASET = {"2": DATASET, "3": DATASET, "3-digits": "digits"}
# the default recipe as round 2 found it (epochs and translate since depend on the dataset): every variant is
# these settings plus its own changes, so a label means the same whatever today's defaults are
BEFORE = {"epochs": 12, "translate": 2}
SHORT = {"epochs": 4}
# name -> (overrides of the default recipe, why it was tried)
VARIANTS: dict[str, tuple[dict, str]] = {
    "default, 4 epochs": (SHORT, "the baseline of every 4-epoch row"),
    "batch 128, lr 0.07": ({**SHORT, "batch_size": 128, "lr": 0.07}, "twice the steps per epoch"),
    "batch 128, lr 0.1": ({**SHORT, "batch_size": 128, "lr": 0.1}, "twice the steps, same peak lr"),
    "lr 0.2": ({**SHORT, "lr": 0.2}, "a higher peak for a shorter budget"),
    "lr 0.05": ({**SHORT, "lr": 0.05}, "a lower peak"),
    "no label smoothing": ({**SHORT, "label_smoothing": 0.0}, "label smoothing retuned"),
    "label smoothing 0.2": ({**SHORT, "label_smoothing": 0.2}, "label smoothing retuned"),
    "EMA off": ({**SHORT, "ema": 0.0}, "EMA retuned"),
    "EMA 0.995": ({**SHORT, "ema": 0.995}, "EMA retuned"),
    "weight decay 1e-3": ({**SHORT, "weight_decay": 1e-3}, "regularization for the short budget"),
    "weight decay 2.5e-4": ({**SHORT, "weight_decay": 2.5e-4}, "regularization for the short budget"),
    "translate 1": ({**SHORT, "translate": 1}, "lighter augmentation for the short budget"),
    "translate 0": ({**SHORT, "translate": 0}, "no shifts at all for the short budget"),
    "no flips": ({**SHORT, "hflip": False, "tta": False}, "flips off (and their TTA)"),
    "patch whitening 3x3": ({**SHORT, "model_args": {"whiten": 3}}, "airbench's fixed first layer"),
    "extra convs in blocks 2-3": ({**SHORT, "model_args": {"extra": 2}}, "depth at 7x7 and 3x3"),
    "no extra conv": ({**SHORT, "model_args": {"extra": 0}}, "depth: fast2 without its pool3 conv"),
    "width 24": ({**SHORT, "model_args": {"width": 24}}, "width for the budget: cheaper steps"),
    "width 40": ({**SHORT, "model_args": {"width": 40}}, "width for the budget: more capacity"),
    "widths 24-64-128": ({**SHORT, "model_args": {"widths": [24, 64, 128]}}, "narrow only the full-res conv"),
    "widths 32-96-192": ({**SHORT, "model_args": {"widths": [32, 96, 192]}}, "width where the maps are small"),
    "translate 0, 5 epochs": ({"epochs": 5, "translate": 0}, "no shifts, one more epoch"),
    "translate 0, 12 epochs": ({"translate": 0}, "no shifts over the default budget: overfits?"),
    "translate 0, 8 epochs": ({"epochs": 8, "translate": 0}, "no shifts, 8 epochs"),
    "translate 0, 6 epochs": ({"epochs": 6, "translate": 0}, "no shifts, 6 epochs (the Fashion-MNIST default since)"),
    "translate 0, width 24, 6 epochs": ({"epochs": 6, "translate": 0, "model_args": {"width": 24}},
                                        "no shifts, cheaper steps"),
    "6 epochs": ({"epochs": 6}, "epochs for the budget"),
}
# Round 3 (issue 26): 93% within one yardstick epoch, 94% within three. Base: round 2's Fashion-MNIST defaults.
ROUND2_END = {"epochs": 6, "translate": 0, "batch_size": 256, "lr": 0.1}
VARIANTS3: dict[str, tuple[dict, str]] = {
    "5 epochs": ({**ROUND2_END, "epochs": 5}, "one epoch less: the baseline of the 5-epoch rows"),
    "batch 128, lr 0.05, 5 epochs": ({**ROUND2_END, "epochs": 5, "batch_size": 128, "lr": 0.05},
                                     "twice the steps at the same rate per image; 128-image steps also ran faster "
                                     "per image on the Intel Xeon (AMX)"),
    "batch 128, lr 0.07, 5 epochs": ({**ROUND2_END, "epochs": 5, "batch_size": 128, "lr": 0.07},
                                     "twice the steps, a higher rate per image"),
    "batch 128, lr 0.07, 4 epochs": ({**ROUND2_END, "epochs": 4, "batch_size": 128, "lr": 0.07},
                                     "the shortest budget that might reach 93%"),
    "width 48, 5 epochs": ({**ROUND2_END, "epochs": 5, "model_args": {"width": 48}}, "capacity for fewer epochs"),
    "12 epochs": ({**ROUND2_END, "epochs": 12}, "toward 94%"),
    "batch 128, lr 0.05, 12 epochs": ({**ROUND2_END, "epochs": 12, "batch_size": 128, "lr": 0.05}, "toward 94%"),
    "width 48, 12 epochs": ({**ROUND2_END, "epochs": 12, "model_args": {"width": 48}}, "toward 94%: capacity"),
    "width 40, 10 epochs": ({**ROUND2_END, "epochs": 10, "model_args": {"width": 40}}, "toward 94%: capacity"),
}
# Round 3 on the digits (issue 26): the main job (`convscope train`) within 0.4x the yardstick at >= 99.3%.
# Base: the digits defaults (12 epochs of 256 at lr 0.1, +-2 px, stroke width and blur); 8,000 training images,
# so an epoch is 31 steps of 256 and the evaluation after each epoch is on the 2,000 test images.
DIGITS_DEFAULT = {"epochs": 12, "translate": 2, "batch_size": 256, "lr": 0.1}
VARIANTS3_DIGITS: dict[str, tuple[dict, str]] = {
    "12 epochs": (DIGITS_DEFAULT, "the default: the baseline"),
    "8 epochs": ({**DIGITS_DEFAULT, "epochs": 8}, "a third fewer steps"),
    "batch 128, lr 0.05, 8 epochs": ({**DIGITS_DEFAULT, "epochs": 8, "batch_size": 128, "lr": 0.05},
                                     "twice the steps per epoch at the same rate per image (kept on Fashion-MNIST)"),
    "batch 128, lr 0.05, 6 epochs": ({**DIGITS_DEFAULT, "epochs": 6, "batch_size": 128, "lr": 0.05},
                                     "half the default's images"),
    "batch 128, lr 0.05, 10 epochs": ({**DIGITS_DEFAULT, "epochs": 10, "batch_size": 128, "lr": 0.05},
                                      "more steps, fewer images"),
    "batch 128, lr 0.1, 8 epochs": ({**DIGITS_DEFAULT, "epochs": 8, "batch_size": 128, "lr": 0.1},
                                    "twice the steps at the default's peak lr"),
    "batch 128, lr 0.05, 12 epochs": ({**DIGITS_DEFAULT, "batch_size": 128, "lr": 0.05},
                                      "the default budget in 128-image steps: accuracy ceiling"),
    "batch 128, lr 0.05, 5 epochs": ({**DIGITS_DEFAULT, "epochs": 5, "batch_size": 128, "lr": 0.05},
                                     "shorter still"),
    "batch 128, lr 0.1, 6 epochs": ({**DIGITS_DEFAULT, "epochs": 6, "batch_size": 128, "lr": 0.1},
                                    "6 epochs of 128 at the default's peak lr"),
    "batch 128, lr 0.05, 7 epochs": ({**DIGITS_DEFAULT, "epochs": 7, "batch_size": 128, "lr": 0.05},
                                     "a margin over 6 epochs"),
}
# Session 37: the half-image budget (6 epochs of 128 at lr 0.05) with one regularizer or augmentation retuned,
# since a shorter budget may want less of them (on Fashion-MNIST, no shifts won at 4-5 epochs)
HALF = {**DIGITS_DEFAULT, "epochs": 6, "batch_size": 128, "lr": 0.05}
VARIANTS3_DIGITS.update({
    "half budget, translate 1": ({**HALF, "translate": 1}, "lighter shifts for the short budget"),
    "half budget, no stroke or blur": ({**HALF, "stroke": 0.0, "blur": 0.0}, "lighter augmentation"),
    "half budget, no label smoothing": ({**HALF, "label_smoothing": 0.0}, "label smoothing retuned"),
    "half budget, weight decay 1e-3": ({**HALF, "weight_decay": 1e-3}, "regularization retuned"),
    "half budget, lr 0.07": ({**HALF, "lr": 0.07}, "a higher rate per image for fewer images"),
    "half budget, EMA 0.98": ({**HALF, "ema": 0.98}, "a shorter average for fewer steps"),
    # without label smoothing or without stroke and blur the half budget lost 0.4 points: does more of them help?
    "half budget, label smoothing 0.2": ({**HALF, "label_smoothing": 0.2}, "more of what mattered most"),
    "half budget, stroke 0.9, blur 1.2": ({**HALF, "stroke": 0.9, "blur": 1.2}, "stronger handwriting augmentation"),
    "half budget, rotate 10": ({**HALF, "rotate": 10.0}, "another handwriting augmentation"),
})
ROUNDS = {"2": VARIANTS, "3": VARIANTS3, "3-digits": VARIANTS3_DIGITS}
# evaluate every this many training images: Fashion-MNIST's one evaluation a 60,000-image epoch; the digits' 8,000
EVAL_IMAGES = {"fashion-mnist": 60_000, "digits": 8_000}

# Variants of options this ablation rejected and convscope then removed (Lookahead, progressive resizing, shifted
# test-time views; issue 22): their results stay in the results file and the table, marked historical, but
# today's convscope cannot run them again.
HISTORICAL = {"lookahead k=5", "lookahead k=10, alpha 0.8", "24 px for 2 of 4 epochs", "shift TTA 1 px",
              "translate 0 + shift TTA, 5 epochs", "translate 0, 24 px for 2 of 5 epochs"}

# training options this ablation rejected, since removed from convscope: a variant that sets one cannot run
REMOVED = {"lookahead": "Lookahead", "lookahead_alpha": "Lookahead", "low_res": "progressive resizing",
           "low_res_epochs": "progressive resizing", "tta_shift": "shift test-time augmentation"}


def removed_options(name: str, variants: dict = VARIANTS) -> list[str]:
    """The removed options variant ``name`` sets, as 'key (feature)'; empty when it can run."""
    return [f"{k} ({REMOVED[k]})" for k in variants[name][0] if k in REMOVED]


def run_variant(name: str, seed: int, threads: int, round_: str = "2") -> dict:
    cmd = [sys.executable, __file__, "--worker", name, str(seed), "--threads", str(threads), "--round", str(round_)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def worker(name: str, seed: int, threads: int, round_: str = "2") -> dict:
    from convscope.benchmark import worker as bench_worker

    variants = ROUNDS[round_]
    if removed_options(name, variants):
        raise SystemExit(f"variant {name!r} sets {', '.join(removed_options(name, variants))}, removed from "
                         "convscope; its stored rows stay in the results file (--table)")
    over, why = variants[name]
    dataset = ROUND_DATASET[round_]
    out = bench_worker("fast", dataset, seed, EVAL_IMAGES[dataset], 10**6, False, threads, {**BEFORE, **over})
    acc = [e["test_accuracy"] for e in out["log"]]
    return {"variant": name, "seed": seed, "why": why, "overrides": over, "threads": threads,
            "test_accuracy_per_epoch": acc, "final_accuracy": out["final_accuracy"],
            "wall_seconds": out["wall_seconds"], "setup_seconds": out["setup_seconds"],
            "images_per_s": out["images_per_s"], "epochs_run": out["epochs_run"],
            "train_images": out["train_images"], "load_average_at_start": out["load_average_at_start"],
            "config": out["config"]}


def load_results(round_: str = "2") -> dict:
    path = results_file(round_)
    if path.exists():
        return json.loads(path.read_text())
    return {"benchmark": f"recipe_ablation_round{round_}", "dataset": ROUND_DATASET[round_], "runs": []}


def table(results: dict) -> str:
    rows = {}
    for r in results["runs"]:
        rows.setdefault(r["variant"], []).append(r)
    lines = ["| variant | epochs | seeds | final acc. per seed | mean | img/s (mean) |", "|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        accs = [r["final_accuracy"] for r in sorted(rs, key=lambda r: r["seed"])]
        label = f"{name} (historical: option removed)" if name in HISTORICAL else name
        lines.append(f"| {label} | {rs[0]['epochs_run']} | {len(rs)} | " + " / ".join(f"{100 * a:.2f}" for a in accs)
                     + f" | {100 * sum(accs) / len(accs):.2f} | {sum(r['images_per_s'] for r in rs) / len(rs):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--round", choices=list(ROUNDS), default="2", help="which round's variants and results "
                    "file (3-digits: round 3's variants of the digits' main job)")
    ap.add_argument("--table", action="store_true", help="print the table of the results file and stop")
    ap.add_argument("--worker", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.threads, args.round)))
        return
    if args.table:
        print(table(load_results(args.round)))
        return
    variants = ROUNDS[args.round]
    unknown = [n for n in args.only or [] if n not in variants]
    if set(unknown) & HISTORICAL:
        raise SystemExit(f"{sorted(set(unknown) & HISTORICAL)}: options convscope removed; only their recorded "
                         "results remain (--table shows them)")
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; valid: {list(variants)}")
    gone = {n: removed_options(n, variants) for n in args.only or variants if removed_options(n, variants)}
    if args.only and gone:
        raise SystemExit("cannot run " + "; ".join(f"{n!r}: sets {', '.join(o)}" for n, o in gone.items())
                         + " — removed from convscope (issue 22); their stored rows stay in the results file "
                           "(--table prints them)")
    if gone:
        print(f"skipped (they set options removed from convscope; stored rows kept): {', '.join(gone)}", flush=True)
    todo = [(n, s) for n in variants if (not args.only or n in args.only) and n not in gone for s in args.seeds]

    def one(job: tuple[str, int]) -> dict:
        r = run_variant(*job, args.threads, args.round)
        print(f"{r['variant']:<32} seed {r['seed']}: " + " ".join(f"{100 * a:.2f}" for a in
              r["test_accuracy_per_epoch"]) + f"  ({r['images_per_s']:.0f} img/s)", flush=True)
        with LOCK:
            merge(r, args.round)
        return r

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))
    print(table(load_results(args.round)))


LOCK = threading.Lock()


def merge(r: dict, round_: str = "2") -> None:
    """Into the results file: a later run of a variant and seed replaces the earlier one."""
    results = load_results(round_)
    prov = provenance()
    r = {**r, "commit": prov["commit"], "dirty": prov["dirty"]}  # runs merged at different times: each its commit
    results["runs"] = [x for x in results["runs"] if (x["variant"], x["seed"]) != (r["variant"], r["seed"])]
    results["runs"].append(r)
    results.pop("machine", None)
    results["provenance"] = prov
    atomic_write_text(results_file(round_), json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
