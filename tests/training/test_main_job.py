"""The main job, `convscope train` (in `--deterministic` mode, which changes only the choice of kernels), in
full; its weights are bit-identical to convscope 0.1's; and the eval/predict/models commands."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from convscope.data import load


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("main")
    r = subprocess.run([sys.executable, "-m", "convscope", "train", "--deterministic"], cwd=cwd, capture_output=True,
                       text=True, timeout=3600)
    assert r.returncode == 0, r.stderr
    return cwd / "runs" / "fast2-digits", r


def test_main_job_reaches_98_percent_offline(main_run):
    path, r = main_run
    summary = json.loads((path / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.98 and summary["test_images"] == 2000
    assert "test accuracy" in r.stdout and "summary" in r.stdout
    assert (path / "curve.png").stat().st_size > 10_000


def test_main_job_repeats_bit_for_bit(main_run, tmp_path):
    """A second run of the main job on this machine gives bit-identical weights; where a digest was recorded on a
    machine like this one (bench/results/weight_digests.json), they equal it too."""
    from tests.reference_weights import digest, recorded_digest

    r = subprocess.run([sys.executable, "-m", "convscope", "train", "--deterministic", "--quiet", "--out",
                        str(tmp_path / "again")], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr
    assert digest(tmp_path / "again") == digest(main_run[0])
    if (recorded := recorded_digest("main_job")) is not None:
        assert digest(main_run[0]) == recorded


def test_main_job_weights_are_those_of_0_1(tmp_path, v0_1):
    """0.1's main job, with the handwriting augmentations added since switched off, is bit for bit what 0.1's
    own code (run from git history, on this machine) trains."""
    from tests.reference_weights import digest, recorded_digest, run_v0_1, today

    r = subprocess.run([sys.executable, "-m", "convscope", *today("main_job_as_0_1"), "--quiet",
                        "--out", str(tmp_path / "now")], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr
    r = run_v0_1(v0_1, ["train", "--deterministic"], tmp_path / "v01")
    assert r.returncode == 0, r.stderr
    assert digest(tmp_path / "now") == digest(tmp_path / "v01")
    if (recorded := recorded_digest("main_job_as_0_1")) is not None:
        assert digest(tmp_path / "now") == recorded


def test_main_job_trains_with_the_handwriting_augmentations(main_run):
    path, _ = main_run
    cfg = json.loads((path / "config.json").read_text())
    meta = json.loads((path / "model.json").read_text())
    assert cfg["augment"]["stroke"] == 0.6 and cfg["augment"]["blur"] == 0.8 and meta["prepare"] == "mnist"
    assert cfg["model"]["name"] == meta["model"] == "fast2"      # the default since speed round 2 (issue 15)


def test_eval_prints_confusion_and_writes_png(main_run):
    path, _ = main_run
    r = subprocess.run([sys.executable, "-m", "convscope", "eval", str(path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads((path / "summary.json").read_text())
    assert f"accuracy {100 * summary['test_accuracy']:.2f}%" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
    matrix = np.array([[int(v) for v in row[1:11]] for row in rows[:10]])
    assert matrix.sum() == 2000 and matrix.sum(1).tolist() == load("digits", "test").class_counts()
    assert np.trace(matrix) == round(summary["test_accuracy"] * 2000)
    with Image.open(path / "eval" / "confusion-digits-test.png") as img:
        assert img.format == "PNG"


def test_predict_any_size_image(main_run, tmp_path):
    path, _ = main_run
    test = load("digits", "test")
    idx = int((test.labels == 7).nonzero()[0])
    digit = Image.fromarray(test.images[idx, 0].numpy()).resize((112, 112), Image.NEAREST).convert("RGB")
    digit.save(tmp_path / "seven.jpg", quality=95)
    r = subprocess.run([sys.executable, "-m", "convscope", "predict", str(path), str(tmp_path / "seven.jpg"),
                        "--prepare", "none"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.split(": ")[1].startswith("7 ") and first.count("%") == 3
    assert "converted RGB to grayscale" in r.stdout and "resized 112 x 112 to 28 x 28" in r.stdout
    (tmp_path / "junk.png").write_text("not an image")
    r = subprocess.run([sys.executable, "-m", "convscope", "predict", str(path), str(tmp_path / "junk.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "junk.png: not a readable" in r.stderr


def test_models_lists_the_zoo():
    r = subprocess.run([sys.executable, "-m", "convscope", "models"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert names == sorted(["fast", "fast2", "keras-example", "lenet5", "mlp", "pytorch-example", "resnet-small"])
    pt = next(line for line in r.stdout.splitlines() if line.startswith("pytorch-example"))
    assert "1,199,882" in pt  # 320 + 18,496 + 1,179,776 + 1,290 parameters


def test_export_onnx_of_the_main_job_predicts_as_torch_on_all_test_images(main_run, tmp_path):
    """`convscope export` of the main job's model: onnxruntime on the 2,000 test images gives the predictions of
    the run itself (computed here with convscope's own evaluation, not the command's check)."""
    import onnxruntime as ort
    import torch

    from convscope.training import load_run
    from convscope.training.evaluate import predict_logits

    path, _ = main_run
    r = subprocess.run([sys.executable, "-m", "convscope", "export", str(path), "--onnx", str(tmp_path / "m.onnx")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "predictions identical (2,000/2,000)" in r.stdout
    run, test = load_run(path), load("digits", "test")
    want = predict_logits(run.model, test.images, run.normalization, tta=run.tta)           # (2000, 10)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"pixels": test.images.numpy()})[0])          # all 2,000 in one batch
    assert torch.equal(got.argmax(1), want.argmax(1))
    assert float((got - want).abs().max()) < 1e-3
