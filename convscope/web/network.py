"""The network view's structure: every feature-map layer in execution order (batch norm included, flagged),
which layer feeds each one and how its channels connect (a conv reads every channel of its group, an
element-wise layer or a pool reads its own channel), and each conv's trained kernels, quantized.

The feeds are traced, not guessed from names: one forward of a blank input with a hook on every leaf module
records which module produced the tensor each module reads. A layer fed by an operation outside the named
modules (a residual addition, a functional call) has ``feed = None``: the page draws no lines for it and
says so.
"""

from __future__ import annotations

import base64
from typing import Any

import torch
from torch import nn

from ..models.hooks import observe
from ..models.layers import named_layers
from ..models.probe import eval_mode
from .runs import RunEntry

MAX_KERNEL_BYTES = 4 * 1024 * 1024    # all convs' kernels together, as uint8: beyond this the page gets none
# layers that keep each channel apart: output channel c reads input channel c only
SAME_CHANNEL = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
                nn.Tanh, nn.Hardswish, nn.Mish, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout2d, nn.GroupNorm, nn.InstanceNorm2d, nn.PReLU)


def leaves(model: nn.Module) -> dict[str, nn.Module]:
    """Named modules without children, in model order."""
    return {n: m for n, m in named_layers(model).items() if not list(m.children())}


@torch.no_grad()
def trace(model: nn.Module, x: torch.Tensor, inputs_of: tuple[str, ...] = (), outputs_of: tuple[str, ...] = ()
          ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """One forward of ``x`` (1, C, H, W, already normalized) with a hook on every leaf module.

    Returns the leaves in execution order (name, kind, output shape without the batch, feed: the module whose
    output it reads, ``"input"`` for the model input, None for anything else), the inputs of ``inputs_of``
    (before the module runs: an in-place ReLU must not alter them) and the outputs of ``outputs_of`` (clones,
    first example), and the model's output."""
    mods = leaves(model)
    producer: dict[int, str] = {id(x): "input"}
    keep: list[torch.Tensor] = [x]        # keeps every traced tensor alive, so no id() is reused mid-forward
    order: list[dict[str, Any]] = []
    ins: dict[str, torch.Tensor] = {}
    outs: dict[str, torch.Tensor] = {}

    def pre(name: str):
        def hook(module, inputs) -> None:
            if name in inputs_of and inputs and isinstance(inputs[0], torch.Tensor):
                ins[name] = inputs[0][0].detach().clone()
        return hook

    def post(name: str):
        def hook(module, inputs, output) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                return
            src = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            feed = producer.get(id(src)) if src is not None else None
            order.append({"name": name, "kind": type(module).__name__, "shape": list(out.shape[1:]), "feed": feed})
            producer[id(out)] = name
            keep.append(out)
            if name in outputs_of:
                outs[name] = out[0].detach().clone()
        return hook

    with eval_mode(model), observe([(m, post(n)) for n, m in mods.items()], [(m, pre(n)) for n, m in mods.items()]):
        y = model(x)
    return order, ins, outs, y


def _link(module: nn.Module, channels: int, feed_channels: int | None) -> dict[str, Any]:
    """How output channel c reads its feed: ``all`` channels, its ``same`` channel, or a conv's ``group``."""
    if isinstance(module, nn.Conv2d):
        return {"mode": "group", "groups": module.groups}
    if isinstance(module, SAME_CHANNEL) and feed_channels == channels:
        return {"mode": "same"}
    return {"mode": "all"}


def _kernels(conv: nn.Conv2d) -> dict[str, Any]:
    """The trained weight (out, in/groups, kh, kw) as uint8 on one signed scale (127.5 = 0), base64."""
    w = conv.weight.detach().float()
    m = float(w.abs().max()) or 1.0
    q = (127.5 + 127.5 * w / m).round().clamp(0, 255).to(torch.uint8)
    return {"shape": list(w.shape), "max_abs": m, "stride": list(conv.stride), "padding": list(conv.padding)
            if not isinstance(conv.padding, str) else conv.padding, "dilation": list(conv.dilation),
            "bias": conv.bias is not None, "data": base64.b64encode(q.numpy().tobytes()).decode("ascii")}


def network(entry: RunEntry) -> dict[str, Any]:
    """The page's structure (cached per run): map layers in execution order with feeds and links, each conv's
    kernels (unless all of them together pass :data:`MAX_KERNEL_BYTES`), and the head after the last map."""
    def compute() -> dict[str, Any]:
        run = entry.run
        model = run.model
        mods = leaves(model)
        order, _, _, out = trace(model, torch.zeros(1, *run.input_shape))
        maps = [o for o in order if len(o["shape"]) == 3 and o["kind"] != "Identity"]
        shown = {o["name"] for o in maps}
        channels = {o["name"]: o["shape"][0] for o in maps}
        channels["input"] = run.input_shape[0]
        convs = [mods[o["name"]] for o in maps if isinstance(mods[o["name"]], nn.Conv2d)]
        kernel_bytes = sum(c.weight.numel() for c in convs)
        notes = []
        if kernel_bytes > MAX_KERNEL_BYTES:
            notes.append(f"kernels not sent: {kernel_bytes:,} weights in all (the page takes up to "
                         f"{MAX_KERNEL_BYTES:,}); a conv's unit page shows its filters")
        layers = []
        for o in maps:
            m = mods[o["name"]]
            feed = o["feed"] if o["feed"] in shown or o["feed"] == "input" else None
            li = {**o, "feed": feed, "norm": "Norm" in o["kind"],
                  "link": _link(m, o["shape"][0], channels.get(feed) if feed else None)}
            if isinstance(m, nn.Conv2d) and kernel_bytes <= MAX_KERNEL_BYTES:
                li["kernels"] = _kernels(m)
            layers.append(li)
        last = maps[-1]["name"] if maps else None
        head = [o for o in order if len(o["shape"]) != 3 and o["name"] not in shown]
        if any(li["feed"] is None for li in layers):
            notes.append("some layers read the result of an operation outside the named modules (an addition, a "
                         "functional call): no connection lines are drawn for them")
        return {"input_shape": list(run.input_shape), "layers": layers, "last_map": last,
                "head": [{"name": o["name"], "kind": o["kind"], "shape": o["shape"]} for o in head],
                "outputs": int(out.shape[-1]), "notes": notes}
    return entry.cached("network", compute)
