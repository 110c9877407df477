"""The download path against a real HTTP server on 127.0.0.1, serving files the test generates."""

import gzip
import hashlib

import numpy as np
import pytest

from convscope.data.idx import encode_idx, read_idx_bytes
from convscope.data.sources import RemoteFile, RemoteSource, download, fetch, read_verified
from convscope.errors import DatasetNotFoundError, DownloadError

from .http_server import FileServer, dead_url


@pytest.fixture
def payload():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    return gzip.compress(encode_idx(images), mtime=0), images


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_writes_verified_file(tmp_path, payload):
    blob, images = payload
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob
        out = download([srv.url + "/m/x.gz"], tmp_path / "x.gz", hashlib.md5(blob).hexdigest(), progress=False)
    assert out.read_bytes() == blob
    np.testing.assert_array_equal(read_idx_bytes(out.read_bytes()), images)
    assert _leftovers(tmp_path) == ["x.gz"]


def test_checksum_mismatch_rejected_and_nothing_kept(tmp_path, payload):
    blob, _ = payload
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob[:-1] + bytes([blob[-1] ^ 0xFF])  # one byte tampered
        with pytest.raises(DownloadError, match="checksum mismatch") as e:
            download([srv.url + "/m/x.gz"], tmp_path / "x.gz", hashlib.md5(blob).hexdigest(), progress=False)
    assert "x.gz" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_dead_first_mirror_falls_back(tmp_path, payload):
    blob, _ = payload
    with FileServer() as srv:
        srv.routes["/good/x.gz"] = blob
        urls = [dead_url() + "/x.gz", srv.url + "/missing/x.gz", srv.url + "/good/x.gz"]
        out = download(urls, tmp_path / "x.gz", hashlib.md5(blob).hexdigest(), progress=False)
        assert srv.hits == ["/missing/x.gz", "/good/x.gz"]
    assert out.read_bytes() == blob


def test_connection_cut_mid_file_keeps_nothing(tmp_path, payload):
    blob, _ = payload
    with FileServer() as srv:
        srv.routes["/m/x.gz"] = blob
        srv.cut.add("/m/x.gz")
        with pytest.raises(DownloadError) as e:
            download([srv.url + "/m/x.gz"], tmp_path / "x.gz", hashlib.md5(blob).hexdigest(), progress=False)
    assert "IncompleteRead" in str(e.value) or "closed after" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_cut_then_good_mirror_recovers(tmp_path, payload):
    blob, _ = payload
    with FileServer() as srv:
        srv.routes["/a/x.gz"] = srv.routes["/b/x.gz"] = blob
        srv.cut.add("/a/x.gz")
        download([srv.url + "/a/x.gz", srv.url + "/b/x.gz"], tmp_path / "x.gz", hashlib.md5(blob).hexdigest(),
                 progress=False)
    assert _leftovers(tmp_path) == ["x.gz"] and (tmp_path / "x.gz").read_bytes() == blob


def test_fetch_downloads_into_root_then_finds_it_offline(tmp_path, payload):
    blob, images = payload
    labels = gzip.compress(encode_idx(np.arange(50, dtype=np.uint8) % 10), mtime=0)
    with FileServer() as srv:
        srv.routes["/mirror2/img.gz"] = blob
        srv.routes["/mirror2/lab.gz"] = labels
        source = RemoteSource(
            "toy",
            (RemoteFile("img.gz", hashlib.md5(blob).hexdigest()), RemoteFile("lab.gz",
                                                                             hashlib.md5(labels).hexdigest())),
            (dead_url() + "/", srv.url + "/mirror2/"),
        )
        paths = fetch(source, tmp_path, progress=False)
    assert paths["img.gz"] == tmp_path / "toy" / "img.gz"
    np.testing.assert_array_equal(read_idx_bytes(read_verified(paths["img.gz"], source.files[0])), images)
    # the server is gone: the files are now found locally, with no network
    assert fetch(source, tmp_path, download_missing=False) == paths


def test_offline_and_nowhere_found_lists_places_and_fix(tmp_path):
    source = RemoteSource("toy", (RemoteFile("img.gz", "0" * 32),), (dead_url() + "/",))
    with pytest.raises(DatasetNotFoundError) as e:
        fetch(source, tmp_path, progress=False)
    msg = str(e.value)
    assert str(tmp_path / "img.gz") in msg and str(tmp_path / "toy" / "img.gz") in msg
    assert "Connection refused" in msg or "ConnectionRefused" in msg or "URLError" in msg
    assert "To fix" in msg
    assert _leftovers(tmp_path) in ([], ["toy"]) and _leftovers(tmp_path / "toy") == []
