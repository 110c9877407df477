"""Activation maximization: the image each unit "wants to see" (Erhan et al. 2009; Olah et al. 2017).

Gradient ascent on a parameterized image (``param.py``), through random robustness transforms
(``vis_transforms.py``), on a composable objective (``objectives.py``); all channels are optimized at once,
one per image of the batch. Seeded through a private ``torch.Generator``: the same seed gives the same
images bit for bit on CPU. Each unit's reached value is reported beside the best natural image's value by
the same measure, so one sees whether the picture is more than the data already shows.
"""

from __future__ import annotations

import inspect

from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
from torch import nn

from .._check import instance, is_int
from .._progress import track
from .._result import Display, RichDisplay, Table
from ..configs import MEASURES, VisualizeConfig
from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.forward import iter_batches
from ..models.layers import resolve_layers
from ..models.output import check_logits
from ..models.probe import check_input_shape, eval_mode, zeros_forward
from . import objectives as O
from . import vis_transforms as T
from ._args import check_dataset, check_model, check_norm, model_and_norm
from ._tap import run, tap
from .hooks import capture
from .param import make_param

MAX_RANGE = 1 << 16    # the widest --channels range parsed without a channel count to bound it
MEASURE_WORDS = {"max": "max of each channel's map (topk's measure)", "mean": "mean of each channel's map",
                 "neuron": "centre unit of each channel"}


@dataclass(repr=False)
class Visualization(RichDisplay):
    """Optimized images, one per unit, with each unit's reached value beside the best dataset image's. Displays
    as a table of the values and the picture of the images."""

    layer: str | None                 # None: the model's output (class logits)
    channels: list[int]
    measure: str                      # mean | max (over the channel's map) | neuron (its centre)
    objective: str
    images: np.ndarray                # (N, C, H, W) uint8, one per channel
    inputs: torch.Tensor              # (N, C, H, W) float, model-ready (the uint8 images normalized)
    values: list[float]               # each image's activation of its unit, by ``measure``
    history: np.ndarray               # (steps, N) objective per image during the optimization
    natural_values: list[float] | None = None   # the best dataset image's value, same measure
    natural_indices: list[int] | None = None    # ... and its index in the dataset
    settings: dict = field(default_factory=dict)
    # per measure (mean, max, neuron) for a layer with a dataset: the optimized images' values and the best
    # natural image's by that measure, "beats" (count), "natural_nonpositive" (channels whose best natural value
    # is <= 0: a comparison with no activation to beat), "median_ratio" (over channels with a positive natural
    # value), "distinct_natural_images"
    comparisons: dict = field(default_factory=dict)
    dataset_size: int | None = None

    def headline(self) -> str | None:
        """One sentence per measure, naming it: how many units' optimized image beats the best dataset image."""
        if self.natural_values is None:
            return None
        rows = self.comparisons or {self.measure: _comparison(self.values, self.natural_values,
                                                              self.natural_indices, self.channels)}
        out = []
        for m, c in rows.items():
            ratio = f", median ratio {c['median_ratio']:.2f}" if c["median_ratio"] is not None else ""
            flag = (f"; best natural value <= 0 for {len(c['natural_nonpositive'])} channel(s) "
                    f"({', '.join(map(str, c['natural_nonpositive'][:8]))}"
                    f"{', ...' if len(c['natural_nonpositive']) > 8 else ''}): nothing to beat there"
                    if c["natural_nonpositive"] else "")
            mark = " (optimized for)" if m == self.measure else ""
            out.append(f"by the {MEASURE_WORDS[m]}{mark}: optimized image above the best of "
                       f"{self.dataset_size or 'the'} dataset images for {c['beats']}/{c['units']} units{ratio}"
                       f"{flag}")
        return "\n".join(out)

    def beats_natural(self) -> float | None:
        """Fraction of units whose image reaches a higher value than the best dataset image."""
        if self.natural_values is None:
            return None
        return float(np.mean([v > n for v, n in zip(self.values, self.natural_values)]))

    def _display(self) -> Display:
        where = self.layer if self.layer is not None else "the class logits"
        lines = [f"objective: {self.objective}", f"measure: {MEASURE_WORDS.get(self.measure, self.measure)}"]
        lines += (self.headline() or "").splitlines()
        nat = self.natural_values is not None
        rows = [[str(ch), f"{v:.4g}"]
                + ([f"{self.natural_values[i]:.4g}", f"#{self.natural_indices[i]}"] if nat else [])
                for i, (ch, v) in enumerate(zip(self.channels, self.values))]
        header = ["channel", "optimized value"] + (["best dataset value", "dataset image"] if nat else [])
        return Display(f"Visualization of {where}: {len(self.channels)} unit(s), {self.images.shape[-2]}x"
                       f"{self.images.shape[-1]} images", lines, [Table(header, rows)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        from ..viz import figure_png
        from .viz_pictures import visualization_figure

        where = self.layer if self.layer is not None else "class logits"
        return [("optimized images (unit: value); up to 32 units", figure_png(visualization_figure(
            self, None, f"{where}: {self.objective}")))]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "channels": self.channels, "measure": self.measure,
                "objective": self.objective, "values": self.values, "natural_values": self.natural_values,
                "natural_indices": self.natural_indices, "beats_natural": self.beats_natural(),
                "comparisons": self.comparisons, "headline": self.headline(),
                "objective_start": self.history[0].tolist(), "objective_end": self.history[-1].tolist(),
                "settings": self.settings}


def parse_channels(text: str, n: int | None = None, flag: str = "--channels") -> list[int]:
    """``"0-15"``, ``"3"``, ``"0,4,9-11"`` -> a list of channel indices. With ``n`` (the layer's channel
    count) each index and range is checked against 0..n-1 before a range is expanded, so a huge range is a
    clear error rather than a MemoryError; an empty list is refused."""
    valid = f" (valid: 0-{n - 1})" if n else ""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            a, b = (int(v) for v in part.split("-")) if "-" in part else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: expected indices and ranges such as 0-15 or 0,4,9-11{valid}"
                              ) from None
        if "-" in part and a > b:
            raise ConfigError(f"{flag} {text!r}: range {part} runs backwards; write it low-high{valid}")
        if (n is not None and b >= n) or (n is None and b - a >= MAX_RANGE):
            raise ConfigError(f"{flag} {text!r}: {part} is out of range{valid}")
        out += list(range(a, b + 1))
    if not out:
        raise ConfigError(f"{flag} {text!r}: no channel given; give indices such as 0-15 or 0,4,9-11{valid}, "
                          f"or leave {flag} out for the default")
    bad = [c for c in out if n is not None and not 0 <= c < n]
    if bad:
        raise ConfigError(f"{flag} {text!r}: {', '.join(map(str, bad[:5]))} out of range{valid}")
    return out


def resolve_layer(model: nn.Module, layer, name: str = "layer") -> str:
    """``layer`` as exactly one module name: a type or list matching several layers is refused (listing them)
    instead of silently taking the first."""
    if not isinstance(layer, str) or not layer.strip():
        raise ConfigError(f"{name}: expected one layer name (str, see `convscope layers RUN`), got {layer!r}")
    names = resolve_layers(model, [layer.strip()] if "," not in layer else layer)
    if not names:
        raise ConfigError(f"{name} {layer!r}: no layer name given; give one (see `convscope layers RUN`)")
    if len(names) != 1:
        raise ConfigError(f"{name} {layer!r} matches {len(names)} layers ({', '.join(names)}); give one of them")
    return names[0]


def layer_channels(model: nn.Module, layer: str | None, shape, device: torch.device | None = None,
                   name: str = "input_shape") -> int:
    """Channel count of ``layer``'s output (None: the model's output) for images of ``shape`` (one zero-image
    forward); a shape the model cannot take is a ConfigError naming ``name``."""
    device = device or check_model(model)
    with eval_mode(model), torch.no_grad():
        zeros_forward(model, shape, name)                  # the model takes this shape (clear error if not)
        with tap(model, [layer] if layer else [], stop=layer is not None) as acts:
            out = run(model, torch.zeros(1, *shape, device=device), acts)
    if layer is None:                                      # class logits: the model-output contract
        return int(check_logits(out, batch=1, where=f"one zero image of shape {tuple(shape)}").shape[1])
    t = acts[layer]
    if not isinstance(t, torch.Tensor) or t.ndim < 2:
        raise ConfigError(f"{layer or 'the model output'}: expected a (N, C, ...) tensor, got "
                          f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    return int(t.shape[1])


def unit_values(out: torch.Tensor, channels: Sequence[int] | torch.Tensor, measure: str) -> torch.Tensor:
    """(B, C, ...) layer output -> (B, len(channels)): each channel reduced by ``measure``."""
    sel = out[:, list(channels)] if not isinstance(channels, torch.Tensor) else out[:, channels]
    if sel.ndim == 2:                                  # fully connected: one value per unit
        return sel
    if measure == "neuron":
        return sel[:, :, sel.shape[2] // 2, sel.shape[3] // 2]
    flat = sel.flatten(2)
    return flat.mean(2) if measure == "mean" else flat.amax(2)


def natural_best(model: nn.Module, dataset: ImageDataset, layer: str | None, channels: Sequence[int],
                 measure: str, norm: Normalization, batch_size: int = 500) -> tuple[list[float], list[int]]:
    """Per channel, the highest value any dataset image reaches by ``measure`` and that image's index (the
    lowest on ties). ``max`` is exactly ``topk``'s top-1; ``mean`` and ``neuron`` use one streaming pass."""
    if measure == "max" and layer is not None:
        from .topk import topk

        recs = topk(model, dataset, [layer], 1, norm, batch_size)[layer]
        return [recs[c][0].value for c in channels], [recs[c][0].index for c in channels]
    check_model(model)
    best = torch.full((len(channels),), -torch.inf, dtype=torch.float64)
    where = torch.zeros(len(channels), dtype=torch.long)
    seen: dict[str, torch.Tensor] = {}
    with capture(model, [layer] if layer else [], lambda n, t: seen.__setitem__(n, t)):
        for i, out in iter_batches(model, dataset.images, norm, batch_size,
                                   progress=f"visualize: best natural images by {measure} ({len(dataset):,})"):
            v = unit_values(seen[layer] if layer else out, channels, measure).double().cpu()  # (B, N)
            m, idx = v.max(0)                                    # first maximum: lowest index on ties
            better = m > best
            best = torch.where(better, m, best)
            where = torch.where(better, idx + i, where)
    return best.tolist(), where.tolist()


def _default_objective(layer: str | None, channels: list[int], measure: str) -> O.Objective:
    if layer is None:
        return O.class_logit(channels)
    if measure == "neuron":
        return O.neuron(layer, channels)
    return O.channel(layer, channels, measure)


def _takes(fn: object, n: int) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments (True where Python cannot tell: builtins)."""
    try:
        inspect.signature(fn).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def visualize(model: nn.Module, layer: str | None, channels: int | Sequence[int] | None = None,
              dataset: ImageDataset | None = None, seed: int = 0, *, neuron: bool = False, measure: str = "max",
              objective: O.Objective | None = None, norm: Normalization | None = None,
              input_shape: tuple[int, int, int] | None = None, steps: int = 256, param: str = "fourier",
              lr: float | None = None, transforms: Sequence[T.Transform] | str | None = "standard",
              l2: float = 0.0, tv: float = 0.0, blur: float = 0.0,
              config: VisualizeConfig | None = None) -> Visualization:
    """One image per channel of ``layer`` (None: the class logits) that maximizes its activation.

    ``channels``: an index, a list, or None for every channel. ``measure``: ``max`` over the channel's map
    (default: what ``topk`` ranks by), ``mean``, or ``neuron`` (the centre unit; also ``neuron=True``). With a
    dataset and a layer, ``comparisons`` holds all three measures side by side (:meth:`Visualization.headline`).
    ``objective`` replaces the
    default (the measure of each image's own channel) for the optimization; ``l2``, ``tv`` and ``blur`` add
    those regularizers with these weights. ``transforms``: ``"standard"``, None, or a list. With a
    ``dataset``, ``natural_values`` holds the best dataset image's value by the same measure.
    ``norm`` maps [0, 1] images to model input: required for a bare nn.Module (``model`` may be a run, which
    carries it); ``input_shape`` defaults to the dataset's.
    ``config``: a :class:`~convscope.configs.VisualizeConfig` in place of seed, neuron, measure, steps, param, lr,
    l2, tv and blur (the CLI passes one)."""
    recorded = getattr(model, "input_shape", None) if not isinstance(model, nn.Module) else None   # a Run's
    model, norm = model_and_norm(model, norm)
    device = check_model(model)
    cfg = config if config is not None else VisualizeConfig(
        measure=measure, neuron=neuron, steps=steps, seed=seed, param=param, lr=lr, tv=tv, l2=l2, blur=blur)
    instance(cfg, "config", VisualizeConfig, "a convscope.configs.VisualizeConfig")
    measure, steps, seed, param, lr, l2, tv, blur = (cfg.measure, cfg.steps, cfg.seed, cfg.param, cfg.lr, cfg.l2,
                                                     cfg.tv, cfg.blur)
    if layer is not None:
        layer = resolve_layer(model, layer)
    if dataset is not None:
        dataset = check_dataset(dataset)
    if objective is not None and not isinstance(objective, O.Objective):
        raise ConfigError(f"objective: expected a convscope.inspect.objectives.Objective, got "
                          f"{type(objective).__name__}")
    if transforms is not None and not isinstance(transforms, str) and (
            not isinstance(transforms, Sequence) or not all(callable(t) for t in transforms)):
        raise ConfigError(f"transforms: expected 'standard', None or a list of transforms (callables "
                          f"t(x, generator)), got {transforms!r}")
    if transforms is not None and not isinstance(transforms, str):
        wrong = [t for t in transforms if not _takes(t, 2)]
        if wrong:   # t(x) alone would fail mid-optimization with a bare TypeError
            raise ConfigError(f"transforms: {getattr(wrong[0], '__name__', wrong[0])!r} cannot be called as t(x, "
                              "generator); a transform takes the batch (B, C, H, W) and a torch.Generator")
    if input_shape is None and dataset is None:   # a run records the shape it was trained on
        if recorded is None:
            raise ConfigError("visualize: give input_shape=(C, H, W) or a dataset to take it from")
        input_shape = tuple(recorded)
    shape = check_input_shape(input_shape if input_shape is not None else dataset.shape)   # sides <= MAX_SIDE
    c_in, h, w = shape
    norm = check_norm(norm, channels=c_in)
    with eval_mode(model):
        chans = _channels(model, layer, channels, shape, device,
                          "input_shape" if input_shape is not None else "dataset")
        obj = objective or _default_objective(layer, chans, measure)
        for weight, reg in ((l2, O.l2()), (tv, O.total_variation()), (blur, O.blur())):
            if weight:
                obj = obj + weight * reg            # reg is minus a penalty
        if isinstance(transforms, str):
            if transforms != "standard":
                raise ConfigError(f"transforms: {transforms!r}; give 'standard', None or a list of transforms")
            transforms = T.standard((h, w))
        transforms = list(transforms or [])
        g = torch.Generator().manual_seed(seed)
        p = make_param(param, (len(chans), c_in, h, w), g)
        opt = torch.optim.Adam(p.params, lr=lr or p.lr)
        layers = [n for n in obj.layers if n not in (O.OUTPUT, O.IMAGE)]
        history = []
        with tap(model, layers, stop=not obj.needs_output) as acts:
            for _ in track(range(steps), f"visualize {layer or 'logits'}: {len(chans)} units optimized together"):
                img = p()                                                   # (N, C, H, W) on [0, 1]
                x = T.apply(transforms, img, g, (h, w)).to(device)
                out = run(model, norm.normalize(x), acts)
                a = {**acts, O.IMAGE: img}
                if out is not None:
                    a[O.OUTPUT] = out
                val = obj(a)                                                # (N,)
                grads = torch.autograd.grad(-val.sum(), p.params)           # model parameters get no .grad
                if not torch.isfinite(val).all() or not all(torch.isfinite(gr).all() for gr in grads):
                    # a NaN/inf objective would silently give NaN results (e.g. huge regularizer weights)
                    seen = [out] if out is not None else []
                    seen += [acts[n] for n in layers if isinstance(acts.get(n), torch.Tensor)]
                    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in seen):
                        what = "scores" if out is not None else "activations"
                        raise ConfigError(
                            f"visualize: the model gives NaN or infinite {what} at step {len(history) + 1}, "
                            "before any regularizer; check its weights (a diverged run?) and its input "
                            "normalization")
                    raise ConfigError(
                        f"visualize: the objective became non-finite at step {len(history) + 1} "
                        f"(l2={l2:g}, tv={tv:g}, blur={blur:g}, lr={lr or p.lr:g}); lower the regularizer weights "
                        "(--l2/--tv/--blur; the penalties are on the 0..1 pixel scale, weights around 0.01-10) "
                        "or the learning rate")
                for t, gr in zip(p.params, grads):
                    t.grad = gr
                opt.step()
                history.append(val.detach().cpu().double().numpy())
        with torch.no_grad():
            images = (p() * 255).round().clamp(0, 255).to(torch.uint8)       # (N, C, H, W)
            inputs = norm.apply(images.to(device))
            values = _reached(model, layer, chans, measure, inputs)
            reached = {m: values if m == measure else _reached(model, layer, chans, m, inputs) for m in MEASURES}
    nat = natural_best(model, dataset, layer, chans, measure, norm) if dataset is not None else (None, None)
    comparisons = {}
    if dataset is not None and layer is not None:       # logits have no map: one measure only
        for m in MEASURES:
            nv, ni = nat if m == measure else natural_best(model, dataset, layer, chans, m, norm)
            comparisons[m] = _comparison(reached[m], nv, ni, chans)
    settings = {"seed": seed, "steps": steps, "param": param, "lr": lr or p.lr,
                "transforms": [repr(t) for t in transforms], "l2": l2, "tv": tv, "blur": blur}
    return Visualization(layer, chans, measure, repr(obj), images.cpu().numpy(), inputs, values,
                         np.stack(history) if history else np.zeros((0, len(chans))), nat[0], nat[1], settings,
                         comparisons, len(dataset) if dataset is not None else None)


def _comparison(values: list[float], natural: list[float], indices: list[int], chans: list[int]) -> dict:
    """One measure's optimized-vs-best-natural comparison (see :attr:`Visualization.comparisons`)."""
    v, n = np.array(values), np.array(natural)
    pos = n > 0
    return {"values": values, "natural_values": natural, "natural_indices": indices,
            "beats": int((v > n).sum()), "units": len(v),
            "natural_nonpositive": [c for c, ok in zip(chans, pos) if not ok],
            "median_ratio": float(np.median(v[pos] / n[pos])) if pos.any() else None,
            "distinct_natural_images": len(set(indices))}


def _channels(model: nn.Module, layer: str | None, channels, shape, device, shape_arg: str = "input_shape"
              ) -> list[int]:
    """Resolve ``channels`` against the layer's channel count (one probe forward)."""
    if isinstance(channels, (np.ndarray, torch.Tensor)):
        channels = channels.tolist()                     # an array of indices, as a list (or one index)
    if channels is not None and (isinstance(channels, (str, bytes, bool)) or not (
            isinstance(channels, Integral) or (isinstance(channels, Sequence)
                                               and all(is_int(c) for c in channels)))):
        raise ConfigError(f"channels: expected an index, a list of indices or None (all), got {channels!r}"
                          + ("; parse text such as '0-3' with parse_channels" if isinstance(channels, str) else ""))
    n = layer_channels(model, layer, shape, device, shape_arg)
    if channels is None:
        return list(range(n))
    chans = [int(channels)] if isinstance(channels, Integral) else [int(c) for c in channels]
    if not chans:
        raise ConfigError("channels: empty; give at least one channel index, or None for all")
    bad = [c for c in chans if not 0 <= c < n]
    if bad or not chans:
        raise ConfigError(f"channels {bad or chans}: {layer or 'the output'} has {n} channels (0..{n - 1})")
    return chans


def _reached(model: nn.Module, layer: str | None, chans: list[int], measure: str, inputs: torch.Tensor
             ) -> list[float]:
    """Image i's value of channel chans[i], without transforms."""
    with tap(model, [layer] if layer else [], stop=layer is not None) as acts:
        out = run(model, inputs, acts)
    v = unit_values(acts[layer] if layer else out, chans, measure)            # (N, N)
    return v.diagonal().double().cpu().tolist()
