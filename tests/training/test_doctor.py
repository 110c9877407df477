"""``convscope doctor``: each finding is triggered by the broken configuration it is meant for, the other
findings stay silent there, and a short version of the main job gets a clean bill.

Every run is tiny (512 or 2,048 digits, 16 steps, fp32), trained in this process with ``--diagnose 2``."""

import json

import pytest

import convscope
from convscope.cli import main
from convscope.runs.rundir import RunError
from convscope.training.doctor import examine

from . import broken_models  # noqa: F401  (registers the test-* models)

BASE = dict(train_subset=512, batch_size=64, epochs=2, threads=1, precision="fp32", diagnose=2, translate=0,
            stroke=0.0, blur=0.0)
CASES = {
    # name: (config, findings that must appear, findings that must not)
    "main": (dict(train_subset=2048, batch_size=256), set(), None),
    "lr10": (dict(lr=10.0), {"update_ratio", "weight_growth", "loss_explosion", "not_learning"},
             {"initial_loss", "activation_scale"}),
    "dead_relu": (dict(model="test-dead-relu"), {"dead_units", "not_learning"},
                  {"initial_loss", "update_ratio", "weight_growth", "loss_explosion", "activation_scale"}),
    "output_scale": (dict(model="test-hot-logits", optimizer="adam", lr=1e-3), {"initial_loss"},
                     {"activation_scale", "dead_units", "update_ratio"}),
    "no_normalization": (dict(model="test-plain"), {"activation_scale", "not_learning"},
                         {"initial_loss", "update_ratio", "weight_growth", "loss_explosion"}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("doctor")
    return {name: convscope.train({**BASE, **cfg}, out=base / name, progress=False).path
            for name, (cfg, _, _) in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_configuration_gets_its_finding_and_no_other(runs, case):
    _, expected, forbidden = CASES[case]
    codes = {f.code for f in examine(runs[case]).findings}
    if forbidden is None:   # the main job: a clean bill
        assert codes == set(), examine(runs[case]).findings
    else:
        assert expected <= codes, (case, codes)
        assert not codes & forbidden, (case, codes & forbidden)


def test_the_findings_carry_their_evidence(runs):
    dead = [f for f in examine(runs["dead_relu"]).findings if f.code == "dead_units"]
    assert {f.evidence["layer"] for f in dead} == {"relu1", "relu2"}
    assert all(f.evidence["dead_fraction"] == 1.0 and f.evidence["since_step"] == 0 for f in dead)
    assert "relu1: 100% of units dead from the first step" in dead[0].message
    init = next(f for f in examine(runs["output_scale"]).findings if f.code == "initial_loss")
    assert init.evidence["initial_loss"] > 10 and init.evidence["expected"] == pytest.approx(2.302585, rel=1e-6)
    assert "vs expected 2.30" in init.message and "output layer" in init.message
    ratio = next(f for f in examine(runs["lr10"]).findings if f.code == "update_ratio")
    assert ratio.evidence["update_ratio"] > 0.5 and "learning rate too high?" in ratio.message


def test_a_run_that_goes_non_finite_is_caught_at_its_step(tmp_path):
    """lr 1e4 without normalization: the loss turns inf/NaN; the doctor names the step and the gradient norm
    before it, also for the unfinished (diverged) run."""
    with pytest.raises(convscope.training.TrainingDiverged):
        convscope.train({**BASE, "model": "test-hot-logits", "lr": 1e4, "max_bad_steps": 3, "diagnose": 1},
                        out=tmp_path / "r", progress=False)
    c = examine(tmp_path / "r")
    assert not c.finished
    f = next(f for f in c.findings if f.code == "nonfinite")
    steps = [json.loads(x) for x in (tmp_path / "r" / "diagnostics.jsonl").read_text().splitlines()]
    event = next(s for s in steps if s["kind"] == "nonfinite")
    assert f.evidence["step"] == event["step"] and f"loss went non-finite at step {event['step']}" in f.message
    assert event["last_finite_step"] == event["step"] - 1 and event["last_grad_norm"] > 0


def test_cli_prints_words_and_json_and_strict_exit_status(runs, capsys):
    assert main(["doctor", str(runs["main"])]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert main(["doctor", str(runs["dead_relu"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {f["code"] for f in data["findings"]} >= {"dead_units"} and data["finished"] is True
    assert main(["doctor", str(runs["dead_relu"]), "--strict"]) == 1
    assert main(["doctor", str(runs["main"]), "--strict"]) == 0


def test_a_run_without_diagnostics_is_refused_with_advice(tmp_path, capsys):
    run = convscope.train({**BASE, "diagnose": 0, "epochs": 1, "model": "mlp"}, out=tmp_path / "r", progress=False)
    with pytest.raises(RunError, match="--diagnose"):
        examine(run.path)
    assert main(["doctor", str(run.path)]) == 2
    assert "trained without diagnostics" in capsys.readouterr().err
