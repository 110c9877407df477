"""Findings of the third independent attack (issue #28), half a: serve, downloads and run files. Each test
failed before its fix: a hang, a 500, a traceback, or a run file accepted that the manifest should refuse."""

from __future__ import annotations

import hashlib
import os
import time

import httpx
import pytest

from convscope.data.sources import download
from convscope.errors import DownloadError

from ..data.http_server import FileServer
from ..web.conftest import Server, free_port


# ---- F1: confusion.png computed from the cached evaluation under the same run's lock ------------------------


def test_confusion_png_answers_and_the_run_still_predicts(small_run, tmp_path):
    srv = Server([str(small_run.path)], free_port())
    try:
        srv.wait_ready()
        rid = httpx.get(srv.base + "/api/runs", timeout=10).json()["runs"][0]["id"]
        # before the fix: no answer ever (the render held the run's model lock, the evaluation took it again)
        r = httpx.get(f"{srv.base}/run/{rid}/confusion.png", timeout=120)
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        # and the run's lock is free again: its predict answers (it waited forever before)
        import io

        from PIL import Image

        img = Image.new("L", (28, 28), 0)
        img.paste(255, (12, 4, 16, 24))          # a vertical stroke
        buf = io.BytesIO()
        img.save(buf, "PNG")
        p = httpx.post(f"{srv.base}/api/run/{rid}/predict", content=buf.getvalue(),
                       headers={"content-type": "image/png"}, timeout=60)
        assert p.status_code == 200, p.text
        assert p.json(), p.text
        # the cached picture is served again at once
        assert httpx.get(f"{srv.base}/run/{rid}/confusion.png", timeout=30).content == r.content
    finally:
        srv.stop()


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

