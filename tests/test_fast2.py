"""fast2: pool before BN-ReLU, patch whitening, extra convs (the speed round's model)."""

import pytest
import torch
import torch.nn.functional as F

from convscope.errors import ConfigError
from convscope.models import create_model
from convscope.models.fast2 import PatchWhitening


def test_fast2_layer_order_names_and_shapes():
    m = create_model("fast2", 1, (28, 28), 10, width=4, extra=1)
    names = [n for n, _ in m.named_children()]
    assert names[:4] == ["conv1", "pool1", "bn1", "relu1"]          # pool before the batch norm
    assert names[-5:] == ["conv4", "bn4", "relu4", "flatten", "fc"]  # the extra conv follows pool3
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    after = create_model("fast2", 1, (28, 28), 10, width=4, pool="after", extra=0)
    assert [n for n, _ in after.named_children()][:4] == ["conv1", "bn1", "relu1", "pool1"]


def test_fast2_pool_after_is_the_fast_network():
    torch.manual_seed(0)
    a = create_model("fast", 1, (28, 28), 10, width=4)
    b = create_model("fast2", 1, (28, 28), 10, width=4, pool="after", extra=0)
    b.load_state_dict(a.state_dict())                                 # same names, same shapes
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("kw", [{"pool": "middle"}, {"whiten": 2}, {"extra": 4}, {"widths": [4, 8]}])
def test_fast2_rejects_bad_arguments(kw):
    with pytest.raises(ConfigError, match="fast2"):
        create_model("fast2", 1, (28, 28), 10, **kw)


def test_patch_whitening_decorrelates_patches():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 1, 16, 16, generator=g)
    x = base + 0.8 * base.roll(1, 3) + 0.5 * base.roll(1, 2)          # strongly correlated neighbours
    layer = PatchWhitening(1, 3, eps=1e-6).train()
    y = layer(x)                                                      # (64, 18, 16, 16); first call fits
    assert y.shape == (64, 18, 16, 16) and int(layer.ready) == 1
    inner = y[:, :9, 1:-1, 1:-1].permute(1, 0, 2, 3).reshape(9, -1)  # interior: no zero padding involved
    inner = inner - inner.mean(1, keepdim=True)
    cov = inner @ inner.T / inner.shape[1]
    assert torch.allclose(cov, torch.eye(9), atol=2e-2)
    assert torch.equal(y[:, 9:], -y[:, :9])
    frozen = layer.weight.clone()
    layer(torch.randn(8, 1, 16, 16))                                   # later batches do not refit
    assert torch.equal(layer.weight, frozen)
    with pytest.raises(RuntimeError, match="not fitted"):
        PatchWhitening(1).eval()(x)



def test_fast2_deterministic_runs_are_bit_identical(tmp_path):
    import convscope

    cfg = {"model": "fast2", "model_args": {"width": 4, "whiten": 3, "extra": 1}, "train_subset": 256, "epochs": 1,
           "batch_size": 64, "threads": 1, "deterministic": True}
    a = convscope.train(cfg, out=tmp_path / "a", progress=False)
    b = convscope.train(cfg, out=tmp_path / "b", progress=False)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert int(sa["whiten.ready"]) == 1
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    again = convscope.load_run(tmp_path / "a")                       # the fitted filters travel in the weights
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(again.model.eval()(x), a.model.eval()(x), atol=1e-5)  # (memory layouts differ)
    assert F.softmax(again.model(x), 1).shape == (2, 10)
