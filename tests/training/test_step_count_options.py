"""Speed round 2's step-count options (off by default): Lookahead and progressive resizing.

Lookahead is checked against the update computed by hand; both options survive a SIGKILL and resume
bit-identically; progressive resizing's batches have the early size, then the full one."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convscope
from convscope.errors import ConfigError
from convscope.training.batches import BatchFeeder, load_data
from convscope.training.config import config_from_dict, resolve
from convscope.training.engines.torch import TorchEngine

LAUNCHER = Path(__file__).with_name("launcher.py")
# fast2 at width 4 on 768 digits, batch 64: 12 steps an epoch; epoch 1 at 24 px, epoch 2 at 28 px; Lookahead
# syncs after every 3rd step and checkpoints every 4, so a resume starts with slow and fast weights apart
ARGS = ["--model", "fast2", "--model-arg", "width=4", "--train-subset", "768", "--batch-size", "64",
        "--epochs", "2", "--threads", "1", "--deterministic", "--checkpoint-every", "4", "--lookahead", "3",
        "--lookahead-alpha", "0.6", "--low-res", "24", "--low-res-epochs", "1", "--quiet"]


def _engine(lookahead: int, alpha: float) -> tuple[TorchEngine, nn.Module]:
    cfg = config_from_dict({"epochs": 1, "optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
                            "lr": 0.5, "schedule": "constant", "label_smoothing": 0.0, "ema": 0.0, "precision": "fp32",
                            "channels_last": False, "device": "cpu", "lookahead": lookahead,
                            "lookahead_alpha": alpha})
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    from convscope.data.normalize import Normalization
    return TorchEngine(cfg, model, Normalization((0.0,), (1.0,)), steps_per_epoch=10), model


def test_lookahead_matches_the_update_by_hand():
    engine, model = _engine(lookahead=3, alpha=0.25)
    torch.manual_seed(1)
    batches = [(torch.randn(5, 1, 2, 2), torch.randint(0, 3, (5,))) for _ in range(4)]
    w = [p.detach().clone() for p in model.parameters()]
    slow = [t.clone() for t in w]

    def sgd(ws, x, y):   # one plain SGD step at lr 0.5 on cross-entropy, by autograd on a copy
        ws = [t.clone().requires_grad_() for t in ws]
        loss = F.cross_entropy(F.linear(x.flatten(1), ws[0], ws[1]), y)
        grads = torch.autograd.grad(loss, ws)
        return [t.detach() - 0.5 * g for t, g in zip(ws, grads)]

    for step, (x, y) in enumerate(batches):
        engine.train_step(x, y, step)
        w = sgd(w, x, y)
        if (step + 1) % 3 == 0:          # after steps 3, 6, ...: slow += 0.25 (fast - slow); fast = slow
            slow = [s + 0.25 * (f - s) for s, f in zip(slow, w)]
            w = [s.clone() for s in slow]
        for p, ref in zip(model.parameters(), w):
            torch.testing.assert_close(p.detach(), ref, rtol=1e-5, atol=1e-6)
    # step 4 moved the fast weights away from the slow ones, which stay where step 3 left them
    assert not torch.allclose(model[1].weight, engine.slow[0])
    torch.testing.assert_close(engine.slow[0], slow[0])


def test_lookahead_alpha_1_is_plain_sgd():
    a, ma = _engine(lookahead=2, alpha=1.0)
    b, mb = _engine(lookahead=0, alpha=0.5)
    torch.manual_seed(2)
    for step in range(5):
        x, y = torch.randn(4, 1, 2, 2), torch.randint(0, 3, (4,))
        a.train_step(x, y, step)
        b.train_step(x, y, step)
    for p, q in zip(ma.parameters(), mb.parameters()):
        torch.testing.assert_close(p, q)


def test_progressive_resizing_batches_shrink_then_return_to_full_size():
    cfg = config_from_dict({"dataset": "digits", "train_subset": 256, "batch_size": 32, "low_res": 24,
                            "low_res_epochs": 2, "translate": 0, "channels_last": False})
    data = load_data(cfg)
    cfg = resolve(cfg, hflip_ok=False, device="cpu", native_bf16=False)
    feeder = BatchFeeder(cfg, data)
    order = feeder.order(0)
    small, y = feeder.batch(order, 0, epoch=1)
    full, y2 = feeder.batch(order, 0, epoch=2)
    assert small.shape == (32, 1, 24, 24) and full.shape == (32, 1, 28, 28) and torch.equal(y, y2)
    # stroke and blur draw random numbers: the two batches differ by augmentation, but the downscaled image is
    # the same picture; its normalized mean follows the full image's within the augmentation's reach
    assert abs(float(small.mean()) - float(full.mean())) < 0.15
    assert feeder.size_at(0) == (24, 24) and feeder.size_at(1) == (24, 24) and feeder.size_at(2) is None


@pytest.mark.parametrize("over, match", [
    ({"low_res": 20, "low_res_epochs": 1}, "cannot take 20 x 20"),     # fast2's flatten head: 2x2 maps, not 3x3
    ({"low_res": 28, "low_res_epochs": 1}, "not below the images' height 28"),
    ({"low_res": 24}, "needs both low_res"),
    ({"low_res_epochs": 2}, "needs both low_res"),
    ({"low_res": 24, "low_res_epochs": 2}, "leaves none at the images' own size"),
    ({"lookahead": -1}, "lookahead must be 0"),
    ({"lookahead_alpha": 1.5}, r"lookahead_alpha must lie in \(0, 1\]"),
    ({"lookahead": 5, "engine": "numpy", "model": "lenet5"}, "numpy engine"),
])
def test_bad_step_count_options_are_clear_errors(tmp_path, over, match):
    with pytest.raises(ConfigError, match=match):
        convscope.train({"dataset": "digits", "train_subset": 128, "epochs": 2, "threads": 1, **over},
                        out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kill_at", ["step:6", "step:18"])   # resumes at steps 4 and 16: one step after a sync
def test_lookahead_and_progressive_resizing_resume_bit_identically(tmp_path, kill_at):
    ref = tmp_path / "ref"
    r = _cli("train", *ARGS, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, str(LAUNCHER), "--kill-at", kill_at, "--", "train", *ARGS, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    r = _cli("train", "--resume", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()


def test_shifted_views_fill_the_border_with_black():
    x = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    fill = torch.full((1, 1, 1, 1), -9.0)
    down = convscope.training.evaluate.shifted(x, 1, 0, fill)
    assert torch.equal(down[0, 0, 0], torch.full((4,), -9.0)) and torch.equal(down[0, 0, 1:], x[0, 0, :3])
    left = convscope.training.evaluate.shifted(x, 0, -2, fill)
    assert torch.equal(left[0, 0, :, :2], x[0, 0, :, 2:]) and torch.equal(left[0, 0, :, 2:], torch.full((4, 2), -9.0))


def test_tta_logits_weighs_the_views_as_documented():
    from convscope.training.evaluate import tta_logits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(25, 3))
    x = torch.randn(2, 1, 5, 5)
    fill = torch.full((1, 1, 1, 1), 0.3)

    def by_hand(v, flip):   # rolls with the wrapped-around row/column overwritten by the fill
        out = model(v)
        return 0.5 * (out + model(v.flip(3))) if flip else out

    def moved(dy, dx):
        v = torch.roll(x, (dy, dx), (2, 3)).clone()
        if dy:
            v[:, :, 0 if dy > 0 else -1, :] = 0.3
        if dx:
            v[:, :, :, 0 if dx > 0 else -1] = 0.3
        return v

    for flip in (False, True):
        want = 0.5 * by_hand(x, flip) + 0.125 * sum(by_hand(moved(dy, dx), flip)
                                                    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)))
        torch.testing.assert_close(tta_logits(model, x, flip, 1, fill), want)
        torch.testing.assert_close(tta_logits(model, x, flip, 0), by_hand(x, flip))


def test_a_run_with_shift_tta_records_it_and_eval_reproduces_its_accuracy(tmp_path):
    out = tmp_path / "run"
    run = convscope.train({"dataset": "digits", "train_subset": 512, "epochs": 1, "threads": 1, "tta_shift": 1,
                           "model_args": {"width": 8}}, out=out, progress=False)
    again = convscope.load_run(out)
    assert again.tta_shift == 1 and again.meta["tta_shift"] == 1
    r = _cli("eval", str(out))
    assert r.returncode == 0, r.stderr
    assert f"{100 * run.summary['test_accuracy']:.2f}%" in r.stdout
    plain = convscope.training.evaluate.evaluate(again.model, convscope.data.load("digits", "test"),
                                                 again.normalization)
    assert plain.accuracy != run.summary["test_accuracy"]     # the shifted views did change the predictions
