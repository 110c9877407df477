"""``convscope train --check``: the main job's model passes; each deliberately broken model (broken_models.py)
fails with its reason, and the healthy ones raise no false alarm."""

import json
import math

import pytest
import torch

from convscope.cli import main
from convscope.errors import SettingWarning
from convscope.training.sanity import check, fixed_batch

from . import broken_models  # noqa: F401  (registers the test-* models)

FAST = dict(threads=1, precision="fp32")


@pytest.fixture(scope="module")
def main_job():
    return check(FAST)   # the default config: fast2 on the digits


def test_the_main_jobs_model_passes_with_its_initial_loss_near_ln_c(main_job):
    assert main_job.passed and main_job.failures == [] and main_job.causes == []
    assert main_job.model == "fast2" and main_job.batch == 64 and main_job.lr == 0.1
    assert main_job.expected_initial_loss == pytest.approx(math.log(10))
    assert 0.9 < main_job.initial_loss / math.log(10) < 1.1
    assert main_job.learned_at is not None and main_job.learned_at < 50 and main_job.batch_accuracy == 1.0
    assert main_job.losses[main_job.learned_at] < main_job.losses[0] / 5   # memorised: the loss fell too


@pytest.mark.parametrize("model, failure, cause", [
    ("test-dead-relu", "cannot_overfit", "dead_units"),
    ("test-plain", "cannot_overfit", "activation_scale"),
    ("test-hot-logits", "initial_loss", "initial_loss"),
])
def test_each_broken_model_fails_with_its_reason(model, failure, cause):
    res = check({**FAST, "model": model}, max_steps=60)
    assert not res.passed
    assert failure in {f.code for f in res.failures}
    assert cause in {f.code for f in res.causes}
    if model == "test-dead-relu":   # nothing learned: the loss stays at ln C, the accuracy near chance
        assert res.steps == 60 and res.batch_accuracy < 0.3 and res.best_loss > 0.95 * math.log(10)
        assert {f.evidence["layer"] for f in res.causes} == {"relu1", "relu2"}
    if model == "test-hot-logits":
        assert res.initial_loss > 10 and "vs expected 2.30" in res.failures[0].message


def test_a_learning_rate_that_diverges_fails_without_blaming_the_init():
    with pytest.warns(SettingWarning, match="far above the usual range"):     # said before the check runs
        res = check({**FAST, "model": "mlp", "lr": 1e4, "momentum": 0.0}, max_steps=60)
    assert not res.passed and res.causes == []
    assert {f.code for f in res.failures} & {"nonfinite", "cannot_overfit"}


def test_the_batch_holds_every_class_and_is_seeded():
    labels = torch.arange(10).repeat_interleave(100)[torch.randperm(1000, generator=torch.Generator().manual_seed(1))]
    idx = fixed_batch(labels, 64, seed=0)
    counts = torch.bincount(labels[idx], minlength=10)
    assert len(set(idx.tolist())) == 64 and counts.min() == 6 and counts.max() == 7
    assert torch.equal(idx, fixed_batch(labels, 64, seed=0)) and not torch.equal(idx, fixed_batch(labels, 64, seed=1))


def test_cli_exit_status_and_words(capsys):
    assert main(["train", "--check", "--model", "mlp", "--threads", "1", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "passed: the model can learn" in out and "expected -log(1/10) = 2.303" in out
    assert main(["train", "--check", "--model", "test-dead-relu", "--check-steps", "30", "--threads", "1",
                 "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["failures"][0]["code"] == "cannot_overfit" and data["steps"] == 30
    assert main(["train", "--check", "--resume", "runs/x"]) == 2
    assert "--check and --lr find are for a new run" in capsys.readouterr().err
    for flag in (["--json"], ["--check-steps", "5"]):          # a --check option without --check is not ignored
        assert main(["train", *flag, "--epochs", "1"]) == 2
        assert f"{flag[0]}: goes with --check" in capsys.readouterr().err
