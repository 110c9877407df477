"""``convscope doctor RUN``: what a run's diagnostics.jsonl and metrics.jsonl say about why it trains badly.

Each rule below reads the records (training/diagnostics.py documents them) and, when its condition holds,
returns a :class:`Finding`: a sentence with the evidence and what to try. The thresholds were set on
deliberately broken runs (tests/training/test_doctor.py: lr 10, a dead-ReLU init, a bad output scale, a deep
plain network without normalization) against a short version of the main job, which they must leave clean.
They are heuristics, and say so ("learning rate too high?").
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._result import ResultMixin
from ..models.weights import sha256_file
from ..runs import rundir as rd

# a rule's threshold: a value beyond it is a finding (each is explained where it is used)
INITIAL_LOSS_HIGH = 1.5      # loss at step 0 above 1.5 x ln C
INITIAL_LOSS_LOW = 0.5       # ... or below 0.5 x ln C
DEAD_FRACTION = 0.5          # half a layer's units zero on every image of the batch
UPDATE_RATIO_HIGH = 0.5      # the update of a step half as large as the weights themselves
WEIGHT_GROWTH = 1e2          # a layer's weight norm grown 100x since step 0
LOSS_EXPLOSION = 10.0        # a batch loss above 10x the initial (or ln C, if larger)
ACTIVATION_SHRINK = 1e-2     # the last activation layer's std below 1% of the first's at step 0
ACTIVATION_GROWTH = 1e2      # ... or above 100x
GRADIENT_SPREAD = 1e3        # grad/weight norm ratio of the first and last layers 1000x apart at step 0
LOSS_FALL = 0.9              # the last epoch's training loss above 90% of the initial loss ...
CHANCE = 1.5                 # ... and its training accuracy below 1.5x chance (1.5 / C): nothing learned


@dataclass
class Finding(ResultMixin):
    code: str                 # initial_loss, dead_units, update_ratio, nonfinite, activation_scale, ...
    severity: str             # "error" (the run cannot train well) or "warning" (worth a look)
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkup(ResultMixin):
    run: str
    finished: bool
    steps_observed: int       # diag records read
    every: int | None
    findings: list[Finding]

    @property
    def healthy(self) -> bool:
        return not self.findings


def _g(x: float) -> str:
    """A number as the doctor writes it: 3 significant digits, exponent for very small or large ones."""
    return f"{x:.2g}" if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4) else f"{x:.3g}"


def read_diagnostics(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """(header, diag records, nonfinite events) of ``path``/diagnostics.jsonl, a torn last line skipped."""
    records = rd.read_metrics(path / rd.DIAGNOSTICS, torn_tail=True)
    header = next((r for r in records if r.get("kind") == "header"), None)
    return (header, [r for r in records if r.get("kind") == "diag"],
            [r for r in records if r.get("kind") == "nonfinite"])


def examine(run: str | Path) -> Checkup:
    """Read a run directory (finished, killed or diverged) and return the doctor's findings."""
    path = Path(run)
    if not path.is_dir():
        raise rd.RunError(f"{path}: not a directory; give a run directory (runs/NAME)")
    if not (path / rd.CONFIG).exists():
        raise rd.RunError(f"{path}: no {rd.CONFIG}; not a convscope run directory")
    if not (path / rd.DIAGNOSTICS).exists():
        raise rd.RunError(f"{path}: no {rd.DIAGNOSTICS}; this run was trained without diagnostics. Train it again "
                          "with --diagnose (e.g. convscope train --diagnose ...), then run the doctor")
    finished = (path / rd.META).exists()
    if finished:   # model.json records the files' digests: another run's diagnostics, or a cut file, is refused
        _check_digests(path)
    header, diags, events = read_diagnostics(path)
    if header is None:
        raise rd.RunError(f"{path / rd.DIAGNOSTICS}: no header line; the file is not convscope's diagnostics")
    metrics = rd.read_metrics(path / rd.METRICS, torn_tail=True)
    _check_records(path, header, rd.read_metrics(path / rd.DIAGNOSTICS, torn_tail=True), metrics)
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    findings: list[Finding] = []
    for rule in (_initial_loss, _activation_scale, _gradient_spread, _update_ratio, _weight_growth, _loss_explosion,
                 _nonfinite, _dead_units):
        findings += rule(header, diags, events)
    findings += _not_learning(header, diags, epochs)
    return Checkup(str(path), finished, len(diags), header.get("every"), findings)


def _check_digests(path: Path) -> None:
    """A finished run's diagnostics.jsonl and metrics.jsonl against the SHA-256 that model.json records, as every
    other command that reads a run checks them (the model itself is not needed here, nor built)."""
    from ..runs.manifest import check_manifest

    meta = check_manifest(rd.read_json(path / rd.META), path / rd.META)
    rd.check_meta_digest(path, meta)
    recorded = meta.get("sha256", {})
    for name in (rd.DIAGNOSTICS, rd.METRICS):
        digest = recorded.get(name)
        if digest is None:
            if name == rd.DIAGNOSTICS:
                raise rd.RunError(f"{path / name}: model.json records no such file: this run finished without "
                                  "diagnostics, and the file was added since (another run's?)")
            continue
        if sha256_file(path / name) != digest:
            raise rd.RunError(f"{path / name}: SHA-256 differs from the one recorded in model.json (modified, cut "
                              "short or taken from another run after this one finished); restore the original")


def _check_records(path: Path, header: dict[str, Any], records: list[dict[str, Any]],
                   metrics: list[dict[str, Any]]) -> None:
    """The fields the rules compute with, of the types convscope writes (a RunError naming the file, the record
    and the field otherwise): an edited line must not end in a TypeError or a ZeroDivisionError."""
    where = path / rd.DIAGNOSTICS

    def bad(what: str, value: Any, expected: str) -> rd.RunError:
        return rd.RunError(f"{where}: {what} = {json.dumps(value)[:60]}; expected {expected}, as convscope writes "
                           "it; fix or delete that line")

    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    classes = header.get("classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise bad("the header's 'classes'", classes, "a whole number of at least 1")
    for key in ("activation_layers", "param_layers"):
        names = header.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise bad(f"the header's {key!r}", names, "a list of layer names")
    if not number(header.get("expected_initial_loss")) or not number(header.get("every")):
        raise bad("the header's 'expected_initial_loss' or 'every'",
                  [header.get("expected_initial_loss"), header.get("every")], "numbers")
    rd.check_numbers(where, records, {"diag": ("epoch", "lr", "loss", "grad_norm", "seconds"),
                                      "nonfinite": ("epoch", "last_finite_step", "last_loss", "last_grad_norm")})
    for number_, rec in enumerate(records, 1):
        if rec.get("kind") != "diag":
            continue
        for group in ("activations", "params"):
            layers = rec.get(group, {})
            if not isinstance(layers, dict) or not all(
                    isinstance(stats, dict) and all(number(v) for v in stats.values()) for stats in layers.values()):
                raise bad(f"record {number_} (diag), {group!r}", layers, "{layer: {statistic: number or null}}")
    rd.check_numbers(path / rd.METRICS, metrics,
                     {"epoch": ("epoch", "train_loss", "train_accuracy", "test_accuracy", "test_loss")})


# ---- the rules ---------------------------------------------------------------------------------------------
def _nonfinite(header, diags, events) -> list[Finding]:
    out = []
    if events:
        e = events[0]
        after = (f" after gradient norm {_g(e['last_grad_norm'])} at step {e['last_finite_step']} (loss "
                 f"{_g(e['last_loss'])})" if e.get("last_grad_norm") is not None else " at the first step")
        out.append(Finding("nonfinite", "error",
                           f"loss went non-finite at step {e['step']} (epoch {e['epoch']}){after}; "
                           f"{len(events)} stretch(es) of skipped steps. Lower the learning rate or set --grad-clip",
                           {"step": e["step"], "epoch": e["epoch"], "last_finite_step": e.get("last_finite_step"),
                            "last_grad_norm": e.get("last_grad_norm"), "stretches": len(events)}))
    for d in diags:   # non-finite values inside the network (first layer and step where they appear)
        bad = [(n, a["nonfinite_fraction"]) for n, a in d["activations"].items() if a.get("nonfinite_fraction")]
        bad += [(n, p["nonfinite_fraction"]) for n, p in d["params"].items() if p.get("nonfinite_fraction")]
        if bad:
            name, frac = bad[0]
            out.append(Finding("nonfinite_values", "error",
                               f"{name}: {100 * frac:.3g}% of its values are inf/NaN at step {d['step']} "
                               f"(epoch {d['epoch']})", {"layer": name, "step": d["step"], "fraction": frac}))
            break
    return out


def _initial_loss(header, diags, events) -> list[Finding]:
    first = next((d for d in diags if d["step"] == 0), None)
    if first is None or first.get("loss") is None:
        return []
    expected, loss = header["expected_initial_loss"], first["loss"]
    ev = {"initial_loss": loss, "expected": expected, "classes": header["classes"]}
    if loss > INITIAL_LOSS_HIGH * expected:
        return [Finding("initial_loss", "warning",
                        f"initial loss {_g(loss)} vs expected {expected:.2f} (-log(1/{header['classes']})): the "
                        "untrained model is confidently wrong; check the output layer's init and scale (logits "
                        "should start near 0)", ev)]
    if loss < INITIAL_LOSS_LOW * expected:
        return [Finding("initial_loss", "warning",
                        f"initial loss {_g(loss)} vs expected {expected:.2f} (-log(1/{header['classes']})): "
                        "suspiciously low before any training; check that the labels do not leak into the input",
                        ev)]
    return []


def _dead_units(header, diags, events) -> list[Finding]:
    out = []
    for name in header.get("activation_layers", []):
        series = [(d, d["activations"][name]["dead_fraction"]) for d in diags if name in d["activations"]
                  and d["activations"][name].get("dead_fraction") is not None]
        if not series or series[-1][1] < DEAD_FRACTION:
            continue
        since = len(series) - 1   # the first record of the final stretch at or above the threshold
        while since > 0 and series[since - 1][1] >= DEAD_FRACTION:
            since -= 1
        d0, last = series[since][0], series[-1][1]
        start = "from the first step" if d0["step"] == 0 else f"since epoch {d0['epoch']} (step {d0['step']})"
        out.append(Finding("dead_units", "error",
                           f"{name}: {100 * last:.0f}% of units dead {start} (zero on every image of a batch; "
                           f"{100 * series[0][1]:.0f}% at step {series[0][0]['step']}). Check the biases' init, "
                           "lower the learning rate, or use a leaky activation",
                           {"layer": name, "dead_fraction": last, "since_step": d0["step"],
                            "since_epoch": d0["epoch"], "first_dead_fraction": series[0][1]}))
    return out


def _peak_records(diags) -> list[dict[str, Any]]:
    """The records at the top of the schedule (lr at least half its maximum): where a too-high rate shows."""
    lrs = [d["lr"] for d in diags if d.get("lr")]
    if not lrs:
        return []
    top = max(lrs)
    return [d for d in diags if d.get("lr") and d["lr"] >= 0.5 * top]


def _update_ratio(header, diags, events) -> list[Finding]:
    peak = _peak_records(diags)
    worst = None
    for name in header.get("param_layers", []):
        ratios = [d["params"][name]["update_ratio"] for d in peak if name in d["params"]
                  and d["params"][name].get("update_ratio") is not None]
        if ratios:
            r = statistics.median(ratios)
            if r > UPDATE_RATIO_HIGH and (worst is None or r > worst[1]):
                worst = (name, r, len(ratios))
    if worst is None:
        return []
    name, r, n = worst
    return [Finding("update_ratio", "error",
                    f"update/weight ratio of {name} is {_g(r)} (far above ~1e-3; median of {n} steps at the peak "
                    f"learning rate {_g(max(d['lr'] for d in peak))}): learning rate too high?",
                    {"layer": name, "update_ratio": r, "steps": n})]


def _weight_growth(header, diags, events) -> list[Finding]:
    first, last = _first_step(diags), (diags[-1] if diags else None)
    if first is None or last is None or last is first:
        return []
    growth = []
    for name, p in first["params"].items():
        w0, w1 = p.get("weight_norm"), last["params"].get(name, {}).get("weight_norm")
        if w0 and w1 is not None and math.isfinite(w1) and w1 / w0 > WEIGHT_GROWTH:
            growth.append((w1 / w0, name, w0, w1))
    if not growth:
        return []
    g, name, w0, w1 = max(growth)
    return [Finding("weight_growth", "error",
                    f"weight norm of {name} grew {_g(g)}x ({_g(w0)} at step 0, {_g(w1)} at step {last['step']}): "
                    "the updates overshoot; learning rate too high?",
                    {"layer": name, "growth": g, "first": w0, "last": w1, "step": last["step"]})]


def _loss_explosion(header, diags, events) -> list[Finding]:
    first = _first_step(diags)
    losses = [(d["loss"], d) for d in diags if d.get("loss") is not None and math.isfinite(d["loss"])]
    if first is None or first.get("loss") is None or not losses:
        return []
    top, d = max(losses, key=lambda t: t[0])
    ref = max(first["loss"], header["expected_initial_loss"])
    if top <= LOSS_EXPLOSION * ref:
        return []
    return [Finding("loss_explosion", "error",
                    f"loss exploded to {_g(top)} at step {d['step']} (epoch {d['epoch']}; {_g(first['loss'])} at "
                    f"step 0, gradient norm {_g(d['grad_norm'])}): lower the learning rate or set --grad-clip",
                    {"loss": top, "step": d["step"], "initial_loss": first["loss"], "grad_norm": d.get("grad_norm")})]


def _first_step(diags) -> dict[str, Any] | None:
    return next((d for d in diags if d["step"] == 0), None)


def _activation_scale(header, diags, events) -> list[Finding]:
    d = _first_step(diags)
    layers = [n for n in header.get("activation_layers", []) if d is not None and n in d["activations"]]
    if len(layers) < 2:
        return []
    s0, s1 = d["activations"][layers[0]].get("std"), d["activations"][layers[-1]].get("std")
    if not s0 or s1 is None or not math.isfinite(s0) or not math.isfinite(s1):
        return []
    ratio = s1 / s0
    ev = {"first_layer": layers[0], "last_layer": layers[-1], "first_std": s0, "last_std": s1, "ratio": ratio}
    if ratio < ACTIVATION_SHRINK:
        return [Finding("activation_scale", "error",
                        f"activations vanish with depth: std {_g(s0)} at {layers[0]} but {_g(s1)} at {layers[-1]} "
                        f"(x{_g(ratio)}) at step 0; add normalization (BatchNorm) or use a Kaiming init "
                        "(--init kaiming)", ev)]
    if ratio > ACTIVATION_GROWTH:
        return [Finding("activation_scale", "error",
                        f"activations explode with depth: std {_g(s0)} at {layers[0]} but {_g(s1)} at "
                        f"{layers[-1]} (x{_g(ratio)}) at step 0; add normalization or scale the init down", ev)]
    return []


def _gradient_spread(header, diags, events) -> list[Finding]:
    d = _first_step(diags)
    layers = [n for n in header.get("param_layers", []) if d is not None and n in d["params"]]
    if len(layers) < 2:
        return []

    def rel(n: str) -> float | None:
        p = d["params"][n]
        return p["grad_norm"] / p["weight_norm"] if p.get("grad_norm") is not None and p.get("weight_norm") else None

    a, b = rel(layers[0]), rel(layers[-1])
    if a is None or b is None or a <= 0 or b <= 0:
        return []
    if b / a > GRADIENT_SPREAD:
        return [Finding("vanishing_gradients", "error",
                        f"gradients vanish towards the input: {layers[0]}'s gradient/weight norm ratio is {_g(a)}, "
                        f"{_g(b / a)}x below {layers[-1]}'s ({_g(b)}) at step 0; its weights will barely move. Add "
                        "normalization or residual connections", {"first_layer": layers[0], "last_layer": layers[-1],
                                                                  "first": a, "last": b})]
    return []


def _not_learning(header, diags, epochs) -> list[Finding]:
    first = _first_step(diags)
    if not epochs or first is None or first.get("loss") is None:
        return []
    last = epochs[-1]
    loss0, loss, acc = first["loss"], last.get("train_loss"), last.get("train_accuracy")
    if loss is not None and math.isfinite(loss) and loss <= LOSS_FALL * loss0:
        return []
    if acc is None or acc >= CHANCE / header["classes"]:
        return []
    shown = _g(loss) if loss is not None else "inf/NaN"
    return [Finding("not_learning", "error",
                    f"the model does not learn: loss {_g(loss0)} at step 0, {shown} over epoch {last['epoch']} "
                    f"(train accuracy {100 * acc:.1f}%, chance {100 / header['classes']:.0f}%); check that it can "
                    "overfit one batch, and try other learning rates",
                    {"initial_loss": loss0, "last_train_loss": loss, "train_accuracy": acc, "epoch": last["epoch"]})]


def findings_at_init(header: dict[str, Any], first: dict[str, Any]) -> list[Finding]:
    """The rules that judge a model before it trains, on the diag record of step 0 (``first``): initial loss,
    activation and gradient scales with depth, dead units, non-finite values. The sanity check
    (training/sanity.py) explains a model that cannot learn with them."""
    out: list[Finding] = []
    for rule in (_initial_loss, _activation_scale, _gradient_spread, _nonfinite, _dead_units):
        out += rule(header, [first], [])
    return out


def report(c: Checkup) -> str:
    """The checkup in words, as ``convscope doctor`` prints it."""
    head = (f"{c.run}: {'finished' if c.finished else 'unfinished'} run, {c.steps_observed} "
            f"step{'' if c.steps_observed == 1 else 's'} observed (every {c.every})")
    if not c.steps_observed:
        return head + "\nno diagnostic step recorded yet: nothing to judge (the run stopped before its first " \
                      "observed step, or the file holds only its header)"
    if c.healthy:
        return head + "\nno problems found: initial loss, dead units, update/weight ratios, activation and " \
                      "gradient scales, non-finite values and the loss curve are all within bounds"
    lines = [head, f"{len(c.findings)} finding(s):"]
    lines += [f"  [{f.severity}] {f.message}" for f in c.findings]
    return "\n".join(lines)
