"""Every table and figure of the lecture's answer, regenerated from the current default model.

    python bench/lecture_tables.py                                  # every stage, 3 models of `convscope train`
    python bench/lecture_tables.py --only refine --models 3 --seeds 0,1,2
    python bench/lecture_tables.py --only trust                     # the trust tables of docs/visualize.md
    python bench/lecture_tables.py --render                         # only rewrite the docs' blocks from the JSON

Stages (``--only``, comma-separated; ``STAGES`` below, where another stage plugs in):

    edges     the edge-detector counts (Sobel-x and the thread's 4x4 detector on the digits, the 4x4 on
              Fashion-MNIST): exact integer counts, no model
    sparsity  exactly-zero activations of each ReLU layer of model 1 on the digits test split
    refine    `convscope experiment refine` on conv3 of every model, all variants and controls, paired statistics
    refine-default
              the documented default `convscope experiment refine RUN` (no options) on the main job's model, as a
              child process: wall and CPU seconds, load averages (bench/refine_default.py; issue #23's 10-minute bound)
    trust     bench/trust_tables.py on the main job's model (`convscope train --deterministic`): Grad-CAM's
              blank-map rate, the attribution audit with its controls, feature visualization by each measure;
              its numbers stay in bench/results/trust_tables.json (the entry here points at it)

The models are `convscope train` with no arguments (today `fast2` on the embedded digits) and ``--seed`` 0, 1, ...
(each seed draws a new initialisation, data order and augmentation), trained into ``--runs`` or reused from
there when an earlier call trained them with the same recipe.

Each stage's numbers go into bench/results/lecture_tables.json under its name, with the commit, the command and
the machine (other stages' entries are kept); its figures go into docs/. Then every block between
``<!-- lecture:NAME -->`` and ``<!-- /lecture:NAME -->`` in README.md and docs/*.md is rewritten from the JSON
(``render``), so the docs quote exactly what the script measured; tests/test_lecture_tables.py checks that they
still do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))                            # trust_tables, the trust stage
from convscope._atomic import atomic_write_text  # noqa: E402
from convscope.benchmark import provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "lecture_tables.json"
TRUST = ROOT / "bench" / "results" / "trust_tables.json"         # the trust stage's numbers (bench/trust_tables.py)
DOCS = ROOT / "docs"
RUNS = ROOT / "bench" / ".cache" / "lecture"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FOURBYFOUR = [[-1, -1, 1, 1]] * 4                  # the thread's 4x4 vertical-edge detector
BLOCK = re.compile(r"(<!-- lecture:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /lecture:(?P=name) -->)", re.S)


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


# --- rendering: JSON -> the markdown blocks the docs quote ----------------------------------------------------

def _pp(x: float, sign: bool = True) -> str:
    return f"{100 * x:+.2f}" if sign else f"{100 * x:.2f}"


def _ci(c: dict) -> str:
    return f"{_pp(c['mean'])} [{_pp(c['ci95'][0])}, {_pp(c['ci95'][1])}]"


def _kernel_label(r: dict) -> str:
    if "label" in r:
        return r["label"]
    if r.get("filter") == "sobel-x":
        return "Sobel-x 3x3"
    return "4x4 vertical edge" if r.get("kernel") == FOURBYFOUR else "custom"


def block_edges(d: dict) -> str:
    lines = ["| data | kernel | input | filter output | after ReLU | ReLU removes |", "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['data']} | {_kernel_label(r)} | {r['input_nonzero']['mean']:.1f} | "
                     f"{r['filtered_nonzero']['mean']:.1f} | {r['after_relu_nonzero']['mean']:.1f} | "
                     f"{100 * r['relu_zeroed_fraction_of_nonzero']:.1f}% |")
    return "\n".join(lines)


def block_edges_answer(d: dict) -> str:
    r = d["rows"][0]
    four = d["rows"][1]
    return (f"on the {r['images']:,} embedded digits {r['input_zero_mean']:.1f} of {r['pixels_per_image']} pixels "
            f"per image are exactly 0. With the thread's 4x4 detector: mean {four['input_nonzero']['mean']:.0f} "
            f"non-zero pixels in, {four['filtered_nonzero']['mean']:.0f} after the filter, "
            f"{four['after_relu_nonzero']['mean']:.0f} after ReLU (exact counts, independent of the machine).")


def block_sparsity(d: dict) -> str:
    lines = [f"| layer of `{d['model']}` | exactly zero on the {d['images']:,} test images | dead channels |",
             "|---|---|---|"]
    for r in d["layers"]:
        lines.append(f"| {r['name']} | {100 * r['zero_fraction']:.1f}% | {r['dead_channels']}/{r['channels']} |")
    return "\n".join(lines)


def _refine_table(d: dict, bn: str) -> str:
    s, p = d["summary"][bn], d["paired"].get(bn, {})
    lines = ["| variant | images | test acc. change (pp) | 95% CI | vs random (pp) [95% CI] | gap (pp) | "
             "response gain, own top-k train | top-k test | all test | top-k test kept | angle |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, f in s.items():
        pv = p.get(v, {})
        ci = pv.get("change", {}).get("ci95")
        vs = pv.get("vs_control")
        lines.append(
            f"| {v} | {f['chosen_images']['mean']:.0f} | {_pp(f['test_accuracy_change']['mean'])} ± "
            f"{_pp(f['test_accuracy_change']['std'], False)} | "
            + (f"[{_pp(ci[0])}, {_pp(ci[1])}]" if ci else "") + " | " + (_ci(vs) if vs else "control") + " | "
            f"{_pp(f['gap']['mean'])} | {100 * f['response_topk_train_gain']['mean']:+.1f}% | "
            f"{100 * f['response_topk_test_gain']['mean']:+.1f}% | {100 * f['response_all_test_gain']['mean']:+.1f}% | "
            f"{100 * f['topk_test_kept']['mean']:.0f}% | {f['kernel_angle']['mean'] * 57.29578:.1f}° |")
    return "\n".join(lines)


def block_refine_setup(d: dict) -> str:
    c, data = d["config"], d["data"]
    n, seeds = len(d["models"]), len(c["seeds"])
    accs = ", ".join(f"{100 * m['baseline']['test_accuracy']:.2f}%" for m in d["models"])
    out = (f"{n} models of `convscope train` (`{d['model']}`, seeds {', '.join(str(m['seed']) for m in d['models'])}; "
           f"test accuracy {accs}), {seeds} seed{'s' if seeds > 1 else ''} each, {c['steps']} steps, top-{c['k']} of "
           f"{d['layer']}'s kernels ({d['models'][0]['chosen_images']:,} distinct images for model 1), "
           f"{data['train_images']:,} training and {data['test_images']:,} test images; ± is the standard deviation "
           f"over the {n * seeds} runs (models x seeds); the 95% intervals are bootstrap intervals over the test "
           f"images ({c['bootstrap']:,} resamples, the mean over models and seeds); 'vs random' is paired with the "
           f"random-image control on the same model, seed and test images. Measured in "
           f"{d['wall_seconds'] / 60:.0f} min wall, {d['cpu_seconds'] / 60:.0f} min CPU (2-core "
           f"{d.get('cpu', 'CPU')}, shared with other jobs), torch {d['versions']['torch']}, commit "
           f"{d['provenance']['commit'][:7]}.")
    from convscope.configs import VARIANTS, RefineConfig

    short = []
    if seeds < 3:
        short.append(f"{seeds} seed per model, not 3: the ± spans models (initialisation, data order, augmentation) "
                     "with the batch order confounded in it; the intervals over test images do not depend on it")
    left = [v for v in VARIANTS if v not in c["variants"]]
    if left:
        short.append(f"variants left out: {', '.join(f'`{v}`' for v in left)}")
    every = RefineConfig().eval_every
    if c["eval_every"] > every:
        short.append(f"measured every {c['eval_every']} steps (default {every}), so the dose–response view "
                     "interpolates between fewer points")
    if short:
        out += ("\n\n> **A smaller run than the documented one**, to finish on the shared development machine: "
                + "; ".join(short) + f". The documented run: `nice -n 10 python bench/lecture_tables.py --only refine "
                f"--models {max(n, 3)} --seeds 0,1,2`.")
    return out


def block_refine_time(d: dict) -> str:
    """What the documented run cost, and what that says about the default run (one model, 3 seeds)."""
    c, n = d["config"], len(d["models"])
    per_model = d["cpu_seconds"] / n / len(c["seeds"])              # CPU seconds: one model, one seed, every variant
    load = d.get("load_average")
    load_txt = (f"; load average {load['start'][0]:.0f} at the start and {load['end'][0]:.0f} at the end on "
                "2 cores" if load else "")
    return (f"The run above took {d['wall_seconds'] / 60:.0f} min wall and {d['cpu_seconds'] / 60:.1f} min CPU "
            f"({d['versions']['threads']} torch thread(s), niced, on the shared {d.get('cpu', 'CPU')}{load_txt}): "
            f"{per_model / 60:.1f} CPU-minutes per model and seed for {len(c['variants'])} variants measured "
            f"every {c['eval_every']} steps; the default run (one model, 3 seeds) would do about three times that, "
            f"≈ {3 * per_model / 60:.0f} CPU-minutes by this estimate.")


def block_refine_default_time(d: dict) -> str:
    """What the default run (no options) cost, and what that does and does not say about two free cores. A run
    with fewer seeds than the default (``--default-args "--seeds 0"``) is scaled up, and said to be an estimate."""
    from convscope.configs import RefineConfig

    c, load, threads = d["config"], d["load_average"], d["threads"]
    n, default_n = len(c["seeds"]), len(RefineConfig().seeds)
    cpu, what = d["cpu_seconds"], "The CPU time is the work"
    if n < default_n:
        share = sum(d["variant_seconds"].values()) / d["wall_seconds"]     # the part that scales with the seeds
        cpu = d["cpu_seconds"] * (1 + (default_n / n - 1) * share)
        what = (f"**Measured with {n} seed{'s' if n > 1 else ''}, not the default's {default_n}**, to finish on the "
                f"shared machine: the variants took {100 * share:.0f}% of the wall time, so the default would take "
                f"about **{cpu / 60:.1f} min CPU** (that share scaled by {default_n}/{n}: an estimate, not measured)")
    free = ("about the wall time it would take on one free core" if threads == 1 else
            f"if it took as much CPU on free cores, {threads} threads would finish in {cpu / threads / 60:.1f} min "
            f"(perfect scaling) to {cpu / 60:.1f} min (none; the command waits on no disk or network)")
    verdict = ("**within the 10-minute bound even without parallel speed-up**" if cpu <= 600 else
               "**within the 10-minute bound only if the two threads share the work well**"
               if cpu / threads <= 600 else
               ("**over the 10-minute bound by this measurement**; whether it is on free cores, where contention "
                "does not inflate the CPU time, is not shown here"))
    nice = f"nice {d['nice']}" if d.get("nice") else "not niced"
    if n >= default_n and load["start"][0] < 1.0:      # the default itself, started on otherwise idle cores
        bound = "within" if d["wall_seconds"] <= 600 else "over"
        return (f"`{d['command']}` on {_main_model_short(d)}: {n} seeds x {len(c['variants'])} variants, "
                f"{c['steps']} steps, measured every {c['eval_every']} steps, BN {' and '.join(c['bn'])}: "
                f"**{d['wall_seconds'] / 60:.1f} min wall, {d['cpu_seconds'] / 60:.1f} min CPU** (user + system, "
                f"{threads} torch threads; 2-core {d['provenance']['machine']['cpu']}, commit "
                f"{d['provenance']['commit'][:7]}; {nice}; started on otherwise idle cores: load average "
                f"{load['start'][0]:.1f} at the start and {load['end'][0]:.1f} at the end, its own threads): "
                f"**{bound} the 10-minute bound, measured** (`bench/refine_default.py`).")
    return (f"`{d['command']}` on {_main_model_short(d)}: {n} seed{'s' if n > 1 else ''} x {len(c['variants'])} "
            f"variants, {c['steps']} steps, measured every {c['eval_every']} steps, BN {' and '.join(c['bn'])}: "
            f"**{d['wall_seconds'] / 60:.1f} min wall, {d['cpu_seconds'] / 60:.1f} min CPU** (user + system, "
            f"{threads} torch threads; 2-core {d['provenance']['machine']['cpu']}, commit "
            f"{d['provenance']['commit'][:7]}; {nice}, on a machine shared with other jobs: load average "
            f"{load['start'][0]:.1f} at the start and {load['end'][0]:.1f} at the end on 2 cores, so the wall time "
            f"here is {d['wall_seconds'] / d['cpu_seconds']:.1f}x the CPU time). {what}; {free}: {verdict}. "
            "Contention (shared caches, memory bandwidth) inflates CPU time too, so on free cores both numbers are "
            "more likely lower than higher; no free machine was available to confirm it (`bench/refine_default.py`).")


def _main_model_short(d: dict) -> str:
    return (f"the main job's model (`convscope train --deterministic`, test accuracy "
            f"{100 * d['baseline_test_accuracy']:.2f}%)")


def block_refine_per_class(d: dict, bn: str = "frozen") -> str:
    classes = d["data"]["classes"]
    lines = ["| variant | " + " | ".join(str(c) for c in classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for v, f in d["summary"][bn].items():
        lines.append(f"| {v} | " + " | ".join(f"{100 * x:+.1f}" for x in f["per_class_change"]) + " |")
    return "\n".join(lines)


def block_refine_per_model(d: dict) -> str:
    n = len(d["models"])
    head = " | ".join(f"model {i + 1} ({'BN frozen' if bn == 'frozen' else 'BN re-est.'})"
                      for bn in d["summary"] for i in range(n))
    lines = [f"| variant | {head} |", "|---" * (1 + n * len(d["summary"])) + "|"]
    for v in d["summary"]["frozen"]:
        cells = []
        for bn in d["summary"]:
            pm = d["paired"].get(bn, {}).get(v, {}).get("per_model", [])
            for i in range(n):
                f = d["summary"][bn][v]["per_model"][i]["test_accuracy_change"] if n > 1 else \
                    d["summary"][bn][v]["test_accuracy_change"]
                p = pm[i]["mcnemar"] if i < len(pm) and "mcnemar" in pm[i] else None
                sig = f" ({sum(x['p'] < 0.05 for x in p)}/{len(p)} p<0.05)" if p else ""
                cells.append(f"{_pp(f['mean'])} ± {_pp(f['std'], False)}{sig}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block_refine_dose(d: dict, bn: str = "frozen") -> str:
    dose = d["dose_response"][bn]
    levels = list(next(iter(dose.values()))["at_gain"])
    lines = ["| variant | final response gain | final angle | " + " | ".join(
        f"acc. change at +{100 * float(g):.0f}% gain" for g in levels) + " |", "|---" * (3 + len(levels)) + "|"]
    for v, pts in dose.items():
        at = [pts["at_gain"][g] for g in levels]
        lines.append(f"| {v} | {100 * pts['gain_topk_train'][-1]:+.1f}% | {pts['kernel_angle'][-1] * 57.29578:.1f}° | "
                     + " | ".join("not reached" if a is None else f"{_pp(a)} pp" for a in at) + " |")
    if len(next(iter(dose.values()))["step"]) == 2:
        lines.append("\n*Only the start and the end were measured (`--eval-every` ≥ steps): these values assume the "
                     "accuracy falls linearly with the gain between them, so they compare variants at matched gain "
                     "only as far as that holds.*")
    return "\n".join(lines)


def _side(c: dict) -> str:
    """Where a 95% interval lies: 'below' 0, 'above' 0, or 'spans' 0."""
    lo, hi = c["ci95"]
    return "below" if hi < 0 else "above" if lo > 0 else "spans"


def _contrast(d: dict, first: str, second: str, bn: str = "frozen") -> dict | None:
    return next((c for c in d["paired"].get("contrasts", {}).get(bn, [])
                 if (c["first"], c["second"]) == (first, second)), None)


def block_refine_contrasts(d: dict) -> str:
    bns = [bn for bn in d["summary"] if d["paired"].get("contrasts", {}).get(bn)]
    n = len(d["models"]) * len(d["config"]["seeds"])
    lines = ["| first - second | " + " | ".join(f"{'BN frozen' if bn == 'frozen' else 'BN re-estimated'}: pp "
                                             f"[95% CI] (McNemar p<0.05)" for bn in bns) + " |",
             "|---" * (1 + len(bns)) + "|"]
    for c0 in d["paired"].get("contrasts", {}).get(bns[0], []) if bns else []:
        cells = []
        for bn in bns:
            c = _contrast(d, c0["first"], c0["second"], bn)
            tests = [t for m in c["per_model"] for t in m["mcnemar"]]
            cells.append(f"{_ci(c['difference'])} ({sum(t['p'] < 0.05 for t in tests)}/{len(tests)})")
        lines.append(f"| `{c0['first']}` - `{c0['second']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n*McNemar: of the {n} (model, seed) pairs.*"


def _dose_caveat(d: dict, bn: str = "frozen") -> str:
    """How `maximize` compares with its random-image control at matched response gain (the dose table)."""
    dose = d["dose_response"][bn]
    top, rnd = dose["maximize"], dose["maximize-random"]
    out = (f", but it also raises the kernels' response more ({100 * top['gain_topk_train'][-1]:+.0f}% vs "
           f"{100 * rnd['gain_topk_train'][-1]:+.0f}% on their top-{d['config']['k']} training images)")
    common = [g for g in top["at_gain"] if top["at_gain"][g] is not None and rnd["at_gain"][g] is not None]
    if not common:
        return out + "; the two curves reach no common gain, so dose and choice cannot be told apart here."
    g = max(common, key=float)
    linear = ", interpolated linearly between the two measured ends" if len(top["step"]) == 2 else ""
    raw = top["accuracy_change"][-1] - rnd["accuracy_change"][-1]
    matched = top["at_gain"][g] - rnd["at_gain"][g]
    if matched >= 0:
        reading = ("at the same gain the top images cost no more than random ones, so the difference at equal steps "
                   "is dose, not overfitting to the top images")
    elif abs(matched) < abs(raw) / 2:
        reading = ("much of the difference is dose, and what remains is the most one could call overfitting to the "
                   "top images")
    else:
        reading = ("the difference is not a matter of dose: the top images cost more at the same gain, which is what "
                   "overfitting to them would look like")
    if linear:
        reading = "if the fall is linear, " + reading
    return (out + f"; at a matched gain of +{100 * float(g):.0f}% (the mean curves{linear}; no interval) the two cost "
            f"{_pp(top['at_gain'][g])} and {_pp(rnd['at_gain'][g])} pp: {reading}.")


def _refine_answer(d: dict) -> dict[str, str]:
    """The answer's paragraphs by topic, worded from the intervals: a claim is made only where its 95% interval
    excludes 0."""
    s, p = d["summary"]["frozen"], d["paired"].get("frozen", {})
    n, seeds = len(d["models"]), len(d["config"]["seeds"])

    def change(v, bn="frozen"):
        c = d["paired"].get(bn, {}).get(v, {}).get("change")
        return f"{_ci(c)} pp" if c else f"{_pp(d['summary'][bn][v]['test_accuracy_change']['mean'])} pp"

    def models_below(v, bn="frozen"):
        pm = d["paired"].get(bn, {}).get(v, {}).get("per_model", [])
        per = ", ".join(_pp(m["change"]["mean"]) for m in pm)
        k = sum(_side(m["change"]) == "below" for m in pm)
        return f"per model {per}; a loss with its interval below 0 on {k} of {n}" if n > 1 else ""

    def versus(first, second, words):
        c = _contrast(d, first, second)
        if c is None:
            return None
        side = _side(c["difference"])
        verdict = {"below": words[0], "above": words[1], "spans": words[2]}[side]
        return f"{verdict} (`{first}` minus `{second}`: {_ci(c['difference'])} pp, paired)"

    out: dict[str, str] = {}
    out["head"] = (f"*{n} independently trained default models x {seeds} seed(s), {d['config']['steps']} steps, "
           f"top-{d['config']['k']} images per kernel of {d['layer']}; pp of test accuracy with bootstrap 95% "
           "intervals over the test images, BN statistics as trained unless said.*\n")
    if "maximize" in s:
        m = d["paired"]["frozen"]["maximize"]["change"]
        hurt = {"below": "**Yes, it costs accuracy**", "above": "**No, it gains accuracy**",
                "spans": "**No detectable change**"}[_side(m)]
        extra = models_below("maximize")
        re_m = d["paired"].get("reestimate", {}).get("maximize", {}).get("change")
        repair = ""
        if re_m is not None and _side(m) == "below":
            kept = re_m["mean"] / m["mean"]
            repair = (f" — re-estimating BN removes {100 * (1 - kept):.0f}% of the loss"
                      + (", so most of it comes from the activation statistics the next batch-norm layer "
                         "expects, not from what the kernels now detect" if kept <= 0.25 else ""))
        out["hurt"] = (f"- {hurt}: the class's procedure (`maximize`) changes test accuracy by {change('maximize')}"
                       + (f" ({extra})" if extra else "") + f"; with BN statistics re-estimated afterwards "
                       f"{change('maximize', 'reestimate')}{repair}.")
    lines = [versus("maximize", "maximize-random",
                    ("**at equal steps the top images cost more than random ones**",
                     "at equal steps the top images cost less than random ones",
                     "**the same ascent on random images costs about as much**: no detectable difference")),
             versus("maximize", "maximize-representative",
                    ("representative images cost less", "representative images cost more",
                     "representative images: no detectable difference")),
             versus("maximize", "maximize-bottom",
                    ("each kernel's least-exciting images cost less", "its least-exciting images cost more",
                     "least-exciting images: no detectable difference"))]
    lines = [x for x in lines if x]
    if lines:
        tail = ""
        rnd = _contrast(d, "maximize", "maximize-random")
        if rnd is not None and _side(d["paired"]["frozen"]["maximize"]["change"]) == "below":
            tail = {"spans": " So the cost comes with the ascent whichever images it climbs on: these intervals "
                             "show no cost of choosing the *top* images, i.e. no overfitting to them.",
                    "below": " Choosing the top images costs more at the same number of steps" + _dose_caveat(d),
                    "above": ""}[_side(rnd["difference"])]
        out["which"] = ("- Is it *which* images? Against the same ascent on other images per kernel: "
                        + "; ".join(lines) + "." + tail)
    rot = versus("maximize", "rotate", ("**the ascent's direction costs more than a random turn of the same angle**",
                                        "the ascent costs less than a random turn of the same angle",
                                        "a random turn of the same angle costs about as much"))
    if rot:
        out["direction"] = (f"- Is it the direction or just the size of the change? `rotate` (each kernel turned by "
                   f"`maximize`'s angle in a random direction) changes accuracy by {change('rotate')}; {rot}.")
    if "top" in p and "vs_control" in p["top"]:
        vs = p["top"]["vs_control"]
        word = {"below": "costs more than", "above": "does better than", "spans": "is not distinguishable from"}
        rep = versus("top", "representative", ("and worse than representative images",
                                              "and better than representative images",
                                              "and not distinguishable from representative images"))
        out["finetune"] = (f"- Fine-tuning conv3 on the top images (`top`, {change('top')}) {word[_side(vs)]} "
                           f"fine-tuning on as many random images ({_ci(vs)} pp, paired)"
                           + (f", {rep}" if rep else "") + ".")
    if "full" in s and "full-own" in s:
        own = versus("full", "full-own", ("plain cross-entropy costs more than the run's own objective",
                                          "plain cross-entropy costs less than the run's own objective",
                                          "the objective makes no detectable difference"))
        out["objective"] = (f"- Moving a converged layer at all: `full` (the whole training set, plain cross-entropy) "
                   f"{change('full')}, `full-own` (the run's own augmentation, label smoothing and EMA) "
                   f"{change('full-own')}; {own}.")
    if "maximize" in s and "response_all_test_gain" in s["maximize"]:
        f = s["maximize"]
        sel = "more" if f["response_topk_test_gain"]["mean"] > f["response_all_test_gain"]["mean"] else "less"
        out["selectivity"] = (f"- Selectivity: after `maximize` each kernel's response rose "
                   f"{100 * f['response_topk_test_gain']['mean']:+.0f}% on its own top-{d['config']['k']} test images "
                   f"and {100 * f['response_all_test_gain']['mean']:+.0f}% on all test images (on average the "
                   f"kernels became {sel} selective; {100 * f['more_selective']['mean']:.0f}% of kernels gained more "
                   f"on their top images); {100 * f['topk_test_kept']['mean']:.0f}% of each kernel's top-"
                   f"{d['config']['k']} test images stayed its top-{d['config']['k']}.")
    if "maximize" in s:
        classes = d["data"]["classes"]
        pc = s["maximize"]["per_class_change"]
        worst = min(range(len(pc)), key=lambda i: pc[i])
        fz = d["paired"]["frozen"]["maximize"]["per_model"]
        re_ = d["paired"].get("reestimate", {}).get("maximize", {}).get("per_model", [])
        hurt_models = [i for i, m in enumerate(fz) if _side(m["change"]) == "below"]
        fixed = [i for i in hurt_models if i < len(re_) and _side(re_[i]["change"]) != "below"]
        repair = (f"after it the loss is {', '.join(_pp(r['change']['mean']) for r in re_)} pp per model, still "
                  f"detectable on {len(hurt_models) - len(fixed)} of the {len(hurt_models)} models that had one"
                  if hurt_models and re_ else "no model had a detectable loss to repair")
        out["depends"] = (f"- What depends on the model: the size of the loss (per model above), which classes pay "
                   f"(`maximize`: class {classes[worst]} {100 * pc[worst]:+.1f} pp, mean over runs; per class on "
                   f"the Refining kernels page) and whether re-estimating BN repairs it ({repair}). The answer "
                   f"holds for these {n} models of one recipe on {d['data']['dataset']}; it is not a claim about other "
                   f"architectures, layers or datasets.")
    return out


def block_refine_answer(d: dict) -> str:
    return "\n".join(_refine_answer(d).values())


def block_refine_verdict(d: dict) -> str:
    """The README's short answer: whether it hurts, whether it is the images, what depends on the model."""
    parts = _refine_answer(d)
    return "\n".join(parts[k] for k in ("head", "hurt", "which", "depends") if k in parts)


def _trust_where(d: dict) -> str:
    p = d["provenance"]
    return (f"`bench/trust_tables.py`, `bench/results/trust_tables.json`, commit {p['commit'][:7]}; "
            f"{p['machine']['cores']}-core {p['machine']['cpu']}, torch {p['machine']['torch'].split('+')[0]} CPU")


def _main_model(d: dict) -> str:
    acc = f", {100 * d['test_accuracy']:.2f}%" if d.get("test_accuracy") is not None else ""
    return f"the main job's model (`{d['model']}`, `convscope train --deterministic`{acc})"


def block_trust_visualize_setup(d: dict) -> str:
    v = d["visualize"]
    images = f"the {d['test_images']:,} test images" if "test_images" in d else "the test images"
    return (f"On {_main_model(d)}, `{v['layer']}` channels 0–{v['max']['channels'] - 1}, {v['steps']} steps, "
            f"against {images} ({_trust_where(d)}):")


def block_trust_visualize(d: dict) -> str:
    return d["visualize_table"]


def block_trust_visualize_headline(d: dict) -> str:
    v = d["visualize"]
    mx, mean = v["max"], v["mean"]
    ratio = f" (median ratio {mx['median_ratio']:.2f})" if mx["median_ratio"] is not None else ""
    out = (f"**By the max of each channel's map, the optimized image beats the best test image for {mx['beats']} of "
           f"{mx['channels']} channels{ratio}.**")
    bad = len(mean["natural_nonpositive"])
    if bad:
        out += (f" The `mean` measure's {mean['beats']}/{mean['channels']} is not evidence: `{v['layer']}` is a "
                f"pre-activation (conv before pool, BN and ReLU), its best natural mean is ≤ 0 for {bad} of "
                f"{mean['channels']} channels, and the \"best\" image is shared between channels "
                f"({mean['distinct_natural_images']} distinct images for {mean['channels']} channels): a map average "
                "rewards the image with the least ink, not the feature.")
    return out


def block_trust_audit_setup(d: dict) -> str:
    a = d["audit"]
    return (f"On {_main_model(d)}, the first {a['images']:,} test images, each explaining its predicted class, "
            f"{a['steps']} deletion/insertion steps ({_trust_where(d)}):")


def block_trust_audit(d: dict) -> str:
    return d["audit"]["table"]


def block_trust_gradcam(d: dict) -> str:
    g = d["gradcam"]
    new, old = g["gradcam @ default"], g["gradcam @ last conv"]
    return (f"- Grad-CAM runs at the activation after the last conv block (`{new['layer']}` here; chosen from the "
            f"forward pass, see below), where its maps are non-zero for {100 * new['nonzero_fraction']:.0f}% of the "
            f"first {new['images']} test images; at the last conv's output (`{old['layer']}`, pre-BN: the old "
            f"default) {100 * old['constant_fraction']:.0f}% of them were all-zero.")


# What Adebayo et al. 2018 ("Sanity checks for saliency maps") saw under cascading model randomization: True = the
# map changed (passes), False = it stayed (fails). Deconvnet and occlusion were not in their study.
ADEBAYO = {"saliency": True, "smoothgrad": True, "gradcam": True, "integrated_gradients": False,
           "guided_backprop": False, "guided_gradcam": False}
WHY_DIFFERS = {
    "smoothgrad": "on 28 × 28 digits the noise-averaged gradient of a random network still follows the strokes, and "
                  "our threshold is a number where they judged by eye",
    "guided_gradcam": "the rank correlation of |map| follows the Grad-CAM factor, which changes with the weights, "
                      "although the guided-backprop factor is the part they showed to be input-driven",
}


def block_trust_audit_reading(d: dict) -> str:
    """The audit read against the literature, each claim worded from the table it sits under."""
    a = {m["method"]: m for m in d["audit"]["methods"]}

    def rank(name: str) -> str:
        m = a[name]
        return (f"{m['randomization'][0]['spearman']:.2f} after the output layer is re-drawn, "
                f"{m['randomization_score']:.2f} over the top half")

    def outcome(name: str) -> str:
        return ("passes" if a[name]["passes_randomization"] else "fails") + f" ({rank(name)})"

    def names(ns: list[str]) -> str:
        return ", ".join(f"`{n}`" for n in ns)

    agree = [n for n in ADEBAYO if n in a and a[n]["passes_randomization"] == ADEBAYO[n]]
    differ = [n for n in ADEBAYO if n in a and a[n]["passes_randomization"] != ADEBAYO[n]]
    lines = []
    if agree:
        text = "; ".join(f"`{n}` {outcome(n)}" for n in agree)
        lines.append(f"- **Agrees with Adebayo et al. 2018** on {len(agree)} of {len(agree) + len(differ)} methods "
                     f"they tested: {text}.")
        if "integrated_gradients" in agree:
            lines[-1] += (" Integrated gradients' map is gradient × (input − baseline), and that factor keeps the "
                          "digit's shape whatever the weights (their \"gradient ⊙ input\" finding).")
    if differ:
        parts = [f"`{n}` {outcome(n)}, where they saw the map {'change' if ADEBAYO[n] else 'stay'}"
                 + (f": {WHY_DIFFERS[n]}" if n in WHY_DIFFERS else "") for n in differ]
        lines.append("- **Differs**: " + "; ".join(parts) + ".")
    if "deconvnet" in a:
        lines.append(f"- Deconvnet, which they did not test, {outcome('deconvnet')}"
                     + ("; like guided backprop it largely reconstructs the input (Nie et al. 2018)."
                        if not a["deconvnet"]["passes_randomization"] else "."))
    methods = [m for m in d["audit"]["methods"] if not m["control"]]
    faithful = [m["method"] for m in methods if m["passes_faithfulness"]]
    img = a.get("control: image")
    vs_img = {m["method"]: m["versus_controls"]["control: image"]["ci95"] for m in methods
              if "control: image" in m["versus_controls"]}
    beat = [n for n, (lo, hi) in vs_img.items() if lo > 0]
    below = [n for n, (lo, hi) in vs_img.items() if hi < 0]
    tie = [n for n in vs_img if n not in beat and n not in below]
    controls_trusted = [m["method"] for m in d["audit"]["methods"] if m["control"] and m["trusted"]]
    trusted = [m["method"] for m in methods if m["trusted"]]
    every = "every model-dependent method" if len(faithful) == len(methods) else \
        f"{len(faithful)} of the {len(methods)} model-dependent methods"
    text = (f"- **Faithfulness against Petsiuk et al. 2018**: {every} beats a random pixel order (CI above 0)")
    if img:
        f = img["faithfulness"]
        text += (f", but on digits the input image itself is a strong order (insertion − deletion AUC "
                 f"{f['insertion_auc'] - f['deletion_auc']:.3f}, {f['vs_random']['mean']:+.3f} over a random order): "
                 "the class evidence *is* the ink. ")
        text += (names(beat) + f" beat{'s' if len(beat) == 1 else ''} it (paired 95% CI above 0). " if beat
                 else "No method beats it (paired 95% CI above 0). ")
        if below:
            text += f"{names(below)} rank pixels less usefully than \"ink first\" (CI below 0). "
        if tie:
            text += f"{names(tie)}: not distinguishable from it (CI spans 0). "
        text += ("On natural images (their setting) intensity is no such shortcut, so this control matters more on "
                 "MNIST-like data than the paper suggests.")
    lines.append(text)
    lines.append(f"- Trusted by all three rules: {names(trusted) if trusted else 'no method'}; "
                 + ("no control is trusted (a control ignores the model)." if not controls_trusted else
                    f"**a control is trusted** ({names(controls_trusted)}): the audit is broken."))
    return "\n".join(lines)


BLOCKS: dict[str, tuple[str, Callable[[dict], str]]] = {   # block name -> (stage, renderer)
    "edges": ("edges", block_edges),
    "edges-answer": ("edges", block_edges_answer),
    "sparsity": ("sparsity", block_sparsity),
    "refine-setup": ("refine", block_refine_setup),
    "refine-frozen": ("refine", lambda d: _refine_table(d, "frozen")),
    "refine-reestimate": ("refine", lambda d: _refine_table(d, "reestimate")),
    "refine-per-class": ("refine", block_refine_per_class),
    "refine-time": ("refine", block_refine_time),
    "refine-default-time": ("refine-default", block_refine_default_time),
    "refine-per-model": ("refine", block_refine_per_model),
    "refine-dose": ("refine", block_refine_dose),
    "refine-contrasts": ("refine", block_refine_contrasts),
    "refine-answer": ("refine", block_refine_answer),
    "refine-verdict": ("refine", block_refine_verdict),
    "trust-visualize-setup": ("trust", block_trust_visualize_setup),
    "trust-visualize": ("trust", block_trust_visualize),
    "trust-visualize-headline": ("trust", block_trust_visualize_headline),
    "trust-audit-setup": ("trust", block_trust_audit_setup),
    "trust-audit": ("trust", block_trust_audit),
    "trust-gradcam": ("trust", block_trust_gradcam),
    "trust-audit-reading": ("trust", block_trust_audit_reading),
}


def stage_data(results: dict, stage: str) -> dict:
    """A stage's numbers: its entry, or the file it points at (``{"file": ...}``, the trust stage)."""
    entry = results["stages"][stage]
    return json.loads((ROOT / entry["file"]).read_text()) if "file" in entry else entry


def rendered(text: str, results: dict) -> str:
    """``text`` with every lecture block rewritten from ``results`` (blocks of stages not measured stay)."""
    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise SystemExit(f"unknown lecture block {name!r}; known: {', '.join(BLOCKS)}")
        stage, fn = BLOCKS[name]
        if stage not in results.get("stages", {}):
            return m.group(0)
        return m.group(1) + fn(stage_data(results, stage)).rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(one, text)


def render(results: dict, pages: list[Path] = PAGES) -> list[Path]:
    changed = []
    for page in pages:
        text = page.read_text()
        new = rendered(text, results)
        if new != text:
            atomic_write_text(page, new)
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages: {', '.join(STAGES)}")
    ap.add_argument("--models", type=int, default=3, help="independently trained default models (refine)")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2],
                    help="refine seeds per model")
    ap.add_argument("--steps", type=int, default=30, help="refine steps per variant")
    ap.add_argument("--k", type=int, default=9, help="refine: top images per kernel")
    ap.add_argument("--eval-every", type=int, default=10, help="refine: measure every N steps (and at both ends)")
    ap.add_argument("--variants", default=None, help="refine: comma-separated variants (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--audit-images", type=int, default=200, help="trust: test images the audit explains")
    ap.add_argument("--audit-steps", type=int, default=28, help="trust: deletion/insertion steps")
    ap.add_argument("--trust-run", type=Path, default=None,
                    help="trust: a trained run (default: `convscope train --deterministic` in --runs/main)")
    ap.add_argument("--default-args", default="", help="refine-default: flags added to the default command (only "
                    "to fit a loaded machine, e.g. '--seeds 0'; the docs then say so and what the default would cost)")
    ap.add_argument("--runs", type=Path, default=RUNS, help="where the default models are trained or reused")
    ap.add_argument("--render", action="store_true", help="only rewrite the docs' blocks from the JSON")
    args = ap.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"stages": {}}
    if not args.render:
        stages = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            ap.error(f"--only: unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
        args.runs.mkdir(parents=True, exist_ok=True)
        # once, before the first stage: every stage rewrites tracked figures (docs/*.png), which must mark neither
        # its own commit nor a later stage's dirty; all stages of one call share this commit and command
        args.provenance = provenance(sys.argv if argv is None else ["bench/lecture_tables.py", *argv])
        for name in stages:
            t0 = time.perf_counter()
            entry = STAGES[name](args, print)
            entry["provenance"] = args.provenance
            entry["cpu"] = entry["provenance"]["machine"]["cpu"]
            entry["stage_seconds"] = time.perf_counter() - t0
            # re-read before writing: another call (another stage, run side by side) may have written its entry
            results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"stages": {}}
            results["stages"][name] = entry
            atomic_write_text(RESULTS, json.dumps(results, indent=1) + "\n")
            print(f"stage {name}: {entry['stage_seconds']:.0f} s; wrote {RESULTS.relative_to(ROOT)}")
    for page in render(results):
        print(f"rewrote the lecture blocks of {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
