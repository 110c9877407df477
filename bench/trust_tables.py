"""The trust tables of docs/visualize.md, regenerated from one run (default: train the main job's model,
``convscope train --deterministic``, into a scratch folder):

1. Grad-CAM's all-zero/constant rate on the first ``--gradcam-images`` test images, at the default layer (the
   activation after the last conv block) and at the last conv's output (the old default), with the layer chosen
   and why.
2. The attribution audit (``convscope.inspect.audit.audit``: every method, guided backprop and deconvnet, and the
   controls) on the first ``--audit-images`` test images.
3. Feature visualization of ``--layer`` channels 0..15 against the best test image by ``mean``, ``max`` and
   ``neuron``, side by side, with the channels whose best natural value is <= 0.

    python bench/trust_tables.py [--run RUN] [--audit-images 64] [--steps 14]

Writes bench/results/trust_tables.json (with provenance: commit, machine, command) and prints Markdown tables.
``main(argv)`` is what bench/lecture_tables.py calls.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402

from convscope._atomic import atomic_write_text  # noqa: E402
from convscope.benchmark import provenance  # noqa: E402

OUT = ROOT / "bench" / "results" / "trust_tables.json"


def train_main(folder: Path) -> Path:
    """The main job's model, ``convscope train --deterministic``, trained into FOLDER/main."""
    out = folder / "main"
    subprocess.run([sys.executable, "-m", "convscope", "train", "--deterministic", "--quiet", "--out", str(out)],
                   check=True, cwd=ROOT)
    return out


def gradcam_rates(run, test, n: int) -> dict:
    from convscope.inspect.attribution import DegenerateMapWarning, explain
    from convscope.models.conv_layers import last_conv

    x = run.normalization.apply(test.images[:n])
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateMapWarning)
        for label, layer in (("default", None), ("last conv", last_conv(run.model))):
            for method in ("gradcam", "guided_gradcam"):
                r = explain(run.model, x, method, layer=layer)
                out[f"{method} @ {label}"] = {"layer": r.layer, "reason": r.layer_reason, "images": n,
                                              "constant_fraction": r.degenerate_fraction,
                                              "nonzero_fraction": 1 - r.degenerate_fraction}
    return out


def visual_comparison(run, test, layer: str, channels: list[int], steps: int) -> dict:
    from convscope.inspect import visualize

    res = {}
    for measure in ("mean", "max", "neuron"):
        v = visualize(run.model, layer, channels, test, seed=0, measure=measure, norm=run.normalization,
                      steps=steps)
        vals, nat = np.array(v.values), np.array(v.natural_values)
        res[measure] = {"values": vals.tolist(), "natural_values": nat.tolist(),
                        "natural_indices": v.natural_indices, "beats": int((vals > nat).sum()),
                        "channels": len(channels), "natural_nonpositive": [c for c, n in zip(channels, nat) if n <= 0],
                        "distinct_natural_images": len(set(v.natural_indices)),
                        "median_ratio": float(np.median(vals / nat)) if (nat > 0).all() else None}
    return res


def _vis_table(vis: dict) -> str:
    lines = ["| measure | optimized beats best test image | median ratio | channels with best natural value <= 0 "
             "| distinct best images |", "|---|---|---|---|---|"]
    for m, r in vis.items():
        ratio = f"{r['median_ratio']:.2f}" if r["median_ratio"] is not None else "n/a (some <= 0)"
        lines.append(f"| {m} | {r['beats']}/{r['channels']} | {ratio} | {len(r['natural_nonpositive'])} "
                     f"| {r['distinct_natural_images']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prov: dict | None = None) -> dict:
    """``prov``: the provenance to record (bench/lecture_tables.py passes the one it took before its first stage,
    whose figures would otherwise mark this commit dirty); default: taken here, before anything is measured."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a trained run (default: train the main job's model)")
    p.add_argument("--gradcam-images", type=int, default=200)
    p.add_argument("--audit-images", type=int, default=64)
    p.add_argument("--steps", type=int, default=14, help="deletion/insertion steps")
    p.add_argument("--layer", default="conv3", help="feature-visualization layer")
    p.add_argument("--vis-steps", type=int, default=256)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--skip", default="", help="comma-separated parts to skip: gradcam,audit,visualize")
    args = p.parse_args(argv)
    import torch

    from convscope import load_run
    from convscope.data import load
    from convscope.inspect.audit import audit, audit_notes, audit_table

    torch.set_num_threads(1)
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        path = args.run or train_main(Path(tmp))
        run = load_run(path)
        test = load(run.config.dataset, "test", run.config.data_dir)
        acc = json.loads((Path(path) / "summary.json").read_text()).get("test_accuracy") \
            if (Path(path) / "summary.json").is_file() else None
        result: dict = {"provenance": prov or provenance(),
                        "run": str(path) if args.run else "convscope train --deterministic",
                        "model": run.config.model.name, "test_accuracy": acc, "test_images": len(test)}
        t0 = time.perf_counter()
        if "gradcam" not in skip:
            result["gradcam"] = gradcam_rates(run, test, args.gradcam_images)
            print(json.dumps(result["gradcam"], indent=1), flush=True)
        if "audit" not in skip:
            x = run.normalization.apply(test.images[:args.audit_images])
            rows = audit(run.model, x, steps=args.steps, progress=lambda r: print(f"  {r.method}: {r.seconds:.0f} s",
                                                                                   flush=True))
            result["audit"] = {"images": args.audit_images, "steps": args.steps, "notes": audit_notes(rows),
                               "table": audit_table(rows), "methods": [r.to_dict() for r in rows]}
            print(audit_table(rows), flush=True)
        if "visualize" not in skip:
            result["visualize"] = {"layer": args.layer, "steps": args.vis_steps,
                                   **visual_comparison(run, test, args.layer, list(range(16)), args.vis_steps)}
            result["visualize_table"] = _vis_table({k: v for k, v in result["visualize"].items()
                                                    if k in ("mean", "max", "neuron")})
            print(result["visualize_table"], flush=True)
        result["seconds"] = time.perf_counter() - t0
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
