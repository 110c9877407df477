"""One variant run of the refine experiment and its pieces: the projected ascent step on a layer's kernels (each
kernel's norm held fixed), the random turn of the same angle (``rotate``), the seed's batches, the run's own
training objective (``full-own``), and the measurements taken every ``eval_every`` steps."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..models.hooks import observe
from ..training.ema import EMA
from ._measure import measure, reestimated_bn


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


class OwnObjective:
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


def run_variant(base, variant, cfg, layer, response, train, test, norm, views, chosen, pool, owners, top_train,
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
