"""fast2 (pool before BN-ReLU, patch whitening, extra convs) and the speed-round knobs of training/speed.py."""

import pytest
import torch
import torch.nn.functional as F

from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.models import create_model
from convscope.models.fast2 import PatchWhitening
from convscope.training.evaluate import predict_logits
from convscope.training.speed import _shift_u8, predict_logits_shift_tta


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


def test_shift_u8_moves_content_with_zero_fill():
    x = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)
    assert _shift_u8(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert _shift_u8(x, 0, -1)[0, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]


def test_shift_tta_averages_the_shifted_views():
    torch.manual_seed(0)
    m = create_model("fast2", 1, (28, 28), 10, width=4).eval()
    imgs = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    norm = Normalization((0.2,), (0.3,))
    assert torch.allclose(predict_logits_shift_tta(m, imgs, norm, 0), predict_logits(m, imgs, norm), atol=1e-6)
    views = [predict_logits(m, _shift_u8(imgs, dy, dx).contiguous(), norm)
             for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]
    assert torch.allclose(predict_logits_shift_tta(m, imgs, norm, 1), torch.stack(views).mean(0), atol=1e-5)


def test_fast2_deterministic_runs_are_bit_identical(tmp_path):
    import convscope
    from convscope.training.speed import use_fused_batch  # noqa: F401  (the module imports cleanly)

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
