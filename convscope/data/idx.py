"""The IDX file format of MNIST and Fashion-MNIST: a strict reader and a writer.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions ``n``, then ``n`` uint32
sizes, then exactly prod(sizes) items. Files may be gzip-compressed (detected by content, not name).
"""

from __future__ import annotations

import gzip
import io
import math
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_bytes
from ..errors import DataError
from .safe_io import DEFAULT_MAX_BYTES, GZIP_MAGIC, BoundedGunzip, gunzip_bounded, open_regular

# dtype code -> big-endian numpy dtype (the format's own table)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_DTYPES.items()}  # 'u1' -> 0x08


def decompress_if_gzip(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic; corrupt gzip, or gzip that expands beyond
    ``max_bytes``, is a DataError (the cap is enforced while decompressing)."""
    if not data.startswith(GZIP_MAGIC):
        return data
    return gunzip_bounded(data, max_bytes, name)


def _check_header(head: bytes, name: str) -> tuple[np.dtype, int]:
    """Validate the first 4 bytes; return (dtype, ndim)."""
    if len(head) < 4:
        raise DataError(f"{name}: {len(head)} bytes is too short for an IDX header (needs at least 4)")
    if head[0] != 0 or head[1] != 0:
        raise DataError(
            f"{name}: wrong magic number {head[:4].hex()} (an IDX file starts with two zero bytes); "
            "this is not an IDX file"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02X} (valid: {valid})")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    return IDX_DTYPES[code], ndim


def _declared(data: bytes, ndim: int, dtype: np.dtype, name: str, max_bytes: int | None) -> tuple[tuple[int, ...], int]:
    """Shape and total file size declared by a complete header; refuses sizes over ``max_bytes``."""
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    total = 4 + 4 * ndim + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if max_bytes is not None and total > max_bytes:
        raise DataError(f"{name}: the header declares shape {shape} ({total:,} bytes), more than "
                        f"max_bytes={max_bytes:,}; not read (pass a larger max_bytes if the file is genuine)")
    return shape, total


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes (raw, already decompressed) into a native-endian array, validating everything."""
    dtype, ndim = _check_header(data[:4], name)
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{name}: truncated header ({len(data)} bytes, the {ndim} dimension sizes need {header_len})")
    shape, expected = _declared(data, ndim, dtype, name, None)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {what}: {len(data)} bytes, but shape {shape} of {dtype.newbyteorder('=').name} "
            f"needs exactly {expected}; delete the file and fetch it again"
        )
    if expected == header_len:                       # a zero-size dimension: no values (frombuffer refuses 0 bytes)
        try:
            return np.zeros(shape, dtype=dtype.newbyteorder("="))
        except ValueError as e:                      # numpy refuses shapes whose other sizes overflow its index type
            raise DataError(f"{name}: the header declares shape {shape}, which no array can have ({e}); "
                            "not an IDX file convscope can read") from None
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def _read_exact(read, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = read(min(n - got, 1 << 24))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_idx_stream(read, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read one IDX file from ``read(n)`` (raw bytes): the header first, then exactly the declared body.

    Nothing beyond the declared size (+1 byte, to detect trailing data) is ever read, and a declared size
    over ``max_bytes`` is refused before the body is read.
    """
    head = _read_exact(read, 4)
    dtype, ndim = _check_header(head, name)
    head += _read_exact(read, 4 * ndim)
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{name}: truncated header ({len(head)} bytes, the {ndim} dimension sizes need "
                        f"{4 + 4 * ndim})")
    _, total = _declared(head, ndim, dtype, name, max_bytes)
    data = head + _read_exact(read, total - len(head) + 1)
    return parse_idx(data, name)


def read_idx(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (regular files only).

    ``max_bytes`` caps the decompressed size: a header declaring more, or gzip data expanding beyond it,
    is refused while streaming, before the memory is spent.
    """
    path = Path(path)
    with open_regular(path, "IDX file") as f:
        try:
            magic = f.read(2)
            f.seek(0)
            if magic == GZIP_MAGIC:
                return read_idx_stream(BoundedGunzip(f, max_bytes, str(path)).read, str(path), max_bytes)
            return read_idx_stream(f.read, str(path), max_bytes)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def read_idx_bytes(data: bytes, name: str = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode IDX file bytes, gzip-compressed or raw; ``name`` is used in error messages."""
    if data.startswith(GZIP_MAGIC):
        return read_idx_stream(BoundedGunzip(io.BytesIO(data), max_bytes, name).read, name, max_bytes)
    return parse_idx(data, name)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in _CODES:
        raise DataError(f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    code = _CODES[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically; gzip when ``compress`` (default: name ends in .gz).

    Compression is deterministic (mtime 0), so the same array always gives the same bytes.
    """
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(path, data)
