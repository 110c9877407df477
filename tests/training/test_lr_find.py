"""The learning-rate finder: the rules against hand-computed curves, the sweep (exponential, smoothed,
stopping at divergence, deterministic, leaving the model as it was), a broken model that finds no rate, the
plot, and ``train --lr find``."""

import json
import math

import pytest
import torch
from PIL import Image

from convscope.cli import main
from convscope.models import create_model
from convscope.training.lr_find import lr_find, plot
from convscope.training.lr_rules import minimum, steep, suggest, valley

from . import broken_models  # noqa: F401  (registers the test-* models)

SMALL = dict(model="mlp", train_subset=2048, batch_size=64, threads=1, precision="fp32")
LRS = [10.0 ** (k / 2 - 5) for k in range(11)]      # 1e-5 ... 1, half a decade apart
CURVE = [2.0, 2.1, 1.9, 1.5, 1.0, 0.6, 0.5, 0.55, 0.9, 2.0, 5.0]


def test_rules_on_a_hand_computed_curve():
    # minimum: lowest loss 0.5 at LRS[6] = 1e-2, divided by 10
    assert minimum(LRS, CURVE) == pytest.approx(1e-3)
    # steep: the differences per half-decade are -0.4 (1.9->1.5), -0.5 (1.5->1.0), -0.4, -0.1: the fall 1.5 -> 1.0
    # starts at LRS[3]
    assert steep(LRS, CURVE) == LRS[3]
    # valley: the longest decreasing run is 2.1 1.9 1.5 1.0 0.6 0.5 (indices 1..6; its length-6 end is 6 and
    # fastai's start is end - length = 0); the lr at 0 + int(6/3) + int(6/3/2) = 3
    assert valley(LRS, CURVE) == LRS[3]


def test_a_flat_curve_gets_no_suggestion():
    flat = [2.3 + 0.01 * ((-1) ** i) for i in range(40)]
    lrs = [10 ** (i / 5 - 7) for i in range(40)]
    sug, note = suggest(lrs, flat, flat)
    assert sug == {"valley": None, "steep": None, "minimum": None} and "did not fall" in note


@pytest.fixture(scope="module")
def sweep():
    return lr_find(SMALL, steps=60, start=1e-5, end=100.0)


def test_the_sweep_is_exponential_smoothed_and_stops_at_divergence(sweep):
    lrs = sweep.lrs
    assert lrs[0] == pytest.approx(1e-5)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(r == pytest.approx((1e7) ** (1 / 59)) for r in ratios)    # 1e-5 to 100 over 60 steps
    # the bias-corrected EMA of the batch losses, recomputed here
    avg = 0.0
    for i, (loss, sm) in enumerate(zip(sweep.losses, sweep.smoothed)):
        if loss is None:
            break
        avg = 0.98 * avg + 0.02 * loss
        assert sm == pytest.approx(avg / (1 - 0.98 ** (i + 1)))
    assert sweep.stopped in ("diverged", "nonfinite") and len(lrs) < 60   # lr 100 blows an MLP up
    if sweep.stopped == "diverged":
        assert sweep.smoothed[-1] > 4 * min(s for s in sweep.smoothed if s is not None)
    sug = sweep.suggested
    assert sug is not None and sweep.rule == "steep" and 1e-4 < sug < lrs[-1]
    best = min((s, lr) for s, lr in zip(sweep.smoothed, lrs) if s is not None)[1]
    assert sweep.suggestions["minimum"] == pytest.approx(best / 10)


def test_the_sweep_is_deterministic_for_a_seed_and_changes_with_it(sweep):
    again = lr_find(SMALL, steps=60, start=1e-5, end=100.0)
    assert again.losses == sweep.losses and again.suggestions == sweep.suggestions
    other = lr_find({**SMALL, "seed": 1}, steps=60, start=1e-5, end=100.0)
    assert other.losses != sweep.losses


def test_a_given_models_weights_are_restored():
    model = create_model("mlp", 1, (28, 28), 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_find(SMALL, steps=20, model=model)
    assert res.losses[0] is not None and res.losses[-1] != res.losses[0]   # it trained
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_dead_model_finds_no_rate(tmp_path, capsys):
    res = lr_find({**SMALL, "model": "test-dead-relu"}, steps=40, start=1e-4)
    assert res.suggested is None and "the loss did not fall" in res.note
    assert min(v for v in res.losses if v is not None) > 0.95 * math.log(10)   # never below chance's loss
    assert main(["lr-find", "--model", "test-dead-relu", "--train-subset", "2048", "--steps", "40", "--threads", "1",
                 "--out", str(tmp_path / "dead.png")]) == 1
    assert "no suggestion" in capsys.readouterr().out and (tmp_path / "dead.png").exists()


def test_plot_and_json(sweep, tmp_path):
    png = plot(sweep, tmp_path / "sub" / "lr.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400
    data = json.loads(sweep.to_json())
    assert data["rule"] == "steep" and data["suggestions"]["steep"] == sweep.suggested


def test_train_lr_find_trains_at_the_suggestion_and_keeps_the_sweep(tmp_path, capsys):
    args = ["--model", "mlp", "--train-subset", "2048", "--batch-size", "64", "--threads", "1", "--precision",
            "fp32"]
    assert main(["train", "--lr", "find", *args, "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    sweep = json.loads((tmp_path / "r" / "lr-find.json").read_text())
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["optim"]["lr"] == sweep["suggestions"][sweep["rule"]] and math.isfinite(config["optim"]["lr"])
    assert (tmp_path / "r" / "lr-find.png").exists() and "suggested lr" in out
    assert main(["train", "--lr", "find", "--model", "test-dead-relu", "--train-subset", "2048", "--threads", "1",
                 "--out", str(tmp_path / "dead")]) == 1
    assert "no learning rate found" in capsys.readouterr().err and not (tmp_path / "dead").exists()
    with pytest.raises(SystemExit):   # only `train` runs the finder: elsewhere --lr is a number
        main(["tune", "--lr", "find", "--trials", "1"])


def test_out_must_be_a_png_so_the_json_beside_it_cannot_overwrite_it(tmp_path, capsys):
    """`lr-find --out victim.json` wrote the plot and the sweep to the same path, replacing the user's file."""
    victim = tmp_path / "victim.json"
    victim.write_text("mine")
    assert main(["lr-find", "--out", str(victim), "--steps", "5"]) == 2
    assert "ending in .png" in capsys.readouterr().err and victim.read_text() == "mine"
