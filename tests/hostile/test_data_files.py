"""Hostile dataset files (IDX, CIFAR-10 archives, class folders, --data-dir contents) and load()'s
arguments: each finding of issue 16 as a test that failed before its fix."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from convscope.data import FolderOptions, cifar, load, read_idx
from convscope.data.idx import encode_idx, read_idx_bytes
from convscope.errors import ChecksumError, DataError

from .conftest import outcome

MB = 1 << 20


def _zeros_gzip(n_bytes: int, head: bytes = b"") -> bytes:
    """gzip of ``head`` + zeros: ~1000x smaller than its content (a decompression bomb)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(head)]
    block = b"\0" * MB
    for _ in range(n_bytes // MB):
        parts.append(z.compress(block))
    return b"".join(parts) + z.flush()


def test_gzip_bomb_in_data_dir_refused_while_streaming(tmp_path):
    # 256 MB of content in ~250 KB; the published train-images file holds 47,040,016 bytes. Before: read_verified
    # decompressed it whole (the 3 MB file expanded to 6.5 GB) before refusing the checksum.
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(_zeros_gzip(256 * MB, bytes([0, 0, 8, 3])))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(encode_idx(np.zeros(3, np.uint8))))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"x")
    err = outcome(lambda: load("mnist", "train", root=tmp_path, download=False), seconds=20, max_bytes=120 * MB)
    assert isinstance(err, ChecksumError)
    assert "expands beyond 47,040,016 bytes" in str(err) and "train-images-idx3-ubyte.gz" in str(err)


def test_idx_header_declaring_gigabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.idx.gz"
    # declares 65536 x 65536 x 16 uint8 = 64 GiB; the body is 64 MB of zeros compressed to ~64 KB
    path.write_bytes(_zeros_gzip(64 * MB, bytes([0, 0, 8, 3]) + np.array([65536, 65536, 16], ">u4").tobytes()))
    err = outcome(lambda: read_idx(path), seconds=10, max_bytes=16 * MB)
    assert isinstance(err, DataError) and "max_bytes" in str(err)
    # a genuine file passes, and a small cap refuses it by name
    good = tmp_path / "good.idx.gz"
    good.write_bytes(gzip.compress(encode_idx(np.arange(1000, dtype=np.int16).reshape(10, 100))))
    assert read_idx(good).tolist() == np.arange(1000).reshape(10, 100).tolist()
    with pytest.raises(DataError, match="max_bytes=100"):
        read_idx(good, max_bytes=100)


def test_idx_bytes_bomb_bounded():
    data = _zeros_gzip(128 * MB, bytes([0, 0, 8, 1]) + np.array([2**31], ">u4").tobytes())
    err = outcome(lambda: read_idx_bytes(data, "bomb", max_bytes=8 * MB), seconds=10, max_bytes=24 * MB)
    assert isinstance(err, DataError)


def test_cifar_archive_member_of_wrong_size_is_not_read(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = 40 * MB
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    err = outcome(lambda: cifar.read_cifar_archive(archive, "test"), seconds=20, max_bytes=24 * MB)
    assert isinstance(err, DataError) and "30,730,000" in str(err)


def test_cifar_archive_stream_is_capped(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("padding.bin")
        info.size = 8 * MB
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(DataError, match="expands beyond"):
        cifar.read_cifar_archive(archive, "test", max_stream_bytes=4 * MB)


def test_cifar_wrong_checksum_refused_without_decompressing(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").write_bytes(_zeros_gzip(512 * MB))
    err = outcome(lambda: load("cifar10", "test", root=tmp_path, download=False), seconds=10, max_bytes=16 * MB)
    assert isinstance(err, ChecksumError)


# ---- special files: refused before opening, never a hang -------------------------------------------------------

def test_fifo_idx_refused(fifo):
    err = outcome(lambda: read_idx(fifo), seconds=5)
    assert isinstance(err, DataError) and "FIFO" in str(err)


def test_dev_zero_behind_symlink_in_data_dir_refused(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).symlink_to("/dev/zero")
    err = outcome(lambda: load("mnist", "test", root=tmp_path, download=False), seconds=5, max_bytes=16 * MB)
    assert isinstance(err, DataError) and "character device" in str(err)


def test_fifo_cifar_batch_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    os.mkfifo(folder / "test_batch.bin")
    err = outcome(lambda: load("cifar10", "test", root=tmp_path, download=False), seconds=5)
    assert isinstance(err, DataError) and "FIFO" in str(err)


def _class_folder(root, name, n=3, size=(8, 8), value=0):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full(size, value + i, np.uint8)).save(d / f"{i}.png")
    return d


def test_fifo_image_in_folder_dataset_refused(tmp_path):
    _class_folder(tmp_path, "a")
    _class_folder(tmp_path, "b")
    os.mkfifo(tmp_path / "b" / "stuck.png")
    err = outcome(lambda: load(f"folder:{tmp_path}", "all"), seconds=5)
    assert isinstance(err, DataError) and "FIFO" in str(err) and "stuck.png" in str(err)


# ---- folder datasets ----------------------------------------------------------------------------------------------

def test_one_class_folder_refused_for_training(tmp_path):
    _class_folder(tmp_path, "only", n=10)
    with pytest.raises(DataError, match="at least 2 classes"):
        load(f"folder:{tmp_path}", "train")
    assert len(load(f"folder:{tmp_path}", "all")) == 10  # inspecting one class is fine


def test_mixed_size_message_names_what_train_accepts_and_it_works(tmp_path):
    _class_folder(tmp_path, "a", size=(8, 8))
    _class_folder(tmp_path, "b", size=(12, 6), value=100)
    with pytest.raises(DataError) as e:
        load(f"folder:{tmp_path}", "all")
    assert "folder:PATH?resize=fit" in str(e.value) and "pass --resize" not in str(e.value)
    ds = load(f"folder:{tmp_path}?resize=fit&size=10x10", "all")
    assert ds.shape == (1, 10, 10) and len(ds) == 6
    # same pixels as the Python options
    ref = load(f"folder:{tmp_path}", "all", folder_options=FolderOptions(size=(10, 10), resize="fit"))
    assert ds.images.equal(ref.images) and ds.labels.equal(ref.labels)
    with pytest.raises(DataError, match="KEY=VALUE"):
        load(f"folder:{tmp_path}?rezise=fit", "all")
    with pytest.raises(DataError, match="resize"):
        load(f"folder:{tmp_path}?resize=squash", "all")


def test_train_config_takes_the_folder_query_form(tmp_path):
    from convscope.training.config import config_from_dict

    cfg = config_from_dict({"dataset": f"folder:{tmp_path}?resize=crop&size=28x28"})
    assert cfg.dataset.endswith("?resize=crop&size=28x28")


@pytest.mark.parametrize("opts", [FolderOptions(size=(0, 0)), FolderOptions(size=(-1, 5)),
                                  FolderOptions(channels=2), FolderOptions(max_pixels=0),
                                  FolderOptions(resize="squash")])  # type: ignore[arg-type]
def test_folder_options_out_of_range_named(tmp_path, opts):
    _class_folder(tmp_path, "a")
    _class_folder(tmp_path, "b")
    err = outcome(lambda: load(f"folder:{tmp_path}", "all", folder_options=opts), seconds=10)
    assert isinstance(err, DataError)


def test_size_beyond_max_pixels_refused_before_allocating(tmp_path):
    _class_folder(tmp_path, "a")
    _class_folder(tmp_path, "b")
    opts = FolderOptions(size=(99_999, 99_999), resize="fit")  # 112 GiB for 6 images: was a numpy MemoryError
    err = outcome(lambda: load(f"folder:{tmp_path}", "all", folder_options=opts), seconds=10, max_bytes=16 * MB)
    assert isinstance(err, DataError) and "max_pixels" in str(err)


@pytest.mark.parametrize("args", [(b"digits",), (None,), ("digits", 0), ("digits", "train", 5)])
def test_load_argument_types_named(args):
    err = outcome(lambda: load(*args), seconds=10)
    assert isinstance(err, DataError)
