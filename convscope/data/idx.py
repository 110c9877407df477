"""The IDX file format of MNIST and Fashion-MNIST: a strict reader and a writer.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions ``n``, then ``n`` uint32
sizes, then exactly prod(sizes) items. Files may be gzip-compressed (detected by content, not name).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_bytes
from ..errors import DataError

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
_GZIP_MAGIC = b"\x1f\x8b"


def decompress_if_gzip(data: bytes, name: str) -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic; corrupt gzip is a DataError."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{name}: corrupt or truncated gzip data ({e}); delete the file and fetch it again") from e


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes (raw, already decompressed) into a native-endian array, validating everything."""
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header (needs at least 4)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: wrong magic number {data[:4].hex()} (an IDX file starts with two zero bytes); "
            "this is not an IDX file"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02X} (valid: {valid})")
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{name}: truncated header ({len(data)} bytes, the {ndim} dimension sizes need {header_len})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {what}: {len(data)} bytes, but shape {shape} of {dtype.newbyteorder('=').name} "
            f"needs exactly {expected}; delete the file and fetch it again"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    return read_idx_bytes(data, str(path))


def read_idx_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX file bytes, gzip-compressed or raw; ``name`` is used in error messages."""
    return parse_idx(decompress_if_gzip(data, name), name)


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
