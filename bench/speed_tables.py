"""The speed page's tables (docs/speed.md), rendered from the benchmarks' results files, never typed by hand.

    python bench/speed_tables.py            # rewrite every <!-- speed:NAME --> block from bench/results/*.json

Blocks: ``fashion`` and ``digits`` (bench/time_to_accuracy.py), ``main-job`` (bench/main_job.py), ``busy``
(bench/busy_machine.py), ``step-cost`` (bench/step_cost.py), ``layers`` (bench/layer_variants.py), ``eval-batch``
(bench/eval_batch.py), ``ablation3`` (bench/recipe_ablation2.py --round 3), ``ablation3-digits``
(bench/recipe_ablation2.py --round 3-digits) and ``goals`` (issue 26's goals, each stated as reached or not from
those same files). Each block names the machine, torch, the commit and the date its numbers come from.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blocks import PAGES, pattern, rewrite_pages, rewritten  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FILES = {"fashion": "time_to_accuracy_fashion.json", "digits": "time_to_accuracy_digits.json",
         "main-job": "main_job.json", "busy": "busy_machine.json", "step-cost": "step_cost.json",
         "eval-batch": "eval_batch.json",
         "ablation3": "recipe_ablation_round3_fashion-mnist.json", "layers": "layer_variants.json",
         "ablation3-digits": "recipe_ablation_round3_digits.json"}
KEY = {"fashion-mnist": 0.93, "digits": 0.99}      # the threshold a goal is stated at (mean; worst seed)
GOALS = {"fashion-mnist": 1.0, "digits": 0.25}      # issue 26: that threshold within this many yardsticks, every seed
LABELS = {"fast": "**default** (`convscope train`)"}


def load(name: str) -> dict | None:
    path = RESULTS / FILES[name]
    return json.loads(path.read_text()) if path.exists() else None


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def source(d: dict, file: str) -> str:
    p = d["provenance"]
    m = p.get("machine", {})
    when = f", {p['date'][:10]}" if p.get("date") else ""
    commit = (p.get("commit") or "?")[:7] + (" + uncommitted changes" if p.get("dirty") else "")
    return (f"`bench/results/{file}`: {m.get('cores', '?')}-core {m.get('cpu', '?')}, torch {m.get('torch', '?')}, "
            f"commit `{commit}`{when}; `{p.get('command', '?')}`")


def _loads(runs: list[dict]) -> str:
    xs = [r["load_average_at_start"] for r in runs if r.get("load_average_at_start") is not None]
    return f"{min(xs):.1f}–{max(xs):.1f}" if xs else "not recorded"


def block_time_to_accuracy(d: dict, file: str) -> str:
    ys = d["yardstick_seconds"]
    th = d["thresholds"][d["summary"][0]["dataset"]]
    key = KEY.get(d["summary"][0]["dataset"])
    head = "| recipe | seeds | " + " | ".join(f"to {_pct(t)}" for t in th) + \
           " | final acc. (min) | total s | train img/s | % of bf16 peak |"
    rows = [head, "|" + "---|" * (len(th) + 6)]
    for s in d["summary"]:
        cells = []
        for t in th:
            mean, n = s[f"time_to_{t}"], s[f"reached_{t}"]
            if mean is None:
                cells.append("—")
                continue
            ratio = f" ({s[f'ratio_to_{t}']:.2f}×)" if ys else ""
            cell = f"{mean:.1f} s{ratio}"
            if t == key and s["seeds"] > 1:
                worst = max(x for x in s[f"per_seed_time_to_{t}"] if x is not None)
                wr = f" ({s[f'worst_ratio_to_{t}']:.2f}×)" if ys else ""
                cell = f"**{cell}; worst {worst:.1f} s{wr}, {n} of {s['seeds']} seeds**"
            elif n < s["seeds"]:
                cell += f", {n} of {s['seeds']} seeds"
            cells.append(cell)
        peak = d["peak_flops"]["bf16"]
        rows.append(f"| {LABELS.get(s['recipe'], '`' + s['recipe'] + '`')} | {s['seeds']} | " + " | ".join(cells) +
                    f" | {100 * s['final_accuracy']:.2f}% ({100 * s['min_final_accuracy']:.2f}%) | "
                    f"{s['wall_seconds']:.1f} | {s['images_per_s']:.0f} | "
                    f"{100 * s['achieved_gflops'] * 1e9 / peak:.1f}% |")
    yard = ", ".join(f"{r['wall_seconds']:.1f} s" for r in d["yardstick_runs"])
    runs = d["runs"] + d["yardstick_runs"]
    rows += ["", f"Times are means over seeds, from process start, evaluation excluded; in brackets the ratio to "
                 f"the yardstick ({ys:.1f} s: one epoch of the PyTorch example on Fashion-MNIST, runs {yard}, "
                 f"same invocation). Load average at the runs' starts {_loads(runs)}. Measured peak: bf16 "
                 f"{d['peak_flops']['bf16'] / 1e9:.0f} GFLOP/s, fp32 {d['peak_flops']['fp32'] / 1e9:.0f} GFLOP/s. "
                 f"{source(d, file)}."] if ys else []
    return "\n".join(rows)


def block_main_job(d: dict) -> str:
    accs = [r["test_accuracy"] for r in d["runs"]]
    walls = [r["wall_seconds"] for r in d["runs"]]
    text = (f"The main job (`convscope train`, {len(accs)} seeds, each a fresh process, start to exit): test "
            f"accuracy {100 * statistics.mean(accs):.2f}% mean ({100 * min(accs):.2f}–{100 * max(accs):.2f}%), wall "
            f"{min(walls):.1f}–{max(walls):.1f} s")
    if d.get("yardstick_seconds"):
        ratios = [r["ratio_to_yardstick"] for r in d["runs"]]
        text += (f", {min(ratios):.2f}–{max(ratios):.2f}× the yardstick ({d['yardstick_seconds']:.1f} s, same "
                 f"invocation)")
    loads = _loads(d["runs"])
    return text + f"; load average at the starts {loads}. {source(d, FILES['main-job'])}."


def block_busy(d: dict) -> str:
    out = []
    for job, label, key in (("short", "short job: training s", "train_s"), ("full", "main job: wall s", "wall_s")):
        table = d["table"].get(job)
        if not table:
            continue
        out += [f"| setting ({label}) | quiet | busy | busy / quiet | quiet vs `before` quiet |",
                "|---|---|---|---|---|"]
        runs = d["runs"][job]
        before_capped = any(r.get("capped") for r in next(iter(runs.values()))["quiet"])
        for name, row in table.items():
            capped = {c: any(r.get("capped") for r in runs[name][c]) for c in ("quiet", "busy")}
            q, b = (("≥ " if capped[c] else "") + f"{row[c + '_s']:.1f}" for c in ("quiet", "busy"))
            ratio = "–" if any(capped.values()) else f"{row['busy_over_quiet']:.2f}"
            vs = "–" if capped["quiet"] or before_capped else f"{row['quiet_vs_before_quiet']:.2f}"
            out.append(f"| {name} | {q} | {b} | {ratio} | {vs} |")
        n = max(len(c[cond]) for c in runs.values() for cond in ("quiet", "busy"))
        out += ["", f"Median of {n} run(s) per cell ({key}); quiet and busy alternate setting by setting.", ""]
    loads = [x[0] for x in d["load_average_1_5_15_min"]]
    out.append(f"1-minute load average between rounds {min(loads):.1f}–{max(loads):.1f}. {source(d, FILES['busy'])}.")
    return "\n".join(out)


def block_readme(_: dict | None) -> str | None:
    """The README's sentence on the main job: its accuracy and wall time, and the digits' time to 99%."""
    mj, dg = load("main-job"), load("digits")
    if mj is None or dg is None:
        return None
    accs = [r["test_accuracy"] for r in mj["runs"]]
    walls = [r["wall_seconds"] for r in mj["runs"]]
    s = next(x for x in dg["summary"] if x["recipe"] == "fast")
    cpu = mj["provenance"]["machine"]["cpu"]
    return (f"The first command is the main job: the `fast2` model on the embedded digits, "
            f"**{100 * statistics.mean(accs):.2f}% mean test accuracy ({100 * min(accs):.2f}–"
            f"{100 * max(accs):.2f}%) over {len(accs)} seeds**, "
            f"{min(walls):.1f}–{max(walls):.1f} s from start to exit (`bench/main_job.py`); 99% is reached after "
            f"{s['time_to_0.99']:.1f} s (mean of {s['seeds']} seeds, `bench/time_to_accuracy.py`). Both on a "
            f"2-core {cpu}, torch {mj['provenance']['machine']['torch']}, quiet; [Speed](docs/speed.md) has the rest.")


def block_step_cost(d: dict) -> str:
    rows = [f"| variant | images/s (median of {d['rounds']} rounds) | ratio to {d['reference']} (range) |",
            "|---|---|---|"]
    for name, row in d["table"].items():
        lo, hi = row["ratio_range"]
        rows.append(f"| {name} | {row['images_per_s']} | {row['ratio_to_reference']:.2f} ({lo:.2f}–{hi:.2f}) |")
    loads = d["load_average_per_round"]
    rows += ["", f"{d['threads']} threads, {d['steps']} steps per variant and round after 10 warm-up steps; load "
                 f"average at the rounds' starts {min(loads):.1f}–{max(loads):.1f}. {source(d, FILES['step-cost'])}."]
    return "\n".join(rows)


def block_layers(d: dict) -> str:
    ref = d["pools"]["F.max_pool2d (int64 indices)"]["ms_forward_backward"]
    rows = [f"| 2x2 max-pool of {' x '.join(map(str, d['pool_input']))} (bf16, channels-last) | ms, forward + "
            "backward | ratio | same output and gradient |", "|---|---|---|---|"]
    for name, r in d["pools"].items():
        rows.append(f"| {name} | {r['ms_forward_backward']:.2f} | {r['ms_forward_backward'] / ref:.2f} | "
                    f"{'yes' if r['same_output_and_gradient'] else 'no'} |")
    rows += ["", "| conv (batch 256) | bf16, channels-last | bf16, channels-first | fp32, channels-last | "
                 "fp32, channels-first |", "|---|---|---|---|---|"]
    by = {}
    for c in d["convs"]:
        by.setdefault(c["conv"], {})[(c["dtype"], c["format"])] = c["ms_forward_backward"]
    for conv, t in by.items():
        rows.append(f"| {conv} | " + " | ".join(f"{t[(dt, fmt)]:.2f} ms" for dt in ("bfloat16", "float32")
                                               for fmt in ("channels-last", "channels-first")) + " |")
    rows += ["", f"{d['threads']} threads, median of {d['repeats']} calls. {source(d, FILES['layers'])}."]
    return "\n".join(rows)


def block_eval_batch(d: dict) -> str:
    sizes = list(next(iter(d["results"].values()))["ms_per_pass"])
    rows = ["| test set | " + " | ".join(f"batch {b}" for b in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for ds, r in d["results"].items():
        what = f"{ds}, {r['images']:,} images" + (", flip-averaged" if r["flip_averaging"] else "")
        rows.append(f"| {what} | " + " | ".join(f"{r['ms_per_pass'][b]:.0f} ms ({r['ratio_to_1024'][b]:.2f}×)"
                                               for b in sizes) + " |")
    rows += ["", f"{d['threads']} threads, median of {d['rounds']} rounds; in brackets the ratio to batch 1024. "
                 f"{source(d, FILES['eval-batch'])}."]
    return "\n".join(rows)


def block_ablation3(d: dict, name: str = "ablation3") -> str:
    from recipe_ablation2 import table

    return table(d) + f"\n\n{source(d, FILES[name])}. {d['provenance'].get('collected_by', '')}".rstrip()


def _goal_tta(d: dict | None, dataset: str) -> str:
    goal, key = GOALS[dataset], KEY[dataset]
    name = "Fashion-MNIST" if dataset == "fashion-mnist" else "Digits"
    what = f"{name} {_pct(key)} within {goal}× the yardstick, every seed"
    if d is None or not d.get("yardstick_seconds"):
        return f"| {what} | not measured |"
    s = next(s for s in d["summary"] if s["recipe"] == "fast")
    worst, n = s[f"worst_ratio_to_{key}"], s[f"reached_{key}"]
    if n < s["seeds"]:
        return f"| {what} | **not reached**: {n} of {s['seeds']} seeds reach {_pct(key)} |"
    verdict = "**reached**" if worst <= goal else "**not reached**"
    return (f"| {what} | {verdict}: worst seed {worst:.2f}×, mean {s[f'ratio_to_{key}']:.2f}× "
            f"({s['seeds']} seeds, {d['provenance']['machine']['cpu']}) |")


def block_goals(_: dict | None) -> str:
    rows = ["| goal (issue 26) | status |", "|---|---|",
            _goal_tta(load("fashion"), "fashion-mnist"), _goal_tta(load("digits"), "digits")]
    mj = load("main-job")
    what = "The main job within 0.4× the yardstick, ≥ 99.3%"
    if mj and mj.get("yardstick_seconds"):
        worst, acc = mj["worst_ratio_to_yardstick"], mj["min_test_accuracy"]
        ok = worst <= 0.4 and mj["mean_test_accuracy"] >= 0.993
        rows.append(f"| {what} | {'**reached**' if ok else '**not reached**'}: worst seed {worst:.2f}×, "
                    f"{100 * mj['mean_test_accuracy']:.2f}% mean ({100 * acc:.2f}% lowest) |")
    else:
        rows.append(f"| {what} | not measured |")
    busy = load("busy")
    what = "Beside one busy program, the main job within 2.5× its quiet time"
    full = (busy or {}).get("table", {}).get("full", {}).get("default (spin 10,000)")
    if full and not full["capped"]:
        verdict = "**reached**" if full["busy_over_quiet"] <= 2.5 else "**not reached**"
        rows.append(f"| {what} | {verdict}: {full['busy_over_quiet']:.2f}× ({full['quiet_s']:.1f} s quiet, "
                    f"{full['busy_s']:.1f} s busy) |")
    else:
        rows.append(f"| {what} | not measured |")
    return "\n".join(rows)


def body(name: str) -> str | None:
    if name == "goals":
        return block_goals(None)
    if name == "readme":
        return block_readme(None)
    d = load(name)
    if d is None:
        return None
    fns: dict[str, Callable[[dict], str]] = {
        "fashion": lambda x: block_time_to_accuracy(x, FILES["fashion"]),
        "digits": lambda x: block_time_to_accuracy(x, FILES["digits"]),
        "main-job": block_main_job, "busy": block_busy, "step-cost": block_step_cost,
        "eval-batch": block_eval_batch, "ablation3": block_ablation3,
        "ablation3-digits": lambda x: block_ablation3(x, "ablation3-digits"), "layers": block_layers}
    return fns[name](d)


BLOCKS = [*FILES, "goals", "readme"]
BLOCK = pattern("speed")


def rendered(text: str) -> str:
    """``text`` with every speed block rewritten from the results files (blocks without results stay)."""
    return rewritten(text, "speed", body, BLOCKS)


def main() -> int:
    for page in rewrite_pages("speed", body, BLOCKS, PAGES):
        print(f"rewrote the speed blocks of {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
