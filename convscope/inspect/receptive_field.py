"""Receptive fields: exact size, jump (effective stride) and start of every layer's units (Araujo, Norris
and Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019), and the empirical
field found by gradients, to check the arithmetic.

For a chain of layers with kernel k, stride s, padding p, dilation d (effective kernel d (k - 1) + 1):
    size_l  = size_{l-1} + (d_l (k_l - 1)) * jump_{l-1}
    jump_l  = jump_{l-1} * s_l
    start_l = start_{l-1} - p_l * jump_{l-1}
Unit (y, x) of layer l sees input rows start + y * jump ... start + y * jump + size - 1 (and columns alike);
``start`` may be negative: that part of the field lies on the padding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .._result import Display, ResultMixin, RichDisplay, Table
from ..conv.geometry import pair
from ..errors import ConfigError
from ..models.hooks import observe
from ..models.probe import check_input_shape, eval_mode, zeros_forward
from ._args import check_model

POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.BatchNorm2d,
             nn.Dropout, nn.Dropout2d, nn.Identity, nn.GroupNorm, nn.InstanceNorm2d, nn.Hardswish)
GLOBAL = (nn.Flatten, nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Field(ResultMixin):
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    output_hw: tuple[int, int] | None
    is_global: bool = False

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive, of unit (y, x)'s field in input coordinates (unclipped)."""
        t = self.start[0] + y * self.jump[0]
        l = self.start[1] + x * self.jump[1]
        return t, l, t + self.size[0] - 1, l + self.size[1] - 1


def _geometry(m: nn.Module) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise ConfigError(f"{m}: string padding; give explicit padding")
        return m.kernel_size, m.stride, m.padding, m.dilation
    k = pair(m.kernel_size, "kernel_size")
    s = k if m.stride is None else pair(m.stride, "stride")
    d = pair(getattr(m, "dilation", 1), "dilation")
    return k, s, pair(m.padding, "padding"), d


def _checked(model: nn.Module, input_shape) -> tuple[int, int, int]:
    """``model`` an nn.Module that takes one zero image of ``input_shape``: a ConfigError naming the argument
    otherwise (checked up front, so that no later path meets a bad shape as a raw torch error)."""
    check_model(model)
    shape = check_input_shape(input_shape)
    with eval_mode(model), torch.no_grad():
        zeros_forward(model, shape)
    return shape


def _trace(model: nn.Module, input_shape) -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
    """Leaf modules in execution order with their input and output tensors (for one zero input)."""
    check_model(model)
    calls = []
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    with observe([(m, lambda mod, i, o, n=n: calls.append((n, mod, i[0], o))) for n, m in leaves]), \
            eval_mode(model), torch.no_grad():
        zeros_forward(model, input_shape)
    return calls


def receptive_fields(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, Field]:
    """Per layer name: size, jump and start, each an (h, w) pair, for a feed-forward chain of layers.

    Models whose layers do not form a chain (residual additions, concatenations, functional ops between
    modules) are refused: use :func:`empirical_receptive_field` for them.
    """
    calls = _trace(model, input_shape)
    size, jump, start = (1, 1), (1, 1), (0, 0)
    prev_out: torch.Tensor | None = None
    out: dict[str, Field] = {}
    done = False
    for name, m, inp, o in calls:
        if prev_out is not None and not (inp.data_ptr() == prev_out.data_ptr() and inp.shape == prev_out.shape):
            raise ConfigError(f"layer {name!r}: its input is not the previous layer's output (a residual or "
                              "functional step in between); the chain formula does not apply. Use "
                              "empirical_receptive_field(model, layer, input_shape)")
        prev_out = o
        if done or isinstance(m, GLOBAL):
            done = True
            out[name] = Field(tuple(input_shape[1:]), (0, 0), (0, 0), None, is_global=True)
            continue
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p, d = _geometry(m)
            size = tuple(size[i] + d[i] * (k[i] - 1) * jump[i] for i in range(2))
            start = tuple(start[i] - p[i] * jump[i] for i in range(2))
            jump = tuple(jump[i] * s[i] for i in range(2))
        elif not isinstance(m, POINTWISE):
            raise ConfigError(f"layer {name!r}: {type(m).__name__} has no receptive-field rule "
                              "(conv, pooling and pointwise layers do)")
        out[name] = Field(size, jump, start, tuple(o.shape[-2:]))
    return out


def _probe(model: nn.Module) -> nn.Module:
    """A copy in which every path passes gradient everywhere it can reach: weights 1, biases 0, max pools
    averaged, activations and normalisations identities (float64)."""
    probe = copy.deepcopy(model).double().eval()
    for m in list(probe.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(m, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(m, child_name, nn.AdaptiveAvgPool2d(child.output_size))
            elif isinstance(child, POINTWISE):
                setattr(m, child_name, nn.Identity())
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return probe


def empirical_receptive_field(model: nn.Module, layer: str, input_shape: tuple[int, int, int],
                              unit: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Input box (top, left, bottom, right, inclusive) whose pixels change unit ``unit`` (default: the
    centre) of ``layer`` (summed over channels), found by the gradient of a probe copy of the model."""
    input_shape = _checked(model, input_shape)
    if not isinstance(layer, str):
        raise ConfigError(f"layer: expected a layer name (str), got {layer!r}")
    return _empirical(model, layer, input_shape, unit)


def _empirical(model: nn.Module, layer: str, input_shape: tuple[int, int, int],
               unit: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """empirical_receptive_field for checked arguments."""
    probe = _probe(model)
    modules = dict(probe.named_modules())
    if layer not in modules:
        raise ConfigError(f"unknown layer {layer!r}; valid: {', '.join(n for n in modules if n)}")
    got = {}
    x = torch.ones(1, *input_shape, dtype=torch.float64, requires_grad=True)
    with observe([(modules[layer], lambda m, i, o: got.__setitem__("out", o))]):
        probe(x)
    if "out" not in got:
        raise ConfigError(f"layer {layer!r}: not reached by a forward pass of the model")
    o = got["out"]
    if o.ndim != 4:
        raise ConfigError(f"layer {layer!r}: output is not a feature map (shape {tuple(o.shape)})")
    y, xx = unit if unit is not None else (o.shape[2] // 2, o.shape[3] // 2)
    (g,) = torch.autograd.grad(o[0, :, y, xx].sum(), x)
    nz = torch.nonzero(g[0].abs().sum(0))
    if len(nz) == 0:
        raise ConfigError(f"layer {layer!r}: unit ({y}, {xx}) does not depend on the input")
    return int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()), int(nz[:, 1].max())


SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass(frozen=True)
class FieldRow(ResultMixin):
    """One layer's receptive field, by the chain formula (checked by gradients) or by gradients alone."""

    layer: str
    type: str
    is_global: bool = False                                # sees the whole input (after a flatten / linear)
    size: tuple[int, int] | None = None
    jump: tuple[int, int] | None = None
    start: tuple[int, int] | None = None
    output_hw: tuple[int, int] | None = None
    check: str | None = None                               # chain: does the centre unit's gradient box agree?
    empirical_box: tuple[int, int, int, int] | None = None  # gradient box of the centre unit (top, left, bottom, right)

    @property
    def agrees(self) -> bool | None:
        return None if self.check is None else self.check == "gradient agrees"


@dataclass(frozen=True, repr=False)
class FieldReport(RichDisplay, ResultMixin):
    """Every layer's receptive field; displays as a table (size, jump, start, the gradient check)."""

    method: str              # "chain formula" or "gradient" (models that are not a chain of layers)
    reason: str | None       # why the chain formula did not apply
    rows: list[FieldRow]

    def _display(self) -> Display:
        def hw(v):
            return "" if v is None else "x".join(map(str, v))
        rows = [[r.layer, r.type, "whole input" if r.is_global else hw(r.size), hw(r.jump), hw(r.start),
                 hw(r.output_hw), r.check or "", "" if r.empirical_box is None else str(r.empirical_box)]
                for r in self.rows]
        lines = [f"why not the chain formula: {self.reason}"] if self.reason else []
        return Display(f"Receptive fields ({self.method}) of {len(self.rows)} layers", lines,
                       [Table(["layer", "type", "size", "jump", "start", "output", "check",
                               "gradient box (top, left, bottom, right)"], rows)])


def receptive_field_report(model: nn.Module, input_shape: tuple[int, int, int]) -> FieldReport:
    """Every layer's field. For a chain of layers: the formula, with each conv/pool layer's centre unit checked
    against the gradient (box clipped at the image border). Otherwise: the gradient box of each conv/pool
    layer's centre unit."""
    input_shape = _checked(model, input_shape)
    modules = dict(model.named_modules())
    try:
        fields = receptive_fields(model, input_shape)
    except ConfigError as e:
        rows = [FieldRow(name, type(m).__name__, empirical_box=_empirical(model, name, input_shape))
                for name, m in modules.items() if isinstance(m, SPATIAL)]
        return FieldReport("gradient", str(e).split(";")[0], rows)
    h, w = input_shape[1:]
    rows = []
    for name, f in fields.items():
        kind = type(modules[name]).__name__
        if f.is_global:
            rows.append(FieldRow(name, kind, is_global=True))
            continue
        check, box = None, None
        if isinstance(modules[name], SPATIAL):
            cy, cx = f.output_hw[0] // 2, f.output_hw[1] // 2
            top, left, bottom, right = f.box(cy, cx)
            want = (max(top, 0), max(left, 0), min(bottom, h - 1), min(right, w - 1))
            box = _empirical(model, name, input_shape)
            check = "gradient agrees" if box == want else f"gradient box {box} != {want}"
        rows.append(FieldRow(name, kind, False, f.size, f.jump, f.start, f.output_hw, check, box))
    return FieldReport("chain formula", None, rows)
