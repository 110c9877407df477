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

Here: the experiment over models and, per model, over variants and seeds. The models and their data are
``_targets``; one variant's run from one seed (the ascent step, the rotation, the measurements) is ``_variants``;
what is measured, ``_measure``; which images, ``_selection``; the result and its statistics, ``result``.
"""

from __future__ import annotations

import contextlib
import copy
import platform
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
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
from ..models.output import check_logits
from ..training.evaluate import EvalResult, result_from_logits
from ._measure import bn_modules, logits_and_peaks
from ..training.threads import cpu_threads
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
from ._targets import Target, load_target, more_models
from ._variants import OwnObjective, _forward_until, _Stop, run_variant  # noqa: F401  (_forward_until, _Stop: tests)
from .result import DESCRIPTIONS, RefineConfig, RefineResult, VariantRun

SAMPLE_SEED = 7919   # the fixed training sample for BN re-estimation (independent of the variants' seeds)
BN_NOTE = ("Every variant optimises with batch norm in eval mode: the running statistics of the trained model are "
           "used and never updated, so a few hundred hand-picked images cannot shift them (that would mix 'the "
           "kernels overfit' with 'the statistics drift'). 'frozen' measures with those statistics; 'reestimate' "
           "measures after re-estimating every BN layer's statistics on a fixed random sample of training images "
           "(exact average), as one would after changing a layer's kernels; the optimisation is the same.")


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
    loaded = [load_target(t, train, test, normalization, tta) for t in targets]
    if cfg.models > len(loaded):
        loaded += [load_target(r, train, test, normalization, tta) for r in more_models(loaded[0], cfg.models, say)]
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


def _refine_model(t: Target, cfg: RefineConfig, model_index: int, say: Callable[[str], None]) -> dict:
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
    own = OwnObjective(t.run, train, norm) if "full-own" in cfg.variants else None

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
        m, rows, correct = run_variant(base, variant, cfg, layer, response, train, test, norm, views, chosen,
                                       pool, owners, top_train, test_owners, bn_images, modes, g, cache,
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


__all__ = ["DESCRIPTIONS", "RefineConfig", "RefineResult", "VariantRun", "refine"]
