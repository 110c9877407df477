"""Activation maximization: the image each unit "wants to see" (Erhan et al. 2009; Olah et al. 2017).

Gradient ascent on a parameterized image (``param.py``), through random robustness transforms
(``vis_transforms.py``), on a composable objective (``objectives.py``); all channels are optimized at once,
one per image of the batch. Seeded through a private ``torch.Generator``: the same seed gives the same
images bit for bit on CPU. Each unit's reached value is reported beside the best natural image's value by
the same measure, so one sees whether the picture is more than the data already shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from . import objectives as O
from . import vis_transforms as T
from ..models.probe import eval_mode
from ._tap import run, tap
from .hooks import capture, resolve_layers
from .param import make_param

MEASURES = ("mean", "max", "neuron")


@dataclass
class Visualization:
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

    def beats_natural(self) -> float | None:
        """Fraction of units whose image reaches a higher value than the best dataset image."""
        if self.natural_values is None:
            return None
        return float(np.mean([v > n for v, n in zip(self.values, self.natural_values)]))

    def to_dict(self) -> dict:
        return {"layer": self.layer, "channels": self.channels, "measure": self.measure,
                "objective": self.objective, "values": self.values, "natural_values": self.natural_values,
                "natural_indices": self.natural_indices, "beats_natural": self.beats_natural(),
                "objective_start": self.history[0].tolist(), "objective_end": self.history[-1].tolist(),
                "settings": self.settings}


def parse_channels(text: str) -> list[int]:
    """``"0-15"``, ``"3"``, ``"0,4,9-11"`` -> a list of channel indices."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(v) for v in part.split("-"))
                out += list(range(a, b + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise ConfigError(f"--channels {text!r}: expected indices and ranges such as 0-15 or 0,4,9-11") from None
    return out


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
    device = next(model.parameters()).device
    best = torch.full((len(channels),), -torch.inf, dtype=torch.float64)
    where = torch.zeros(len(channels), dtype=torch.long)
    seen: dict[str, torch.Tensor] = {}
    with eval_mode(model), torch.no_grad(), capture(model, [layer] if layer else [],
                                                    lambda n, t: seen.__setitem__(n, t)):
        for i in range(0, len(dataset), batch_size):
            out = model(norm.apply(dataset.images[i:i + batch_size].to(device)))
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


def visualize(model: nn.Module, layer: str | None, channels: int | Sequence[int] | None = None,
              dataset: ImageDataset | None = None, seed: int = 0, *, neuron: bool = False, measure: str = "mean",
              objective: O.Objective | None = None, norm: Normalization | None = None,
              input_shape: tuple[int, int, int] | None = None, steps: int = 256, param: str = "fourier",
              lr: float | None = None, transforms: Sequence[T.Transform] | str | None = "standard",
              l2: float = 0.0, tv: float = 0.0, blur: float = 0.0) -> Visualization:
    """One image per channel of ``layer`` (None: the class logits) that maximizes its activation.

    ``channels``: an index, a list, or None for every channel. ``measure``: ``mean`` over the channel's map
    (default), ``max``, or ``neuron`` (the centre unit; also ``neuron=True``). ``objective`` replaces the
    default (the measure of each image's own channel) for the optimization; ``l2``, ``tv`` and ``blur`` add
    those regularizers with these weights. ``transforms``: ``"standard"``, None, or a list. With a
    ``dataset``, ``natural_values`` holds the best dataset image's value by the same measure.
    ``norm`` maps [0, 1] images to model input (default: identity); ``input_shape`` defaults to the dataset's."""
    measure = "neuron" if neuron else measure
    if measure not in MEASURES:
        raise ConfigError(f"measure: {measure!r} is not one of {', '.join(MEASURES)}")
    if layer is not None:
        layer = resolve_layers(model, [layer])[0]
    shape = tuple(input_shape or (dataset.shape if dataset is not None else ()))
    if len(shape) != 3:
        raise ConfigError("visualize: give input_shape=(C, H, W) or a dataset to take it from")
    c_in, h, w = shape
    norm = norm or Normalization((0.0,) * c_in, (1.0,) * c_in)
    device = next(model.parameters()).device
    with eval_mode(model):
        chans = _channels(model, layer, channels, shape, device)
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
            for _ in range(steps):
                img = p()                                                   # (N, C, H, W) on [0, 1]
                x = T.apply(transforms, img, g, (h, w)).to(device)
                out = run(model, norm.normalize(x), acts)
                a = {**acts, O.IMAGE: img}
                if out is not None:
                    a[O.OUTPUT] = out
                val = obj(a)                                                # (N,)
                grads = torch.autograd.grad(-val.sum(), p.params)           # model parameters get no .grad
                for t, gr in zip(p.params, grads):
                    t.grad = gr
                opt.step()
                history.append(val.detach().cpu().double().numpy())
        with torch.no_grad():
            images = (p() * 255).round().clamp(0, 255).to(torch.uint8)       # (N, C, H, W)
            inputs = norm.apply(images.to(device))
            values = _reached(model, layer, chans, measure, inputs)
    nat = natural_best(model, dataset, layer, chans, measure, norm) if dataset is not None else (None, None)
    settings = {"seed": seed, "steps": steps, "param": param, "lr": lr or p.lr,
                "transforms": [repr(t) for t in transforms], "l2": l2, "tv": tv, "blur": blur}
    return Visualization(layer, chans, measure, repr(obj), images.cpu().numpy(), inputs, values,
                         np.stack(history) if history else np.zeros((0, len(chans))), nat[0], nat[1], settings)


def _channels(model: nn.Module, layer: str | None, channels, shape, device) -> list[int]:
    """Resolve ``channels`` against the layer's channel count (one probe forward)."""
    with torch.no_grad(), tap(model, [layer] if layer else [], stop=layer is not None) as acts:
        out = run(model, torch.zeros(1, *shape, device=device), acts)
    n = (acts[layer] if layer else out).shape[1]
    if channels is None:
        return list(range(n))
    chans = [channels] if isinstance(channels, int) else [int(c) for c in channels]
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
