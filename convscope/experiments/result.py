"""The refine experiment's configuration and result types (dataclasses with ``to_dict()``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np

from ..errors import ConfigError

VARIANTS = ("maximize", "top", "random", "representative", "full")
DESCRIPTIONS = {
    "maximize": "gradient ascent on the layer's kernels only, raising each kernel's peak response on its own top-k "
                "training images, each kernel's norm held fixed (the student's procedure)",
    "top": "fine-tune on the union of the kernels' top-k training images (classification loss)",
    "random": "fine-tune on as many random training images (drawn per seed)",
    "representative": "fine-tune on as many representative training images",
    "full": "fine-tune for the same number of steps on the whole training set (the yardstick)",
}
BN_MODES = ("frozen", "reestimate")
SEED_LIMIT = 2**63          # torch.manual_seed takes seeds in [0, 2**63)


def _names(value, name: str) -> tuple[str, ...]:
    """A list/tuple of names. A bare string is refused: iterated, 'top' would be 't', 'o', 'p'."""
    if isinstance(value, str):
        raise ConfigError(f"{name}: expected a list or tuple of names, e.g. ({value!r},), got the string {value!r}")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: expected a list of names (str), e.g. ('top', 'random'), got {value!r}")
    return tuple(value)


def _seeds(value) -> tuple[int, ...]:
    # a string such as '0,1' is refused rather than parsed: the API takes ints, the CLI parses text
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, Integral) and not isinstance(v, bool)
                                                       for v in value):
        raise ConfigError(f"seeds: expected a list of integers, e.g. (0, 1, 2), got {value!r}")
    bad = [int(v) for v in value if not 0 <= v < SEED_LIMIT]
    if bad:
        raise ConfigError(f"seeds: each seed must be in [0, 2**63), got {bad}")
    return tuple(int(v) for v in value)


@dataclass
class RefineConfig:
    """What the refine experiment runs. Units in comments; defaults fit 10 minutes on a 2-core CPU."""

    layer: str = "conv3"                 # the conv layer whose kernels are refined
    response: str | None = None          # the layer whose channel peaks are each kernel's response (None: `layer`)
    k: int = 9                           # top images per kernel (convscope.inspect.topk)
    steps: int = 30                      # optimisation steps of every variant
    eval_every: int = 30                 # measure every this many steps (and at 0 and the last step)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    variants: tuple[str, ...] = VARIANTS
    batch_size: int = 64                 # images per step (fewer when the chosen set is smaller)
    lr: float = 0.01                     # fine-tune variants: SGD learning rate (per batch, mean loss)
    momentum: float = 0.9                # fine-tune variants: SGD momentum
    angle: float = 0.01                  # maximize: each step turns each kernel by about this many radians
    params: str = "layer"                # fine-tune variants train 'layer' (its weight and bias) or 'all'
    bn: tuple[str, ...] = BN_MODES       # batch-norm statistics at measurement: frozen and/or re-estimated
    bn_images: int = 2000                # training images for re-estimating BN statistics (fixed sample)
    train_limit: int = 0                 # use only N training images, class-stratified (0 = all)
    test_limit: int = 0                  # use only N test images, class-stratified (0 = all: baseline = eval's)
    after_topk: bool = False             # recompute each variant's top-k (seed 0) after refinement
    threads: int | None = None           # torch threads inside the experiment (restored after)

    def __post_init__(self) -> None:
        self.seeds = _seeds(self.seeds)
        self.variants = _names(self.variants, "variants")
        self.bn = _names(self.bn, "bn")
        if not isinstance(self.layer, str) or not self.layer.strip():
            raise ConfigError(f"layer: expected a conv layer name such as 'conv3', got {self.layer!r}")
        if self.response is not None and (not isinstance(self.response, str) or not self.response.strip()):
            raise ConfigError(f"response: expected a layer name or None, got {self.response!r}")
        if self.threads is not None:
            cpus = os.cpu_count() or 1
            # far more threads than cores only slows down, and a huge count can crash torch (segfault)
            if not isinstance(self.threads, int) or isinstance(self.threads, bool) or not 1 <= self.threads <= cpus:
                raise ConfigError(f"threads: expected an integer from 1 to {cpus} (this machine's CPU count) or "
                                  f"None, got {self.threads!r}")
        for name in ("k", "steps", "eval_every", "batch_size", "bn_images"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {v!r}")
        for name in ("train_limit", "test_limit"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{name}: expected an integer >= 0 (0 = all), got {v!r}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed, e.g. 0,1,2,3,4")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: repeated seeds in {self.seeds}")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ConfigError(f"variants: unknown {bad or 'none given'}; valid: {', '.join(VARIANTS)}")
        bad = [m for m in self.bn if m not in BN_MODES]
        if bad or not self.bn:
            raise ConfigError(f"bn: unknown {bad or 'none given'}; valid: {', '.join(BN_MODES)}")
        if self.params not in ("layer", "all"):
            raise ConfigError(f"params: expected 'layer' or 'all', got {self.params!r}")
        for name in ("lr", "angle"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 < v < 10:
                raise ConfigError(f"{name}: expected a number in (0, 10), got {v!r}")
        if not isinstance(self.momentum, (int, float)) or isinstance(self.momentum, bool) \
                or not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")

    @classmethod
    def from_dict(cls, values: dict) -> RefineConfig:
        """A config from a dict of field values; unknown keys are an error that lists the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ConfigError(f"config: unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "seeds": list(self.seeds), "variants": list(self.variants),
                "bn": list(self.bn)}


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


@dataclass
class RefineResult:
    """Everything the experiment measured; ``to_dict()`` is what ``results.json`` holds."""

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
        return {bn: {v: self.final(v, bn) for v in self.config.variants} for bn in self.config.bn}

    def table(self) -> str:
        """A plain-text table of the final numbers (mean ± std over seeds), one block per BN treatment."""
        lines = []
        for bn, per in self.summary().items():
            lines.append(f"BN statistics {bn}: test accuracy at step 0 "
                         f"{100 * self.runs[0].rows[0]['bn'][bn]['test_accuracy']:.2f}%")
            lines.append(f"  {'variant':<15}{'images':>7} {'test acc %':>15} {'change pp':>14} {'chosen acc %':>15} "
                         f"{'gap pp':>8} {'resp top-k train':>17} {'resp top-k test':>16} {'|dW|/|W|':>9}")
            for v, f in per.items():
                def pm(s, scale=100.0, fmt=".2f"):
                    return f"{scale * s['mean']:{fmt}}±{scale * s['std']:{fmt}}"
                lines.append(f"  {v:<15}{int(f['chosen_images']['mean']):>7} {pm(f['test_accuracy']):>15} "
                             f"{pm(f['test_accuracy_change']):>14} {pm(f['chosen_accuracy']):>15} "
                             f"{100 * f['gap']['mean']:>8.2f} "
                             f"{pm(f['response_topk_train_gain'], 100, '+.1f') + '%':>17}"
                             f" {pm(f['response_topk_test_gain'], 100, '+.1f') + '%':>16} "
                             f"{f['weight_change']['mean']:>9.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"experiment": "refine", "config": self.config.to_dict(), "layer": self.layer,
                "response": self.response, "data": self.data, "baseline": self.baseline,
                "variants": {v: DESCRIPTIONS[v] for v in self.config.variants},
                "representative_rule": self.representative_rule, "bn_note": self.bn_note,
                "topk_train": self.topk_train, "topk_test": self.topk_test, "summary": self.summary(),
                "runs": [r.to_dict() for r in self.runs], "after": self.after, "versions": self.versions,
                "seconds": self.seconds}
