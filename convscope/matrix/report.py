"""One conv layer described as a matrix: shape, non-zeros, block structure, symbolic entries, spectrum.

This is what ``convscope matrix`` prints and writes as JSON; the command itself only parses and prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._result import Display, ResultMixin, RichDisplay, Table
from ..conv.conv_matrix import conv_matrix
from ..conv.geometry import ConvGeometry, make_geometry
from ..errors import ConfigError
from ..models.conv_layers import conv_layers
from ..models.layers import resolve_layers
from ..models.probe import layer_input_shapes
from .display import block_structure, format_symbolic, heatmap_figure, symbolic_entries, tap_names
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


SMALL = 64   # a matrix with at most this many columns (and 64 x 64 cells) shows as a table of named weights


@dataclass(repr=False)
class MatrixResult(RichDisplay):
    """The layer's matrix and its description. Displays as a table of named weights (w11 ... w33, with their
    values) when small, as a heatmap when large."""

    report: MatrixReport
    matrix: sp.csr_matrix
    geometry: ConvGeometry
    symbolic_text: str | None   # the printed matrix (w11 ... w33), None when too large or not symbolic
    weight: np.ndarray | None = None   # (out, in/groups, kh, kw) the values the names stand for

    def _small(self) -> bool:
        rows, cols = self.report.shape
        return cols <= SMALL and rows * cols <= SMALL * SMALL

    def _display(self) -> Display:
        r = self.report
        lines = [f"input {r.input_shape} -> output {r.output_shape}; stride {r.stride}, dilation {r.dilation}, "
                 f"padding {r.padding} ({r.padding_order}, {r.padding_mode}), groups {r.groups}",
                 f"{r.nonzeros:,} non-zeros ({100 * r.density:.2f}% dense)", r.structure]
        sv = r.spectrum
        if sv is not None and sv.exact and sv.largest is not None:
            lines.append(f"singular values ({sv.method}): largest {sv.largest:.4g}, smallest {sv.smallest:.4g}")
        elif sv is not None and sv.lower is not None:
            lines.append(f"largest singular value in [{sv.lower:.4g}, {sv.upper:.4g}] ({sv.method})")
        tables = []
        if self._small():
            names = tap_names(self.geometry)
            entries = symbolic_entries(self.geometry)
            rows, cols = r.shape
            tables.append(Table(["row"] + [str(c) for c in range(cols)],
                                [[str(i)] + [entries.get((i, c), "0") for c in range(cols)] for i in range(rows)],
                                "the matrix, entries named by the kernel weight they hold (row: output, column: "
                                "input, C-H-W order)"))
            if self.weight is not None:
                tables.append(Table(["weight", "value"], [[n, f"{v:.4g}"] for n, v in
                                                          zip(names, np.asarray(self.weight).ravel())],
                                    "the kernel weights"))
        return Display(f"conv matrix of {r.layer}: {r.shape[0]:,} x {r.shape[1]:,}", lines, tables)

    def _pictures(self) -> list[tuple[str, bytes]]:
        if self._small():
            return []
        from ..viz import figure_png

        return [("entries of the matrix", figure_png(heatmap_figure(self.matrix, f"{self.report.layer} as a matrix")))]


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
    return MatrixResult(report, m, geom, text, np.asarray(w))
