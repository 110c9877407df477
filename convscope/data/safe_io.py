"""Reading untrusted files with bounds: regular files only, and gzip decompressed in a stream under a cap.

Every dataset reader opens its files through :func:`open_regular` (so a FIFO, a device such as
``/dev/zero`` behind a symlink, a socket or a folder is refused before any read could block or run
forever) and decompresses through :func:`gunzip_bounded` (so a small gzip file that expands to gigabytes
is stopped at the cap, while streaming, with a clear error — never decompressed whole first).
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# Default ceiling for files a user points us at (IDX files of their own, folder images are separate):
# the largest published IDX file (EMNIST by_class train images) is 547 MB raw.
DEFAULT_MAX_BYTES = 1 << 30


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading if, and only if, it is a regular file (symlinks followed).

    The file is opened non-blocking first and checked with ``fstat`` on the open descriptor, so neither a
    FIFO (whose open or read would block) nor a device can slip through between a check and the open.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise DataError(f"{path}: cannot read: no such {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a {what}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open the {what} ({e.strerror or e})") from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DataError(f"{path}: is {_kind(mode)}, not a regular file; convscope reads only regular files "
                            f"(point it at a real {what})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def regular_size(path: str | os.PathLike[str], what: str = "file") -> int:
    """Size in bytes of a regular file; anything else (missing, FIFO, device, folder) is a DataError."""
    with open_regular(path, what) as f:
        return os.fstat(f.fileno()).st_size


def read_regular(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The whole content of a regular file no larger than ``max_bytes`` (checked before reading)."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise DataError(f"{path}: {size:,} bytes, more than the {max_bytes:,} a {what} may hold; "
                            "it is not the expected file")
        try:
            data = f.read(size + 1)  # what is there, +1 to notice growth (never a max_bytes-sized buffer)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if len(data) > size:
        raise DataError(f"{path}: the file grew while it was read; run again once nothing writes to it")
    return data


class BoundedGunzip:
    """Stream-decompress gzip data (one or more members) from a binary file, never past ``limit`` bytes.

    ``read(n)`` returns up to n decompressed bytes; producing byte ``limit + 1`` raises a DataError that says
    the data expands beyond the cap. Corrupt or truncated gzip data is a DataError too.
    """

    def __init__(self, src: BinaryIO, limit: int, name: str, why: str = "") -> None:
        self.src, self.limit, self.name, self.why = src, limit, name, why
        self.out = 0
        self._d = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        self._buf = b""                         # compressed bytes not yet consumed by the decompressor

    def _fail(self, e: Exception | str) -> DataError:
        return DataError(f"{self.name}: corrupt or truncated gzip data ({e}); delete the file and fetch it again")

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` decompressed bytes (all that remain when n < 0); fewer only at the end of the data."""
        cap = self.limit + 1 - self.out
        want = cap if n < 0 else min(n, cap)
        parts: list[bytes] = []
        got = 0
        while got < want:
            if self._d.eof:                                  # a member ended: another may follow
                self._buf = self._d.unused_data  # (zlib also leaves it in unconsumed_tail: not added twice)
                if not self._buf:
                    self._buf = self.src.read(CHUNK)
                if not self._buf:
                    break                                    # clean end of the last member
                self._d = zlib.decompressobj(wbits=31)
                continue
            if not self._buf:
                self._buf = self.src.read(CHUNK)
                if not self._buf:
                    raise self._fail("unexpected end of data")
            try:
                chunk = self._d.decompress(self._buf, min(want - got, CHUNK))
            except zlib.error as e:
                raise self._fail(e) from e
            self._buf = self._d.unconsumed_tail
            parts.append(chunk)
            got += len(chunk)
        self.out += got
        if self.out > self.limit:
            raise DataError(f"{self.name}: gzip data expands beyond {self.limit:,} bytes{self.why}; refused "
                            "while decompressing (a corrupt file or a decompression bomb)")
        return b"".join(parts)


def is_gzip(path: str | os.PathLike[str]) -> bool:
    with open_regular(path) as f:
        return f.read(2) == GZIP_MAGIC


def gunzip_bounded(data: bytes, limit: int, name: str, why: str = "") -> bytes:
    """Decompress gzip ``data`` held in memory, refusing (while streaming) output beyond ``limit`` bytes."""
    import io

    return BoundedGunzip(io.BytesIO(data), limit, name, why).read()
