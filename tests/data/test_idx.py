import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convscope.data.idx import encode_idx, parse_idx, read_idx, write_idx
from convscope.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),
    compress=st.booleans(),
    data=st.data(),
)
def test_round_trip(tmp_path_factory, dtype, shape, compress, data):
    arr = data.draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False)))
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr)
    raw = path.read_bytes()
    assert raw.startswith(b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_header_matches_the_published_layout():
    # MNIST's labels header: magic 0x00000801, then the count, big-endian
    b = encode_idx(np.arange(3, dtype=np.uint8))
    assert b == bytes([0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2])
    f = encode_idx(np.array([[1.5]], dtype=np.float32))
    assert f[:4] == bytes([0, 0, 0x0D, 2]) and f[12:] == np.array([1.5], ">f4").tobytes()


def test_compression_is_deterministic(tmp_path):
    a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    write_idx(tmp_path / "x.gz", a)
    first = (tmp_path / "x.gz").read_bytes()
    write_idx(tmp_path / "x.gz", a)
    assert (tmp_path / "x.gz").read_bytes() == first


@pytest.mark.parametrize(
    "blob, fragment",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "wrong magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX dtype code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "trailing bytes"),
    ],
)
def test_bad_files_name_the_file(tmp_path, blob, fragment):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(blob)
    with pytest.raises(DataError) as e:
        read_idx(path)
    assert str(path) in str(e.value) and fragment in str(e.value)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(1000, np.uint8)))[:-30])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


def test_unsupported_dtype_rejected():
    with pytest.raises(DataError, match="cannot store dtype"):
        encode_idx(np.zeros(3, dtype=np.uint16))


def test_parse_returns_native_writable():
    arr = parse_idx(encode_idx(np.array([1, 2, 3], dtype=np.int32)))
    assert arr.dtype == np.dtype("int32") and arr.flags.writeable
