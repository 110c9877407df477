"""The lecture's stages (bench/lecture_tables.py ``--only``): each trains or reuses the default models it needs,
measures, writes its figures into docs/ and returns the JSON entry it measured. Imported by the driver, which puts
the repository and bench/ on ``sys.path`` first (trust_tables and refine_default are bench scripts)."""

from __future__ import annotations

import json
import os
import resource
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from convscope._atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
TRUST = ROOT / "bench" / "results" / "trust_tables.json"         # the trust stage's numbers (bench/trust_tables.py)
DOCS = ROOT / "docs"
FOURBYFOUR = [[-1, -1, 1, 1]] * 4                  # the thread's 4x4 vertical-edge detector


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the models ---------------------------------------------------------------------------------------------

def default_runs(n: int, folder: Path, say: Callable[[str], None] = print) -> list:
    """Runs of `convscope train` with no arguments and --seed 0..n-1, trained into ``folder`` or reused."""
    import convscope
    from convscope.training import load_run
    from convscope.training.config import config_from_dict

    runs = []
    for seed in range(n):
        path = folder / f"default-seed{seed}"
        want = config_from_dict({"seed": seed}).flat()
        if path.exists():
            run = load_run(path)
            have = run.config.flat()
            # keys the machine settles at training time (device, precision, test-time views) are not the recipe
            differ = [k for k, v in want.items() if v is not None and v != "auto" and have.get(k) != v
                      and k not in ("device", "precision", "tta")]
            if differ:
                raise SystemExit(f"{path}: trained with another recipe than `convscope train --seed {seed}` "
                                 f"({', '.join(differ)}); delete it")
            say(f"model {seed + 1}/{n}: {path} (trained earlier)")
        else:
            say(f"model {seed + 1}/{n}: training `convscope train --seed {seed}` into {path}")
            run = convscope.train({"seed": seed}, out=path, progress=False)
        runs.append(run)
    return runs


# --- stages: each returns the JSON entry it measured ------------------------------------------------------------

def stage_edges(args, say) -> dict:
    from convscope.data import load
    from convscope.inspect.edges import edge_experiment, edges_png

    digits = load("digits", "all")
    rows = []
    for data, name, kernel, filt in ((digits, "digits (10,000)", None, "Sobel-x 3x3"),
                                     (digits, "digits (10,000)", FOURBYFOUR, "4x4 vertical edge")):
        res = edge_experiment(digits.images, "sobel-x", kernel=kernel)
        rows.append({**res.summary(), "data": name, "label": filt})
        png = DOCS / ("edges-sobel-x.png" if kernel is None else "refine-edges-4x4.png")
        edges_png(data.images, res, png)
        say(f"edges {filt} on digits: wrote {png.relative_to(ROOT)}")
    try:
        fashion = load("fashion-mnist", "test")
    except Exception as e:                                          # noqa: BLE001 - an optional dataset
        say(f"edges: Fashion-MNIST not available ({e}); its row is left out")
    else:
        res = edge_experiment(fashion.images, kernel=FOURBYFOUR)
        rows.append({**res.summary(), "data": f"Fashion-MNIST test ({len(fashion):,})", "label": "4x4 vertical edge"})
    return {"rows": rows}


def stage_sparsity(args, say) -> dict:
    from convscope.data import load
    from convscope.inspect.sparsity import activation_sparsity, sparsity_png

    run = default_runs(1, args.runs, say)[0]
    test = load(run.config.dataset, "test", run.config.data_dir)
    res = activation_sparsity(run.model, test, run.normalization)
    model = run.config.flat()['model']
    sparsity_png(res, DOCS / "sparsity.png", f"activation sparsity, {model} on {test.name} test "
                                             f"({len(test):,} images)")
    return {"model": run.config.flat()["model"], "run": str(run.path.relative_to(ROOT)), "images": len(test),
            "layers": [{"name": r.name, "zero_fraction": r.zero_fraction, "dead_channels": r.dead_channels,
                        "channels": r.shape[0]} for r in res]}


def stage_refine(args, say) -> dict:
    from convscope.configs import RefineConfig
    from convscope.experiments import refine
    from convscope.experiments.pictures import curves_png, dose_png, kernels_png, per_class_png

    runs = default_runs(args.models, args.runs, say)
    variants = {} if args.variants is None else {"variants": tuple(args.variants.split(","))}
    cfg = RefineConfig(seeds=tuple(args.seeds), threads=args.threads, steps=args.steps, k=args.k,
                       eval_every=args.eval_every, **variants)
    t0, c0, load0 = time.perf_counter(), _cpu(), os.getloadavg()
    res = refine([r.path for r in runs], cfg, progress=say)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    load = {"start": list(load0), "end": list(os.getloadavg())}        # 1, 5, 15-minute load averages
    say(res.table())
    out = args.runs / "refine-results.json"                         # every run's rows: too large for git
    atomic_write_text(out, json.dumps(res.to_dict()) + "\n")
    curves_png(res, DOCS / "refine-curves-digits.png")
    dose_png(res, DOCS / "refine-dose-digits.png")
    per_class_png(res, DOCS / "refine-per-class-digits.png")
    kernels_png(res, res.train_images, DOCS / "refine-kernels-digits.png")
    per_model_seconds = [sum(r.seconds for r in res.runs if r.model == m) for m in range(res.model_count())]
    return {"config": cfg.to_dict(), "model": runs[0].config.flat()["model"], "layer": res.layer,
            "response": res.response, "data": res.data,
            "models": res.models, "summary": res.summary(), "paired": res.paired(),
            "dose_response": res.dose_response(), "wall_seconds": wall, "cpu_seconds": cpu, "load_average": load,
            "variant_seconds_per_model": per_model_seconds, "versions": res.versions}


def stage_trust(args, say) -> dict:
    import trust_tables

    from convscope.training import load_run

    path = args.trust_run or args.runs / "main"
    if args.trust_run is None and not path.exists():
        say(f"trust: training the main job's model (`convscope train --deterministic`) into {path}")
        path = trust_tables.train_main(args.runs)
    load_run(path)                                                  # a finished run, or convscope's own error
    import torch

    threads = torch.get_num_threads()
    try:                                # trust_tables measures on one thread; later stages keep their own
        trust_tables.main(["--run", str(path), "--audit-images", str(args.audit_images), "--steps",
                           str(args.audit_steps), "--out", str(TRUST)], prov=args.provenance)
    finally:
        torch.set_num_threads(threads)
    return {"file": str(TRUST.relative_to(ROOT))}


def stage_refine_default(args, say) -> dict:
    import refine_default

    run = args.trust_run or refine_default.main_run(args.runs)       # the main job's run, as the trust stage's
    extra = shlex.split(args.default_args)
    say(f"refine-default: `convscope experiment refine RUN {args.default_args}` on a copy of {run}")
    return {"run": str(run), **refine_default.measure(run, extra)}


STAGES: dict[str, Callable] = {"edges": stage_edges, "sparsity": stage_sparsity, "refine": stage_refine,
                               "trust": stage_trust, "refine-default": stage_refine_default}

