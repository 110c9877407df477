"""Projections of single activations back to pixels: the deconvnet (Zeiler and Fergus 2014) and guided
backpropagation (Springenberg et al. 2015), as in Zeiler and Fergus's figure 2.

Both are the gradient of one activation with respect to the input, with a different rule at each ReLU:
    gradient          grad_in = grad_out * [x > 0]
    deconvnet         grad_in = relu(grad_out)                (ignores the forward pass)
    guided backprop   grad_in = relu(grad_out) * [x > 0]
Max-pooling routes the signal to the position that won in the forward pass (the "switches") and a conv
passes it through its transposed filters: that is what autograd already does, so only the ReLUs change.

The ReLUs are swapped inside a ``TorchFunctionMode`` scoped to one forward, not by module hooks: so ReLU
modules, in-place ReLUs, ``F.relu``/``torch.relu`` calls in ``forward`` and a ReLU module used twice are all
handled, and nothing stays on the model. Any other nonlinearity below the layer is an error naming the module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._check import integer, is_int
from .._progress import track
from ..configs import PROJECT_K_MAX
from ..data.dataset import ImageDataset
from ..data.normalize import Normalization
from ..errors import ConfigError
from ..models.hooks import observe
from ..models.probe import eval_mode
from ._args import check_dataset, check_model, check_norm, model_and_norm
from ._tap import run, tap
from .topk import TopRecord, topk
from .visualize import layer_channels, resolve_layer


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        return g.clamp_min(0)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x > 0)              # the mask, not x: an in-place op on x later is harmless
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (mask,) = ctx.saved_tensors
        return g.clamp_min(0) * mask


RULES = {"deconvnet": _DeconvReLU, "guided": _GuidedReLU}
_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_RELU_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}
_OTHER = {"sigmoid", "sigmoid_", "tanh", "tanh_", "gelu", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu",
          "celu", "silu", "mish", "softplus", "hardtanh", "hardtanh_", "relu6", "hardswish", "hardsigmoid", "prelu",
          "rrelu", "glu", "logsigmoid", "softsign", "threshold", "threshold_", "clamp", "clamp_", "clip"}


class _ReluRule(TorchFunctionMode):
    def __init__(self, rule: type[torch.autograd.Function], stack: list[str]) -> None:
        super().__init__()
        self.rule, self.stack = rule, stack

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            x = args[0]
            y = self.rule.apply(x)                                          # a new tensor with the rule
            if func in _RELU_INPLACE or kwargs.get("inplace") or (len(args) > 1 and args[1] is True):
                x.copy_(y)                                                  # keep in-place semantics for
                return x                                                    # code that reuses x
            return y
        if getattr(func, "__name__", "") in _OTHER:
            where = self.stack[-1] if self.stack else "the model's forward"
            module = f"module {where!r}" if self.stack else where
            raise ConfigError(f"{module} applies {func.__name__}: deconvnet and guided backpropagation define a "
                              "backward rule for ReLU only; project from a layer below it, or use attribute() "
                              "(saliency, integrated gradients, Grad-CAM) for this model")
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """Within the block, every ReLU in ``model``'s forward uses ``rule`` (``deconvnet`` or ``guided``) in its
    backward pass. Module names are tracked by scoped hooks only to name a module in errors."""
    if rule not in RULES:
        raise ConfigError(f"rule: {rule!r}; choose from {', '.join(RULES)}")
    stack: list[str] = []

    def pop(mod, inputs, output) -> None:
        if stack:
            stack.pop()

    named = [(n, m) for n, m in model.named_modules() if n]
    with observe(forward=[(m, pop) for _, m in named],
                 pre=[(m, lambda mod, i, n=n: stack.append(n)) for n, m in named]), _ReluRule(RULES[rule], stack):
        yield


def project(model: nn.Module, inputs: torch.Tensor, layer: str, units: Sequence[tuple[int, int, int]],
            rule: str = "guided") -> torch.Tensor:
    """Image i's projection of its single activation ``units[i] = (channel, y, x)`` at ``layer``: the other
    activations of the layer are set to zero and this one keeps its value (Zeiler and Fergus). Returns
    (N, C, H, W) float in input space. ``y, x`` are ignored for fully connected layers.

    The signal starts as 1 and the result is scaled by the activation's value: the same as starting from the
    value when it is positive (the ReLU rules are positively homogeneous), and Captum's convention (a unit
    gradient) times the value when it is negative."""
    check_model(model)
    layer = resolve_layer(model, layer)
    if rule not in RULES:
        raise ConfigError(f"rule: {rule!r}; choose from {', '.join(RULES)}")
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.ndim != 4 \
            or len(inputs) == 0:
        what = (f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor)
                else type(inputs).__name__)
        raise ConfigError(f"inputs: expected a float tensor (N, C, H, W) with N >= 1, model-ready (normalized, e.g. "
                          f"run.preprocess(uint8 images)), got {what}")
    if not torch.isfinite(inputs).all():
        raise ConfigError("inputs: hold NaN or infinite values; projections of them are meaningless")
    if isinstance(units, (np.ndarray, torch.Tensor)):
        units = units.tolist()                                             # (N, 3) array of indices
    if not isinstance(units, Sequence) or isinstance(units, str) or not all(
            isinstance(u, Sequence) and len(u) == 3 and all(is_int(v)
                                                            for v in u) for u in units):
        raise ConfigError(f"units: expected one (channel, y, x) tuple of integers per image, got {units!r}")
    if len(units) != len(inputs):
        raise ConfigError(f"project: {len(units)} units for {len(inputs)} images (give one per image)")
    x = inputs.detach().clone().requires_grad_()
    with eval_mode(model), tap(model, [layer], stop=True) as acts, relu_rule(model, rule):
        run(model, x, acts)
    a = acts[layer]                                                        # (N, C', h, w) or (N, C')
    for c, yy, xx in units:     # negative indices would silently wrap to the other end of the map
        if not 0 <= c < a.shape[1] or (a.ndim == 4 and not (0 <= yy < a.shape[2] and 0 <= xx < a.shape[3])):
            where = f"channels 0..{a.shape[1] - 1}" + (f", y 0..{a.shape[2] - 1}, x 0..{a.shape[3] - 1}"
                                                      if a.ndim == 4 else "")
            raise ConfigError(f"units: ({c}, {yy}, {xx}) is outside layer {layer!r}'s output of shape "
                              f"{tuple(a.shape[1:])} ({where})")
    seed = torch.zeros_like(a)
    value = torch.zeros(len(units), dtype=a.dtype, device=a.device)
    for i, (c, yy, xx) in enumerate(units):
        at = (i, c) if a.ndim == 2 else (i, c, yy, xx)
        seed[at] = 1.0
        value[i] = a[at].detach()
    (grad,) = torch.autograd.grad(a, x, seed)
    return grad.detach() * value.view(-1, *([1] * (grad.ndim - 1)))


@dataclass
class Projections:
    layer: str
    channels: list[int]
    records: list[list[TopRecord]]    # per channel, its top-k dataset activations
    deconvnet: np.ndarray             # (channels, k, C, H, W) float
    guided: np.ndarray                # (channels, k, C, H, W) float
    boxes: list[list[tuple[int, int, int, int]]]  # per record: (top, left, bottom, right) inclusive, unclipped

    def to_dict(self) -> dict:
        return {"layer": self.layer, "channels": self.channels,
                "records": [[r.__dict__ for r in recs] for recs in self.records], "boxes": self.boxes}


def projections(model: nn.Module, dataset: ImageDataset, layer: str, channels: Sequence[int] | None = None,
                k: int = 9, norm: Normalization | None = None) -> Projections:
    """For each channel's top-k activations over the dataset (``topk``): the deconvnet projection and the
    guided-backprop image of that single activation, and the receptive-field box of the unit. ``model``: a run
    (its normalization is used) or an nn.Module with ``norm`` given."""
    from .receptive_field import receptive_fields

    model, norm = model_and_norm(model, norm)
    device = check_model(model)
    dataset = check_dataset(dataset)
    norm = check_norm(norm, dataset)
    layer = resolve_layer(model, layer)
    k = integer(k, "k", 1, PROJECT_K_MAX, fix="two backward passes per image and unit, every one drawn")
    if isinstance(channels, (np.ndarray, torch.Tensor)):
        channels = channels.tolist()
    if channels is not None:
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or not all(
                is_int(c) for c in channels):
            raise ConfigError(f"channels: expected a list of channel indices or None (all), got {channels!r}")
        if not channels:
            raise ConfigError("channels: empty; give at least one channel index, or None for all")
    n = layer_channels(model, layer, dataset.shape, device, "dataset")    # checked before the pass over the data
    chans = list(range(n)) if channels is None else [int(c) for c in channels]
    bad = [c for c in chans if not 0 <= c < n]
    if bad:
        raise ConfigError(f"channels {bad[:5]}: layer {layer!r} has {n} channels (0..{n - 1})")
    recs_all = topk(model, dataset, [layer], k, norm)[layer]
    try:
        field = receptive_fields(model, dataset.shape)[layer]
    except (ConfigError, KeyError):
        field = None
    h, w = dataset.shape[1:]
    dec, gui, boxes, records = [], [], [], []
    for c in track(chans, f"project {layer}: top {k} images of {len(chans)} units", unit="unit"):
        recs = recs_all[c]
        x = norm.apply(dataset.images[[r.index for r in recs]].to(device))
        units = [(c, r.y, r.x) for r in recs]
        dec.append(project(model, x, layer, units, "deconvnet").cpu().numpy())
        gui.append(project(model, x, layer, units, "guided").cpu().numpy())
        boxes.append([(0, 0, h - 1, w - 1) if field is None or field.is_global else field.box(r.y, r.x)
                      for r in recs])
        records.append(recs)
    return Projections(layer, chans, records, np.stack(dec), np.stack(gui), boxes)
