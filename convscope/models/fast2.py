"""``fast2``: the ``fast`` network rearranged for a CPU's memory bandwidth (speed round 2, issue 15).

Same three conv blocks (w, 2w, 4w) and flatten head as ``fast``, but each block pools *before* its batch
norm and ReLU (conv -> max-pool -> BN -> ReLU, the order airbench uses). Batch norm, ReLU and their backward
passes then touch a quarter of the elements: on a 2-core CPU those memory-bound layers were as costly as the
convolutions (bench/profile_fast.py). Optional: a fixed patch-whitening first layer (``whiten``), computed
from the first training batch it sees, as airbench does on CIFAR-10.

Evidence (bench/profile_fast.py, bench/recipe_ablation2.py; 2-core AMD EPYC, torch 2.13 CPU): see
docs/speed.md.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import register_model


class PatchWhitening(nn.Module):
    """A fixed k x k convolution whose filters are the ZCA-style eigenvectors of the input's patch covariance,
    each scaled by 1 / sqrt(eigenvalue + eps), and their negatives: (N, C, H, W) -> (N, 2 C k^2, H, W).

    The filters are buffers (never trained), set from the first batch seen in training mode; an untouched
    layer (``ready == 0``) in eval mode raises rather than silently passing random filters."""

    def __init__(self, in_channels: int, k: int = 3, eps: float = 5e-4) -> None:
        super().__init__()
        self.k, self.eps = k, eps
        d = in_channels * k * k
        self.out_channels = 2 * d
        self.register_buffer("weight", torch.zeros(2 * d, in_channels, k, k))
        self.register_buffer("ready", torch.zeros((), dtype=torch.uint8))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from a batch x (B, C, H, W): eigen-decomposition of the (d, d) patch covariance."""
        c, k = x.shape[1], self.k
        patches = F.unfold(x.float(), k).transpose(1, 2).reshape(-1, c * k * k).double()  # (B*L, d)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)                                          # (d, d)
        evals, evecs = torch.linalg.eigh(cov)
        w = (evecs / (evals.clamp_min(0) + self.eps).sqrt()).T.reshape(-1, c, k, k)        # (d, C, k, k)
        self.weight.copy_(torch.cat([w, -w]).to(self.weight.dtype))
        self.ready.fill_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.ready):
            if not self.training:
                raise RuntimeError("PatchWhitening: filters not fitted; train first or load fitted weights")
            self.fit(x)
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.k // 2)


def _conv(c_in: int, c_out: int, k: int) -> tuple[str, nn.Module]:
    return f"conv{k}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)


def _bn_relu(c: int, k: int) -> list[tuple[str, nn.Module]]:
    return [(f"bn{k}", nn.BatchNorm2d(c)), (f"relu{k}", nn.ReLU(inplace=True))]


def _block(c_in: int, c_out: int, k: int, i: int, pool: str, extra: bool) -> list[tuple[str, nn.Module]]:
    """Block i (convs numbered from k): conv, pool, BN, ReLU [, conv, BN, ReLU at the pooled resolution]."""
    mp = (f"pool{i}", nn.MaxPool2d(2))
    layers = [_conv(c_in, c_out, k), mp, *_bn_relu(c_out, k)] if pool == "before" else \
        [_conv(c_in, c_out, k), *_bn_relu(c_out, k), mp]
    if extra:  # after the pool: a quarter of the cost of a conv before it
        layers += [_conv(c_out, c_out, k + 1), *_bn_relu(c_out, k + 1)]
    return layers


@register_model("fast2", "speed round 2: 3 conv blocks that max-pool before BN-ReLU, a conv after pool3, flatten, "
                         "linear")
def fast2(in_channels: int, image_size: tuple[int, int], num_classes: int, width: int = 32, pool: str = "before",
          whiten: int = 0, widths: tuple[int, int, int] | list[int] | None = None, extra: int = 1) -> nn.Module:
    """(N, C, 28, 28) -> (N, 4w, 3, 3) -> (N, classes); widths (w, 2w, 4w) unless ``widths`` is given.

    ``pool``: ``before`` (conv -> pool -> BN -> ReLU) or ``after`` (conv -> BN -> ReLU -> pool, as ``fast``);
    ``whiten``: 0 (off) or the patch size k of a fixed whitening layer ``whiten`` in front of conv1;
    ``extra``: the last ``extra`` blocks (0 to 3) get a second conv-BN-ReLU after their pool (airbench's block);
    the default 1 (a conv on the 3 x 3 maps after pool3) reached 99% on the digits in every seed measured."""
    from ..errors import ConfigError

    if pool not in ("before", "after"):
        raise ConfigError(f"fast2: pool must be 'before' or 'after', got {pool!r}")
    if whiten not in (0, 3):
        raise ConfigError(f"fast2: whiten must be 0 (off) or 3 (patch size), got {whiten}")
    if not 0 <= extra <= 3:
        raise ConfigError(f"fast2: extra must lie in 0..3, got {extra}")
    if widths is None:   # the error names the argument the user gave: width, or widths
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"fast2: width must be a positive whole number of channels, got {width!r}")
        ws = (width, 2 * width, 4 * width)
    else:
        ws = tuple(widths) if isinstance(widths, (list, tuple)) else ()
        if len(ws) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in ws):
            raise ConfigError(f"fast2: widths must be 3 positive channel counts, e.g. [32, 64, 128], got {widths!r}")
    layers: list[tuple[str, nn.Module]] = []
    c_in = in_channels
    if whiten:
        wl = PatchWhitening(in_channels, whiten)
        layers.append(("whiten", wl))
        c_in = wl.out_channels
    h, wd = image_size
    k = 1
    for i, c_out in enumerate(ws):
        more = i >= 3 - extra
        layers += _block(c_in, c_out, k, i + 1, pool, more)
        c_in, h, wd, k = c_out, h // 2, wd // 2, k + 1 + more
    layers += [("flatten", nn.Flatten()), ("fc", nn.Linear(c_in * h * wd, num_classes))]
    return nn.Sequential(OrderedDict(layers))
