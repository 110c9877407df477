"""Hostile run files: safetensors checkpoints and weights (load_state, load_weights), the JSON of a run
directory (load_run) and its metrics.jsonl, fuzzed byte by byte and value by value — including mutations that keep
every recorded SHA-256 consistent, as a hostile author of a run directory could — and replaced by special files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

import convscope
from convscope.runs import rundir as rd
from convscope.training.run import Run, model_metadata
from convscope.training.checkpoint import FORMAT, _digest, load_state, load_weights, save_state, save_weights
from convscope.training.config import TrainConfig
from convscope.runs import RunError

from .conftest import outcome, time_bound
from .test_data_files_fuzz import _op, mutate

MB = 1 << 20


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])


STATE = {"epoch": 3, "lr": 0.1, "nan": float("nan"), "t": torch.arange(6.0).reshape(2, 3), "n": None,
         "nested": {1: (torch.tensor([1, 2], dtype=torch.int64), "x"), "k": [True, 2.5]}}


@pytest.fixture(scope="module")
def state_bytes(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("state") / "s.safetensors"
    save_state(p, STATE)
    return p.read_bytes()


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("weights") / "w.safetensors"
    save_weights(p, {"conv.weight": torch.ones(2, 1, 3, 3), "fc.bias": torch.zeros(4, dtype=torch.bfloat16)})
    return p.read_bytes()


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@FUZZ
@given(st.lists(_op, max_size=4))
def test_load_state_fuzz_bytes(state_bytes, ops):
    data = mutate(state_bytes, ops)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.safetensors"
        p.write_bytes(data)
        res = outcome(lambda: load_state(p), seconds=5, max_bytes=32 * MB)
    if data == state_bytes:
        assert _same(STATE, res)
    else:
        assert isinstance(res, (dict, Exception))


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                         st.sampled_from(["$t", "$d", "$tuple", "$f", "a", "t0"]), kids, max_size=3),
                     max_leaves=12)


@FUZZ
@given(_json, st.booleans())
def test_load_state_fuzz_skeleton_with_valid_digest(skeleton, deep):
    """A hostile file whose digest matches (the SHA-256 detects corruption, it is no signature)."""
    text = json.dumps(skeleton)
    if deep:
        text = "[" * 100_000 + "]" * 100_000  # recursion bomb
    tensors = {"t0": torch.ones(2)}
    blob = st_save(tensors, metadata={"format": FORMAT, "skeleton": text, "sha256": _digest(text, tensors)})
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.safetensors"
        p.write_bytes(blob)
        outcome(lambda: load_state(p), seconds=5, max_bytes=64 * MB)


@FUZZ
@given(st.lists(_op, max_size=4), st.booleans())
def test_load_weights_fuzz(weights_bytes, ops, with_sha):
    data = mutate(weights_bytes, ops)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "w.safetensors"
        p.write_bytes(data)
        sha = hashlib.sha256(weights_bytes).hexdigest() if with_sha else None
        res = outcome(lambda: load_weights(p, expected_sha256=sha), seconds=5, max_bytes=32 * MB)
    if data == weights_bytes:
        assert set(res) == {"conv.weight", "fc.bias"} and res["fc.bias"].dtype == torch.bfloat16
    elif with_sha:
        assert isinstance(res, Exception)


def test_special_files_refused(tmp_path, fifo):
    for fn in (load_state, load_weights):
        err = outcome(lambda fn=fn: fn(fifo), seconds=5)
        assert isinstance(err, convscope.ConvscopeError)
    (tmp_path / "z.safetensors").symlink_to("/dev/zero")
    err = outcome(lambda: load_weights(tmp_path / "z.safetensors", expected_sha256="0" * 64), seconds=5)
    assert isinstance(err, convscope.ConvscopeError)


# ---- run directories --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A complete run directory of an untrained width-4 `fast` model, written with the run-directory functions."""
    from convscope.data.normalize import Normalization
    from convscope.models import create_model

    path = tmp_path_factory.mktemp("run") / "r"
    path.mkdir()
    cfg = TrainConfig().replace(model_args={"width": 4})
    torch.manual_seed(0)
    model = create_model("fast", in_channels=1, image_size=(28, 28), num_classes=10, width=4)
    rd.write_json(path / rd.CONFIG, cfg.to_dict())
    save_weights(path / rd.WEIGHTS, model.state_dict())
    rd.write_json(path / rd.SUMMARY, {"test_accuracy": 0.1})
    meta = model_metadata(model, cfg, Normalization((0.13,), (0.31,)), tuple("0123456789"), (1, 28, 28))
    rd.write_manifest(path, meta)
    assert isinstance(convscope.load_run(path), Run)
    return path


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(), st.text(max_size=6),
                    st.lists(st.integers(-2, 40), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                               max_size=2))


@st.composite
def json_edits(draw):
    file = draw(st.sampled_from([rd.META, rd.META, rd.META, rd.CONFIG, rd.SUMMARY]))
    path = draw(st.lists(st.sampled_from(["input_shape", "model", "model_args", "num_classes", "classes",
                                          "normalization", "mean", "std", "sha256", rd.CONFIG, rd.WEIGHTS, "width",
                                          "epochs", "dataset", "lr", 0, 1, 2]), min_size=0, max_size=3))
    return file, path, draw(_values), draw(st.booleans())


def _edit(obj, path, value):
    """Set obj[path...] = value where the path exists (else on the deepest container reached); path [] replaces."""
    if not path:
        return value
    cur = obj
    for key in path[:-1]:
        if (isinstance(cur, dict) and key in cur) or (isinstance(cur, list) and isinstance(key, int)
                                                      and key < len(cur)):
            cur = cur[key]
    last = path[-1]
    if (isinstance(cur, dict) and isinstance(last, str)) or (isinstance(cur, list) and isinstance(last, int)
                                                            and last < len(cur)):
        cur[last] = value
    return obj


@FUZZ
@given(st.lists(json_edits(), min_size=1, max_size=3))
def test_load_run_fuzz_json(tiny_run, edits):
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        shutil.copytree(tiny_run, run)
        for file, path, value, rehash in edits:
            obj = json.loads((run / file).read_text())
            (run / file).write_text(json.dumps(_edit(obj, path, value)))
            if rehash and file != rd.META:  # keep model.json's record of the file consistent
                meta = json.loads((run / rd.META).read_text())
                if isinstance(meta, dict) and isinstance(meta.get("sha256"), dict):
                    meta["sha256"][file] = rd.sha256_file(run / file)
                    (run / rd.META).write_text(json.dumps(meta))
        res = outcome(lambda: convscope.load_run(run), seconds=20, max_bytes=64 * MB)
        if isinstance(res, Run):
            x = torch.zeros(1, *res.input_shape)
            assert res.model(res.preprocess(x.to(torch.uint8))).shape == (1, len(res.classes))


@FUZZ
@given(st.sampled_from([rd.META, rd.CONFIG, rd.SUMMARY, rd.WEIGHTS]), st.lists(_op, min_size=1, max_size=3))
def test_load_run_fuzz_bytes(tiny_run, file, ops):
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        shutil.copytree(tiny_run, run)
        (run / file).write_bytes(mutate((run / file).read_bytes(), ops))
        outcome(lambda: convscope.load_run(run), seconds=20, max_bytes=64 * MB)


def test_run_files_replaced_by_special_files(tiny_run, tmp_path):
    import os

    for file in (rd.META, rd.CONFIG, rd.WEIGHTS, rd.SUMMARY):
        run = tmp_path / file
        shutil.copytree(tiny_run, run)
        (run / file).unlink()
        os.mkfifo(run / file)
        err = outcome(lambda run=run: convscope.load_run(run), seconds=5)
        assert isinstance(err, convscope.ConvscopeError), file


def test_a_tampered_geometry_with_empty_layers_is_a_clear_error(tiny_run, tmp_path):
    """Found by the fuzzer: input_shape [1, 1, 1] builds zero-element layers; the answer is a CheckpointError."""
    import json
    import shutil

    from convscope.training.checkpoint import CheckpointError, sha256_file

    run = tmp_path / "r"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "model.json").read_text())
    meta["input_shape"] = [1, 1, 1]
    (run / "model.json").write_text(json.dumps(meta))
    assert sha256_file(run / "model.safetensors") == meta["sha256"]["model.safetensors"]
    with pytest.raises(CheckpointError):
        convscope.load_run(run)


# ---- metrics.jsonl (item 28) ----------------------------------------------------------------------------------


@pytest.fixture
def run_copy(small_run, tmp_path):
    """The small run's Run object pointed at a fresh folder whose metrics.jsonl the test writes."""
    return dataclasses.replace(small_run, path=tmp_path)


@pytest.mark.parametrize("text, match", [
    ('{"kind": "epoch", "epoch": 1}\n{oops\n', r"metrics.jsonl, line 2: not JSON"),
    ("[1, 2]\n", r"metrics.jsonl, line 1: expected a JSON object.*list"),
    ('\n"text"\n', r"metrics.jsonl, line 2: expected a JSON object.*str"),
    (b"\xff\xfe", r"metrics.jsonl: not UTF-8"),
])
def test_metrics_lines_that_are_not_objects(run_copy, text, match):
    p = run_copy.path / "metrics.jsonl"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunError, match=match):
        _ = run_copy.metrics


def test_metrics_fifo_does_not_hang(run_copy):
    os.mkfifo(run_copy.path / "metrics.jsonl")
    with time_bound(10), pytest.raises(RunError, match="metrics.jsonl.*FIFO"):
        _ = run_copy.metrics


def test_metrics_valid_and_missing(run_copy, small_run):
    assert run_copy.metrics == []
    (run_copy.path / "metrics.jsonl").write_bytes((small_run.path / "metrics.jsonl").read_bytes())
    assert run_copy.metrics and all(isinstance(m, dict) for m in run_copy.metrics)


@pytest.mark.parametrize("line", ['{"kind": "step"}', '{"kind": "epoch", "epoch": "x"}'])
def test_training_data_refuses_records_without_keys(run_copy, line):
    from convscope.web.compute import training_data
    from convscope.web.runs import RunEntry

    (run_copy.path / "metrics.jsonl").write_text(line + "\n")
    with pytest.raises(RunError, match="metrics.jsonl: record 1"):
        training_data(RunEntry("x", run_copy.path, _run=run_copy))
