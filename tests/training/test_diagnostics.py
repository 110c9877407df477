"""The diagnostics callback (``--diagnose``): its records against statistics computed by hand, the trained weights
left bit-identical, and the file format. (Resuming is tested with a real SIGKILL in test_resume.py.)"""

import json
import math

import pytest
import torch

import convscope
from convscope.errors import ConfigError
from convscope.inspect.hooks import capture
from convscope.runs import read_metrics
from convscope.training.diagnostics import activation_stats, param_layers

SMALL = dict(model="fast2", model_args={"widths": [8, 16, 16]}, train_subset=512, batch_size=64, epochs=2,
             threads=1, precision="fp32", channels_last=False, deterministic=True, translate=0, stroke=0.0, blur=0.0,
             log_every=1)


def _records(path):
    return read_metrics(path / "diagnostics.jsonl")


def test_diagnostics_leave_the_weights_bit_identical_and_record_every_nth_step(tmp_path):
    plain = convscope.train(SMALL, out=tmp_path / "plain", progress=False)
    diag = convscope.train({**SMALL, "diagnose": 3}, out=tmp_path / "diag", progress=False)
    assert (plain.path / "model.safetensors").read_bytes() == (diag.path / "model.safetensors").read_bytes()
    assert not (plain.path / "diagnostics.jsonl").exists()
    recs = _records(diag.path)
    header, diags = recs[0], [r for r in recs if r["kind"] == "diag"]
    assert header["kind"] == "header" and header["every"] == 3 and header["classes"] == 10
    assert header["expected_initial_loss"] == pytest.approx(math.log(10))
    assert header["activation_layers"] == ["relu1", "relu2", "relu3", "relu4"]
    assert header["param_layers"] == ["conv1", "conv2", "conv3", "conv4", "fc"]
    assert [d["step"] for d in diags] == [0, 3, 6, 9, 12, 15]     # 16 steps: 8 an epoch
    assert [d["epoch"] for d in diags] == [1, 1, 1, 2, 2, 2]
    # the step's loss and gradient norm are the ones metrics.jsonl logged for the same step
    steps = {m["step"]: m for m in read_metrics(diag.path / "metrics.jsonl") if m["kind"] == "step"}
    for d in diags:
        assert d["loss"] == steps[d["step"]]["loss"] and d["grad_norm"] == steps[d["step"]]["grad_norm"]
    # the model.json manifest covers the file
    assert "diagnostics.jsonl" in json.loads((diag.path / "model.json").read_text())["sha256"]
    # no hook is left on the model
    assert all(not m._forward_hooks for m in diag.model.modules())


def test_activation_and_update_statistics_match_a_hand_computation():
    """activation_stats on a known tensor; the update ratio against an SGD step computed by hand."""
    a = torch.zeros(4, 2, 3)              # (B, C, L): channel 0 always zero, channel 1 unit 0 never zero
    a[:, 1, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    a[0, 1, 1] = 5.0
    s = activation_stats(a)
    vals = a.flatten()
    assert s["mean"] == pytest.approx(float(vals.mean())) and s["std"] == pytest.approx(float(vals.std()))
    assert s["zero_fraction"] == pytest.approx(19 / 24)
    assert s["dead_fraction"] == pytest.approx(4 / 6)        # units (1, 2), and all of channel 0, never non-zero
    assert s["dead_channel_fraction"] == pytest.approx(0.5)
    assert s["nonfinite_fraction"] == 0.0
    a[1, 1, 2] = float("nan")
    s = activation_stats(a)
    assert s["nonfinite_fraction"] == pytest.approx(1 / 24) and math.isfinite(s["mean"])


def test_update_ratio_is_the_relative_change_of_the_weights(tmp_path):
    """Plain SGD (no momentum, no decay, constant lr): the update of the observed step is lr * grad."""
    cfg = {**SMALL, "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant", "lr": 0.05,
           "ema": 0.0, "epochs": 1, "diagnose": 4}
    run = convscope.train(cfg, out=tmp_path / "r", progress=False)
    d = [r for r in _records(run.path) if r["kind"] == "diag"][1]   # step 4
    for p in d["params"].values():
        assert p["update_ratio"] == pytest.approx(0.05 * p["grad_norm"] / p["weight_norm"], rel=0.02)


def test_diagnostics_on_the_training_batch_agree_with_capture():
    """The statistics of step 0's relu1 equal those of the same forward observed by inspect's capture."""
    from convscope.training.setup import build_model, prepare
    from convscope.training.batches import BatchFeeder

    cfg, data = prepare(convscope.TrainConfig().replace(**{k: v for k, v in SMALL.items() if k != "model_args"}))
    model = build_model(cfg, data)
    x, _ = BatchFeeder(cfg, data).batch(torch.arange(len(data.train)), 0)
    with capture(model, ["relu1"]) as store:
        model(x)
    stats = activation_stats(store["relu1"])
    assert stats["zero_fraction"] == pytest.approx(float((store["relu1"] == 0).float().mean()))
    assert set(param_layers(model)) == {"conv1", "conv2", "conv3", "conv4", "fc"}


def test_numpy_engine_refuses_diagnose():
    with pytest.raises(ConfigError, match="diagnose"):
        convscope.TrainConfig().replace(engine="numpy", diagnose=5).validate()


def test_diagnose_flag_alone_means_every_10_steps():
    from convscope.cli import build_parser
    from convscope.cli.train_cmd import config_from_args

    args = build_parser().parse_args(["train", "--diagnose"])
    assert config_from_args(args).runtime.diagnose == 10
    args = build_parser().parse_args(["train", "--diagnose", "25"])
    assert config_from_args(args).runtime.diagnose == 25
    assert config_from_args(build_parser().parse_args(["train"])).runtime.diagnose == 0
