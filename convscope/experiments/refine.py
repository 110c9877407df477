"""Refine kernels on their top images and measure what it does to generalisation.

The lecture's third question: pick, for each kernel of a layer, the training images that excite it most
(``convscope.inspect.topk``), refine the kernels on those images, and ask whether the network loses its
ability to generalise. From the same trained weights, each over several seeds:

    maximize        gradient ascent on the layer's kernels only: each kernel's peak response on its own top-k
                    images, with each kernel's norm held fixed (else scaling the kernel wins trivially)
    maximize-random / -representative / -bottom
                    the same ascent on k random, k representative or the k least-exciting images per kernel
    rotate          each kernel turned by the angle maximize turned it, in a random direction (the null)
    top             fine-tune (cross-entropy) on the union of the top-k images
    random          the same on as many random training images (the control of the paired statistics)
    representative  the same on as many representative images (see ``_selection.REPRESENTATIVE_RULE``)
    full            the same number of steps on the whole training set
    full-own        the same with the run's own objective (augmentation, label smoothing, EMA)

Several independently trained models (a list of runs, or ``models=N``) give per-model results and paired
statistics on the same test images (``RefineResult.paired``).

    res = refine("runs/fast2-digits", RefineConfig(layer="conv3"))
    print(res.table())
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._progress import stage, track
from .._version import __version__
from ..data.dataset import ImageDataset, stratified_split
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.layers import resolve_layers
from ..inspect.topk import topk
from ..models.conv_layers import conv_layers
from ..models.hooks import observe
from ..models.forward import iter_batches
from ..models.output import check_logits, output_classes
from ..training.evaluate import TTA, EvalResult, result_from_logits
from ..training.ema import EMA
from ..training.threads import cpu_threads
from ._measure import bn_modules, logits_and_peaks, measure, reestimated_bn
from ._selection import (
    REPRESENTATIVE_RULE,
    owner_matrix,
    owners_bottom,
    owners_from_pool,
    owners_random,
    penultimate_features,
    random_subset,
    representative_subset,
    topk_union,
)
from .result import DESCRIPTIONS, RefineConfig, RefineResult, VariantRun

SAMPLE_SEED = 7919   # the fixed training sample for BN re-estimation (independent of the variants' seeds)
BN_NOTE = ("Every variant optimises with batch norm in eval mode: the running statistics of the trained model are "
           "used and never updated, so a few hundred hand-picked images cannot shift them (that would mix 'the "
           "kernels overfit' with 'the statistics drift'). 'frozen' measures with those statistics; 'reestimate' "
           "measures after re-estimating every BN layer's statistics on a fixed random sample of training images "
           "(exact average), as one would after changing a layer's kernels; the optimisation is the same.")


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the response layer has produced its output."""


@contextlib.contextmanager
def _forward_until(model: nn.Module, name: str) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, a forward pass stops (raising ``_Stop``) right after ``name``; its output — not
    detached, gradients flow — lands in the yielded dict. The hook is removed on leaving."""
    store: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output) -> None:
        store["out"] = output
        raise _Stop

    with observe([(dict(model.named_modules())[name], hook)]):
        yield store


@contextlib.contextmanager
def _deterministic(threads: int | None) -> Iterator[int]:
    """Deterministic algorithms and one thread count inside the block; yields the count, which the results record
    (the same count reproduces them: reductions split over another number of threads round differently). The
    count is ``threads``, else the user's OMP_NUM_THREADS, else the CPUs free when the experiment starts
    (convscope.training.threads), never re-counted. The previous settings come back."""
    was, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with cpu_threads(threads) as n:
        torch.use_deterministic_algorithms(True)
        try:
            yield n
        finally:
            torch.use_deterministic_algorithms(was, warn_only=warn)


class _Batches:
    """Batches from ``pool`` (indices): a fresh permutation each pass, drawn with the seed's generator."""

    def __init__(self, pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.pool, self.size, self.g = pool, min(batch_size, len(pool)), generator
        self.queue = torch.empty(0, dtype=torch.int64)

    def next(self) -> torch.Tensor:
        while len(self.queue) < self.size:
            self.queue = torch.cat([self.queue, self.pool[torch.randperm(len(self.pool), generator=self.g)]])
        batch, self.queue = self.queue[:self.size], self.queue[self.size:]
        return batch


def _maximize_step(model: nn.Module, weight: nn.Parameter, norms0: torch.Tensor, response: str, x: torch.Tensor,
                   owners: torch.Tensor, angle: float) -> float:
    """One projected ascent step. ``owners`` (B, C) bool: image b is one of kernel c's top-k images.
    Objective: sum over kernels of the mean peak response on their own images in the batch. Each kernel
    (row of ``weight`` flattened to (C, D)) moves along its gradient's component orthogonal to itself,
    by ``angle`` times its norm, and is scaled back to its original norm."""
    with _forward_until(model, response) as store:
        try:
            model(x)
        except _Stop:
            pass
    a = store["out"]                                               # (B, C, H, W) or (B, C)
    peaks = a.flatten(2).amax(2) if a.ndim > 2 else a              # (B, C): what topk ranks by
    own = owners.to(peaks.dtype)
    count = own.sum(0)                                             # (C,) owned images in this batch
    per_kernel = (peaks * own).sum(0) / count.clamp(min=1)         # (C,)
    objective = per_kernel[count > 0].sum()
    (grad,) = torch.autograd.grad(objective, weight)
    with torch.no_grad():
        w = weight.flatten(1)                                      # (C, D) view on the parameter
        g = grad.flatten(1)
        g = g - (g * w).sum(1, keepdim=True) / w.pow(2).sum(1, keepdim=True) * w   # tangent to the sphere
        gn = g.norm(dim=1, keepdim=True)
        step = torch.where(gn > 0, angle * w.norm(dim=1, keepdim=True) * g / gn.clamp(min=1e-30), 0.0)
        w += step
        w *= (norms0 / w.norm(dim=1)).unsqueeze(1)                 # back onto the sphere: norms unchanged
    done = per_kernel.detach()[count > 0]
    return float(done.mean()) if len(done) else float("nan")


def _rel_change(now: list[torch.Tensor], before: list[torch.Tensor]) -> float:
    num = sum(float((a.detach() - b).pow(2).sum()) for a, b in zip(now, before))
    den = sum(float(b.pow(2).sum()) for b in before)
    return (num / den) ** 0.5 if den else 0.0


@dataclasses.dataclass
class _Target:
    """One model to refine, with its data: what ``_load`` makes of a run directory, a Run or an nn.Module.
    ``views`` turns (model, input) into the logits the measurements use."""

    model: nn.Module
    train: ImageDataset
    test: ImageDataset
    norm: Normalization
    views: Callable
    tta: bool
    run: object = None                       # the Run, when there is one (its config: the own-objective control)
    name: str = "model"


def _load(target, train, test, normalization, tta) -> _Target:
    """A run directory, a Run, or an nn.Module (with ``train`` and ``test``) as a :class:`_Target`. A run is
    measured with its own evaluation (``Run.logits``, with whatever test-time views it records) unless ``tta``
    overrides it, and refined on exactly the images it trained on."""
    from ..data import load
    from ..training import Run, load_run, training_split

    if isinstance(target, (str, Path)):
        target = load_run(target)
    if isinstance(target, Run):
        run = target
        tr = train if train is not None else training_split(run).train   # exactly the images it trained on
        te = test if test is not None else load(run.config.dataset, "test", run.config.data_dir)
        views = (lambda m, x: dataclasses.replace(run, model=m).logits(x)) if tta is None else _flip_views(tta, te)
        return _Target(run.model, tr, te, normalization or run.normalization, views,
                       run.tta if tta is None else bool(tta), run, str(run.path))
    if not isinstance(target, nn.Module):
        raise ConfigError(f"refine: expected a run directory, a Run or an nn.Module, got {type(target).__name__}")
    if train is None or test is None:
        raise ConfigError("refine on an nn.Module: give train= and test= datasets (convscope.data.load(...))")
    for name, ds in (("train", train), ("test", test)):
        if not isinstance(ds, ImageDataset):    # tensors have no labels or known scale
            raise ConfigError(f"{name}: expected a convscope.data.ImageDataset (convscope.data.load(...)), got "
                              f"{type(ds).__name__}")
    c = train.shape[0]
    norm = normalization or Normalization((0.0,) * c, (1.0,) * c)
    classes = output_classes(target, train.shape, "model", "train")     # the output contract, once
    if classes != len(train.classes) or tuple(test.classes) != tuple(train.classes):
        raise ConfigError(f"model: gives {classes} class scores per image; the train set {train.name!r} has "
                          f"{len(train.classes)} classes and the test set {test.name!r} {len(test.classes)}; refine "
                          "measures accuracy, so give the datasets of the model's classes", arg="model")
    return _Target(target, train, test, norm, _flip_views(tta, test), bool(tta), None, type(target).__name__)


def _more_models(first: _Target, n: int, say: Callable[[str], None]) -> list:
    """Runs 2..n: the first run's config with ``--seed`` +1, +2, ... (the seed draws the initialisation, the data
    order and the augmentation), trained into FIRST/experiments/refine-models/seed-S, or loaded from there if
    an earlier refine trained them already."""
    from ..training import load_run, train as train_run

    if first.run is None:
        raise ConfigError("models: training more models needs a run directory (it copies the run's recipe); with "
                          "an nn.Module give a list of models instead")
    run = first.run
    folder = run.path / "experiments" / "refine-models"
    out = []
    for i in range(1, n):
        seed = run.config.runtime.seed + i
        path = folder / f"seed-{seed}"
        cfg = dataclasses.replace(run.config, runtime=dataclasses.replace(run.config.runtime, seed=seed))
        if path.exists():
            try:
                other = load_run(path)
            except ConfigError as e:
                raise ConfigError(f"models: {path} exists but is not a finished run ({e}); finish it with "
                                  f"`convscope train --resume {path}` or delete it") from None
            if dataclasses.replace(other.config, runtime=run.config.runtime) != \
                    dataclasses.replace(run.config, runtime=run.config.runtime) or other.config.runtime.seed != seed:
                raise ConfigError(f"models: {path} was trained with another recipe than {run.path}; delete it")
            say(f"model {i + 1}/{n}: {path} (trained earlier)")
            out.append(other)
            continue
        say(f"model {i + 1}/{n}: training {run.config.model} with seed {seed} into {path}")
        train_run(cfg, out=path, progress=False)
        out.append(load_run(path))                   # the stored weights, as a later call would load them
    return out


def _flip_views(tta: bool | None, test: ImageDataset):
    """Logits without the run's own views: plain, or with ``tta`` averaged with the mirrored input where a
    mirror keeps the label (as ``evaluate`` decides)."""
    return lambda m, x: TTA(m, bool(tta) and test.hflip_ok)(x)


def _evaluate(model: nn.Module, test: ImageDataset, norm: Normalization, views, baseline: bool = False
              ) -> EvalResult:
    """The baseline: ``evaluate``'s batches and metrics, with the logits the measurements use. The unchanged
    model's (``baseline``) scores must be finite: an accuracy over NaN scores (every argmax 0) would be the
    reference of every comparison."""
    logits = torch.cat([out for _, out in iter_batches(model, test.images, norm, 1024,
                                                       forward=lambda x: views(model, x))])
    if baseline:
        check_logits(logits, batch=len(test), finite=True, where=f"the {test.split} images")
    return result_from_logits(logits, test.labels, len(test.classes))


def _check_order(model: nn.Module, layer: str, response: str, x: torch.Tensor) -> None:
    """The response layer must come at or after ``layer`` in a forward pass: an earlier layer's output does not
    depend on the refined kernels, so the experiment would measure nothing."""
    if response == layer:
        return
    done: list[str] = []
    modules = dict(model.named_modules())
    with observe([(modules[n], lambda m, i, o, n=n: done.append(n) if n not in done else None)
                  for n in (layer, response)]), torch.no_grad():
        model(x)
    if response not in done:
        raise ConfigError(f"response {response!r}: not reached by a forward pass of the model; give a layer at or "
                          f"after {layer!r}")
    if layer in done and done.index(response) < done.index(layer):
        raise ConfigError(f"response {response!r}: runs before the refined layer {layer!r}, so its output does not "
                          f"depend on the refined kernels; give {layer!r} or a layer after it")


def _limit(ds: ImageDataset, n: int, salt: str) -> ImageDataset:
    """A class-stratified subset of ``n`` images (splits may be sorted by class, so not the first ``n``)."""
    if not n or n >= len(ds):
        return ds
    _, keep = stratified_split(ds.labels.numpy(), n / len(ds), salt)
    return ds.subset(keep)


def refine(target, config: RefineConfig | None = None, *, train: ImageDataset | None = None,
           test: ImageDataset | None = None, normalization: Normalization | None = None, tta: bool | None = None,
           progress: Callable[[str], None] | None = None) -> RefineResult:
    """Run the refine experiment on ``target``: a run directory, a ``Run``, an ``nn.Module`` with ``train`` and
    ``test`` datasets, or a list of these (independently trained models of one recipe; ``config.models`` more
    than given trains the rest like the first run). No model is modified: every variant starts from a copy."""
    cfg = config if isinstance(config, RefineConfig) else RefineConfig.from_dict({} if config is None else config)
    say = progress or stage    # the command's progress lines (stderr), silent unless shown
    t_start = time.perf_counter()
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    if not targets:
        raise ConfigError("refine: give at least one run directory or model")
    loaded = [_load(t, train, test, normalization, tta) for t in targets]
    if cfg.models > len(loaded):
        loaded += [_load(r, train, test, normalization, tta) for r in _more_models(loaded[0], cfg.models, say)]
    names = [t.test.name for t in loaded]
    if len({(t.test.name, t.test.split, len(t.test)) for t in loaded}) > 1:
        raise ConfigError(f"refine: the models are tested on different datasets ({', '.join(names)}); paired "
                          "statistics need one test set")
    parts = []
    with _deterministic(cfg.threads) as threads:
        for i, t in enumerate(loaded):
            if len(loaded) > 1:
                say(f"model {i + 1}/{len(loaded)}: {t.name}")
            parts.append(_refine_model(t, cfg, i, say))
    first = parts[0]
    versions = {"convscope": __version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version(), "machine": platform.machine(),
                "processor": platform.processor() or None, "threads": threads}
    models = [{"index": i, "name": t.name, "seed": t.run.config.runtime.seed if t.run is not None else None,
               "baseline": p["baseline"], "chosen_images": p["chosen_images"]} for i, (t, p) in enumerate(zip(loaded,
                                                                                                              parts))]
    return RefineResult(cfg, first["layer"], first["response"], first["data"], first["baseline"],
                        first["topk_train"], first["topk_test"], REPRESENTATIVE_RULE,
                        BN_NOTE if first["has_bn"] else "the model has no batch norm",
                        [r for p in parts for r in p["runs"]], first["after"], versions,
                        time.perf_counter() - t_start, first["kernels"], first["train_images"], models,
                        {i: p["correct0"] for i, p in enumerate(parts)}, np.asarray(loaded[0].test.labels))


def _resolve(model: nn.Module, cfg: RefineConfig) -> tuple[str, str]:
    """The refined conv layer's and the response layer's full names, checked."""
    layer = resolve_layers(model, [cfg.layer])
    if len(layer) != 1:
        raise ConfigError(f"layer {cfg.layer!r}: names {len(layer)} layers ({', '.join(layer)}); give one conv layer")
    layer = layer[0]
    modules = dict(model.named_modules())
    convs = conv_layers(model)
    if layer not in convs:
        raise ConfigError(f"layer {layer!r} is a {type(modules[layer]).__name__}, not a Conv2d; conv layers: "
                          f"{', '.join(convs) or 'none'}")
    response = resolve_layers(model, [cfg.response or layer])
    if len(response) != 1:
        raise ConfigError(f"response {cfg.response!r}: names {len(response)} layers ({', '.join(response)}); "
                          "give one layer")
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("refine runs on CPU: move the model to CPU first (model.cpu())")
    return layer, response[0]


def _owners_for(variant: str, seed_g: torch.Generator, owners_top: torch.Tensor, rep_idx, train_peaks, k: int):
    """(N_train, C) bool: the images each kernel is maximised on, for the maximize variants."""
    n, c = owners_top.shape
    if variant == "maximize":
        return owners_top
    if variant == "maximize-random":
        return owners_random(n, c, k, seed_g)
    if variant == "maximize-representative":
        return owners_from_pool(rep_idx, n, c, k, seed_g)
    return owners_bottom(train_peaks, k)                             # maximize-bottom


def _refine_model(t: _Target, cfg: RefineConfig, model_index: int, say: Callable[[str], None]) -> dict:
    """Every variant and seed on one model; a dict of what ``RefineResult`` gathers."""
    train = _limit(t.train, cfg.train_limit, "refine-train")
    test = _limit(t.test, cfg.test_limit, "refine-test")
    norm, views = t.norm, t.views
    layer, response = _resolve(t.model, cfg)
    base = copy.deepcopy(t.model).eval()
    _check_order(base, layer, response, norm.apply(train.images[:1]))
    if "full-own" in cfg.variants and t.run is None:
        raise ConfigError("variant 'full-own' continues the run's own training objective: it needs a run directory "
                          "(leave the variant out for an nn.Module)")
    say(f"top-{cfg.k} images of {response} on {len(train):,} training and {len(test):,} test images")
    rec_train = topk(base, train, [response], cfg.k, norm)[response]
    rec_test = topk(base, test, [response], cfg.k, norm)[response]
    top_idx = topk_union(rec_train)
    owners_all = owner_matrix(rec_train, len(train))                     # (N_train, C) bool
    top_train = (top_idx, owners_all[top_idx])                           # (U,), (U, C)
    test_owners = owner_matrix(rec_test, len(test))                      # (N_test, C) bool
    sample = random_subset(len(train), min(cfg.bn_images, len(train)), torch.Generator().manual_seed(SAMPLE_SEED))
    bn_images = train.images[sample]
    modes = cfg.bn if bn_modules(base) else ("frozen",)
    rep_idx = train_peaks = None
    if {"representative", "maximize-representative"} & set(cfg.variants):
        feats = penultimate_features(base, train, norm)
        rep_idx = representative_subset(feats, train.labels, len(top_idx), len(train.classes))
    if "maximize-bottom" in cfg.variants:
        _, train_peaks = logits_and_peaks(base, response, train.images, norm)     # (N_train, C)
    base_eval = _evaluate(base, test, norm, views, baseline=True)
    baseline = {"test_accuracy": base_eval.accuracy, "test_loss": base_eval.loss,
                "test_per_class": base_eval.per_class, "test_images": base_eval.n, "tta": bool(t.tta)}
    say(f"baseline test accuracy {100 * base_eval.accuracy:.2f}%; {len(top_idx)} distinct top images")
    own = _Own(t.run, train, norm) if "full-own" in cfg.variants else None

    runs: list[VariantRun] = []
    kernels = {"before": dict(base.named_modules())[layer].weight.detach().clone()}
    after: dict = {}
    cache: dict = {}                                # step-0 measurements, shared by runs with one chosen set
    snapshots: dict = {}                            # seed -> {step: maximize's kernels}, for 'rotate'
    order = sorted(cfg.variants, key=lambda v: v != "maximize")      # 'rotate' follows maximize's angles
    jobs = [(variant, seed) for variant in order for seed in cfg.seeds]
    for variant, seed in track(jobs, f"refine {layer}: variant runs", unit="run"):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        owners = None
        if variant.startswith("maximize"):
            owners = _owners_for(variant, g, owners_all, rep_idx, train_peaks, cfg.k)
            chosen = torch.nonzero(owners.any(1)).flatten()
        elif variant == "random":
            chosen = random_subset(len(train), len(top_idx), g)
        else:
            chosen = {"rotate": top_idx, "top": top_idx, "representative": rep_idx, "full": sample,
                      "full-own": sample}[variant]
        pool = torch.arange(len(train)) if variant.startswith("full") else chosen
        m, rows, correct = _run_one(base, variant, cfg, layer, response, train, test, norm, views, chosen, pool,
                                    owners, top_train, test_owners, bn_images, modes, g, cache,
                                    snapshots.setdefault(seed, {}), own)
        mix = torch.bincount(train.labels[chosen], minlength=len(train.classes)).tolist()
        runs.append(VariantRun(variant, seed, chosen.tolist(), mix, rows, time.perf_counter() - t0,
                               model_index, correct))
        last = rows[-1]["bn"][modes[0]]
        say(f"{variant:<24} seed {seed}: test {100 * last['test_accuracy']:.2f}%  chosen "
            f"{100 * last['chosen_accuracy']:.2f}%  ({runs[-1].seconds:.1f} s)")
        if seed == cfg.seeds[0] and model_index == 0:
            kernels[variant] = dict(m.named_modules())[layer].weight.detach().clone()
            if cfg.after_topk:
                new = topk(m, train, [response], cfg.k, norm)[response]
                after[variant] = {
                    "seed": seed, "topk_train": [[r.index for r in recs] for recs in new],
                    "overlap": [len({r.index for r in a} & {r.index for r in b}) / cfg.k
                                for a, b in zip(rec_train, new)]}
    data = {"dataset": train.name, "train_images": len(train), "test_images": len(test), "train_split": train.split,
            "test_split": test.split, "classes": list(train.classes), "bn_sample": len(sample),
            "full_data_chosen_set": f"the fixed random sample of {len(sample)} training images (also used for BN)",
            "own_objective": own.describe() if own is not None else None}
    correct0 = {mode: v[1].numpy() for (mode, _), v in cache.items()}   # step 0: the same model for every key
    return {"layer": layer, "response": response, "data": data, "baseline": baseline,
            "topk_train": [[r.index for r in recs] for recs in rec_train],
            "topk_test": [[r.index for r in recs] for recs in rec_test], "has_bn": bool(bn_modules(base)),
            "runs": runs, "after": after, "kernels": kernels, "train_images": train.images,
            "chosen_images": len(top_idx), "correct0": correct0}


class _Own:
    """The run's own training objective, from the training package's pieces: its augmented batches
    (``BatchFeeder``), its label smoothing, and its weight average (``EMA``, continued at the run's decay)."""

    def __init__(self, run, train: ImageDataset, norm: Normalization) -> None:
        from ..training.batches import BatchFeeder, TrainData
        from ..training.config import resolve

        cfg = resolve(run.config, hflip_ok=train.hflip_ok, device="cpu", native_bf16=False)
        self.cfg = cfg
        self.feeder = BatchFeeder(cfg, TrainData(train, train, None, norm))
        self.smoothing = cfg.optim.label_smoothing
        self.ema = cfg.optim.ema if cfg.runtime.engine == "torch" else 0.0

    def describe(self) -> dict:
        a = self.cfg.augment
        return {"label_smoothing": self.smoothing, "ema": self.ema,
                "augment": {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}}


def _rotate(w0: torch.Tensor, angles: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Each kernel of ``w0`` (C, ...) turned by ``angles`` (C,) radians towards ``direction`` (C, D) (unit,
    orthogonal to the kernel), norm unchanged: |w| (cos a * w/|w| + sin a * u)."""
    w = w0.flatten(1)
    n = w.norm(dim=1, keepdim=True)
    a = angles.unsqueeze(1)
    return (n * (torch.cos(a) * w / n + torch.sin(a) * direction)).reshape(w0.shape)


def _random_directions(w0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(C, D): for each kernel a uniformly random unit direction orthogonal to it."""
    w = w0.flatten(1).double()
    u = torch.randn(w.shape, generator=g, dtype=torch.float64)
    u = u - (u * w).sum(1, keepdim=True) / w.pow(2).sum(1, keepdim=True) * w
    return (u / u.norm(dim=1, keepdim=True)).to(w0.dtype)


def kernel_angles(w: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    """(C,) float64: the angle in radians between each kernel of ``w`` and of ``w0`` (C, ...)."""
    a, b = w.detach().flatten(1).double(), w0.flatten(1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-300)
    return torch.arccos(cos.clamp(-1.0, 1.0))


def _run_one(base, variant, cfg, layer, response, train, test, norm, views, chosen, pool, owners, top_train,
             test_owners, bn_images, modes, g, cache, snapshots, own):
    """One variant from one seed: (the refined model, its rows of measurements, {bn mode: (N_test,) bool
    correct at the last step})."""
    model = copy.deepcopy(base).eval()               # eval mode throughout: BN statistics are never updated
    for p in model.parameters():
        p.requires_grad_(False)
    conv = dict(model.named_modules())[layer]
    weight = conv.weight
    if variant.startswith("maximize") or variant == "rotate":
        trainable = [weight]                         # a bias would raise responses trivially: it stays fixed
    elif cfg.params == "layer":
        trainable = list(conv.parameters())
    else:
        trainable = list(model.parameters())
    for p in trainable:
        p.requires_grad_(True)
    before = [p.detach().clone() for p in trainable]
    w0 = weight.detach().clone()
    norms0 = w0.flatten(1).norm(dim=1)
    opt = None if variant.startswith("maximize") or variant == "rotate" else \
        torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum)
    ema = None
    if variant == "full-own":
        own.feeder.aug_gen.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))   # the seed's draws
        if own.ema > 0:
            ema = EMA(model, own.ema)
    direction = _random_directions(w0, g) if variant == "rotate" else None
    batches = _Batches(pool, cfg.batch_size, g)
    eval_idx = torch.unique(torch.cat([chosen, top_train[0]]))      # sorted: chosen and top-k training images
    chosen_pos = torch.searchsorted(eval_idx, chosen)
    train_owners = (torch.searchsorted(eval_idx, top_train[0]), top_train[1])
    eval_images, eval_labels = train.images[eval_idx], train.labels[eval_idx]
    losses: list[float] = []
    correct: dict = {}

    def row(step: int) -> dict:
        probe = ema.average if ema is not None else model           # the model the run would evaluate
        pw = dict(probe.named_modules())[layer].weight
        ptrain = [dict(probe.named_parameters())[n] for n, p in model.named_parameters() if p.requires_grad] \
            if ema is not None else trainable
        angles = kernel_angles(pw, w0)
        r = {"step": step, "weight_change": _rel_change([pw], [w0]), "trainable_change": _rel_change(ptrain, before),
             "kernel_norm_change": float(((pw.detach().flatten(1).norm(dim=1) - norms0).abs() / norms0).max()),
             "kernel_angle": float(angles.mean()),
             "objective" if variant.startswith("maximize") else "train_loss":
                 float(np.mean(losses)) if losses else None,
             "bn": {}}
        if step in (0, cfg.steps):
            r["kernel_angle_per_channel"] = angles.tolist()
        if variant == "maximize":
            snapshots[step] = pw.detach().clone()
        for mode in modes:
            key = (mode, chosen.numpy().tobytes())
            if step == 0 and key in cache:            # every variant starts from the same weights
                r["bn"][mode] = copy.deepcopy(cache[key][0])
                continue
            with (reestimated_bn(probe, bn_images, norm) if mode == "reestimate" else contextlib.nullcontext()):
                r["bn"][mode], ok = measure(probe, norm, views, response, test, test_owners, eval_images,
                                            eval_labels, chosen_pos, train_owners, per_channel=step in (0, cfg.steps))
            if step == 0:
                cache[key] = (copy.deepcopy(r["bn"][mode]), ok)
            if step == cfg.steps:
                correct[mode] = ok.numpy()
        losses.clear()
        return r

    rows = [row(0)]
    for step in range(1, cfg.steps + 1):
        measured = step % cfg.eval_every == 0 or step == cfg.steps
        if variant == "rotate":
            if measured:                             # maximize's angle at this step, in a random direction
                with torch.no_grad():
                    weight.copy_(_rotate(w0, kernel_angles(snapshots[step], w0).to(w0.dtype), direction))
        elif variant.startswith("maximize"):
            idx = batches.next()
            x = norm.apply(train.images[idx])
            losses.append(_maximize_step(model, weight, norms0, response, x, owners[idx], cfg.angle))
        else:
            idx = batches.next()
            if variant == "full-own":
                x, y = own.feeder.take(idx)
                loss = F.cross_entropy(model(x), y, label_smoothing=own.smoothing)
            else:
                loss = F.cross_entropy(model(norm.apply(train.images[idx])), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(10**9)                    # a continued average: the run's full decay, no warm-up
            losses.append(float(loss.detach()))
        if measured:
            rows.append(row(step))
    for p in model.parameters():
        p.requires_grad_(False)
    return (ema.average if ema is not None else model), rows, correct


__all__ = ["DESCRIPTIONS", "RefineConfig", "RefineResult", "VariantRun", "refine"]
