"""A conv layer's filters as a result: the kernels of any ``nn.Module``'s conv layer, with their norms, shown as a
table and a picture (first layer: one tile per kernel, RGB as colour; deeper: output x input channels)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .._result import Display, RichDisplay, Table
from ..errors import ConfigError
from ..models.conv_layers import conv_layers
from ..models.layers import resolve_layers
from ._args import check_model, model_and_norm


@dataclass(repr=False)
class Filters(RichDisplay):
    layer: str
    weight: np.ndarray                      # (out, in/groups, kh, kw) float32
    bias: np.ndarray | None = None          # (out,)
    conv: nn.Conv2d | None = field(default=None, repr=False)

    @property
    def norms(self) -> np.ndarray:
        """(out,) L2 norm of each output channel's kernel."""
        return np.sqrt((self.weight.astype(np.float64) ** 2).reshape(len(self.weight), -1).sum(1))

    def _display(self) -> Display:
        o, i, kh, kw = self.weight.shape
        norms = self.norms
        rows = [[str(a), f"{norms[a]:.4g}", f"{float(self.weight[a].min()):.3g}", f"{float(self.weight[a].max()):.3g}"]
                + ([f"{float(self.bias[a]):.3g}"] if self.bias is not None else []) for a in range(o)]
        header = ["out channel", "kernel L2 norm", "min weight", "max weight"] + (["bias"] if self.bias is not None
                                                                                  else [])
        return Display(f"Filters of {self.layer}: {o} x {i} kernels {kh}x{kw}", [], [Table(header, rows)])

    def _pictures(self) -> list[tuple[str, bytes]]:
        from ..viz import figure_png
        from .pictures import kernels_figure

        return [("the kernels (diverging colours: 0 = white, one scale for the layer)",
                 figure_png(kernels_figure(self.conv, f"layer {self.layer}")))]


def filters(model: nn.Module, layer: str) -> Filters:
    """The kernels of the conv layer ``layer`` of ``model`` (a run or any nn.Module)."""
    model, _ = model_and_norm(model, None)
    check_model(model)
    convs = conv_layers(model)
    names = resolve_layers(model, [layer])
    if len(names) != 1 or names[0] not in convs:
        raise ConfigError(f"layer {layer!r}: not one conv layer of the model; conv layers: "
                          f"{', '.join(convs) or 'none'}", arg="layer")
    conv = convs[names[0]]
    w = conv.weight.detach().float().cpu().numpy()
    b = conv.bias.detach().float().cpu().numpy() if conv.bias is not None else None
    return Filters(names[0], w, b, conv)
