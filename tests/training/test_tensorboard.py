"""TensorBoard event files, read back with TensorBoard's own reader (EventAccumulator): written live by
``train --tensorboard`` and converted afterwards by ``convscope tensorboard RUN``, with the values of the
run's metrics.jsonl and diagnostics.jsonl."""

import json
import sys

import pytest

import convscope
from convscope.cli import main
from convscope.errors import ConfigError
from convscope.runs.rundir import RunError
from convscope.training.tensorboard import convert, filter_grid, summary_writer

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = dict(model="fast2", train_subset=512, batch_size=64, epochs=2, threads=1, precision="fp32", log_every=1,
            diagnose=4, translate=0, stroke=0.0, blur=0.0)


def read(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return convscope.train({**TINY, "tensorboard": True}, out=tmp_path_factory.mktemp("tb") / "r", progress=False).path


def test_live_events_hold_the_runs_numbers(run):
    acc = read(run / "tensorboard")
    tags = acc.Tags()
    metrics = lines(run / "metrics.jsonl")
    steps = [m for m in metrics if m["kind"] == "step"]
    epochs = [m for m in metrics if m["kind"] == "epoch"]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [m["step"] for m in steps] == list(range(16))   # every step
    assert [e.value for e in loss] == pytest.approx([m["loss"] for m in steps], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([m["lr"] for m in steps], rel=1e-6)
    test_acc = acc.Scalars("epoch/test_accuracy")
    assert [(e.step, e.value) for e in test_acc] == [(m["step"], pytest.approx(m["test_accuracy"], rel=1e-6))
                                                     for m in epochs]
    # diagnostics: a histogram per epoch of each statistic over the steps observed in it (steps 0, 4 | 8, 12)
    diags = [d for d in lines(run / "diagnostics.jsonl") if d["kind"] == "diag"]
    layer = next(iter(diags[0]["activations"]))
    hist = acc.Histograms(f"diagnostics/{layer}/dead_fraction")
    assert [h.step for h in hist] == [8, 16]
    for h, epoch in zip(hist, (1, 2)):
        values = [d["activations"][layer]["dead_fraction"] for d in diags if d["epoch"] == epoch]
        assert h.histogram_value.num == len(values) == 2
        assert h.histogram_value.sum == pytest.approx(sum(values), abs=1e-9)
    conv = next(iter(diags[0]["params"]))
    ratios = acc.Scalars(f"diagnostics_step/{conv}/update_ratio")
    assert [(e.step, e.value) for e in ratios] == [(d["step"], pytest.approx(d["params"][conv]["update_ratio"],
                                                                             rel=1e-6)) for d in diags]
    # images at each epoch end: the first conv's filters, the confusion matrix
    assert {"images/first_layer_filters", "images/confusion"} <= set(tags["images"])
    filters = acc.Images("images/first_layer_filters")
    assert [i.step for i in filters] == [8, 16]
    model = convscope.load_run(run).model
    grid = filter_grid(next(m for m in model.modules() if m.__class__.__name__ == "Conv2d").weight)
    assert (filters[-1].height, filters[-1].width) == tuple(grid.shape[1:])
    assert acc.Images("images/confusion")[-1].width > 200


def test_convert_writes_the_same_tags_from_the_run_folder(run, capsys):
    live = read(run / "tensorboard")
    with pytest.raises(RunError, match="--force"):
        convert(run)
    assert main(["tensorboard", str(run), "--force"]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    conv = read(run / "tensorboard")
    for tag in ("train/loss", "train/lr", "train/grad_norm", "epoch/test_accuracy", "epoch/train_loss"):
        assert [(e.step, e.value) for e in conv.Scalars(tag)] == [(e.step, e.value) for e in live.Scalars(tag)]
    for tag in live.Tags()["histograms"]:
        assert [(h.step, h.histogram_value.num, h.histogram_value.sum) for h in conv.Histograms(tag)] == \
               [(h.step, h.histogram_value.num, h.histogram_value.sum) for h in live.Histograms(tag)]
    # images once, from the final weights, at the last epoch's step; the live run's last filters are the same
    filters = conv.Images("images/first_layer_filters")
    assert [i.step for i in filters] == [16]
    assert filters[0].encoded_image_string == live.Images("images/first_layer_filters")[-1].encoded_image_string
    assert [i.step for i in conv.Images("images/confusion")] == [16]
    assert not list(run.glob(".tensorboard.part"))


def test_a_run_without_diagnostics_has_no_diagnostics_tags(tmp_path):
    r = convscope.train({**TINY, "model": "mlp", "diagnose": 0, "epochs": 1}, out=tmp_path / "r", progress=False)
    acc = read(convert(r.path))
    assert "train/loss" in acc.Tags()["scalars"] and not acc.Tags()["histograms"]
    assert acc.Tags()["images"] == ["images/confusion"]   # an MLP has no convolution


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # import fails as when not installed
    with pytest.raises(ConfigError, match=r"pip install 'convscope\[tensorboard\]'"):
        summary_writer(tmp_path)


def test_a_resumed_writers_file_sorts_after_the_first_runs_file(tmp_path):
    """TensorBoard reads event files in name order: a resume within the first file's second must not sort first.
    The first file is named as a run started this second on a host that sorts after any real one."""
    import time

    first = tmp_path / f"events.out.tfevents.{int(time.time()):010d}.zzzz.99999.0"
    first.write_bytes(b"")
    w = summary_writer(tmp_path, purge_step=5)
    w.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and names[0] == first.name


def test_convert_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="not a convscope run directory"):
        convert(tmp_path)


def test_a_killed_and_resumed_run_has_each_step_once(tmp_path):
    """SIGKILL after step 17 (checkpoint at 15): the resumed run's writer purges steps 15 and 16 of the first
    file, so TensorBoard shows each step once, with the values of the finished metrics.jsonl."""
    import signal
    import subprocess

    from .test_resume import LAUNCHER

    out = tmp_path / "run"
    args = ["train", "--model", "mlp", "--train-subset", "768", "--batch-size", "64", "--epochs", "3", "--threads", "1",
            "--checkpoint-every", "5", "--log-every", "1", "--precision", "fp32", "--quiet", "--tensorboard",
            "--out", str(out)]
    r = subprocess.run([sys.executable, str(LAUNCHER), "--kill-at", "step:17", "--", *args], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert len(list((out / "tensorboard").glob("events.*"))) == 2
    loss = read(out / "tensorboard").Scalars("train/loss")
    steps = [m for m in lines(out / "metrics.jsonl") if m["kind"] == "step"]
    assert [e.step for e in loss] == list(range(36))
    assert [e.value for e in loss] == pytest.approx([m["loss"] for m in steps], rel=1e-6)
