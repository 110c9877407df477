"""The refine experiment's result types (dataclasses with ``to_dict()``); its config, RefineConfig, lives in
convscope/configs.py with the other typed configs (torch-free: the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._result import Display, RichDisplay, Table
from ..configs import BN_MODES, VARIANTS, RefineConfig
from ..errors import ConfigError
from ._stats import bootstrap_ci, mcnemar, resample_weights

DESCRIPTIONS = {
    "maximize": "gradient ascent on the layer's kernels only, raising each kernel's peak response on its own top-k "
                "training images, each kernel's norm held fixed (the student's procedure)",
    "maximize-random": "the same ascent, each kernel on k random training images (drawn per kernel and seed): does "
                       "the choice of images matter?",
    "maximize-representative": "the same ascent, each kernel on k of the representative images (drawn per kernel "
                               "and seed)",
    "maximize-bottom": "the same ascent, each kernel on the k training images it responds to least",
    "rotate": "no optimisation: each kernel turned by exactly the angle maximize turned it (same seed, at every "
              "measured step), in a uniformly random direction, norm fixed — the angle-matched null",
    "top": "fine-tune on the union of the kernels' top-k training images (plain cross-entropy)",
    "random": "fine-tune on as many random training images (drawn per seed); the control the paired statistics "
              "compare against",
    "representative": "fine-tune on as many representative training images",
    "full": "fine-tune for the same number of steps on the whole training set (plain cross-entropy)",
    "full-own": "the same on the whole training set with the run's own objective: its augmentation, label "
                "smoothing and weight average (EMA), as it was trained — separates 'changed the objective' from "
                "'moved the layer'",
}
SEED_NOTE = ("Models: independently trained runs of one recipe; their --seed draws the initialisation, the data "
             "order and the augmentation. Seeds within a model: the batch order of every variant; also the images "
             "of 'random', the images per kernel of 'maximize-random'/'maximize-representative', the augmentation "
             "draws of 'full-own' and the directions of 'rotate'. For maximize, top and representative the seed "
             "changes only the batch order, so their spread over seeds is not a spread over models.")
SELECTIVITY_NOTE = ("A kernel's response is its channel's peak (max over positions). 'response_topk_test' is the "
                    "mean over kernels of its mean response on its own top-k test images, 'response_all_test' the "
                    "same on all test images; 'selectivity' is their ratio and 'more_selective' the fraction of "
                    "kernels whose top-k gain exceeds their all-images gain. 'topk_test_kept' is the fraction of "
                    "each kernel's top-k test images (fixed before refinement) still in its top-k after.")
CONTROL = "random"
# Paired contrasts beside the control (first minus second, same models, seeds and test images): does the choice of
# images matter for the ascent (top vs random, representative or least-exciting images), is the ascent's direction
# worse than a random turn of the same angle, and does the training objective matter for a full-data fine-tune.
CONTRASTS = (("maximize", "maximize-random"), ("maximize", "maximize-representative"),
             ("maximize", "maximize-bottom"), ("maximize", "rotate"), ("top", "representative"),
             ("full", "full-own"))
GAIN_LEVELS = (0.1, 0.25, 0.5)          # response gains at which variants are compared (dose-response)


@dataclass
class VariantRun:
    """One variant from one seed on one model: the images it trained on and its measurements along the steps."""

    variant: str
    seed: int
    chosen: list[int]                    # training-set indices of the chosen images (sorted)
    class_mix: list[int]                 # chosen images per class
    rows: list[dict]                     # one per measured step: step, weight changes, {"bn": {mode: metrics}}
    seconds: float
    model: int = 0                       # index into RefineResult.models
    correct: dict = field(default_factory=dict, repr=False)   # bn mode -> (N_test,) bool at the last step

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "correct"}


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": len(a)}


def _gain(a: float, b: float) -> float:
    return b / a - 1 if a else float("nan")


@dataclass(repr=False)
class RefineResult(RichDisplay):
    """Everything the experiment measured; ``to_dict()`` is what ``results.json`` holds. The top-level layer,
    data, baseline and top-k fields are the first model's; ``models`` lists every model. Displays as its tables
    and curves (in a terminal: the tables)."""

    config: RefineConfig
    layer: str
    response: str
    data: dict                           # dataset names, splits, sizes
    baseline: dict                       # `evaluate` on the test set before any refinement (= `convscope eval`)
    topk_train: list[list[int]]          # per kernel: its top-k training indices (best first), from `topk`
    topk_test: list[list[int]]           # per kernel: its top-k test indices
    representative_rule: str
    bn_note: str
    runs: list[VariantRun]
    after: dict = field(default_factory=dict)      # variant -> {"topk_train": ..., "overlap": ...} (seed 0)
    versions: dict = field(default_factory=dict)
    seconds: float = 0.0
    kernels: dict = field(default_factory=dict, repr=False)   # "before" / variant -> layer weight (seed 0)
    train_images: Any = field(default=None, repr=False)       # uint8 (N, C, H, W): the training images used
    models: list = field(default_factory=list)                # per model: name, seed, baseline
    correct0: dict = field(default_factory=dict, repr=False)  # model -> bn mode -> (N_test,) bool before
    test_labels: Any = field(default=None, repr=False)

    def runs_of(self, variant: str, model: int | None = None) -> list[VariantRun]:
        return [r for r in self.runs if r.variant == variant and (model is None or r.model == model)]

    def final(self, variant: str, bn: str, model: int | None = None) -> dict:
        """Mean, std (n-1), min, max over runs (every model's seeds, or one model's) of the last step's numbers,
        and their change from step 0."""
        runs = self.runs_of(variant, model)
        if not runs:
            raise ConfigError(f"variant {variant!r}: not run; ran "
                              f"{', '.join(dict.fromkeys(r.variant for r in self.runs))}")
        out: dict = {"chosen_images": _spread([len(r.chosen) for r in runs])}
        first = [r.rows[0]["bn"][bn] for r in runs]
        last = [r.rows[-1]["bn"][bn] for r in runs]
        for key in ("test_accuracy", "test_loss", "chosen_accuracy", "chosen_loss", "gap",
                    "response_topk_train", "response_topk_test", "response_all_test", "topk_test_kept"):
            if all(key in x for x in last):                          # older results lack the newer keys
                out[key] = _spread([x[key] for x in last])
                out[f"{key}_change"] = _spread([b[key] - a[key] for a, b in zip(first, last)])
        for key in ("response_topk_train", "response_topk_test", "response_all_test"):
            if key in out:
                out[f"{key}_gain"] = _spread([_gain(a[key], b[key]) for a, b in zip(first, last)])
        if "response_all_test" in out:
            out["selectivity_before"] = _spread([a["response_topk_test"] / a["response_all_test"] for a in first])
            out["selectivity"] = _spread([b["response_topk_test"] / b["response_all_test"] for b in last])
            more = []
            for a, b in zip(first, last):
                gt = np.asarray(b["response_topk_test_per_channel"]) / np.asarray(a["response_topk_test_per_channel"])
                ga = np.asarray(b["response_all_test_per_channel"]) / np.asarray(a["response_all_test_per_channel"])
                more.append(float(np.mean(gt > ga)))
            out["more_selective"] = _spread(more)
        out["per_class_change"] = np.mean([np.subtract(b["test_per_class"], a["test_per_class"])
                                           for a, b in zip(first, last)], axis=0).tolist()
        for key in ("weight_change", "kernel_norm_change", "kernel_angle"):
            if all(key in r.rows[-1] for r in runs):
                out[key] = _spread([r.rows[-1][key] for r in runs])
        return out

    def model_count(self) -> int:
        return max(r.model for r in self.runs) + 1

    def summary(self) -> dict:
        """Per BN treatment and variant: :meth:`final` over every run, and per model (``per_model``)."""
        out: dict = {}
        for bn in self.config.bn:
            if bn not in self.runs[0].rows[0]["bn"]:
                continue                                             # a model without BN measures 'frozen' only
            out[bn] = {}
            for v in self.config.variants:
                f = self.final(v, bn)
                if self.model_count() > 1:
                    f["per_model"] = [{k: g[k] for k in ("test_accuracy", "test_accuracy_change",
                                                         "response_topk_train_gain", "per_class_change")}
                                      for g in (self.final(v, bn, m) for m in range(self.model_count()))]
                out[bn][v] = f
        return out

    def paired(self) -> dict:
        """Per BN treatment and variant, on the same test images: the accuracy difference to the ``random``
        control and the change from before refinement — each per model and averaged over models (mean over
        seeds first), with a bootstrap 95% interval over test images; and McNemar's exact test against the
        control for every (model, seed). ``contrasts``: the same paired difference for each pair of
        :data:`CONTRASTS` that ran (e.g. top images vs random images under the same ascent). Empty when the
        per-image outcomes are not known (a loaded result)."""
        if not self.correct0 or not all(r.correct for r in self.runs):
            return {}
        n = len(next(iter(self.correct0[0].values())))
        w = resample_weights(n, self.config.bootstrap)
        out: dict = {"control": CONTROL if CONTROL in self.config.variants else None,
                     "bootstrap": self.config.bootstrap, "test_images": n}
        for bn in self.correct0[0]:
            out[bn] = {}
            for v in self.config.variants:
                per_model, changes = [], []
                for m in range(self.model_count()):
                    mine = {r.seed: r.correct[bn] for r in self.runs_of(v, m)}
                    change = np.mean([mine[s] for s in sorted(mine)], axis=0) - self.correct0[m][bn]
                    per_model.append({"change": bootstrap_ci(change, w)})
                    changes.append(change)
                out[bn][v] = {"change": bootstrap_ci(np.mean(changes, axis=0), w), "per_model": per_model}
                if out["control"] and v != CONTROL:
                    vs = self._versus(v, CONTROL, bn, w)
                    out[bn][v]["vs_control"] = vs["difference"]
                    for entry, m in zip(per_model, vs["per_model"]):
                        entry["vs_control"], entry["mcnemar"] = m["difference"], m["mcnemar"]
        out["contrasts"] = {bn: [{"first": a, "second": b, **self._versus(a, b, bn, w)} for a, b in CONTRASTS
                                 if a in self.config.variants and b in self.config.variants]
                            for bn in self.correct0[0]}
        return out

    def _versus(self, a: str, b: str, bn: str, w: np.ndarray) -> dict:
        """Variant ``a`` minus ``b`` on the same models, seeds and test images: per image the difference of
        correctness (mean over the seeds both ran), per model and averaged over models, with bootstrap
        intervals from the resample ``w``; McNemar's exact test for every (model, seed)."""
        per_model, diffs = [], []
        for m in range(self.model_count()):
            first = {r.seed: r.correct[bn] for r in self.runs_of(a, m)}
            second = {r.seed: r.correct[bn] for r in self.runs_of(b, m)}
            seeds = sorted(set(first) & set(second))
            d = np.mean([first[s].astype(float) - second[s] for s in seeds], axis=0)      # (N_test,)
            diffs.append(d)
            per_model.append({"difference": bootstrap_ci(d, w),
                              "mcnemar": [{"seed": s, **mcnemar(first[s], second[s])} for s in seeds]})
        return {"difference": bootstrap_ci(np.mean(diffs, axis=0), w), "per_model": per_model}

    def dose_response(self) -> dict:
        """Per BN treatment and variant, at each measured step (mean over every run): the mean kernel angle
        (radians), the response gain on the kernels' top-k training and test images, and the test accuracy
        change; and each variant's accuracy change interpolated at matched response gains (``at_gain``; None
        where its curve never reaches the gain)."""
        out: dict = {}
        for bn in self.config.bn:
            if bn not in self.runs[0].rows[0]["bn"]:
                continue
            out[bn] = {}
            for v in self.config.variants:
                runs = self.runs_of(v)
                n = min(len(r.rows) for r in runs)
                pts = {"step": [runs[0].rows[i]["step"] for i in range(n)]}
                pts["kernel_angle"] = [float(np.mean([r.rows[i].get("kernel_angle", np.nan) for r in runs]))
                                       for i in range(n)]
                for key, name in (("response_topk_train", "gain_topk_train"), ("response_topk_test",
                                                                                 "gain_topk_test")):
                    pts[name] = [float(np.mean([_gain(r.rows[0]["bn"][bn][key], r.rows[i]["bn"][bn][key])
                                                for r in runs])) for i in range(n)]
                pts["accuracy_change"] = [float(np.mean([r.rows[i]["bn"][bn]["test_accuracy"]
                                                         - r.rows[0]["bn"][bn]["test_accuracy"] for r in runs]))
                                          for i in range(n)]
                pts["at_gain"] = {str(g): _at(pts["gain_topk_train"], pts["accuracy_change"], g) for g in GAIN_LEVELS}
                out[bn][v] = pts
        return out

    def tables(self) -> list[Table]:
        """The final numbers (mean ± std over seeds), one table per BN treatment."""
        def pm(s, scale=100.0, fmt=".2f"):
            return f"{scale * s['mean']:{fmt}}±{scale * s['std']:{fmt}}"
        out = []
        for bn, per in self.summary().items():
            rows = [[v, str(int(f["chosen_images"]["mean"])), pm(f["test_accuracy"]), pm(f["test_accuracy_change"]),
                     pm(f["chosen_accuracy"]), f"{100 * f['gap']['mean']:.2f}",
                     pm(f["response_topk_train_gain"], 100, "+.1f") + "%",
                     pm(f["response_topk_test_gain"], 100, "+.1f") + "%", f"{f['weight_change']['mean']:.4f}"]
                    for v, f in per.items()]
            out.append(Table(["variant", "images", "test acc %", "change pp", "chosen acc %", "gap pp",
                              "resp top-k train", "resp top-k test", "|dW|/|W|"], rows,
                             f"BN statistics {bn}: test accuracy at step 0 "
                             f"{100 * self.runs[0].rows[0]['bn'][bn]['test_accuracy']:.2f}%"))
        return out

    def table(self) -> str:
        """Plain-text tables of the final numbers (mean ± std over every model's seeds), one block per BN
        treatment, then per-class changes, per-model changes and the paired statistics."""
        lines = []
        summary, paired = self.summary(), self.paired()
        nm = self.model_count()

        def pm(s, scale=100.0, fmt=".2f"):
            return f"{scale * s['mean']:{fmt}}±{scale * s['std']:{fmt}}"

        for bn, per in summary.items():
            lines.append(f"BN statistics {bn}: test accuracy at step 0 "
                         f"{100 * self.runs[0].rows[0]['bn'][bn]['test_accuracy']:.2f}% (model 1); "
                         f"{nm} model(s) x {len(self.config.seeds)} seed(s)")
            lines.append(f"  {'variant':<24}{'images':>7} {'change pp':>13} {'95% CI':>15} {'vs random pp':>13} "
                         f"{'gap pp':>7} {'resp top-k tr':>14} {'top-k test':>12} {'all test':>12} "
                         f"{'kept':>5} {'angle':>6}")
            for v, f in per.items():
                pv = paired.get(bn, {}).get(v, {})
                ci = pv.get("change", {}).get("ci95")
                vs = pv.get("vs_control")
                lines.append(
                    f"  {v:<24}{int(f['chosen_images']['mean']):>7} {pm(f['test_accuracy_change']):>13} "
                    + (f"{100 * ci[0]:+.2f}..{100 * ci[1]:+.2f}" if ci else "").rjust(15) + " "
                    + (f"{100 * vs['mean']:+.2f}" if vs else "").rjust(13)
                    + f" {100 * f['gap']['mean']:>7.2f} {pm(f['response_topk_train_gain'], 100, '+.0f') + '%':>14}"
                    f" {pm(f['response_topk_test_gain'], 100, '+.0f') + '%':>12}"
                    f" {pm(f.get('response_all_test_gain', _NAN), 100, '+.0f') + '%':>12}"
                    f" {100 * f.get('topk_test_kept', _NAN)['mean']:>4.0f}%"
                    f" {np.degrees(f.get('kernel_angle', _NAN)['mean']):>5.1f}°")
            classes = self.data["classes"]
            lines.append("  per-class test accuracy change (pp, mean over runs): "
                         + " ".join(f"{str(c)[:6]:>6}" for c in classes))
            for v, f in per.items():
                lines.append(f"    {v:<24}" + " " * 27 + " ".join(f"{100 * x:>+6.1f}" for x in f["per_class_change"]))
            if nm > 1:
                lines.append("  per model: test accuracy change pp (mean±std over seeds)")
                for v, f in per.items():
                    lines.append(f"    {v:<24}" + "  ".join(pm(g["test_accuracy_change"]) for g in f["per_model"]))
            contrasts = paired.get("contrasts", {}).get(bn, [])
            if contrasts:
                lines.append("  paired contrasts (test accuracy, first minus second, pp, 95% CI over test images; "
                             "McNemar p < 0.05 in model x seed runs):")
            for c in contrasts:
                d, tests = c["difference"], [t for m in c["per_model"] for t in m["mcnemar"]]
                lines.append(f"    {c['first'] + ' - ' + c['second']:<42}{100 * d['mean']:+.2f} "
                             f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]  "
                             f"{sum(t['p'] < 0.05 for t in tests)}/{len(tests)}")
        return "\n".join(lines)

    def _display(self) -> Display:
        c = self.config
        return Display(f"refine {self.layer} on {self.data.get('dataset', '?')}: {len(c.variants)} variants x "
                       f"{len(c.seeds)} seeds, top {c.k}, {c.steps} steps",
                       [f"response: {self.response}", self.bn_note, f"{self.seconds:.1f} s"], self.tables())

    def _pictures(self) -> list[tuple[str, bytes]]:
        from ..viz import figure_png
        from .curves import curves_figure

        return [("test accuracy, accuracy on the chosen images and response change along the steps "
                 "(mean ± std over seeds)", figure_png(curves_figure(self)))]

    def to_dict(self) -> dict:
        return {"experiment": "refine", "format": 2, "config": self.config.to_dict(), "layer": self.layer,
                "response": self.response, "data": self.data, "baseline": self.baseline, "models": self.models,
                "variants": {v: DESCRIPTIONS[v] for v in self.config.variants}, "seed_note": SEED_NOTE,
                "selectivity_note": SELECTIVITY_NOTE,
                "representative_rule": self.representative_rule, "bn_note": self.bn_note,
                "topk_train": self.topk_train, "topk_test": self.topk_test, "summary": self.summary(),
                "paired": self.paired(), "dose_response": self.dose_response(),
                "runs": [r.to_dict() for r in self.runs], "after": self.after, "versions": self.versions,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> RefineResult:
        """A result from ``results.json`` (this format or the first one, which had one model and fewer
        measurements); the per-image outcomes are not stored, so :meth:`paired` is empty."""
        if d.get("experiment") != "refine":
            raise ConfigError("results.json: not a refine result (no \"experiment\": \"refine\")")
        known = {f.name for f in dataclasses.fields(RefineConfig)}
        cfg = RefineConfig.from_dict({k: tuple(v) if isinstance(v, list) else v
                                      for k, v in d["config"].items() if k in known})
        runs = [VariantRun(**{k: v for k, v in r.items() if k in {f.name for f in dataclasses.fields(VariantRun)}})
                for r in d["runs"]]
        return cls(cfg, d["layer"], d["response"], d["data"], d["baseline"], d["topk_train"], d["topk_test"],
                   d["representative_rule"], d["bn_note"], runs, d.get("after", {}), d.get("versions", {}),
                   d.get("seconds", 0.0), models=d.get("models", [{"index": 0, "baseline": d["baseline"]}]))


_NAN = {"mean": float("nan"), "std": float("nan")}


def _at(gains: list[float], changes: list[float], level: float) -> float | None:
    """The accuracy change where the curve (gain, change), from its start, first reaches gain ``level``
    (linear between measured points); None if it never does."""
    for i in range(1, len(gains)):
        g0, g1 = gains[i - 1], gains[i]
        if g0 < level <= g1:
            return float(changes[i - 1] + (changes[i] - changes[i - 1]) * (level - g0) / (g1 - g0))
    return None


__all__ = ["BN_MODES", "CONTRASTS", "DESCRIPTIONS", "SEED_NOTE", "SELECTIVITY_NOTE", "VARIANTS", "RefineConfig",
           "RefineResult", "VariantRun"]
