"""The drill-down's arithmetic and the network tracing on hand-built models with what the zoo lacks: grouped,
strided, dilated convs with a bias and reflect padding, and a residual addition. PyTorch is the oracle; the run
container is a minimal stand-in (model, input shape, preprocessing), everything computed is the real code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from convscope.errors import ConfigError
from convscope.web.convstep import conv_step, decode_input
from convscope.web.network import network, trace
from convscope.web.runs import RunEntry


@dataclass
class _Run:
    model: nn.Module
    input_shape: tuple[int, int, int]

    def preprocess(self, x_u8: torch.Tensor) -> torch.Tensor:
        return x_u8.float() / 255 - 0.3


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)) + x)     # conv2 reads an addition, not a named module


def entry_for(model: nn.Module, shape=(2, 11, 10)) -> RunEntry:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):      # non-trivial running statistics, as after training
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    e = RunEntry("hand", Path("."))
    e._run = _Run(model.eval(), shape)
    return e


def grouped() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode="reflect"),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 2, bias=False))


@pytest.mark.parametrize("ch,y,x", [(0, 0, 0), (3, 5, 4), (2, 3, 1)])
def test_grouped_strided_dilated_reflect_conv_matches_torch(ch, y, x):
    model = grouped()
    e = entry_for(model)
    x_u8 = torch.randint(0, 256, (1, 2, 11, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    d = conv_step(e, x_u8, "0", ch, y, x)
    with torch.no_grad():
        inp = e.run.preprocess(x_u8)
        a = model[0](inp)
        b = model[1](a)
        c = model[2](b.clone())
        p = model[3](c)
    assert list(a.shape[1:]) == d["geometry"]["output"] == [4, 6, 5]
    assert d["value"] == pytest.approx(float(a[0, ch, y, x]), abs=1e-5)
    assert d["matrix"]["value"] == pytest.approx(d["value"], abs=1e-9)
    assert d["channels"] == ([0] if ch < 2 else [1])                # groups=2: one input map per group
    assert d["matrix"]["column_offset"] == d["channels"][0] * 11 * 10
    assert d["matrix"]["row"] == ch * 30 + y * 5 + x and d["matrix"]["shape"] == [120, 220]
    # reflect padding: every tap reads a real pixel, two taps may read the same one (their weights add up)
    assert sum(d["matrix"]["weights"]) == pytest.approx(float(model[0].weight.detach()[ch].sum()), abs=1e-6)
    assert d["matrix"]["nnz_row"] == (9 if (ch, y, x) == (2, 3, 1) else 4)
    assert [s["name"] for s in d["after"]] == ["1", "2", "3"]
    assert d["after"][0]["output"] == pytest.approx(float(b[0, ch, y, x]), abs=1e-5)
    assert d["after"][1]["output"] == pytest.approx(float(c[0, ch, y, x]), abs=1e-5)
    oy, ox = min(y // 2, p.shape[2] - 1), min(x // 2, p.shape[3] - 1)
    assert d["after"][2]["at"] == [oy, ox]
    assert d["after"][2]["output"] == pytest.approx(float(p[0, ch, oy, ox]), abs=1e-5)
    assert max(w[2] for w in d["after"][2]["window"]) == pytest.approx(d["after"][2]["output"], abs=1e-6)


def test_network_links_and_feeds():
    net = network(entry_for(grouped()))
    assert [(li["name"], li["feed"], li["link"]["mode"], li["norm"]) for li in net["layers"]] == [
        ("0", "input", "group", False), ("1", "0", "same", True), ("2", "1", "same", False),
        ("3", "2", "same", False), ("4", "3", "group", False)]
    assert net["layers"][0]["kernels"]["shape"] == [4, 1, 3, 3] and net["notes"] == []
    res = network(entry_for(Residual(), (2, 5, 5)))
    assert [(li["name"], li["feed"]) for li in res["layers"]] == [("conv1", "input"), ("relu", "conv1"),
                                                                  ("conv2", None)]
    assert any("outside the named modules" in n for n in res["notes"])
    order, ins, outs, y = trace(Residual().eval(), torch.zeros(1, 2, 5, 5), ("conv2",), ("relu",))
    assert ins["conv2"].shape == (2, 5, 5) and outs["relu"].shape == (2, 5, 5) and y.shape == (1, 3, 5, 5)


def test_bad_requests_name_what_is_wrong():
    e = entry_for(grouped())
    x_u8 = torch.zeros(1, 2, 11, 10, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="not a conv layer of this run; choose one of 0, 4"):
        conv_step(e, x_u8, "2", 0, 0, 0)
    with pytest.raises(ConfigError, match="y: 6 is outside 0..5"):
        conv_step(e, x_u8, "0", 0, 6, 0)
    with pytest.raises(ConfigError, match="x: expected an integer"):
        conv_step(e, x_u8, "0", 0, 0, "left")
    with pytest.raises(ConfigError, match="220 bytes, but this run's input 2 x 11 x 10 needs 220|needs 220"):
        decode_input("AAAA", (2, 11, 10))
