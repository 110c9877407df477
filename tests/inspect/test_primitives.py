"""The shared primitives every tool builds on: the scoped hook helper, the batched forward iterator and the
conv-layer lookup — against hand-written loops and hand-built models."""

import contextlib

import pytest
import torch
from torch import nn

from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.models.conv_layers import conv_layers, last_conv
from convscope.models.forward import iter_batches
from convscope.models.hooks import hook_count, observe


class Boom(Exception):
    pass


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def _no_hooks_anywhere(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


def _scopes(model: nn.Module):
    """Every scoped hook site, entered on ``model``: (name, context manager factory)."""
    from convscope.experiments._selection import _last_linear_input
    from convscope.experiments.refine import _forward_until
    from convscope.inspect import capture
    from convscope.inspect._tap import tap
    from convscope.inspect.projection import relu_rule

    every = [(m, lambda *a: None) for m in model.modules()]
    return [("observe", lambda: observe(forward=every, pre=[(m, lambda *a: None) for m in model.modules()])),
            ("capture", lambda: capture(model, ["0", "2", "3.0"])),
            ("capture fn", lambda: capture(model, ["ReLU"], lambda n, t: None)),
            ("tap", lambda: tap(model, ["3.1"], stop=True)),
            ("relu_rule", lambda: relu_rule(model, "guided")),
            ("forward_until", lambda: _forward_until(model, "3.0")),
            ("last_linear_input", lambda: _last_linear_input(model))]


@pytest.mark.parametrize("where", ["in the block", "in the forward"])
def test_no_hook_remains_after_an_exception(where):
    model = _net().eval()
    x = torch.randn(2, 1, 6, 6)

    def raise_in_forward(m, inputs, output):
        raise Boom

    for name, scope in _scopes(model):
        with pytest.raises(Boom), scope():
            assert hook_count(model) > 0, name
            if where == "in the forward":
                with observe([(model[0], raise_in_forward)]):
                    model(x)
            raise Boom
        assert _no_hooks_anywhere(model), name
        assert hook_count(model) == 0, name


def test_a_stopping_tap_and_an_early_stop_leave_no_hook():
    from convscope.experiments.refine import _forward_until, _Stop
    from convscope.inspect._tap import run, tap

    model = _net().eval()
    x = torch.randn(2, 1, 6, 6)
    with tap(model, ["0"], stop=True) as acts:
        assert run(model, x, acts) is None and acts["0"].shape == (2, 3, 6, 6)
    with _forward_until(model, "0") as store, contextlib.suppress(_Stop):
        model(x)
    assert store["out"].shape == (2, 3, 6, 6)
    assert _no_hooks_anywhere(model)


def test_observe_never_modifies_what_it_observes():
    model = _net().eval()
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        ref = model(x)
        # hooks that try to replace the input and the output: their return values are discarded
        with observe(forward=[(m, lambda m, i, o: torch.zeros_like(o)) for m in model],
                     pre=[(m, lambda m, i: (torch.ones_like(i[0]),)) for m in model]):
            got = model(x)
    assert torch.equal(got, ref)
    assert _no_hooks_anywhere(model)


def test_iter_batches_equals_a_hand_written_loop():
    model = _net().train()
    images = torch.randint(0, 256, (23, 1, 6, 6), dtype=torch.uint8)
    norm = Normalization((0.3,), (0.2,))
    with torch.no_grad():
        model.eval()
        ref = [model((images[i:i + 5].float() / 255 - 0.3) / 0.2) for i in range(0, 23, 5)]
        model.train()
    got = list(iter_batches(model, images, norm, 5))
    assert [i for i, _ in got] == [0, 5, 10, 15, 20]
    assert [len(o) for _, o in got] == [5, 5, 5, 5, 3]
    for (_, o), r in zip(got, ref):
        torch.testing.assert_close(o, r, rtol=1e-6, atol=1e-6)
        assert not o.requires_grad                                       # no graph is kept
    assert model.training                                                # the caller's mode comes back
    # a range, as the shards use it: the same batches as the one-process run
    part = list(iter_batches(model, images, norm, 5, start=10, stop=20))
    assert [i for i, _ in part] == [10, 15]
    assert all(torch.equal(o, got[k + 2][1]) for k, (_, o) in enumerate(part))
    # norm None: the images are already model input; eval=False leaves the mode as it is
    x = norm.apply(images)
    seen = []
    plain = list(iter_batches(model, x, None, 10, forward=lambda b: seen.append(model.training) or model(b),
                              eval=False))
    assert seen == [True, True, True] and [len(o) for _, o in plain] == [10, 10, 3]


def test_iter_batches_restores_the_mode_when_the_forward_raises():
    model = _net().train()
    images = torch.zeros(4, 1, 6, 6, dtype=torch.uint8)

    def bad(x):
        raise Boom

    with pytest.raises(Boom):
        list(iter_batches(model, images, Normalization((0.0,), (1.0,)), 2, forward=bad))
    assert model.training


def test_conv_layers_and_last_conv():
    model = _net()
    convs = conv_layers(model)
    assert list(convs) == ["0", "3.0"] and convs["3.0"] is model[3][0]
    assert last_conv(model) == "3.0"
    assert last_conv(model, upto="2") == "0"                  # the conv whose channels relu "2" shows
    assert last_conv(model, upto="3.1") == "3.0"
    assert last_conv(model, upto="0") == "0"
    assert last_conv(model, upto="nope") is None
    assert conv_layers(nn.Linear(2, 2)) == {} and last_conv(nn.Linear(2, 2)) is None


def test_gradcam_without_a_conv_is_a_clear_error():
    from convscope.inspect.attribution import gradcam_layer

    with pytest.raises(ConfigError, match="no Conv2d"):
        gradcam_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(1, 1, 2, 2), None)
