"""The refine and refine-default stages' blocks (bench/lecture_tables.py ``render``): JSON entry -> the markdown
the docs quote, each claim worded from its 95% interval."""

from __future__ import annotations


def _pp(x: float, sign: bool = True) -> str:
    return f"{100 * x:+.2f}" if sign else f"{100 * x:.2f}"


def _ci(c: dict) -> str:
    return f"{_pp(c['mean'])} [{_pp(c['ci95'][0])}, {_pp(c['ci95'][1])}]"



def block_refine_table(d: dict, bn: str) -> str:
    """The variants' table for BN ``bn`` ("frozen" or "reestimate")."""
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

