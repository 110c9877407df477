"""Property-based fuzzing of the dataset readers (IDX, CIFAR-10, folder): for every generated input, a valid
result or a convscope error with a message; never another exception, never a hang, within a memory bound."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from convscope.data import FolderOptions, ImageDataset, cifar, load, read_idx
from convscope.data.idx import encode_idx, read_idx_bytes

from .conftest import outcome, png_header_only

MB = 1 << 20
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])

# ---- byte mutations ---------------------------------------------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("set32"), st.integers(0, 40), st.sampled_from([0, 1, 255, 2**16, 2**31 - 1, 2**32 - 1])),
)


def mutate(blob: bytes, ops) -> bytes:
    b = bytearray(blob)
    for op in ops:
        if not b and op[0] != "insert":
            continue
        if op[0] == "flip":
            b[op[1] % len(b)] ^= op[2]
        elif op[0] == "cut":
            del b[op[1] % len(b):]
        elif op[0] == "insert":
            i = op[1] % (len(b) + 1)
            b[i:i] = op[2]
        else:  # overwrite a big-endian uint32 (IDX sizes, tar fields...)
            i = op[1] % max(len(b) - 3, 1)
            b[i:i + 4] = op[2].to_bytes(4, "big")
    return bytes(b)


_dtypes = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])


@st.composite
def idx_blobs(draw):
    shape = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
    arr = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(draw(_dtypes))
    raw = encode_idx(arr)
    blob = gzip.compress(raw, mtime=0) if draw(st.booleans()) else raw
    return arr, blob, draw(st.lists(_op, max_size=4))


@FUZZ
@given(idx_blobs())
def test_idx_reader_fuzz(case):
    arr, blob, ops = case
    data = mutate(blob, ops)
    res = outcome(lambda: read_idx_bytes(data, "fuzz.idx", max_bytes=4 * MB), seconds=5, max_bytes=48 * MB)
    if data == blob:
        assert isinstance(res, np.ndarray) and res.dtype == arr.dtype.newbyteorder("=") and np.array_equal(res, arr)
    else:
        assert isinstance(res, (np.ndarray, Exception))
    with tempfile.TemporaryDirectory() as d:  # the file path reader takes the same inputs through a stream
        p = Path(d) / "f.idx"
        p.write_bytes(data)
        res2 = outcome(lambda: read_idx(p, max_bytes=4 * MB), seconds=5, max_bytes=48 * MB)
        assert type(res2) is type(res)
        if isinstance(res, np.ndarray):
            assert np.array_equal(res, res2, equal_nan=res.dtype.kind == "f")


# ---- CIFAR-10 -------------------------------------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=3 * cifar.RECORD + 5), st.sampled_from([None, 1, 2, 3]))
def test_cifar_records_fuzz(data, expected):
    res = outcome(lambda: cifar.parse_records(data, "fuzz.bin", expected), seconds=5)
    if isinstance(res, tuple):
        images, labels = res
        n = len(data) // cifar.RECORD
        assert images.shape == (n, 3, 32, 32) and labels.shape == (n,) and (labels <= 9).all()
        if n:
            assert images[0, 0, 0, 0] == data[1] and labels[0] == data[0]


_member = st.tuples(
    st.sampled_from(["cifar-10-batches-bin/test_batch.bin", "test_batch.bin", "cifar-10-batches-bin/data_batch_1.bin",
                     "../test_batch.bin", "readme.html", "/etc/passwd"]),
    st.sampled_from(["file", "dir", "symlink", "fifo", "hardlink"]),
    st.integers(0, 2000),
)


@FUZZ
@given(st.lists(_member, max_size=4), st.lists(_op, max_size=3), st.sampled_from(["train", "test", "valid"]))
def test_cifar_archive_fuzz(members, ops, split):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, size in members:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "fifo": tarfile.FIFOTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = "/dev/zero" if kind in ("symlink", "hardlink") else ""
            info.size = size if kind == "file" else 0
            tar.addfile(info, io.BytesIO(b"\7" * info.size) if kind == "file" else None)
    data = mutate(buf.getvalue(), ops)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cifar-10-binary.tar.gz"
        p.write_bytes(data)
        res = outcome(lambda: cifar.read_cifar_archive(p, split, max_stream_bytes=8 * MB), seconds=10,
                      max_bytes=48 * MB)
        assert isinstance(res, Exception)  # no member is a full CIFAR batch: never a result
        assert sorted(os.listdir(d)) == ["cifar-10-binary.tar.gz"]  # nothing extracted


# ---- folder datasets ----------------------------------------------------------------------------------------------

_FILE_KINDS = ["png", "png", "jpeg", "rgba", "palette", "i16", "bilevel", "truncated", "junk", "empty", "txt", "fifo",
               "devzero", "outside", "nested", "hidden", "bomb", "gif"]


def _write(kind: str, path: Path, size: tuple[int, int], seed: int, outside: Path) -> None:
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, size=size, dtype=np.uint8)
    if kind in ("png", "truncated"):
        Image.fromarray(px).save(path.with_suffix(".png"))
        if kind == "truncated":
            b = path.with_suffix(".png").read_bytes()
            path.with_suffix(".png").write_bytes(b[:len(b) // 2])
    elif kind == "jpeg":
        Image.fromarray(np.stack([px] * 3, -1)).save(path.with_suffix(".jpg"))
    elif kind == "rgba":
        Image.fromarray(np.stack([px] * 4, -1), "RGBA").save(path.with_suffix(".png"))
    elif kind == "palette":
        Image.fromarray(px).convert("P").save(path.with_suffix(".png"))
    elif kind == "i16":
        Image.fromarray(px.astype(np.uint16) * 200).save(path.with_suffix(".png"))
    elif kind == "bilevel":
        Image.fromarray(px > 127).save(path.with_suffix(".png"))
    elif kind == "junk":
        path.with_suffix(".png").write_bytes(rng.bytes(64))
    elif kind == "empty":
        path.with_suffix(".png").write_bytes(b"")
    elif kind == "txt":
        path.with_suffix(".txt").write_text("hello")
    elif kind == "fifo":
        os.mkfifo(path.with_suffix(".png"))
    elif kind == "devzero":
        path.with_suffix(".png").symlink_to("/dev/zero")
    elif kind == "outside":
        path.with_suffix(".png").symlink_to(outside)
    elif kind == "nested":
        path.mkdir()
    elif kind == "hidden":
        (path.parent / ".DS_Store").write_bytes(b"\0\1")
    elif kind == "bomb":
        path.with_suffix(".png").write_bytes(png_header_only(20_000, 20_000))
    elif kind == "gif":
        Image.fromarray(px).save(path.with_suffix(".png"), format="GIF")


_opts = st.builds(FolderOptions, size=st.sampled_from([None, (8, 8), (5, 11)]),
                  resize=st.sampled_from(["error", "stretch", "fit", "crop"]), channels=st.sampled_from([None, 1, 3]),
                  max_pixels=st.sampled_from([64 * 1024 * 1024, 100]))


@FUZZ
@given(st.lists(st.lists(st.tuples(st.sampled_from(_FILE_KINDS), st.sampled_from([(8, 8), (8, 8), (6, 10), (1, 1)])),
                         max_size=4), max_size=3),
       _opts, st.sampled_from(["train", "test", "all"]), st.booleans())
def test_folder_reader_fuzz(classes, opts, split, splits_layout):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ds"
        outside = Path(d) / "outside.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside)
        for part in (["train", "test"] if splits_layout else [""]):
            for c, files in enumerate(classes):
                folder = root / part / f"class{c}"
                folder.mkdir(parents=True)
                for i, (kind, size) in enumerate(files):
                    _write(kind, folder / f"img{i}", size, i, outside)
        root.mkdir(exist_ok=True)
        res = outcome(lambda: load(f"folder:{root}", split, folder_options=opts), seconds=10, max_bytes=64 * MB)
        if isinstance(res, ImageDataset):
            c, h, w = res.shape
            assert c in (1, 3) and (opts.size is None or (h, w) == tuple(opts.size))
            assert len(res.classes) >= (2 if split == "train" else 1)
            assert int(res.labels.max()) < len(res.classes)


def test_a_zero_size_shape_whose_other_sizes_overflow_is_a_data_error():
    """Found by the fuzz test above: sizes (2**31 - 1, 2**31 - 1, 2**31 - 1, 0) declare no values, but numpy
    refuses the shape (its element count overflows before the 0): a ValueError, not the reader's DataError."""
    from convscope.data.idx import parse_idx
    from convscope.errors import DataError

    big = (2**31 - 1).to_bytes(4, "big")
    with pytest.raises(DataError, match=r"x.idx: the header declares shape \(2147483647, 2147483647, 2147483647, 0\)"):
        parse_idx(b"\x00\x00\x08\x04" + big * 3 + bytes(4), "x.idx")
