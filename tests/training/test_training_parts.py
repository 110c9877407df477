"""Training features as parts (issue 22): best weights and early stopping as callbacks, the EMA and test-time
averaging wrappers, the engine factory, callbacks checked at the boundary, `train --resume` with flags, and old
runs that recorded options convscope removed."""

import json
import subprocess
import sys

import pytest
import torch

import convscope
from convscope.errors import ConfigError
from convscope.training import Callback, RunError
from convscope.runs import rundir as rd
from convscope.training.evaluate import TTA, evaluate
from tests.reference_weights import FIXTURES


def cli(*args):
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


class Snapshots(Callback):
    """The evaluated weights and validation accuracy at every epoch end."""

    def __init__(self):
        self.weights, self.val = {}, {}

    def on_epoch_end(self, loop, record):
        self.weights[record["epoch"]] = loop.engine.export_weights()
        self.val[record["epoch"]] = record["val_accuracy"]


def test_early_stopping_ends_with_the_best_epochs_weights(tmp_path, tiny):
    snaps = Snapshots()
    run = convscope.train({**tiny, "epochs": 6, "lr": 0.5, "val_fraction": 0.2, "early_stopping": 1, "ema": 0.0},
                          out=tmp_path / "r", progress=False, callbacks=[snaps])
    best = run.summary["best_val_epoch"]
    assert best == max(snaps.val, key=lambda e: (snaps.val[e], -e))                    # the first best epoch
    assert run.summary["best_val_accuracy"] == snaps.val[best]
    # patience 1: the run ends at the first epoch that does not improve (or after the last epoch)
    ran = run.summary["epochs"]
    assert ran == 6 or (snaps.val[ran] <= snaps.val[best] and ran == best + 1)
    final = run.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snaps.weights[best].items())


def test_without_early_stopping_the_run_keeps_its_last_weights_and_no_best_weights(tmp_path, tiny):
    snaps = Snapshots()
    run = convscope.train({**tiny, "epochs": 2, "val_fraction": 0.2, "ema": 0.0}, out=tmp_path / "r",
                          progress=False, callbacks=[snaps])
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in snaps.weights[2].items())
    from convscope.training.checkpoint import load_state

    best = load_state(tmp_path / "r" / rd.CHECKPOINT)["callbacks"]["best"]
    assert best["epoch"] == run.summary["best_val_epoch"] and best["weights"] is None


@pytest.mark.parametrize("bad, fragment", [([object()], r"callbacks\[0\]: object is not a convscope"),
                                           ([Callback(), "x"], r"callbacks\[1\]: str"),
                                           (Callback(), "callbacks: expected a list")])
def test_callbacks_that_are_not_callbacks_are_a_type_error_naming_the_argument(tmp_path, tiny, bad, fragment):
    with pytest.raises(TypeError, match=fragment):
        convscope.train(tiny, out=tmp_path / "r", progress=False, callbacks=bad)
    assert not (tmp_path / "r").exists()                 # refused before anything was written
    with pytest.raises(TypeError, match=fragment):
        convscope.resume(FIXTURES / "v0.1" / "finished-run", progress=False, callbacks=bad)


def test_engines_are_created_alike(tiny):
    from convscope.distributed import World
    from convscope.training.batches import TrainData
    from convscope.training.config import config_from_dict
    from convscope.training.engines import create_engine
    from convscope.training.engines.numpy import NumpyEngine
    from convscope.training.engines.torch import TorchEngine
    from convscope.training.setup import build_model, prepare

    for engine, cls in (("torch", TorchEngine), ("numpy", NumpyEngine)):
        cfg, data = prepare(config_from_dict({**tiny, "engine": engine}))
        assert isinstance(data, TrainData)
        eng = create_engine(cfg, build_model(cfg, data), data.norm, 8, World())
        assert isinstance(eng, cls) and eng.evaluate(data.test).n == len(data.test)
    with pytest.raises(ConfigError, match=r"several processes \(2\) need the torch engine"):
        NumpyEngine(cfg, build_model(cfg, data), data.norm, 8, World(rank=0, size=2, local_rank=0))


def test_tta_wrapper_averages_the_mirror_in_float32():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(5, 1, 8, 8)
    plain, averaged = TTA(model, False)(x), TTA(model, True)(x)
    assert torch.equal(plain, model(x)) and averaged.dtype == torch.float32
    assert torch.allclose(averaged, (model(x) + model(x.flip(3))) / 2)


# ---- train --resume with training flags -------------------------------------------------------------------------
@pytest.mark.parametrize("flags, named", [(["--epochs", "5"], "--epochs"),
                                          (["--lr", "0.2", "--model-arg", "width=8"], "--model-arg, --lr"),
                                          (["--recipe", "keras-example"], "--recipe")])
def test_resume_with_training_flags_is_refused_by_name(tmp_path, flags, named):
    r = cli("train", "--resume", FIXTURES / "v0.1" / "finished-run", *flags)
    assert r.returncode == 2 and named in r.stderr and "would be ignored" in r.stderr, r.stderr


# ---- runs recorded with options convscope removed ---------------------------------------------------------------
def _as_old_run(path, **retired):
    """Make the finished run in ``path`` look as if written before the options were removed: flat config.json
    with ``retired`` keys, model.json with tta_shift, manifest updated (and no model.json.sha256, which runs of
    that time did not write)."""
    run = convscope.load_run(path)
    rd.write_json(path / rd.CONFIG, {**run.config.flat(), **retired})
    meta = json.loads((path / rd.META).read_text())
    meta["sha256"][rd.CONFIG] = rd.sha256_file(path / rd.CONFIG)
    if "tta_shift" in retired:
        meta["tta_shift"] = retired["tta_shift"]
    del meta["digest_file"]          # runs of that time did not say they had model.json.sha256 either
    (path / rd.META).write_text(json.dumps(meta))
    (path / rd.META_SHA256).unlink()


def test_a_run_trained_with_tta_shift_loads_and_evaluates_without_the_shift(tmp_path, tiny):
    from convscope.data import load

    run = convscope.train(tiny, out=tmp_path / "r", progress=False)
    before = evaluate(run.model, load("digits", "test"), run.normalization, tta=run.tta)
    _as_old_run(tmp_path / "r", tta_shift=2)
    with pytest.warns(UserWarning, match="test-time shifts of 2 px.*no longer averages"):
        old = convscope.load_run(tmp_path / "r")
    after = evaluate(old.model, load("digits", "test"), old.normalization, tta=old.tta)
    assert after.accuracy == before.accuracy and after.loss == before.loss
    r = cli("eval", tmp_path / "r")
    assert r.returncode == 0 and "no longer averages" in r.stderr and f"{100 * before.accuracy:.2f}%" in r.stdout


def test_an_unfinished_run_trained_with_lookahead_is_refused_on_resume(tmp_path, tiny):
    run = convscope.train(tiny, out=tmp_path / "r", progress=False)
    _as_old_run(tmp_path / "r", lookahead=5, lookahead_alpha=0.5)
    (tmp_path / "r" / rd.META).unlink()                  # killed before it finished
    with pytest.raises(RunError, match="lookahead=5, which convscope removed.*cannot continue"):
        convscope.resume(tmp_path / "r", progress=False)
    assert run.summary["steps"] == 16


def test_best_weights_survive_a_kill_and_resume(tmp_path):
    """The best epoch (and its weights) live in the BestWeights callback's checkpointed state: a run killed after
    its best epoch resumes to the same final weights and summary as one never killed."""
    from tests.training.test_resume import ARGS, cli_killed_at

    args = [*ARGS, "--epochs", "4", "--val-fraction", "0.2", "--early-stopping", "2", "--lr", "0.5"]
    ref = cli("train", *args, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    r = cli_killed_at("step:20", "train", *args, "--out", str(tmp_path / "killed"))   # in epoch 3 of 4
    assert not (tmp_path / "killed" / rd.META).exists()
    r = cli("train", "--resume", tmp_path / "killed", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "killed" / rd.WEIGHTS).read_bytes() == (tmp_path / "ref" / rd.WEIGHTS).read_bytes()
    summaries = [json.loads((tmp_path / d / rd.SUMMARY).read_text()) for d in ("ref", "killed")]
    assert [(s["best_val_epoch"], s["best_val_accuracy"], s["epochs"]) for s in summaries] == [
        (summaries[0]["best_val_epoch"], summaries[0]["best_val_accuracy"], summaries[0]["epochs"])] * 2
