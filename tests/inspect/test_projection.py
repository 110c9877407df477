"""Deconvnet and guided backprop against loops written from the papers' rules, against Captum on plain
ReLU modules, and on models Captum's hooks cannot reach (functional, reused, in-place ReLUs)."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import ConfigError
from convscope.inspect import hook_count, project, projections
from convscope.models import create_model


class Tiny(nn.Module):
    """One conv (no bias), ReLU, 2x2 max-pool, then a linear read-out: (B, 1, 5, 5) -> (B, 3)."""

    def __init__(self, w: torch.Tensor, fc: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(1, w.shape[0], w.shape[-1], bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(fc.shape[1], fc.shape[0], bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.fc.weight.copy_(fc)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def reference(x, w, fcw, rule, layer, unit):
    """The rules written out with loops, float64: x (5, 5), w (K, 2, 2), fc (classes, K*2*2)."""
    k_n, kh, kw = w.shape
    z = np.zeros((k_n, 4, 4))
    for k in range(k_n):
        for i in range(4):
            for j in range(4):
                z[k, i, j] = (w[k] * x[i:i + kh, j:j + kw]).sum()
    r = np.maximum(z, 0)
    pooled = np.zeros((k_n, 2, 2))
    switch = {}
    for k in range(k_n):
        for pi in range(2):
            for pj in range(2):
                win = r[k, 2 * pi:2 * pi + 2, 2 * pj:2 * pj + 2].ravel()
                a = int(np.argmax(win))                      # first maximum, row-major
                pooled[k, pi, pj] = win[a]
                switch[k, pi, pj] = (2 * pi + a // 2, 2 * pj + a % 2)
    signal = np.zeros((k_n, 2, 2))                           # the signal arriving at the pooled maps
    if layer == "pool":
        c, yy, xx = unit
        signal[c, yy, xx] = 1.0                              # one activation
        value = pooled[c, yy, xx]
    else:
        c = unit[0]
        value = fcw[c] @ pooled.ravel()
        signal = fcw[c].reshape(k_n, 2, 2)
    g_r = np.zeros_like(z)
    for key, (i, j) in switch.items():                       # unpooling through the switches
        g_r[key[0], i, j] = signal[key]
    if rule == "deconvnet":
        g_z = np.maximum(g_r, 0)
    elif rule == "guided":
        g_z = np.maximum(g_r, 0) * (z > 0)
    else:
        g_z = g_r * (z > 0)
    g_x = np.zeros_like(x)
    for k in range(k_n):                                     # transposed convolution
        for i in range(4):
            for j in range(4):
                g_x[i:i + kh, j:j + kw] += w[k] * g_z[k, i, j]
    return g_x * value                                       # scaled by the activation's value


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layer,unit", [("pool", (1, 0, 1)), ("pool", (0, 1, 1)), ("fc", (2, 0, 0))])
def test_rules_against_hand_derived_loops(seed, layer, unit):
    g = torch.Generator().manual_seed(seed)
    w, fc = torch.randn(2, 2, 2, generator=g), torch.randn(3, 8, generator=g)
    x = torch.randn(5, 5, generator=g)
    model = Tiny(w[:, None], fc).double().eval()
    rules = {}
    for rule in ("deconvnet", "guided"):
        got = project(model, x.double()[None, None], layer, [unit], rule)[0, 0].numpy()
        want = reference(x.double().numpy(), w.double().numpy(), fc.double().numpy(), rule, layer, unit)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        rules[rule] = got
    grad = reference(x.double().numpy(), w.double().numpy(), fc.double().numpy(), "gradient", layer, unit)
    if layer == "fc" and seed == 0:   # the read-out's mixed signs make the three rules differ here
        assert not np.allclose(rules["deconvnet"], rules["guided"]) or not np.allclose(rules["guided"], grad)
    assert hook_count(model) == 0


def test_a_handmade_case_written_out():
    # x has one bright pixel; the kernel's top-left weight is 2: the pooled unit's switch sits where the
    # kernel's 2 lands on it, and the projection is value * kernel placed at that window.
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 1, 1] = 1.0
    w = torch.tensor([[[[2.0, 0.0], [0.0, -1.0]]]], dtype=torch.float64)
    model = Tiny(w, torch.ones(3, 4, dtype=torch.float64)).double().eval()
    want = torch.zeros(5, 5, dtype=torch.float64)
    want[1:3, 1:3] = 2.0 * w[0, 0]                                 # value 2 at switch (1, 1)
    for rule in ("deconvnet", "guided"):
        torch.testing.assert_close(project(model, x, "pool", [(0, 0, 0)], rule)[0, 0], want)


class NoRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 3, 3)
        self.fc = nn.Linear(3 * 2 * 2, 5)

    def forward(self, x):
        return self.fc(F.avg_pool2d(self.conv2(self.pool(self.conv1(x))), 2).flatten(1))


def test_guided_backprop_without_relus_is_plain_saliency():
    torch.manual_seed(0)
    model = NoRelu().double().eval()
    x = torch.randn(3, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    out = model(x)
    units = [(1, 0, 0), (4, 0, 0), (0, 0, 0)]
    logit = out[torch.arange(3), [u[0] for u in units]]
    (grad,) = torch.autograd.grad(logit.sum(), x)
    for rule in ("guided", "deconvnet"):
        got = project(model, x.detach(), "fc", units, rule)
        torch.testing.assert_close(got, grad * logit.detach().view(-1, 1, 1, 1))


class Functional(nn.Module):
    """The computation of ``_plain()``, with a functional ReLU, one ReLU module used twice, in-place calls."""

    def __init__(self, plain: nn.Sequential):
        super().__init__()
        self.c1, self.c2, self.c3, self.fc = plain[0], plain[3], plain[6], plain[10]
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.max_pool2d(self.act(self.c2(h)), 2)
        h = self.act(self.c3(h))
        h.relu_()                                                 # an in-place call on a tensor, reused below
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def _plain():
    # One ReLU module per ReLU: Captum's Deconvolution goes wrong on two ReLU modules in a row (relu(relu(g))
    # should equal relu(g); it differs by ~1e-3 here), while the functional model applies two in a row.
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).double().eval()


def _captum(model, x, target, rule):
    from captum.attr import Deconvolution, GuidedBackprop

    cls = GuidedBackprop if rule == "guided" else Deconvolution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(model).attribute(x.clone().requires_grad_(), target=target)


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_functional_reused_inplace_relus_match_captum_on_plain_modules(rule):
    plain = _plain()
    model = Functional(plain).eval()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    logits = model(x).detach()
    torch.testing.assert_close(logits, plain(x).detach())
    want = _captum(plain, x, target, rule) * logits[torch.arange(4), target].view(-1, 1, 1, 1)
    got = project(model, x, "fc", [(int(t), 0, 0) for t in target], rule)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert hook_count(model) == 0 and hook_count(plain) == 0


def test_fast_model_with_inplace_relus_matches_captum():
    torch.manual_seed(0)
    model = create_model("fast", width=4).eval()
    x = torch.randn(2, 1, 28, 28)
    logits = model(x).detach()
    for rule in ("guided", "deconvnet"):
        want = _captum(model, x, 7, rule) * logits[:, 7].view(-1, 1, 1, 1)
        torch.testing.assert_close(project(model, x, "fc", [(7, 0, 0)] * 2, rule), want, rtol=1e-4, atol=1e-7)
    assert hook_count(model) == 0


class WithGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(2, 2, 3)

    def forward(self, x):
        return self.conv2(self.act(self.conv(x)))


def test_unsupported_nonlinearity_names_the_module_and_leaves_no_hooks():
    model = WithGelu().eval()
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ConfigError, match="module 'act' applies gelu.*ReLU only"):
        project(model, x, "conv2", [(0, 1, 1)])
    assert hook_count(model) == 0
    assert project(model, x, "conv", [(0, 1, 1)]).shape == x.shape   # the GELU lies above: never reached
    assert hook_count(model) == 0


def test_projections_of_topk_units_stay_inside_their_receptive_field(small_run, tmp_path):
    from convscope.data import load

    ds = load("digits", "test").subset(torch.arange(200))
    res = projections(small_run.model, ds, "conv2", [0, 1], k=3, norm=small_run.normalization)
    assert res.deconvnet.shape == (2, 3, 1, 28, 28) and res.guided.shape == (2, 3, 1, 28, 28)
    for c in range(2):
        for j in range(3):
            t, l, b, r = res.boxes[c][j]
            outside = np.ones((28, 28), bool)
            outside[max(t, 0):b + 1, max(l, 0):r + 1] = False
            assert np.abs(res.deconvnet[c, j, 0][outside]).max() == 0
            assert np.abs(res.guided[c, j, 0]).max() > 0
    assert hook_count(small_run.model) == 0
    r = subprocess.run([sys.executable, "-m", "convscope", "project", str(small_run.path), "--layer", "conv2",
                        "--channels", "0-1", "--k", "2", "--limit", "200", "--out", str(tmp_path)],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "project-conv2.json").read_text())["records"]) == 2
    assert (tmp_path / "project-conv2.png").stat().st_size > 1000
