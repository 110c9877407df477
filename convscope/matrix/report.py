"""One conv layer described as a matrix: shape, non-zeros, block structure, symbolic entries, spectrum.

This is what ``convscope matrix`` prints and writes as JSON; the command itself only parses and prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._result import ResultMixin
from ..conv.conv_matrix import conv_matrix
from ..conv.geometry import ConvGeometry, make_geometry
from ..errors import ConfigError
from ..models.conv_layers import conv_layers
from ..models.layers import resolve_layers
from ..models.probe import layer_input_shapes
from .display import block_structure, format_symbolic, symbolic_entries
from .spectrum import SpectrumSummary, layer_spectrum


@dataclass
class MatrixReport(ResultMixin):
    layer: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    shape: tuple[int, int]                 # (outputs, inputs) = rows, columns
    nonzeros: int
    density: float
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    padding_order: str
    groups: int
    padding_mode: str
    structure: str                         # the block Toeplitz structure, in words
    entries: dict[str, str] | None = None  # symbolic: "row,col" -> "w11" (weights named, not valued)
    spectrum: SpectrumSummary | None = None
    png: str | None = None


@dataclass
class MatrixResult:
    report: MatrixReport
    matrix: sp.csr_matrix
    geometry: ConvGeometry
    symbolic_text: str | None   # the printed matrix (w11 ... w33), None when too large or not symbolic


def conv_layer_in_model(model: nn.Module, layer: str, input_shape: tuple[int, int, int]
                        ) -> tuple[nn.Conv2d, tuple[int, ...]]:
    """The conv layer ``layer`` of ``model`` and the shape of its input for a model input of ``input_shape``."""
    convs = conv_layers(model)
    conv_list = ", ".join(convs) or "none"
    if not isinstance(layer, str) or not layer.strip():
        raise ConfigError(f"--layer {layer!r}: give a conv layer name; conv layers: {conv_list}")
    try:   # names or a type, with the renaming hint for numeric names (one resolution rule for every command)
        names = resolve_layers(model, [layer.strip()])
    except ConfigError as e:
        raise ConfigError(f"--layer {layer!r}: {e}; conv layers: {conv_list}") from None
    if len(names) != 1:
        raise ConfigError(f"--layer {layer!r}: names {len(names)} layers ({', '.join(names)}); give one conv layer "
                          f"by name; conv layers: {conv_list}")
    name = names[0]
    if name not in convs:
        raise ConfigError(f"--layer {layer!r}: {name!r} is a {type(dict(model.named_modules())[name]).__name__}, not "
                          f"a conv layer; conv layers: {conv_list}")
    return convs[name], layer_input_shapes(model, input_shape, [name])[name]


def describe_conv(weight: torch.Tensor | np.ndarray, input_shape: tuple[int, int, int], *, stride=1, padding=0,
                  dilation=1, groups: int = 1, padding_mode: str = "zeros", label: str = "conv",
                  symbolic: bool = False, spectrum: bool = False, max_memory: int | None = None) -> MatrixResult:
    """Build the layer's matrix and describe it. ``symbolic``: name the weights (w11 ...) rather than use their
    values in the printed form; ``spectrum``: add :func:`layer_spectrum`'s summary."""
    if isinstance(weight, (list, tuple)):           # nested lists of numbers, as torch.as_tensor takes them
        try:
            weight = torch.as_tensor(weight)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ConfigError(f"weight: cannot read the list as a (out, in/groups, kh, kw) array ({e})") from None
    if isinstance(weight, torch.Tensor):
        w = weight.detach().cpu().double()
    elif isinstance(weight, np.ndarray) and weight.dtype != np.bool_ and np.issubdtype(weight.dtype, np.number):
        w = weight
    else:
        kind = f"array of dtype {weight.dtype}" if isinstance(weight, np.ndarray) else type(weight).__name__
        raise ConfigError(f"weight: expected a torch tensor or numpy array of numbers, shape (out, in/groups, kh, kw), "
                          f"got {kind}")
    if not np.isfinite(np.asarray(w)).all():      # NaN/inf: the matrix and its spectrum would be meaningless
        raise ConfigError("weight: contains NaN or infinite values; give finite weights")
    geom = make_geometry(tuple(w.shape), input_shape, stride, padding, dilation, groups, padding_mode)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    m = conv_matrix(w, input_shape, **conv, **({} if max_memory is None else {"max_memory": max_memory}))
    rows, cols = m.shape
    report = MatrixReport(label, geom.input_shape, geom.output_shape, (rows, cols), int(m.nnz), m.nnz / (rows * cols),
                          geom.stride, geom.dilation, geom.pad, "top, bottom, left, right", geom.groups,
                          geom.padding_mode, block_structure(geom))
    text = None
    if symbolic:
        text = format_symbolic(geom)
        if text is not None:
            report.entries = {f"{r},{c}": v for (r, c), v in sorted(symbolic_entries(geom).items())}
    if spectrum:
        report.spectrum = layer_spectrum(w, input_shape, **conv)
    return MatrixResult(report, m, geom, text)
