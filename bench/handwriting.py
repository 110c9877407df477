"""Real handwriting that is not MNIST: scikit-learn's bundled UCI digits read through `convscope predict`'s code path.

    python bench/handwriting.py --seeds 0 1 2                      # every variant below, 3 seeds
    python bench/handwriting.py --variants base,chosen --seeds 0    # a subset

The 1,797 UCI 8x8 digits (43 writers; scikit-learn's `load_digits`, values 0..16) are upscaled to 64x64 PNGs
(bilinear), once as light strokes on black and once as dark strokes on white (what a scan of paper gives), and
read by `convscope.training.report.predict_files` -- the function the `predict` command calls, with its
`prepare_image` -- with `--prepare none` and `--prepare mnist`. Each training variant is the main job
(`convscope train`, defaults) plus augmentation options, trained with `--deterministic` for each seed; the
digits test split is evaluated as stored (what `convscope eval` reports) and after `prepare_image` too.

Writes bench/results/handwriting.json: per variant and seed, training seconds, digits test accuracy, and
per polarity and preparation the overall and per-class accuracy on the UCI digits; plus means over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance

import convscope
from convscope.data import load
from convscope.data.prepare import prepare_image
from convscope.training.evaluate import evaluate
from convscope.training.report import predict_files

# training variants: the main job's defaults plus these overrides (TrainConfig keys)
VARIANTS: dict[str, dict] = {
    "base": {},
    "affine": {"rotate": 10.0, "scale": 0.15, "aspect": 0.2},
    "affine+stroke": {"rotate": 10.0, "scale": 0.15, "aspect": 0.2, "stroke": 0.6},
    "affine+stroke+blur": {"rotate": 10.0, "scale": 0.15, "aspect": 0.2, "stroke": 0.6, "blur": 0.8},
    "stroke": {"stroke": 0.6},
    "stroke+blur": {"stroke": 0.6, "blur": 0.8},
    "blur": {"blur": 0.8},
    "strong": {"rotate": 15.0, "scale": 0.2, "aspect": 0.3, "stroke": 0.8, "blur": 1.0},
}


def uci_pngs(folder: Path, size: int = 64) -> tuple[dict[str, list[Path]], np.ndarray]:
    """Write the UCI digits as PNGs: {"light": [...], "dark": [...]} (light-on-dark, dark-on-light) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    labels = d.target.astype(np.int64)                                        # (1797,)
    files: dict[str, list[Path]] = {"light": [], "dark": []}
    for i, img in enumerate(d.images):                                        # (8, 8) floats 0..16
        light = Image.fromarray(np.round(img * 255 / 16).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        for pol, im in (("light", light), ("dark", Image.fromarray(255 - np.asarray(light)))):
            path = folder / pol / f"{i:04d}-{labels[i]}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path)
            files[pol].append(path)
    return files, labels


def score(pred: np.ndarray, labels: np.ndarray) -> dict:
    per_class = [float((pred[labels == c] == c).mean()) for c in range(10)]
    return {"accuracy": float((pred == labels).mean()), "per_class": [round(v, 4) for v in per_class]}


def read_uci(run: convscope.Run, files: list[Path], labels: np.ndarray, mode: str) -> dict:
    """predict's code path (predict_files: read file, prepare_image, model, TTA if the run has it), top-1."""
    out = predict_files(run, files, k=1, prepare=mode)
    pred = np.array([int(top[0][0]) for _, _, top in out])
    several = sum(any("for the whole image" in n for n in notes) for _, notes, _ in out)
    return {**score(pred, labels), "flagged_several_marks": several}


@torch.no_grad()
def digits_test(run: convscope.Run) -> dict:
    """The digits test split as stored, and after prepare_image (an MNIST digit prepared again should not move)."""
    test = load("digits", "test")
    raw = evaluate(run.model, test, run.normalization, tta=run.tta).accuracy
    prepared = torch.stack([prepare_image(img[0].numpy(), run.input_shape).tensor for img in test.images])
    again = evaluate(run.model, dataclasses.replace(test, images=prepared), run.normalization, tta=run.tta).accuracy
    return {"accuracy": float(raw), "accuracy_prepared": float(again)}


def augment_cost(variants: dict[str, dict], reps: int = 50) -> dict[str, float]:
    """CPU milliseconds per batch of 256 digits for each variant's augmentations (translate included), measured
    side by side in this process (process time, so other load on a shared machine counts less)."""
    from convscope.data.augment import random_affine, random_blur, random_stroke, random_translate

    x0 = load("digits", "train").images[:256].float() / 255                # (256, 1, 28, 28)
    out = {}
    for name, v in variants.items():
        g = torch.Generator().manual_seed(0)
        t0 = time.process_time()
        for _ in range(reps):
            x = random_translate(x0, 2, g)
            x = random_affine(x, g, v.get("rotate", 0.0), v.get("scale", 0.0), v.get("aspect", 0.0))
            x = random_stroke(x, g, v.get("stroke", 0.0))
            x = random_blur(x, g, v.get("blur", 0.0))
        out[name] = round(1000 * (time.process_time() - t0) / reps, 3)
    return out


def figure(path: Path, n: int = 8) -> None:
    """The first ``n`` UCI digits as a scan gives them (dark on light, 64x64) above what prepare_image makes."""
    from convscope.viz import new_figure, save_figure

    with tempfile.TemporaryDirectory() as tmp:
        files, labels = uci_pngs(Path(tmp), size=64)
        fig = new_figure(1.1 * n, 2.4)
        axes = fig.subplots(2, n)
        for i in range(n):
            with Image.open(files["dark"][i]) as im:
                img = np.asarray(im)
            axes[0, i].imshow(img, cmap="gray", vmin=0, vmax=255)
            axes[1, i].imshow(prepare_image(img).tensor[0].numpy(), cmap="gray", vmin=0, vmax=255)
            axes[0, i].set_title(str(labels[i]), fontsize=9)
            for ax in axes[:, i]:
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("file", fontsize=8)
        axes[1, 0].set_ylabel("prepared", fontsize=8)
        save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None, help="torch threads for training (default torch's)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "handwriting.json")
    ap.add_argument("--runs-dir", type=Path, help="keep the trained runs here and reuse those already there "
                                                  "(default: a temporary folder)")
    ap.add_argument("--merge", type=Path, nargs="+", help="only merge these result files into --out and print the "
                                                          "table")
    ap.add_argument("--figure", type=Path, help="only draw files vs prepared inputs to this PNG")
    args = ap.parse_args()
    if args.figure:
        figure(args.figure)
        return
    if args.merge:
        torch.set_num_threads(args.threads or 1)
        parts = [json.loads(p.read_text()) for p in args.merge]
        merged = {**parts[0], "variants": {k: v for p in parts for k, v in p["variants"].items()},
                  "augment_cpu_ms_per_batch256": augment_cost({k: v for p in parts for k, v in p["variants"].items()}),
                  "runs": [r for p in parts for r in p["runs"]]}
        args.out.write_text(json.dumps(summarise(merged), indent=2) + "\n")
        print(table(summarise(merged)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)     # evaluation too: oversubscribed threads crawl on a shared machine
    names = [v for v in args.variants.split(",") if v]
    result: dict = {"benchmark": "handwriting", "provenance": provenance(), "variants": {n: VARIANTS[n] for n in names},
                    "augment_cpu_ms_per_batch256": augment_cost({n: VARIANTS[n] for n in names}),
                    "uci": "sklearn load_digits, 1797 images, 8x8 -> 64x64 bilinear PNG", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir or Path(tmp)
        files, labels = uci_pngs(Path(tmp) / "uci")
        for name in names:
            for seed in args.seeds:
                path = runs_dir / f"{name}-{seed}"
                t0 = time.perf_counter()
                trained = not (path / "model.json").exists()
                if not trained:
                    run = convscope.load_run(path)
                else:
                    cfg = {**VARIANTS[name], "seed": seed, "deterministic": True}
                    if args.threads:
                        cfg["threads"] = args.threads
                    run = convscope.train(cfg, out=path, progress=False)
                wall = time.perf_counter() - t0
                row = {"variant": name, "seed": seed, "train_seconds": run.summary["seconds"],
                       "train_wall_seconds": round(wall, 2) if trained else None, "digits_test": digits_test(run)}
                for pol in ("light", "dark"):
                    for mode in ("none", "mnist"):
                        row[f"uci_{pol}_{mode}"] = read_uci(run, files[pol], labels, mode)
                result["runs"].append(row)
                print(json.dumps({k: (v["accuracy"] if isinstance(v, dict) and "accuracy" in v else v)
                                  for k, v in row.items()}), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(summarise(result), indent=2) + "\n")
    print(table(summarise(result)))


def summarise(result: dict) -> dict:
    means = {}
    for name in result["variants"]:
        rows = [r for r in result["runs"] if r["variant"] == name]
        if not rows:
            continue
        m = {"seeds": len(rows), "train_seconds": statistics.mean(r["train_seconds"] for r in rows),
             "digits_test": statistics.mean(r["digits_test"]["accuracy"] for r in rows),
             "digits_test_prepared": statistics.mean(r["digits_test"]["accuracy_prepared"] for r in rows)}
        for key in [k for k in rows[0] if k.startswith("uci_")]:
            m[key] = statistics.mean(r[key]["accuracy"] for r in rows)
            m[key + "_per_class"] = [round(statistics.mean(r[key]["per_class"][c] for r in rows), 4)
                                     for c in range(10)]
        means[name] = m
    return {**result, "means": means}


def table(result: dict) -> str:
    head = ("| training | prepare | UCI light-on-dark | UCI dark-on-light | digits test | digits test, prepared "
            "| train s |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for name, m in result["means"].items():
        for mode in ("none", "mnist"):
            lines.append(f"| {name} ({m['seeds']} seeds) | {mode} | {100 * m[f'uci_light_{mode}']:.1f}% | "
                         f"{100 * m[f'uci_dark_{mode}']:.1f}% | {100 * m['digits_test']:.2f}% | "
                         f"{100 * m['digits_test_prepared']:.2f}% | {m['train_seconds']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
