"""Attribution: our `attribute` against the same Captum calls made directly (the issue's goal: <= 2x, i.e.
the wrapping adds little), for 100 test images and every method; and the audit (randomization cascade +
deletion/insertion) of one method on 500 images (goal: <= 2 minutes).

    python bench/attribution_speed.py [RUN] [--threads 2] [--audit-methods saliency,gradcam]

Both sides run interleaved, median of 3; ours is called with target=None, so it also pays for the forward
that finds the predicted class, which the direct calls are handed. Writes bench/results/attribution_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance

import convscope
from convscope.data import load
from convscope.inspect import ATTRIBUTION_METHODS, attribute, audit_method
from convscope.inspect.attribution import default_gradcam_layer
from convscope.inspect.attribution import occlusion_window


def direct(model, x, method, target, layer):
    """Captum with the same parameters and reduction as convscope's wrapper."""
    from captum import attr

    xr = x.clone().requires_grad_()
    if method == "saliency":
        return attr.Saliency(model).attribute(xr, target=target).amax(1)
    if method == "smoothgrad":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return attr.NoiseTunnel(attr.Saliency(model)).attribute(
                xr, nt_type="smoothgrad", nt_samples=16, stdevs=0.15 * float(x.max() - x.min()), target=target).amax(1)
    if method == "integrated_gradients":
        return attr.IntegratedGradients(model).attribute(xr, target=target, n_steps=32).sum(1)
    if method == "gradcam":
        cam = attr.LayerGradCam(model, layer).attribute(xr, target=target, relu_attributions=True)
        return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    if method == "occlusion":
        w, s = occlusion_window(tuple(x.shape[1:]))
        return attr.Occlusion(model).attribute(xr, sliding_window_shapes=w, strides=s, target=target).mean(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "guided_backprop":
            return attr.GuidedBackprop(model).attribute(xr, target=target).sum(1)
        if method == "deconvnet":
            return attr.Deconvolution(model).attribute(xr, target=target).sum(1)
        return attr.GuidedGradCam(model, layer).attribute(xr, target=target).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default="/tmp/viz-main")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--audit-methods", default="saliency,gradcam")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = convscope.load_run(args.run)
    model = run.model.eval()
    ds = load("digits", "test")
    x = run.normalization.apply(ds.images[:100])
    target = model(x).argmax(1)
    name = default_gradcam_layer(model, x)[0]            # the same Grad-CAM layer for both calls
    layer = dict(model.named_modules())[name]
    rows = {}
    for m in ATTRIBUTION_METHODS:
        ours, theirs = [], []
        for _ in range(3):
            t = time.perf_counter()
            attribute(model, x, m, layer=name)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            direct(model, x, m, target, layer)
            theirs.append(time.perf_counter() - t)
        rows[m] = {"ours_seconds": statistics.median(ours), "captum_seconds": statistics.median(theirs)}
        rows[m]["ratio"] = rows[m]["ours_seconds"] / rows[m]["captum_seconds"]
        print(m, rows[m], flush=True)
    total_ours = sum(r["ours_seconds"] for r in rows.values())
    total_captum = sum(r["captum_seconds"] for r in rows.values())
    x500 = run.normalization.apply(ds.images[:500])
    audits = {}
    for m in args.audit_methods.split(","):
        t, c = time.perf_counter(), time.process_time()
        a = audit_method(model, x500, m)
        audits[m] = {"wall_seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                     "passes_randomization": a.passes_randomization, "passes_faithfulness": a.passes_faithfulness}
        print("audit", m, audits[m], flush=True)
    result = {"benchmark": "attribution_speed", "provenance": provenance(), "threads": args.threads, "run": args.run,
              "images": 100, "methods": rows, "total_ours_seconds": total_ours, "total_captum_seconds": total_captum,
              "total_ratio": total_ours / total_captum, "audit_images": 500, "audit": audits,
              "load_average_end": os.getloadavg()[0],
              "goal": {"ratio_max": 2.0, "audit_seconds_max": 120}}
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "attribution_speed.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
