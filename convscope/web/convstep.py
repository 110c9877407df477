"""One convolution with the drawing's own numbers: for an output pixel (channel, y, x) of a trained conv layer,
the input patch over every input channel of its group, the kernel, the element-wise products, the sum + bias,
then the layers that follow it pixel by pixel (batch norm, activation, pooling), each checked against the
forward's own output; and the same value as *this layer's* matrix row for that pixel times the unrolled input,
the row taken from :func:`convscope.conv.conv_matrix` (the library's conv-as-matrix, one path for the idea).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..conv import conv_matrix
from ..errors import ConfigError
from .network import SAME_CHANNEL, leaves, network, trace
from .runs import RunEntry

MAX_CHAIN = 6        # layers followed after the conv (BN, ReLU, pool, ...)


def decode_input(b64: Any, input_shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    """The page's prepared input (base64 of uint8 (C, H, W), as the predict answer's ``input``) -> (1, C, H, W)."""
    if not isinstance(b64, str) or not b64:
        raise ConfigError("input: expected the base64 text of the prepared uint8 input (the predict answer's "
                          "'input'); draw a digit first")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("input: not valid base64; pass the predict answer's 'input' unchanged") from None
    need = int(np.prod(input_shape))
    if len(raw) != need:
        raise ConfigError(f"input: {len(raw)} bytes, but this run's input {' x '.join(map(str, input_shape))} needs "
                          f"{need}; pass the predict answer's 'input' of this run")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(1, *input_shape)


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        value = None
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if not lo <= v <= hi:
        raise ConfigError(f"{name}: {v} is outside {lo}..{hi}")
    return v


def _r(v: float) -> float:
    return float(np.float32(float(v)))


def _pool_window(module: nn.Module, y: int, x: int, hw_in: tuple[int, int], hw_out: tuple[int, int]
                 ) -> tuple[int, int, list[tuple[int, int]]]:
    """The pool output pixel whose window holds input pixel (y, x), and that window's input pixels."""
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)
    k, s, p = pair(module.kernel_size), pair(module.stride or module.kernel_size), pair(module.padding)
    d = pair(getattr(module, "dilation", 1))
    oy = min(max((y + p[0]) // s[0], 0), hw_out[0] - 1)
    ox = min(max((x + p[1]) // s[1], 0), hw_out[1] - 1)
    win = [(oy * s[0] - p[0] + i * d[0], ox * s[1] - p[1] + j * d[1]) for i in range(k[0]) for j in range(k[1])]
    return oy, ox, [(a, b) for a, b in win if 0 <= a < hw_in[0] and 0 <= b < hw_in[1]]


def conv_step(entry: RunEntry, x_u8: torch.Tensor, layer: str, ch: Any, y: Any, x: Any) -> dict[str, Any]:
    """Output pixel (``ch``, ``y``, ``x``) of conv ``layer`` for the uint8 input (1, C, H, W), worked out."""
    run = entry.run
    model = run.model
    mods = leaves(model)
    net = {li["name"]: li for li in network(entry)["layers"]}
    convs = [n for n, li in net.items() if li["kind"] == "Conv2d"]
    if layer not in convs:
        raise ConfigError(f"layer {layer!r}: not a conv layer of this run; choose one of {', '.join(convs)}")
    conv: nn.Conv2d = mods[layer]
    c_out, h_out, w_out = net[layer]["shape"]
    ch, y, x = _int(ch, "ch", 0, c_out - 1), _int(y, "y", 0, h_out - 1), _int(x, "x", 0, w_out - 1)
    # the layers that follow pixel by pixel: each fed by the one before, keeping the channels apart
    chain, prev = [], layer
    for li in net.values():
        if len(chain) < MAX_CHAIN and li["feed"] == prev and isinstance(mods[li["name"]], SAME_CHANNEL) \
                and li["link"]["mode"] == "same":
            chain.append(li["name"])
            prev = li["name"]
        elif li["feed"] == prev:
            break
    with entry.model_lock:
        inp = run.preprocess(x_u8)
        _, ins, outs, _ = trace(model, inp, (layer, *chain), (layer, *chain))
    xin = ins[layer].double()                                   # (C_in, H, W): what the conv reads
    c_in, h, w = xin.shape
    wt = conv.weight.detach().double()                          # (C_out, C_in / groups, kh, kw)
    cg = wt.shape[1]
    g0 = (ch // (c_out // conv.groups)) * cg                    # first input channel of this channel's group
    kh, kw = wt.shape[2:]
    (sy, sx), (dy, dx) = conv.stride, conv.dilation
    if isinstance(conv.padding, str):                           # 'same' / 'valid': the module's own numbers
        raise ConfigError(f"layer {layer!r}: padding={conv.padding!r} is not drawn here; the matrix explorer "
                          "needs numeric padding")
    py, px = conv.padding
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    padded = F.pad(xin[g0:g0 + cg][None], (px, px, py, py), mode=mode)[0]   # (cg, H + 2 py, W + 2 px)
    rows = y * sy + dy * np.arange(kh)
    cols = x * sx + dx * np.arange(kw)
    patch = padded[:, rows][:, :, cols]                         # (cg, kh, kw)
    kernel = wt[ch]
    products = patch * kernel
    bias = float(conv.bias.detach()[ch]) if conv.bias is not None else 0.0
    total = float(products.sum())
    value = total + bias
    inside = [[bool(0 <= r - py < h and 0 <= c - px < w) for c in cols] for r in rows]
    # the matrix row: this output channel's block of the layer's matrix (rows y * W_out + x), its columns are
    # the unrolled input channels of the group; in the whole layer's matrix the row is ch * H_out W_out + ...
    block = conv_matrix(conv.weight.detach().double()[ch:ch + 1], (cg, h, w), stride=conv.stride,
                        padding=conv.padding, dilation=conv.dilation, padding_mode=conv.padding_mode)
    r = y * w_out + x
    row = block.getrow(r)
    unrolled = xin[g0:g0 + cg].reshape(-1).numpy()              # (cg * H * W,)
    order = np.argsort(row.indices)
    idx, vals = row.indices[order], row.data[order]
    dot = float(row.dot(unrolled)[0])
    torch_out = float(outs[layer][ch, y, x])
    steps, cy, cx, cur = [], y, x, layer
    for name in chain:
        m, before, after = mods[name], outs[cur][ch], outs[name][ch]
        st: dict[str, Any] = {"name": name, "kind": type(m).__name__}
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            oy, ox, win = _pool_window(m, cy, cx, tuple(before.shape), tuple(after.shape))
            st.update(op="max" if isinstance(m, nn.MaxPool2d) else "mean",
                      window=[[a, b, _r(before[a, b])] for a, b in win], at=[oy, ox])
            cy, cx = oy, ox
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            st.update(mean=_r(m.running_mean[ch]), var=_r(m.running_var[ch]), eps=m.eps,
                      gamma=_r(m.weight.detach()[ch]) if m.weight is not None else 1.0,
                      beta=_r(m.bias.detach()[ch]) if m.bias is not None else 0.0)
        st.update(input=_r(ins[name][ch, cy, cx]) if "window" not in st else None, output=_r(after[cy, cx]),
                  y=cy, x=cx)
        steps.append(st)
        cur = name
    c_all, h_all = c_in * h * w, c_out * h_out * w_out
    return {
        "layer": layer, "channel": ch, "y": y, "x": x, "kind": "Conv2d",
        "geometry": {"input": [c_in, h, w], "output": [c_out, h_out, w_out], "kernel": [kh, kw], "groups": conv.groups,
                     "stride": [sy, sx], "padding": [py, px], "dilation": [dy, dx], "padding_mode": conv.padding_mode},
        "channels": list(range(g0, g0 + cg)),
        "patch": patch.float().tolist(), "kernel": kernel.float().tolist(), "products": products.float().tolist(),
        "inside": inside, "channel_sums": [_r(v) for v in products.sum((1, 2))],
        "sum": total, "bias": bias, "has_bias": conv.bias is not None, "value": value, "torch": torch_out,
        "matrix": {"shape": [h_all, c_all], "block_shape": list(block.shape), "row": ch * h_out * w_out + r,
                   "block_row": r, "column_offset": g0 * h * w, "nnz_row": int(row.nnz), "nnz": int(block.nnz) * c_out,
                   "columns": idx.tolist(), "weights": [_r(v) for v in vals],
                   "inputs": [_r(v) for v in unrolled[idx]], "dot": dot, "value": dot + bias,
                   "input_hw": [h, w]},
        "after": steps,
    }
