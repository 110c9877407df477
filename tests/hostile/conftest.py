"""Helpers of the hostile-input suite: every input must end in a valid result or a convscope error with a
message, within a time and a memory bound."""

from __future__ import annotations

import contextlib
import signal
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import pytest

from convscope.errors import ConvscopeError


class Hang(AssertionError):
    """The call ran past its time bound (a hang, as far as a user can tell)."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Fail with Hang when the block runs longer than ``seconds`` (SIGALRM: main thread, POSIX)."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn: Callable[[], object], seconds: float = 10.0, max_bytes: int | None = None) -> object:
    """Run ``fn``: return its result, or the ConvscopeError it raised (whose message must say something).

    Any other exception propagates (the test fails with it); so does a Hang, or a Python-heap peak
    (tracemalloc, which numpy's buffers report to) above ``max_bytes``.
    """
    started = tracemalloc.is_tracing()
    if max_bytes is not None and not started:
        tracemalloc.start()
    if max_bytes is not None:
        tracemalloc.reset_peak()
    try:
        with time_bound(seconds):
            try:
                result = fn()
            except ConvscopeError as e:
                assert len(str(e)) > 10, f"error without a message: {e!r}"
                result = e
    finally:
        peak = tracemalloc.get_traced_memory()[1] if max_bytes is not None else 0
        if max_bytes is not None and not started:
            tracemalloc.stop()
    if max_bytes is not None:
        assert peak <= max_bytes, f"peak Python-heap memory {peak:,} bytes over the bound {max_bytes:,}"
    return result


def refused(result, *words: str) -> None:
    """A CLI result (CompletedProcess) that is a usage error (exit 2) without a traceback, naming ``words``."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` grayscale pixels with a tiny (invalid-length) IDAT: what a
    decompression bomb looks like from its header, without building the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def fifo(tmp_path):
    """A named pipe that nobody writes to: opening or reading it blocks forever unless refused first."""
    import os

    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path
