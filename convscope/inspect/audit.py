"""Which attribution maps can be trusted: two checks per method.

1. Model-parameter randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): re-draw the
   parameters layer by layer, cascading from the top (the output layer first), and compare each map with the
   original one by Spearman rank correlation of |attribution| per image (SSIM optional). A map that explains
   the *model* must change; one that stays put (correlation near 1) is an edge detector of the input.
   Each parameter tensor is replaced by Gaussian noise with the tensor's own mean and std (a seeded
   generator; the user's model is not changed: a copy is randomized).
2. Faithfulness by deletion and insertion (Petsiuk et al. 2018, RISE): remove the most-attributed pixels
   first (replaced by the baseline, by default the inputs' per-channel minimum = black) and follow the target
   class's probability and accuracy; insert them into the baseline image in the same order. Area under each
   curve (pixel fraction 0..1), against the same curves for a random pixel order (seeded). Faithful maps:
   deletion AUC below random, insertion AUC above.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._check import integer
from .._check import seed as check_seed
from ..errors import ConfigError
from ..models.forward import iter_batches
from ._args import check_model
from .attribution import AttributionFn, attribute, check_inputs, check_method, resolve_target


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) Spearman rank correlation of |a[i]| and |b[i]| over pixels (average ranks for ties)."""
    from scipy.stats import rankdata

    ra = rankdata(np.abs(a).reshape(len(a), -1), axis=1)
    rb = rankdata(np.abs(b).reshape(len(b), -1), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), 0.0)


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


def parameter_layers(model: nn.Module) -> list[str]:
    """Modules that own parameters, in model order (the cascade runs through them backwards)."""
    return [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


def _randomize(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            sd = float(p.std()) if p.numel() > 1 else 0.0
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.copy_((noise * (sd or float(p.abs().mean()) or 1.0) + float(p.mean())).to(p.device))


def randomization_check(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn,
                        target: torch.Tensor | int | None = None, layer: str | None = None, seed: int = 0,
                        with_ssim: bool = False) -> list[dict]:
    """Cascading randomization: one row per step, ``{"randomized_to": name, "spearman": mean, "ssim": mean}``,
    the first row randomizing only the top layer, the last every layer."""
    check_model(model)
    check_inputs(inputs)
    check_method(method)
    tgt = resolve_target(model, inputs, target)
    original = attribute(model, inputs, method, tgt, layer)
    rand = copy.deepcopy(model)
    g = torch.Generator().manual_seed(check_seed(seed))
    modules = dict(rand.named_modules())
    rows = []
    for name in reversed(parameter_layers(rand)):
        _randomize(modules[name], g)
        m = attribute(rand, inputs, method, tgt, layer)
        row = {"randomized_to": name, "spearman": float(np.mean(spearman(original, m)))}
        if with_ssim:
            row["ssim"] = float(np.mean(ssim(original, m)))
        rows.append(row)
    return rows


def _curves(model: nn.Module, inputs: torch.Tensor, order: torch.Tensor, tgt: torch.Tensor, baseline: torch.Tensor,
            steps: int, batch: int) -> dict[str, np.ndarray]:
    """Probability/accuracy curves (steps + 1,) for deletion and insertion in pixel ``order`` (N, H*W)."""
    n, _, h, w = inputs.shape
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=order.device).expand(n, -1))   # rank[i, p]: p's place
    counts = [round(s * h * w / steps) for s in range(steps + 1)]
    out = {k: np.zeros(steps + 1) for k in ("deletion_prob", "deletion_acc", "insertion_prob", "insertion_acc")}
    for s, k in enumerate(counts):
        chosen = (rank < k).view(n, 1, h, w)                                 # (N, 1, H, W) the first k pixels
        for kind, x in (("deletion", torch.where(chosen, baseline, inputs)),
                        ("insertion", torch.where(chosen, inputs, baseline))):
            probs, hits = [], []
            for i, logits in iter_batches(model, x, None, batch):          # x is model input: no normalization
                probs.append(logits.softmax(1).gather(1, tgt[i:i + batch, None])[:, 0])
                hits.append(logits.argmax(1) == tgt[i:i + batch])
            out[f"{kind}_prob"][s] = float(torch.cat(probs).double().mean())
            out[f"{kind}_acc"][s] = float(torch.cat(hits).double().mean())
    return out


def auc(curve: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at equal steps of the pixel fraction 0..1."""
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def deletion_insertion(model: nn.Module, inputs: torch.Tensor, maps: np.ndarray, target: torch.Tensor | int | None
                       = None, steps: int = 28, baseline: torch.Tensor | None = None, seed: int = 0,
                       batch: int = 1000) -> dict:
    """Deletion/insertion curves and AUCs for ``maps`` (N, H, W) and for a random pixel order."""
    check_model(model)
    check_inputs(inputs)
    steps = integer(steps, "steps", 1)
    batch = integer(batch, "batch", 1)
    tgt = resolve_target(model, inputs, target)
    n, _, h, w = inputs.shape
    if np.shape(maps) != (n, h, w):
        raise ConfigError(f"maps: expected one (H, W) map per image, shape {(n, h, w)}, got {np.shape(maps)}")
    if baseline is None:
        baseline = inputs.amin(dim=(0, 2, 3), keepdim=True)                 # (1, C, 1, 1): black
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32)).reshape(n, h * w).to(inputs.device)
    order = torch.sort(m, dim=1, descending=True, stable=True).indices      # most attributed first
    g = torch.Generator().manual_seed(check_seed(seed))
    rand_order = torch.stack([torch.randperm(h * w, generator=g) for _ in range(n)]).to(inputs.device)
    ours = _curves(model, inputs, order, tgt, baseline, steps, batch)
    rnd = _curves(model, inputs, rand_order, tgt, baseline, steps, batch)
    res = {"steps": steps, "curves": {k: v.tolist() for k, v in ours.items()},
           "random_curves": {k: v.tolist() for k, v in rnd.items()}}
    for kind in ("deletion", "insertion"):
        res[f"{kind}_auc"] = auc(ours[f"{kind}_prob"])
        res[f"random_{kind}_auc"] = auc(rnd[f"{kind}_prob"])
    return res


@dataclass
class MethodAudit:
    method: str
    randomization: list[dict]
    faithfulness: dict
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def passes_randomization(self) -> bool:
        """The fully randomized model's map shares little rank order with the original (< 0.5)."""
        return self.randomization[-1]["spearman"] < 0.5

    @property
    def passes_faithfulness(self) -> bool:
        f = self.faithfulness
        return f["deletion_auc"] < f["random_deletion_auc"] and f["insertion_auc"] > f["random_insertion_auc"]

    def to_dict(self) -> dict:
        return {"method": self.method, "randomization": self.randomization, "faithfulness": self.faithfulness,
                "passes_randomization": self.passes_randomization,
                "passes_faithfulness": self.passes_faithfulness, "seconds": self.seconds}


def audit_method(model: nn.Module, inputs: torch.Tensor, method: str | AttributionFn, target=None,
                 layer: str | None = None, seed: int = 0, steps: int = 28, with_ssim: bool = False) -> MethodAudit:
    """Both checks for one method on ``inputs`` (targets: the predicted classes unless given)."""
    import time

    t0 = time.perf_counter()
    check_model(model)      # every argument before the first (possibly long) attribution
    check_inputs(inputs)
    check_method(method)
    steps = integer(steps, "steps", 1)
    seed = check_seed(seed)
    tgt = resolve_target(model, inputs, target)
    maps = attribute(model, inputs, method, tgt, layer, seed=seed)
    faith = deletion_insertion(model, inputs, maps, tgt, steps, seed=seed)
    rand = randomization_check(model, inputs, method, tgt, layer, seed, with_ssim)
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    return MethodAudit(name, rand, faith, time.perf_counter() - t0)


def audit_table(rows: list[MethodAudit]) -> str:
    """A Markdown table: one line per method."""
    head = ("| method | rank corr., top layer random | rank corr., all random | deletion AUC (random) "
            "| insertion AUC (random) | trust |")
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        f = r.faithfulness
        verdict = ("yes" if r.passes_randomization and r.passes_faithfulness else
                   "no: ignores the weights" if not r.passes_randomization else "no: not faithful")
        lines.append(f"| {r.method} | {r.randomization[0]['spearman']:.2f} | {r.randomization[-1]['spearman']:.2f} "
                     f"| {f['deletion_auc']:.3f} ({f['random_deletion_auc']:.3f}) "
                     f"| {f['insertion_auc']:.3f} ({f['random_insertion_auc']:.3f}) | {verdict} |")
    return "\n".join(lines)
