"""Checkpoints that can grow (a 0.1 checkpoint resumes bit-identically), callbacks, config resolution, and the
write observer crash tests use."""

import json
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import convscope
from convscope._atomic import atomic_write_bytes, observe_writes
from convscope.cli import build_parser
from convscope.errors import ConfigError
from convscope.training import Callback
from convscope.training.checkpoint import STATE_VERSION, CheckpointError, load_state, upgrade_state
from convscope.training.config import FIELDS, config_from_dict
from convscope.training.setup import prepare
from tests.reference_weights import CASES_0_1, FIXTURES, digest, historical_digest, recorded_digest, run_v0_1, today

SMALL = today("small_fast_2_epochs")   # `train` and its arguments, as today's code reproduces 0.1's command


def cli(*args):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def small_fast(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    r = cli(*SMALL, "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def _epochs(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x[:20]]


def test_small_fast_matches_the_0_1_weights(small_fast, v0_1, tmp_path):
    """Today's code trains 0.1's small command bit for bit as 0.1's own code does on this machine."""
    r = run_v0_1(v0_1, ["train", *CASES_0_1["small_fast_2_epochs"]], tmp_path / "v01")
    assert r.returncode == 0, r.stderr
    assert digest(small_fast) == digest(tmp_path / "v01")
    assert [e["test_accuracy"] for e in _epochs(small_fast)] == [e["test_accuracy"] for e in _epochs(tmp_path / "v01")]
    if (recorded := recorded_digest("small_fast_2_epochs")) is not None:
        assert digest(small_fast) == recorded


def test_a_0_1_checkpoint_resumes_bit_identically(tmp_path, small_fast, v0_1):
    """A checkpoint 0.1's own code wrote when SIGKILLed after step 11 (its checkpoint is from step 10, in 0.1's
    layout: no version, numeric layer keys) resumes with today's code to the weights of an uninterrupted run."""
    run = tmp_path / "killed"
    r = run_v0_1(v0_1, ["train", *CASES_0_1["small_fast_2_epochs"]], run, kill_at_step=11)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    assert not (run / "model.safetensors").exists()
    state = load_state(run / "checkpoint.safetensors")
    assert "version" not in state and state["step"] == 10 and next(iter(state["model"])) == "0.weight"
    r = cli("train", "--resume", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert digest(run) == digest(small_fast)
    assert [e["test_accuracy"] for e in _epochs(run)] == [e["test_accuracy"] for e in _epochs(small_fast)]


def test_the_shipped_0_1_checkpoint_resumes(tmp_path, small_fast):
    """The checkpoint 0.1 wrote on the machine that made the fixture (tests/fixtures/v0.1, a 2-core AMD EPYC)
    resumes to the end. Where this machine trains the command to the weights 0.1 recorded on that machine, it
    computes as that one did and the resumed run is bit-identical to an uninterrupted one.

    Elsewhere the checkpoint's first 10 steps ran on other kernels: the run is bf16 (precision auto), and bf16
    rounding differs between kernels (AVX-512 BF16 on the AMD EPYC, AMX on an Intel Xeon), so the two runs part
    after step 10, and a 2-epoch model at 60-80% is still moving fast: on a 2-core Intel Xeon the resumed run ended
    at 57.75% against 60.6% uninterrupted, where seeds 1 and 2 of the same command ended at 75.0% and 82.1%. The
    final accuracy then says nothing about the resume, so elsewhere the check is that the foreign checkpoint
    resumes deterministically (a second copy resumes to bit-identical weights) and that the run learns (well
    above the 10% of chance). That a 0.1 checkpoint resumes bit-identically to an uninterrupted run is checked on
    every machine by test_a_0_1_checkpoint_resumes_bit_identically, with a checkpoint written here."""
    run = tmp_path / "killed"
    shutil.copytree(FIXTURES / "v0.1" / "killed-run", run)
    r = cli("train", "--resume", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(_epochs(run)) == len(_epochs(small_fast)) == 2
    resumed, uninterrupted = _epochs(run)[-1]["test_accuracy"], _epochs(small_fast)[-1]["test_accuracy"]
    if historical_digest("small_fast_2_epochs") == digest(small_fast):      # the fixture machine's kernels
        assert abs(resumed - uninterrupted) <= 0.01
        assert digest(run) == digest(small_fast)
    else:
        again = tmp_path / "again"
        shutil.copytree(FIXTURES / "v0.1" / "killed-run", again)
        r = cli("train", "--resume", str(again), "--quiet")
        assert r.returncode == 0, r.stderr
        assert digest(again) == digest(run)
        assert resumed > 0.3, resumed


def test_state_versions_fill_added_keys_and_refuse_newer_ones():
    v2_without_callbacks = {"version": 2, "engine": {}, "loop": {}, "rng": {}, "metrics_bytes": 0}
    assert upgrade_state(dict(v2_without_callbacks))["callbacks"] == {}
    v1 = {"model": {}, "optimizer": {}, "extra": {"ema": {}}, "step": 3, "epoch": 0, "batch": 3, "bad_streak": 0,
          "skipped": 0, "elapsed": 1.0, "acc": {}, "history": [], "best": {}, "stopped_early": False,
          "aug_rng": 1, "torch_rng": 2, "cuda_rng": [], "metrics_bytes": 10}
    v2 = upgrade_state(v1)
    assert v2["version"] == STATE_VERSION and v2["data_sha256"] is None
    assert v2["engine"] == {"model": {}, "optimizer": {}, "ema": {}}
    assert v2["loop"]["step"] == 3 and v2["rng"] == {"aug": 1, "torch": 2, "cuda": []}
    assert "best" not in v2["loop"] and v2["callbacks"] == {"best": {}}   # v4: the best epoch is a callback's
    v3 = {"version": 3, "engine": {}, "loop": {"step": 1, "best": {"val_accuracy": 0.5, "epoch": 1, "weights": None}},
          "rng": {}, "metrics_bytes": 0, "callbacks": {}, "data_sha256": None}
    assert upgrade_state(v3)["callbacks"]["best"] == {"val_accuracy": 0.5, "epoch": 1, "weights": None}
    assert STATE_VERSION == 4
    with pytest.raises(CheckpointError, match="newer convscope"):
        upgrade_state({"version": STATE_VERSION + 1})


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def on_train_start(self, loop):
        self.events.append(("start", loop.step))

    def on_step_end(self, loop, result):
        self.events.append(("step", loop.step))
        if loop.step == self.stop_at:
            loop.request_stop()

    def on_eval(self, loop, split, result, seconds):
        self.events.append(("eval", split, result.n))

    def on_epoch_end(self, loop, record):
        record["note"] = loop.epoch + 1                      # a callback may add keys to the epoch's line
        self.events.append(("epoch", record["epoch"]))

    def on_checkpoint(self, loop, path):
        self.events.append(("checkpoint", loop.step))

    def on_train_end(self, loop, run):
        self.events.append(("end", run.summary["steps"]))


def test_callbacks_see_every_event_in_order(tmp_path, tiny):
    rec = Recorder()
    run = convscope.train({**tiny, "checkpoint_every": 5}, out=tmp_path / "r", progress=False, callbacks=[rec])
    kinds = [e[0] for e in rec.events]
    assert rec.events[0] == ("checkpoint", 0) and rec.events[1] == ("start", 0) and rec.events[-1] == ("end", 16)
    assert [e[1] for e in rec.events if e[0] == "step"] == list(range(1, 17))
    assert [e for e in rec.events if e[0] == "eval"] == [("eval", "test", 2000)] * 2
    # checkpoints: before step 1, every 5 steps inside an epoch (5; 10 and 15 of the second), each epoch end
    assert [e[1] for e in rec.events if e[0] == "checkpoint"] == [0, 5, 8, 10, 15, 16]
    assert kinds.index("epoch") < kinds.index("checkpoint", kinds.index("eval"))
    assert [m["note"] for m in run.metrics if m["kind"] == "epoch"] == [1, 2]


def test_a_callback_can_stop_the_run(tmp_path, tiny):
    run = convscope.train(tiny, out=tmp_path / "r", progress=False, callbacks=[Recorder(stop_at=5)])
    assert run.summary["steps"] == 5 and run.summary["epochs"] == 1 and run.summary["stopped_early"]
    assert (tmp_path / "r/model.safetensors").exists()


def test_config_json_holds_what_ran(tmp_path, tiny):
    run = convscope.train({**tiny, "engine": "numpy", "model": "mlp", "epochs": 1, "tta": True, "ema": 0.9,
                           "channels_last": True}, out=tmp_path / "np", progress=False)
    written = json.loads((tmp_path / "np/config.json").read_text())   # in sections since issue 22
    assert (written["optim"]["ema"], written["eval"]["tta"]) == (0.0, False)
    assert {k: written["runtime"][k] for k in ("channels_last", "precision", "device")} == {
        "channels_last": False, "precision": "fp32", "device": "cpu"}
    assert written == run.config.to_dict() and config_from_dict(written) == run.config


def test_tta_only_for_runs_trained_with_flips():
    cfg, _ = prepare(config_from_dict({"dataset": "fashion-mnist", "train_subset": 100,
                                        "batch_size": 64, "hflip": False}))
    assert cfg.tta is False                           # fashion allows flips, but the run trains without them
    cfg, _ = prepare(config_from_dict({"dataset": "fashion-mnist", "train_subset": 100, "batch_size": 64}))
    assert cfg.hflip is True and cfg.tta is True      # by default, flips wherever the dataset allows them
    cfg, _ = prepare(config_from_dict({"train_subset": 100, "batch_size": 64}))
    assert cfg.hflip is False and cfg.tta is False    # digits: no flips, no flip TTA
    cfg, _ = prepare(config_from_dict({"dataset": "fashion-mnist", "train_subset": 100,
                                        "batch_size": 64, "hflip": True}))
    assert cfg.tta is True and cfg.precision != "auto" and cfg.device != "auto"
    with pytest.raises(ConfigError, match="does not allow horizontal flips"):
        prepare(config_from_dict({"hflip": True, "train_subset": 100, "batch_size": 64}))
    again, _ = prepare(cfg)
    assert again == cfg                               # resolving is idempotent


def test_flags_carry_the_fields_help_and_choices():
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "optimizer")
    assert train.choices == FIELDS["optimizer"].metadata["choices"] == ("sgd", "adam", "adamw", "adadelta")
    actions = {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    for name in ("ema", "tta", "engine", "grad_clip"):
        assert actions[name].help == FIELDS[name].metadata["help"] and actions[name].help
    # --lr also takes `find` (train only: sweep first, then train at the suggestion): the field's help, extended
    lr_help = FIELDS["lr"].metadata["help"]
    assert actions["lr"].help.startswith(lr_help.rstrip(")")) and "convscope lr-find" in actions["lr"].help
    assert actions["grad_clip"].type is float and actions["threads"].type("1") == 1 == actions["epochs"].type("1")
    with pytest.raises(ValueError):               # int fields read ASCII digits only: int("\u0661") would be 1
        actions["epochs"].type("\u0661")


def test_write_observer_sees_the_full_temp_file_before_the_rename(tmp_path):
    seen = []

    def observe(path, tmp):
        seen.append((path.name, tmp.read_bytes(), path.exists()))

    with observe_writes(observe):
        atomic_write_bytes(tmp_path / "a.bin", b"0123456789")
    atomic_write_bytes(tmp_path / "b.bin", b"x")                   # after the context: not observed
    assert seen == [("a.bin", b"0123456789", False)]
    assert (tmp_path / "a.bin").read_bytes() == b"0123456789" and not list(tmp_path.glob(".*.part"))


def test_safetensors_whose_header_length_starts_like_a_pickle_load(tmp_path):
    # the 8-byte header length comes first; with its low byte 0x80 the file starts as a pickle does
    from safetensors.torch import save_file

    from convscope.models.weights import load_weights

    for pad in range(300):
        path = tmp_path / "w.safetensors"
        save_file({"w": torch.arange(3.0)}, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert torch.equal(load_weights(path)["w"], torch.arange(3.0))
