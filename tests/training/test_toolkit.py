"""Each optimizer, regularizer and safeguard exercised for a few steps, with an assertion on its effect."""

import json
import math

import pytest
import torch
from torch import nn

import convscope
from convscope.errors import ConfigError, SettingWarning
from convscope.training import TrainingDiverged, load_run
from convscope.training.checkpoint import load_state
from convscope.training.batches import BatchFeeder
from convscope.training.config import config_from_dict
from convscope.training.engines.torch import TorchEngine
from convscope.training.setup import build_model, prepare
from convscope.training.optim import init_weights


def _engine(values):
    """A TorchEngine and the batches the loop would feed it, for a config given as a dict."""
    cfg, data = prepare(config_from_dict(values))
    feeder = BatchFeeder(cfg, data)
    return TorchEngine(cfg, build_model(cfg, data), data.norm, feeder.steps_per_epoch), feeder


def _steps(run):
    return [m for m in run.metrics if m["kind"] == "step"]


@pytest.mark.parametrize("opt, lr", [("sgd", 0.05), ("adam", 1e-3), ("adamw", 1e-3), ("adadelta", 1.0)])
def test_each_optimizer_lowers_the_loss(tmp_path, tiny, opt, lr):
    run = convscope.train({**tiny, "optimizer": opt, "lr": lr, "schedule": "constant"}, out=tmp_path / opt,
                          progress=False)
    losses = [m["loss"] for m in _steps(run)]
    assert len(losses) == 16
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:2]) / 2
    assert run.summary["test_accuracy"] > 0.6


def test_nesterov_changes_the_trajectory(tmp_path, tiny):
    a = convscope.train({**tiny, "nesterov": True, "epochs": 1}, out=tmp_path / "a", progress=False)
    b = convscope.train({**tiny, "nesterov": False, "epochs": 1}, out=tmp_path / "b", progress=False)
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert not torch.equal(wa["fc1.weight"], wb["fc1.weight"])


def _weight_norm(run):
    return math.sqrt(sum(float((p.detach().double() ** 2).sum()) for n, p in run.model.named_parameters()
                         if "weight" in n))


def test_weight_decay_shrinks_weights(tmp_path, tiny):
    plain = convscope.train({**tiny, "optimizer": "adamw", "lr": 1e-3}, out=tmp_path / "a", progress=False)
    decayed = convscope.train({**tiny, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 5.0}, out=tmp_path / "b",
                              progress=False)
    assert _weight_norm(decayed) < 0.97 * _weight_norm(plain)


def test_label_smoothing_puts_a_floor_under_the_loss(tmp_path, tiny):
    # cross-entropy against smoothed targets is at least their entropy (Gibbs' inequality)
    eps, k = 0.3, 10
    p_true, p_other = 1 - eps + eps / k, eps / k
    floor = -(p_true * math.log(p_true) + (k - 1) * p_other * math.log(p_other))
    run = convscope.train({**tiny, "label_smoothing": eps, "epochs": 3, "lr": 0.1}, out=tmp_path / "s", progress=False)
    assert min(m["loss"] for m in _steps(run)) >= floor - 1e-4
    sharp = convscope.train({**tiny, "epochs": 3, "lr": 0.1}, out=tmp_path / "n", progress=False)
    assert min(m["loss"] for m in _steps(sharp)) < floor


def test_dropout_option(tmp_path, tiny):
    run = convscope.train({**tiny, "dropout": 0.5, "epochs": 1}, out=tmp_path / "d", progress=False)
    drops = [m for m in run.model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == 0.5 for m in drops)
    x = torch.randn(4, 1, 28, 28)
    run.model.train()
    assert not torch.equal(run.model(x), run.model(x))   # stochastic in training mode
    run.model.eval()
    assert torch.equal(run.model(x), run.model(x))       # off at evaluation
    with pytest.raises(ConfigError, match="fixed dropout"):
        convscope.train({**tiny, "model": "fast", "dropout": 0.5}, out=tmp_path / "e", progress=False)


def test_weight_init_schemes():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    lin = nn.Linear(300, 200)
    model = nn.Sequential(conv, lin)
    init_weights(model, "kaiming")
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)
    assert float(conv.bias.detach().abs().max()) == 0.0
    init_weights(model, "xavier")
    bound = math.sqrt(6 / (300 + 200))
    assert float(lin.weight.detach().abs().max()) <= bound and float(lin.weight.detach().abs().max()) > 0.95 * bound
    assert float(lin.weight.detach().std()) == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_gradient_clipping_bounds_the_update(tmp_path, tiny):
    engine, feeder = _engine({**tiny, "optimizer": "sgd", "momentum": 0.0, "lr": 1.0, "schedule": "constant",
                              "grad_clip": 1e-3, "ema": 0.0})
    before = [p.detach().clone() for p in engine.model.parameters()]
    x, y = feeder.take(torch.arange(64))
    result = engine.train_step(x, y, 0)
    moved = math.sqrt(sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(engine.model.parameters(), before)))
    assert moved == pytest.approx(1e-3, rel=1e-3)         # lr * clipped norm
    assert result.grad_norm > 1e-2                        # the reported norm is the one before clipping
    run = convscope.train({**tiny, "grad_clip": 1e-3, "epochs": 1}, out=tmp_path / "r", progress=False)
    assert all(m["grad_norm"] > 1e-2 for m in _steps(run))   # and it is the one metrics.jsonl logs


def test_hflip_only_where_the_dataset_allows_it(tmp_path, tiny):
    with pytest.raises(ConfigError, match="does not allow horizontal flips"):
        convscope.train({**tiny, "hflip": True}, out=tmp_path / "x", progress=False)


def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path, tiny):
    cfg = {**tiny, "lr": 1e12, "schedule": "constant", "momentum": 0.0, "checkpoint_every": 1, "max_bad_steps": 3}
    with pytest.raises(TrainingDiverged, match="3 non-finite steps in a row") as e, \
            pytest.warns(SettingWarning, match="lr 1e[+]12 is far above the usual range of sgd"):
        convscope.train(cfg, out=tmp_path / "nan", progress=False)
    assert "checkpoint is intact" in str(e.value)
    state = load_state(tmp_path / "nan" / "checkpoint.safetensors")
    assert all(bool(torch.isfinite(v).all()) for v in state["engine"]["model"].values())


def test_early_stopping_stops_and_keeps_the_best_weights(tmp_path, tiny):
    # lr 0: validation accuracy never improves after epoch 1, so the run stops after `early_stopping` more
    with pytest.warns(SettingWarning, match="lr 0: the weights never change"):
        run = convscope.train({**tiny, "lr": 0.0, "epochs": 10, "val_fraction": 0.2, "early_stopping": 2},
                              out=tmp_path / "es", progress=False)
    assert run.summary["stopped_early"] and run.summary["epochs"] == 3 and run.summary["best_val_epoch"] == 1


def test_deterministic_runs_are_bit_identical(tmp_path, tiny):
    cfg = {**tiny, "deterministic": True, "translate": 2, "cutout": 4, "dropout": 0.2}
    a = convscope.train(cfg, out=tmp_path / "a", progress=False)
    b = convscope.train(cfg, out=tmp_path / "b", progress=False)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    assert a.summary["test_accuracy"] == b.summary["test_accuracy"]
    assert not torch.are_deterministic_algorithms_enabled()   # the caller's settings are restored


def test_run_directory_and_load_run(tmp_path, tiny):
    run = convscope.train(tiny, out=tmp_path / "r", progress=False)
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["checkpoint.safetensors", "config.json", "curve.png", "metrics.jsonl", "model.json",
                     "model.json.sha256", "model.safetensors", "summary.json"]
    summary = json.loads((tmp_path / "r/summary.json").read_text())
    assert 0 < summary["test_accuracy"] <= 1 and summary["epochs"] == 2 and summary["seconds"] > 0
    meta = json.loads((tmp_path / "r/model.json").read_text())
    assert meta["model"] == "mlp" and meta["classes"] == [str(d) for d in range(10)]
    assert set(meta["sha256"]) >= {"config.json", "model.safetensors", "summary.json", "metrics.jsonl", "curve.png"}
    loaded = load_run(tmp_path / "r")
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    run.model.eval()
    assert torch.equal(loaded.model(loaded.preprocess(x)), run.model(run.preprocess(x)))
    epochs = [m for m in loaded.metrics if m["kind"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert loaded.dataset_spec["name"] == "digits" and loaded.config.model.name == "mlp"


def test_ema_is_the_average_the_run_saves(tmp_path, tiny):
    import copy

    engine, feeder = _engine({**tiny, "ema": 0.9, "optimizer": "sgd", "lr": 0.05, "schedule": "constant"})
    avg = copy.deepcopy(engine.model)
    for step in range(6):
        x, y = feeder.take(torch.arange(step * 64, (step + 1) * 64))
        assert engine.train_step(x, y, step) is not None
        d = min(0.9, (1 + step) / (10 + step))
        with torch.no_grad():
            for a, p in zip(avg.parameters(), engine.model.parameters()):
                a.mul_(d).add_(p, alpha=1 - d)
    for a, e in zip(avg.parameters(), engine.ema.average.parameters()):
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-7)
    exported = engine.export_weights()
    assert torch.equal(exported["fc1.weight"], engine.ema.average.state_dict()["fc1.weight"])  # the average is exported
    assert not torch.equal(exported["fc1.weight"], engine.model.state_dict()["fc1.weight"])
    run = convscope.train({**tiny, "ema": 0.9}, out=tmp_path / "run", progress=False)
    assert run.summary["test_accuracy"] > 0.5


def test_tta_averages_an_image_and_its_mirror():
    from convscope.data import load
    from convscope.training.evaluate import Normalization, predict_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.LazyLinear(10)).eval()
    imgs = load("fashion-mnist", "test").images[:20]
    norm = Normalization((0.3,), (0.35,))
    plain = predict_logits(model, imgs, norm)
    mirrored = predict_logits(model, imgs.flip(3), norm)
    both = predict_logits(model, imgs, norm, tta=True)
    torch.testing.assert_close(both, 0.5 * (plain + mirrored))
