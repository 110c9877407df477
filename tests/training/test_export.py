"""ONNX export (convscope export / Run.export_onnx): every model of the zoo exports with a dynamic batch axis and
onnxruntime reproduces torch; the check refuses a graph that does not reproduce the run; bad arguments are
refused by name. The main job's model is checked on its 2,000 test images in test_main_job.py."""

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from convscope.data import load
from convscope.data.normalize import Normalization
from convscope.errors import ConfigError
from convscope.models import create_model, list_models
from convscope.training.export import ExportError, export_onnx


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_every_zoo_model_exports_and_onnxruntime_matches_torch(small_run, tmp_path, name):
    entry = next(e for e in list_models() if e.name == name)
    c, h, w = entry.default_input
    torch.manual_seed(0)
    model = create_model(name).eval()
    norm = Normalization((0.2,) * c, (0.3,) * c)
    run = dataclasses.replace(small_run, model=model, normalization=norm, input_shape=(c, h, w))
    out = export_onnx(run, tmp_path / f"{name}.onnx", check=False)
    session = _session(out.path)
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_inputs()[0].shape[1:] == [c, h, w]
    for batch in (1, 5):                                # the batch axis is dynamic: any batch size runs
        u8 = torch.randint(0, 256, (batch, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        got = session.run(None, {"pixels": u8.numpy()})[0]
        with torch.no_grad():
            want = model(norm.apply(u8)).numpy()        # the oracle: torch on the same pixels
        assert got.shape == want.shape == (batch, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_normalized_input_and_metadata(small_run, tmp_path):
    out = small_run.export_onnx(tmp_path / "m.onnx", input="normalized", check=False)
    meta = {p.key: p.value for p in onnx.load(str(out.path)).metadata_props}
    assert json.loads(meta["convscope.classes"]) == list(small_run.classes)
    norm = json.loads(meta["convscope.normalization"])
    assert norm == {"mean": list(small_run.normalization.mean), "std": list(small_run.normalization.std)}
    test = load("digits", "test")
    x = small_run.preprocess(test.images[:64])          # (64, 1, 28, 28) float32, what a consumer computes
    got = _session(out.path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = small_run.logits(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


class _Counting(nn.Module):
    """Adds how many times forward has run: tracing bakes the count in, so the graph cannot reproduce eager torch."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x) + 100.0 * self.calls * torch.arange(10, dtype=x.dtype)


def test_a_graph_that_does_not_reproduce_the_run_is_refused_and_nothing_written(small_run, tmp_path):
    run = dataclasses.replace(small_run, model=_Counting(small_run.model))
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="predictions differ.*nothing was written"):
        export_onnx(run, target, check=load("digits", "test"))   # 4 batches of 500
    assert not target.exists() and not list(tmp_path.iterdir())


def test_bad_arguments_are_refused_by_name(small_run, tmp_path):
    with pytest.raises(ConfigError, match="input"):
        export_onnx(small_run, tmp_path / "m.onnx", input="rgb", check=False)
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(small_run, tmp_path / "m.onnx", opset=7, check=False)
    with pytest.raises(ConfigError, match="is a folder"):
        export_onnx(small_run, tmp_path, check=False)
    with pytest.raises(ConfigError, match="run"):
        export_onnx(small_run.model, tmp_path / "m.onnx", check=False)
    with pytest.raises(ConfigError, match="check"):
        export_onnx(small_run, tmp_path / "m.onnx", check="yes")
    assert not list(tmp_path.iterdir())


def test_an_existing_file_other_than_an_earlier_export_is_never_replaced(small_run, tmp_path):
    """A new user's `export RUN --onnx RUN/model.safetensors` replaced the run's trained weights: an existing file
    is replaced only when it is an earlier export (its doc_string says so), never a user's own model.onnx."""
    weights = small_run.path / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(ConfigError, match="exists and is not an ONNX file an earlier convscope export wrote"):
        export_onnx(small_run, weights, check=False)
    assert weights.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ConfigError, match="notes-convscope.onnx"):
        export_onnx(small_run, notes, check=False)
    assert notes.read_text() == "mine"
    theirs = tmp_path / "theirs.onnx"                # an ONNX file of the user's own: refused, as any other file
    theirs.write_bytes(b"\x08\x08\x12\x07pytorch")
    with pytest.raises(ConfigError, match="theirs.onnx exists and is not an ONNX file an earlier convscope export"):
        export_onnx(small_run, theirs, check=False)
    assert theirs.read_bytes() == b"\x08\x08\x12\x07pytorch"
    first = export_onnx(small_run, tmp_path / "m.onnx", check=False).path      # an earlier export is replaced
    assert export_onnx(small_run, first, check=False).path == first and first.stat().st_size > 0
