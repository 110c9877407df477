"""Every table and figure of the lecture's answer, regenerated from the current default model.

    python bench/lecture_tables.py                                  # every stage, 3 models of `convscope train`
    python bench/lecture_tables.py --only refine --models 3 --seeds 0,1,2
    python bench/lecture_tables.py --only trust                     # the trust tables of docs/visualize.md
    python bench/lecture_tables.py --render                         # only rewrite the docs' blocks from the JSON

Stages (``--only``, comma-separated; ``STAGES`` in bench/_lecture_stages.py, where another stage plugs in):

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
still do. The renderers of the refine and trust stages' blocks live in bench/_lecture_refine.py and
bench/_lecture_trust.py; this file keeps the command line, the block registry (``BLOCKS``) and the rendering.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))                 # the _lecture_* modules; trust_tables, the trust stage
from _lecture_refine import (  # noqa: E402
    block_refine_answer,
    block_refine_contrasts,
    block_refine_default_time,
    block_refine_dose,
    block_refine_per_class,
    block_refine_per_model,
    block_refine_setup,
    block_refine_table,
    block_refine_time,
    block_refine_verdict,
)
from _blocks import PAGES, pattern, rewrite_pages, rewritten  # noqa: E402
from _lecture_stages import FOURBYFOUR, STAGES  # noqa: E402
from _lecture_trust import (  # noqa: E402
    block_trust_audit,
    block_trust_audit_reading,
    block_trust_audit_setup,
    block_trust_gradcam,
    block_trust_visualize,
    block_trust_visualize_headline,
    block_trust_visualize_setup,
)

from convscope._atomic import atomic_write_text  # noqa: E402
from convscope.benchmark import provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "lecture_tables.json"
RUNS = ROOT / "bench" / ".cache" / "lecture"
BLOCK = pattern("lecture")


# --- rendering: JSON -> the markdown blocks the docs quote (refine: _lecture_refine, trust: _lecture_trust) -------

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


BLOCKS: dict[str, tuple[str, Callable[[dict], str]]] = {   # block name -> (stage, renderer)
    "edges": ("edges", block_edges),
    "edges-answer": ("edges", block_edges_answer),
    "sparsity": ("sparsity", block_sparsity),
    "refine-setup": ("refine", block_refine_setup),
    "refine-frozen": ("refine", lambda d: block_refine_table(d, "frozen")),
    "refine-reestimate": ("refine", lambda d: block_refine_table(d, "reestimate")),
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
    return rewritten(text, "lecture", lambda name: rendered_block(results, name), list(BLOCKS))


def render(results: dict, pages: list[Path] = PAGES) -> list[Path]:
    return rewrite_pages("lecture", lambda name: rendered_block(results, name), list(BLOCKS), pages)


def rendered_block(results: dict, name: str) -> str | None:
    stage, fn = BLOCKS[name]
    return fn(stage_data(results, stage)) if stage in results.get("stages", {}) else None


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
