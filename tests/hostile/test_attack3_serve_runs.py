"""Findings of the third independent attack (issue #28), half a: serve, downloads and run files. Each test
failed before its fix: a hang, a 500, a traceback, or a run file accepted that the manifest should refuse."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from convscope.data.sources import download
from convscope.errors import ConvscopeError, DownloadError
from convscope.models.weights import CheckpointError

from ..data.http_server import FileServer
from .conftest import time_bound
from ..web.conftest import serving


# ---- F1: confusion.png computed from the cached evaluation under the same run's lock ------------------------


def rehash(run: Path) -> None:
    """Record the digests of a run's edited files again, as an attacker (or a careless script) would."""
    from convscope.runs.rundir import write_manifest

    meta = json.loads((run / "model.json").read_text())
    del meta["sha256"]
    write_manifest(run, meta)


@pytest.fixture(scope="module")
def served(small_run, tmp_path_factory):
    """A real `convscope serve` on 127.0.0.1 over two copies of a run: ``good``, and ``summnan`` whose
    summary.json holds NaN (digests recorded again, so only the strict JSON reader can refuse it)."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(small_run.path, root / "good")
    shutil.copytree(small_run.path, root / "summnan")
    summary = json.loads((root / "summnan" / "summary.json").read_text())
    (root / "summnan" / "summary.json").write_text(json.dumps({**summary, "test_accuracy": float("nan")}))
    rehash(root / "summnan")
    with serving(root) as srv:
        yield srv


def test_confusion_png_answers_and_the_run_still_predicts(served):
    base = served.base
    # before the fix: no answer ever (the render held the run's model lock, the evaluation took it again)
    r = httpx.get(f"{base}/run/good/confusion.png", timeout=120)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    # and the run's lock is free again: its predict answers (it waited forever before)
    img = Image.new("L", (28, 28), 0)
    img.paste(255, (12, 4, 16, 24))          # a vertical stroke
    buf = io.BytesIO()
    img.save(buf, "PNG")
    p = httpx.post(f"{base}/api/run/good/predict", content=buf.getvalue(), headers={"content-type": "image/png"},
                   timeout=60)
    assert p.status_code == 200, p.text
    assert p.json(), p.text
    # the cached picture is served again at once
    assert httpx.get(f"{base}/run/good/confusion.png", timeout=30).content == r.content


# ---- F7: strict JSON in run files and request bodies: a 400 naming the problem, never a 500 -------------------


def test_summary_with_nan_is_a_400_naming_the_file(served):
    r = httpx.get(f"{served.base}/api/run/summnan/training", timeout=60)
    assert r.status_code == 400, r.text
    msg = r.json()["error"]
    assert "summary.json" in msg and "NaN is not JSON" in msg
    assert httpx.get(f"{served.base}/api/run/good/training", timeout=60).status_code == 200


def test_deeply_nested_request_body_is_a_400(served):
    body = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"      # 200 KB, within the 1 MiB cap
    r = httpx.post(f"{served.base}/api/run/good/conv", content=body,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"], r.text
    r = httpx.post(f"{served.base}/api/run/good/conv", content=b'{"layer": NaN}',
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400 and "NaN is not JSON" in r.json()["error"], r.text


@pytest.mark.parametrize("name,text,where", [
    ("summary.json", '{"test_accuracy": NaN}', "summary.json"),
    ("summary.json", '{"test_accuracy": -Infinity}', "summary.json"),
    ("metrics.jsonl", '{"kind": "epoch", "epoch": 1, "loss": Infinity}\n', "metrics.jsonl, line 1"),
])
def test_load_run_reads_strict_json(small_run, tmp_path, name, text, where):
    import convscope

    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    (run / name).write_text(text)
    rehash(run)
    with pytest.raises(ConvscopeError, match=rf"{re.escape(where)}.*is not JSON"):
        _ = convscope.load_run(run).metrics      # metrics are read on first use


def test_strict_loads_itself():
    from convscope._json import loads_strict

    assert loads_strict('{"a": [1.5, null, 1e308]}') == {"a": [1.5, None, 1e308]}
    for text, words in [("NaN", "NaN is not JSON"), ("[Infinity]", "Infinity is not JSON"),
                        ("[" * 50_000 + "]" * 50_000, "nested too deeply"), ("{", "Expecting")]:
        with pytest.raises(ValueError, match=words):
            loads_strict(text)


# ---- F2: a download is capped at what the published file can be; parts of killed downloads are removed --------


def test_endless_stream_is_cut_at_the_published_size(tmp_path):
    blob = os.urandom(1 << 16)
    cap = 10 * len(blob)
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob
        srv.endless.add("/m/x.gz")        # 200, no Content-Length, never ends (the attack's mirror)
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match=f"more than {cap:,} bytes") as e:
            download_x(srv, tmp_path, cap)
        assert time.monotonic() - t0 < 30
    assert "x.gz" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []      # no .part left behind
    assert srv.sent["/m/x.gz"] < 100 * cap   # hung up soon after the cap (socket buffers hold some more)


def test_announced_size_over_the_cap_refused_before_reading(tmp_path):
    blob = os.urandom(5000)
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob
        with pytest.raises(DownloadError, match="announces 5,000 bytes"):
            download_x(srv, tmp_path, 4000)
    assert list(tmp_path.iterdir()) == []


def test_fetch_caps_at_the_published_files_size(tmp_path):
    from convscope.data.sources import RemoteFile, RemoteSource, fetch
    from convscope.errors import DatasetNotFoundError

    blob = os.urandom(1 << 16)
    with FileServer() as srv:
        srv.routes["/m/img.gz"] = blob
        srv.endless.add("/m/img.gz")
        f = RemoteFile("img.gz", hashlib.md5(blob).hexdigest(), raw_size=100_000)
        with pytest.raises(DatasetNotFoundError, match=f"more than {f.max_file_bytes:,} bytes"):
            fetch(RemoteSource("toy", (f,), (srv.url + "/m/",)), tmp_path, progress=False)
    assert not (tmp_path / "toy").exists() or list((tmp_path / "toy").iterdir()) == []


def test_stale_part_of_a_killed_download_removed(tmp_path):
    blob = os.urandom(3000)
    folder = tmp_path / "d"
    folder.mkdir()
    stale = folder / ".x.gz.0123456789ab.part"       # what a kill -9 of an earlier download left
    stale.write_bytes(b"\0" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = folder / ".x.gz.ba9876543210.part"        # another process downloading right now: left alone
    fresh.write_bytes(b"\0" * 10)
    theirs = folder / ".x.gz.notours.part"            # not atomic_writer's naming: not ours to remove
    theirs.write_bytes(b"")
    os.utime(theirs, (old, old))
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob
        download([srv.url + "/m/x.gz"], folder / "x.gz", hashlib.md5(blob).hexdigest(), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted([".x.gz.ba9876543210.part", ".x.gz.notours.part",
                                                               "x.gz"])


def download_x(srv, folder, cap):
    return download([srv.url + "/m/x.gz"], folder / "x.gz", "0" * 32, progress=False, max_bytes=cap)

# ---- F5, F9, F10: every file model.json records is checked, sizes before hashes, model size before building ---


def _copy(small_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(small_run.path, run)
    return run


def test_sparse_100gb_weights_refused_before_hashing(small_run, tmp_path):
    import convscope

    run = _copy(small_run, tmp_path)
    with open(run / "model.safetensors", "r+b") as f:
        f.truncate(100 << 30)                       # sparse: no disk used, 100 GB to hash
    with time_bound(10), pytest.raises(CheckpointError, match=r"model.safetensors: 107,374,182,400 bytes, more "
                                                                r"than the weights of the model"):
        convscope.load_run(run)


@pytest.mark.parametrize("edit,words", [
    ({"input_shape": [1, 60000, 60000]}, "input_shape must be [C, H, W] with sides of at most 4096"),
    ({"model_args": {"width": 2_000_000}}, "bytes of weights, more than a run's model can (4,294,967,296)"),
])
def test_model_size_bounded_before_building(small_run, tmp_path, edit, words):
    import convscope

    run = _copy(small_run, tmp_path)
    meta = json.loads((run / "model.json").read_text())
    meta.update(edit)
    (run / "model.json").write_text(json.dumps(meta))
    rehash(run)
    with time_bound(10), pytest.raises(CheckpointError, match=re.escape(words)) as e:
        convscope.load_run(run)
    if "model_args" in edit:
        # by hand: fast's conv2 (w -> 2w) and conv3 (2w -> 4w), 3x3, hold 18w^2 + 72w^2 float32 weights; the rest
        # (conv1, BN, the linear layer) is O(w)
        w = edit["model_args"]["width"]
        held = int(re.search(r"would hold ([\d,]+) bytes", str(e.value)).group(1).replace(",", ""))
        assert 90 * w * w * 4 <= held < 90 * w * w * 4 * 1.001


def test_model_json_digest_file_deleted_refused(small_run, tmp_path):
    import convscope

    run = _copy(small_run, tmp_path)
    (run / "model.json.sha256").unlink()
    with pytest.raises(CheckpointError, match=r"model.json.sha256: missing; this run was written with it"):
        convscope.load_run(run)
    # a run written before the digest file existed (model.json without digest_file) still loads, unchecked
    meta = json.loads((run / "model.json").read_text())
    del meta["digest_file"]
    (run / "model.json").write_text(json.dumps(meta))
    assert convscope.load_run(run).summary == small_run.summary


@pytest.mark.parametrize("name", ["curve.png", "summary.json", "metrics.jsonl"])
def test_every_recorded_file_checked(small_run, tmp_path, name):
    import convscope

    run = _copy(small_run, tmp_path)
    (run / name).write_bytes((run / name).read_bytes() + b"\n")
    with pytest.raises(CheckpointError, match=rf"{re.escape(name)}: SHA-256 differs"):
        convscope.load_run(run)
    (run / name).unlink()
    with pytest.raises(CheckpointError, match=rf"{re.escape(name)}: missing, but model.json records"):
        convscope.load_run(run)


def test_huge_curve_refused_before_hashing(small_run, tmp_path):
    import convscope

    run = _copy(small_run, tmp_path)
    with open(run / "curve.png", "r+b") as f:
        f.truncate(100 << 30)
    with time_bound(10), pytest.raises(CheckpointError, match=r"curve.png: 107,374,182,400 bytes, more than a run"):
        convscope.load_run(run)
