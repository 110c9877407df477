"""The refine experiment's result types (dataclasses with ``to_dict()``); its config, RefineConfig, lives in
convscope/configs.py with the other typed configs (torch-free: the CLI builds its flags from it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._result import Display, RichDisplay, Table, text_table
from ..configs import BN_MODES, VARIANTS, RefineConfig
from ..errors import ConfigError

DESCRIPTIONS = {
    "maximize": "gradient ascent on the layer's kernels only, raising each kernel's peak response on its own top-k "
                "training images, each kernel's norm held fixed (the student's procedure)",
    "top": "fine-tune on the union of the kernels' top-k training images (classification loss)",
    "random": "fine-tune on as many random training images (drawn per seed)",
    "representative": "fine-tune on as many representative training images",
    "full": "fine-tune for the same number of steps on the whole training set (the yardstick)",
}


@dataclass
class VariantRun:
    """One variant from one seed: the images it trained on and its measurements along the steps."""

    variant: str
    seed: int
    chosen: list[int]                    # training-set indices of the chosen images (sorted)
    class_mix: list[int]                 # chosen images per class
    rows: list[dict]                     # one per measured step: step, weight changes, {"bn": {mode: metrics}}
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _spread(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": len(a)}


@dataclass(repr=False)
class RefineResult(RichDisplay):
    """Everything the experiment measured; ``to_dict()`` is what ``results.json`` holds. Displays as its tables
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

    def runs_of(self, variant: str) -> list[VariantRun]:
        return [r for r in self.runs if r.variant == variant]

    def final(self, variant: str, bn: str) -> dict:
        """Mean, std (n-1), min, max over seeds of the last step's numbers, and their change from step 0."""
        runs = self.runs_of(variant)
        if not runs:
            raise ConfigError(f"variant {variant!r}: not run; ran "
                              f"{', '.join(dict.fromkeys(r.variant for r in self.runs))}")
        out: dict = {"chosen_images": _spread([len(r.chosen) for r in runs])}
        first = [r.rows[0]["bn"][bn] for r in runs]
        last = [r.rows[-1]["bn"][bn] for r in runs]
        for key in ("test_accuracy", "test_loss", "chosen_accuracy", "chosen_loss", "gap",
                    "response_topk_train", "response_topk_test"):
            out[key] = _spread([x[key] for x in last])
            out[f"{key}_change"] = _spread([b[key] - a[key] for a, b in zip(first, last)])
        for key in ("response_topk_train", "response_topk_test"):
            out[f"{key}_gain"] = _spread([b[key] / a[key] - 1 if a[key] else float("nan") for a, b in zip(first, last)])
        out["per_class_change"] = np.mean([np.subtract(b["test_per_class"], a["test_per_class"])
                                           for a, b in zip(first, last)], axis=0).tolist()
        out["weight_change"] = _spread([r.rows[-1]["weight_change"] for r in runs])
        out["kernel_norm_change"] = _spread([r.rows[-1]["kernel_norm_change"] for r in runs])
        return out

    def summary(self) -> dict:
        measured = self.runs[0].rows[0]["bn"] if self.runs else {}   # a model without BatchNorm: "frozen" only
        return {bn: {v: self.final(v, bn) for v in self.config.variants} for bn in self.config.bn if bn in measured}

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
        """A plain-text table of the final numbers (mean ± std over seeds), one block per BN treatment."""
        return "\n".join(text_table(t, max_rows=len(t.rows)) for t in self.tables())

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
        return {"experiment": "refine", "config": self.config.to_dict(), "layer": self.layer,
                "response": self.response, "data": self.data, "baseline": self.baseline,
                "variants": {v: DESCRIPTIONS[v] for v in self.config.variants},
                "representative_rule": self.representative_rule, "bn_note": self.bn_note,
                "topk_train": self.topk_train, "topk_test": self.topk_test, "summary": self.summary(),
                "runs": [r.to_dict() for r in self.runs], "after": self.after, "versions": self.versions,
                "seconds": self.seconds}


__all__ = ["BN_MODES", "DESCRIPTIONS", "VARIANTS", "RefineConfig", "RefineResult", "VariantRun"]
