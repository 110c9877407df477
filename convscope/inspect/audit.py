"""Which attribution maps can be trusted: the two checks of the literature, against controls that could fail them.

1. Model-parameter randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): re-draw the
   parameters layer by layer, cascading from the top (the output layer first), and compare each map with the
   original one by Spearman rank correlation of |attribution| per image (SSIM optional). Each parameter tensor
   is replaced by Gaussian noise with the tensor's own mean and std (a seeded generator; the user's model is
   not changed: a copy is randomized). A constant map (all-zero included) ranks no pixel: its correlation is
   undefined (NaN) and left out of the mean, never counted as "changed".
   The verdict (:data:`RANDOMIZATION_RULE`) reads the *top* of the cascade, where Adebayo et al. see guided
   backprop and deconvnet fail: a map that only changes once the first layers are re-drawn is an edge detector
   of the input for most of the network.
2. Faithfulness by deletion and insertion (Petsiuk et al. 2018, RISE): remove the most-attributed pixels first
   (replaced by the baseline) and follow the target class's probability; insert them into the baseline image
   in the same order. Area under each curve (pixel fraction 0..1) per image. The baseline is
   :data:`~convscope.inspect.attribution.BASELINE` (0 in model input = the normalization's mean, mean grey),
   the one integrated gradients and occlusion use: on digits black is the background, so "deleting" to black
   removes nothing and "inserting" a map's pixels into black rewards any map that ranks ink first (the image
   itself wins). Ties in a map (flat regions, all-zero Grad-CAM cells) are broken at random, ``orders`` times,
   and the AUCs averaged. Each image's score is insertion AUC − deletion AUC; a map is faithful when the
   paired bootstrap 95% CI of its score minus a random pixel order's (a uniform random map) lies above 0.

:func:`audit` runs both checks for every method *and* for model-independent controls (:data:`CONTROLS`: the
input image itself, its Sobel edge map, a uniform random map) and applies :data:`TRUST_RULE`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._check import integer
from .._check import seed as check_seed
from .._progress import track
from .._result import Display, RichDisplay, Table
from ..errors import ConfigError
from ..models.forward import iter_batches
from ._args import check_model
from .attribution import (BASELINE, METHODS, AttributionFn, DegenerateMapWarning, attribute, check_inputs,
                          check_method, degenerate, resolve_target)
from .edges import FILTERS

RANDOMIZATION_RULE = ("passes model randomization when the mean Spearman rank correlation of |map| with the "
                      "original map, averaged over the top half of the cascade (the steps that re-draw the top "
                      "ceil(L/2) of the L parameter layers, output layer first: the area under that part of the "
                      "cascade curve), is below 0.5; constant maps give no correlation and are left out")
FAITHFULNESS_RULE = ("faithful when, per image, insertion AUC - deletion AUC (target-class probability, baseline "
                     "mean grey) beats a random pixel order's: the paired bootstrap 95% CI of the mean difference "
                     "over images lies above 0")
TRUST_RULE = ("trusted when the method passes model randomization, is faithful, and its faithfulness score is "
              "above every model-independent control's (the input image, its Sobel edge map; paired bootstrap 95% "
              "CI above 0): a map no better than the image itself says nothing about the model")
THRESHOLD = 0.5
BASELINES = ("mean", "blur", "black")


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Spearman rank correlation of |a[i]| and |b[i]| over pixels (average ranks for ties); NaN where either
    map is constant (no rank order to compare)."""
    from scipy.stats import rankdata

    ra = rankdata(np.abs(a).reshape(len(a), -1), axis=1)
    rb = rankdata(np.abs(b).reshape(len(b), -1), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), np.nan)


def ssim(a: np.ndarray, b: np.ndarray, window: int = 5) -> np.ndarray:
    """(N,) structural similarity of the maps, each scaled to [0, 1] by its own |max| (uniform window)."""
    from scipy.ndimage import uniform_filter

    def scale(m):
        m = np.abs(m).astype(np.float64)
        return m / np.maximum(m.reshape(len(m), -1).max(1), 1e-12)[:, None, None]
    x, y = scale(a), scale(b)
    f = lambda t: uniform_filter(t, size=(1, window, window), mode="reflect")
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.reshape(len(s), -1).mean(1)


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of a - b over images and its 95% percentile bootstrap CI (images resampled with replacement, the
    pair kept together), ``resamples`` draws from a seeded generator."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "ci95": [float(lo), float(hi)]}


# ----------------------------------------------------------------------------- model-independent controls


def image_map(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """The input image itself (channel sum of the model input): ranks the brightest pixels first."""
    return inputs.detach().sum(1).cpu().numpy()


def edge_map(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """The Sobel gradient magnitude of the input's channel mean (the edge experiment's Sobel filters)."""
    kx = torch.as_tensor(FILTERS["sobel-x"], dtype=inputs.dtype, device=inputs.device).view(1, 1, 3, 3)
    ky = torch.as_tensor(FILTERS["sobel-y"], dtype=inputs.dtype, device=inputs.device).view(1, 1, 3, 3)
    g = inputs.detach().mean(1, keepdim=True)
    return torch.hypot(F.conv2d(g, kx, padding=1), F.conv2d(g, ky, padding=1))[:, 0].cpu().numpy()


def random_map(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, seed: int = 0) -> np.ndarray:
    """A uniform random map per image (seeded: the same map whatever the model, so it never "changes")."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = inputs.shape
    return torch.rand(n, h, w, generator=g).numpy()


CONTROLS: dict[str, AttributionFn] = {"control: image": image_map, "control: edges": edge_map,
                                      "control: random": random_map}


# ----------------------------------------------------------------------------- randomization


def parameter_layers(model: nn.Module) -> list[str]:
    """Modules that own parameters, in model order (the cascade runs through them backwards)."""
    return [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


def _randomize(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            sd = float(p.std()) if p.numel() > 1 else 0.0
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.copy_((noise * (sd or float(p.abs().mean()) or 1.0) + float(p.mean())).to(p.device))


def _maps(model: nn.Module, inputs: torch.Tensor, method, tgt: torch.Tensor, layer: str | None, seed: int
          ) -> np.ndarray:
    with warnings.catch_warnings():         # the audit reports constant maps itself, as fields
        warnings.simplefilter("ignore", DegenerateMapWarning)
        return attribute(model, inputs, method, tgt, layer, seed=seed)


def randomization_check(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn,
                        target: torch.Tensor | int | None = None, layer: str | None = None, seed: int = 0,
                        with_ssim: bool = False) -> list[dict]:
    """Cascading randomization: one row per step, ``{"randomized_to": name, "spearman": mean, "defined": share
    of images with a correlation, "ssim": mean}``, the first row randomizing only the top layer, the last every
    layer. The mean leaves out images whose map is constant before or after (NaN correlation)."""
    check_model(model)
    inputs = check_inputs(inputs, model=model)
    check_method(method)
    tgt = resolve_target(model, inputs, target)
    original = _maps(model, inputs, method, tgt, layer, seed)
    rand = copy.deepcopy(model)
    g = torch.Generator().manual_seed(check_seed(seed))
    modules = dict(rand.named_modules())
    rows = []
    for name in reversed(parameter_layers(rand)):
        _randomize(modules[name], g)
        m = _maps(rand, inputs, method, tgt, layer, seed)
        rho = spearman(original, m)
        row = {"randomized_to": name, "spearman": _nanmean(rho), "defined": float(np.isfinite(rho).mean())}
        if with_ssim:
            row["ssim"] = float(np.mean(ssim(original, m)))
        rows.append(row)
    return rows


def top_half_score(rows: list[dict]) -> float:
    """:data:`RANDOMIZATION_RULE`'s number: the mean of the cascade's first ceil(L/2) steps (NaN if none is
    defined)."""
    top = [r["spearman"] for r in rows[:math.ceil(len(rows) / 2)]]
    return _nanmean(np.array(top, dtype=np.float64))


# ----------------------------------------------------------------------------- deletion / insertion


def make_baseline(inputs: torch.Tensor, baseline: str | torch.Tensor) -> tuple[torch.Tensor, str]:
    """The image pixels are replaced with, and its description: ``mean`` (0 in model input, mean grey: the
    baseline integrated gradients and occlusion use), ``blur`` (the image blurred by a Gaussian of sigma H/8:
    Petsiuk et al.'s insertion start), ``black`` (the inputs' per-channel minimum; the background on digits,
    kept to show why it misleads), or a tensor broadcastable to the inputs."""
    if isinstance(baseline, torch.Tensor):
        try:
            return torch.broadcast_to(baseline.to(inputs), inputs.shape), "given tensor"
        except RuntimeError:
            raise ConfigError(f"baseline: shape {tuple(baseline.shape)} does not broadcast to the inputs "
                              f"{tuple(inputs.shape)}") from None
    if baseline == "mean":
        return torch.zeros_like(inputs), BASELINE
    if baseline == "black":
        return inputs.amin(dim=(0, 2, 3), keepdim=True).expand_as(inputs), "black (the inputs' per-channel minimum)"
    if baseline == "blur":
        sigma = max(inputs.shape[2:]) / 8
        r = int(math.ceil(3 * sigma))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=inputs.dtype, device=inputs.device) ** 2 / (2 * sigma ** 2))
        k = (k / k.sum()).view(1, 1, 1, -1)
        c = inputs.shape[1]
        x = inputs.detach().reshape(-1, 1, *inputs.shape[2:])
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k)
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3))
        return x.reshape(-1, c, *inputs.shape[2:]), f"the image blurred (Gaussian, sigma {sigma:g} px)"
    raise ConfigError(f"baseline: {baseline!r}; choose from {', '.join(BASELINES)} or give a tensor")


def _curves(model: nn.Module, inputs: torch.Tensor, order: torch.Tensor, tgt: torch.Tensor, baseline: torch.Tensor,
            steps: int, batch: int) -> dict[str, np.ndarray]:
    """Per-image probability and hit curves (steps + 1, N) for deletion and insertion in pixel ``order``
    (N, H*W)."""
    n, _, h, w = inputs.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))   # rank[i, p]: p's place
    counts = [round(s * h * w / steps) for s in range(steps + 1)]
    out = {k: np.zeros((steps + 1, n)) for k in ("deletion_prob", "deletion_acc", "insertion_prob", "insertion_acc")}
    for s, k in enumerate(counts):
        chosen = (rank < k).view(n, 1, h, w)                                 # (N, 1, H, W) the first k pixels
        for kind, x in (("deletion", torch.where(chosen, baseline, inputs)),
                        ("insertion", torch.where(chosen, inputs, baseline))):
            probs, hits = [], []
            for i, logits in iter_batches(model, x, None, batch):          # x is model input: no normalization
                probs.append(logits.softmax(1).gather(1, tgt[i:i + batch, None])[:, 0])
                hits.append(logits.argmax(1) == tgt[i:i + batch])
            out[f"{kind}_prob"][s] = torch.cat(probs).double().cpu().numpy()
            out[f"{kind}_acc"][s] = torch.cat(hits).double().cpu().numpy()
    return out


def auc(curve: np.ndarray) -> float | np.ndarray:
    """Trapezoidal area under a curve sampled at equal steps of the pixel fraction 0..1 (along axis 0: a
    (steps + 1, N) array gives N areas)."""
    a = np.trapezoid(np.asarray(curve), dx=1.0 / (len(curve) - 1), axis=0)
    return float(a) if np.ndim(a) == 0 else a


def has_ties(maps: np.ndarray) -> np.ndarray:
    """(N,) bool: some pixels of the map share a value (their order is arbitrary)."""
    s = np.sort(np.asarray(maps).reshape(len(maps), -1), axis=1)
    return (np.diff(s, axis=1) == 0).any(1)


def _orders(maps: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(N, H*W) pixel order, most attributed first, ties broken by a random permutation."""
    n, p = maps.shape
    perm = torch.stack([torch.randperm(p, generator=g) for _ in range(n)]).to(maps.device)
    shuffled = maps.gather(1, perm)
    return perm.gather(1, torch.sort(shuffled, dim=1, descending=True, stable=True).indices)


def deletion_insertion(model: nn.Module, inputs: torch.Tensor, maps: np.ndarray, target: torch.Tensor | int | None
                       = None, steps: int = 28, baseline: str | torch.Tensor = "mean", seed: int = 0,
                       batch: int = 1000, orders: int = 3) -> dict:
    """Deletion/insertion curves and AUCs for ``maps`` (N, H, W) and for a random pixel order, each AUC the mean
    over ``orders`` random tie-breaks when some map has ties (one order otherwise), and the paired bootstrap of
    the per-image score (insertion - deletion AUC) against the random order. ``baseline``: see
    :func:`make_baseline`."""
    check_model(model)
    inputs = check_inputs(inputs, model=model)
    steps = integer(steps, "steps", 1)
    batch = integer(batch, "batch", 1)
    orders = integer(orders, "orders", 1)
    tgt = resolve_target(model, inputs, target)
    n, _, h, w = inputs.shape
    if np.shape(maps) != (n, h, w):
        raise ConfigError(f"maps: expected one (H, W) map per image, shape {(n, h, w)}, got {np.shape(maps)}")
    base, described = make_baseline(inputs, baseline)
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32)).reshape(n, h * w).to(inputs.device)
    ties = has_ties(np.asarray(maps))
    g = torch.Generator().manual_seed(check_seed(seed))
    reps = orders if ties.any() else 1
    ours = [_curves(model, inputs, _orders(m, g), tgt, base, steps, batch) for _ in range(reps)]
    rnd = _curves(model, inputs, _orders(torch.zeros_like(m), g), tgt, base, steps, batch)   # all tied: random
    mean_curves = {k: np.mean([o[k] for o in ours], axis=0) for k in ours[0]}        # (steps + 1, N)
    per = {kind: np.mean([auc(o[f"{kind}_prob"]) for o in ours], axis=0) for kind in ("deletion", "insertion")}
    per_rnd = {kind: auc(rnd[f"{kind}_prob"]) for kind in ("deletion", "insertion")}
    score, score_rnd = per["insertion"] - per["deletion"], per_rnd["insertion"] - per_rnd["deletion"]
    at_base = float((inputs == base).float().mean())
    res = {"steps": steps, "baseline": described, "baseline_pixel_share": at_base, "orders": reps,
           "tied_maps": float(ties.mean()),
           "curves": {k: v.mean(1).tolist() for k, v in mean_curves.items()},
           "random_curves": {k: v.mean(1).tolist() for k, v in rnd.items()},
           "per_image": {"deletion": per["deletion"].tolist(), "insertion": per["insertion"].tolist(),
                         "random_deletion": per_rnd["deletion"].tolist(),
                         "random_insertion": per_rnd["insertion"].tolist()},
           "score": float(score.mean()), "random_score": float(score_rnd.mean()),
           "vs_random": paired_bootstrap(score, score_rnd, seed=seed)}
    for kind in ("deletion", "insertion"):
        res[f"{kind}_auc"] = float(per[kind].mean())
        res[f"random_{kind}_auc"] = float(per_rnd[kind].mean())
    return res


# ----------------------------------------------------------------------------- one method, the whole audit


@dataclass
class MethodAudit:
    method: str
    randomization: list[dict]
    faithfulness: dict
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    control: bool = False               # a model-independent control map
    degenerate_fraction: float = 0.0    # share of images whose original map is constant
    versus_controls: dict = field(default_factory=dict)   # control -> paired bootstrap of the score difference

    @property
    def randomization_score(self) -> float:
        return top_half_score(self.randomization)

    @property
    def passes_randomization(self) -> bool:
        """:data:`RANDOMIZATION_RULE` (False when no correlation is defined)."""
        s = self.randomization_score
        return bool(s < THRESHOLD) if math.isfinite(s) else False

    @property
    def passes_faithfulness(self) -> bool:
        """:data:`FAITHFULNESS_RULE`."""
        return self.faithfulness["vs_random"]["ci95"][0] > 0

    @property
    def separates_from_controls(self) -> bool | None:
        """Faithfulness score above each model-independent control's (CI above 0); None before :func:`audit`
        compared them."""
        if not self.versus_controls:
            return None
        return all(v["ci95"][0] > 0 for v in self.versus_controls.values())

    @property
    def trusted(self) -> bool:
        """:data:`TRUST_RULE` (a control is never trusted: it does not look at the model)."""
        return (not self.control and self.passes_randomization and self.passes_faithfulness
                and self.separates_from_controls is not False)

    @property
    def verdict(self) -> str:
        if self.control:
            return "control (ignores the model)"
        if self.trusted:
            return "yes"
        why = [w for w, bad in (("ignores the top layers", not self.passes_randomization),
                                ("not faithful", not self.passes_faithfulness),
                                ("no better than a control", self.separates_from_controls is False)) if bad]
        return "no: " + ", ".join(why)

    def to_dict(self) -> dict:
        return {"method": self.method, "control": self.control, "randomization": self.randomization,
                "randomization_score": self.randomization_score, "faithfulness": self.faithfulness,
                "degenerate_fraction": self.degenerate_fraction, "versus_controls": self.versus_controls,
                "passes_randomization": self.passes_randomization,
                "passes_faithfulness": self.passes_faithfulness,
                "separates_from_controls": self.separates_from_controls, "trusted": self.trusted,
                "verdict": self.verdict, "seconds": self.seconds}


def audit_method(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn, target=None,
                 layer: str | None = None, seed: int = 0, steps: int = 28, with_ssim: bool = False,
                 baseline: str | torch.Tensor = "mean", orders: int = 3, name: str | None = None) -> MethodAudit:
    """Both checks for one method on ``inputs`` (targets: the predicted classes unless given); the comparison
    with the controls is :func:`audit`'s."""
    t0 = time.perf_counter()
    check_model(model)      # every argument before the first (possibly long) attribution
    inputs = check_inputs(inputs, model=model)
    check_method(method)
    steps = integer(steps, "steps", 1)
    seed = check_seed(seed)
    tgt = resolve_target(model, inputs, target)
    maps = _maps(model, inputs, method, tgt, layer, seed)
    faith = deletion_insertion(model, inputs, maps, tgt, steps, baseline, seed, orders=orders)
    rand = randomization_check(model, inputs, method, tgt, layer, seed, with_ssim)
    name = name or (method if isinstance(method, str) else getattr(method, "__name__", "custom"))
    return MethodAudit(name, rand, faith, time.perf_counter() - t0, control=name in CONTROLS,
                       degenerate_fraction=float(degenerate(maps).mean()))


def _score(row: MethodAudit) -> np.ndarray:
    p = row.faithfulness["per_image"]
    return np.asarray(p["insertion"]) - np.asarray(p["deletion"])


def compare_with_controls(rows: list[MethodAudit], seed: int = 0) -> None:
    """Fill each method's ``versus_controls``: the paired bootstrap of its per-image faithfulness score minus
    each model-independent control's (image, edges; the random map is the faithfulness check itself)."""
    controls = {r.method: _score(r) for r in rows if r.control and r.method != "control: random"}
    for r in rows:
        if not r.control:
            r.versus_controls = {c: paired_bootstrap(_score(r), s, seed=seed) for c, s in controls.items()}


class AuditTable(RichDisplay, list):
    """:func:`audit`'s rows (a list of :class:`MethodAudit`) that display as the audit table, its rules, and the
    randomization, deletion and insertion curves."""

    def _display(self) -> Display:
        return Display(f"Attribution audit: {len(self)} methods and controls", audit_notes(self).splitlines(),
                       [audit_rows(self)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        if not self:
            return []
        from ..viz import figure_png
        from .viz_pictures import audit_figure

        return [("randomization cascade, deletion and insertion curves", figure_png(audit_figure(self, "audit")))]


def audit(model: nn.Module, inputs: torch.Tensor, methods: Sequence[str] | None = None, target=None,
          layer: str | None = None, seed: int = 0, steps: int = 28, with_ssim: bool = False,
          baseline: str | torch.Tensor = "mean", orders: int = 3, progress=None) -> AuditTable:
    """Every method (default: all of :data:`~convscope.inspect.attribution.METHODS`, guided backprop and
    deconvnet included) and every control of :data:`CONTROLS`, both checks each, then :data:`TRUST_RULE`.
    ``progress(row)`` is called after each row (the CLI writes its files there)."""
    methods = list(METHODS) if methods is None else list(methods)
    for m in methods:
        check_method(m)
    tgt = resolve_target(model, inputs, target)
    rows = AuditTable()
    jobs = [(m, m) for m in methods] + list(CONTROLS.items())
    for name, method in track(jobs, f"explain --audit: {len(inputs):,} images", unit="method"):
        if method is random_map:
            method = lambda mo, x, t: random_map(mo, x, t, seed)   # noqa: E731  (the audit's seed)
        rows.append(audit_method(model, inputs, method, tgt, layer, seed, steps, with_ssim, baseline, orders, name))
        if progress is not None:
            progress(rows[-1])
    compare_with_controls(rows, seed)
    return rows


def audit_rows(rows: list[MethodAudit]) -> Table:
    """One row per method and control: the numbers of the audit table, formatted."""
    header = ["method", "rank corr., top layer random", "rank corr., top half (rule)", "rank corr., all random",
              "constant maps", "deletion AUC", "insertion AUC", "score (ins. - del.) vs random, 95% CI",
              "vs best control, 95% CI", "trust"]
    out = []
    for r in rows:
        f, rr = r.faithfulness, r.randomization
        ci = f["vs_random"]["ci95"]
        vc = min(r.versus_controls.values(), key=lambda v: v["mean"]) if r.versus_controls else None
        vs = f"{vc['mean']:+.3f} [{vc['ci95'][0]:+.3f}, {vc['ci95'][1]:+.3f}]" if vc else "—"
        out.append([r.method, _fmt(rr[0]["spearman"]), _fmt(r.randomization_score), _fmt(rr[-1]["spearman"]),
                    f"{r.degenerate_fraction:.0%}", f"{f['deletion_auc']:.3f}", f"{f['insertion_auc']:.3f}",
                    f"{f['vs_random']['mean']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]", vs, r.verdict])
    return Table(header, out)


def audit_table(rows: list[MethodAudit]) -> str:
    """A Markdown table: one line per method and control."""
    t = audit_rows(rows)
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(r) + " |" for r in t.rows]
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.2f}"


def audit_notes(rows: list[MethodAudit]) -> str:
    """The rules and the baseline, to print under the table."""
    base = rows[0].faithfulness["baseline"] if rows else BASELINE
    return (f"randomization: {RANDOMIZATION_RULE}.\nfaithfulness: {FAITHFULNESS_RULE}.\ntrust: {TRUST_RULE}.\n"
            f"baseline of deletion/insertion, integrated gradients and occlusion: {base}.")
