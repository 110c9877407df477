"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A reader (or a crash at any instant) sees either the old file or the complete new one, never a part.

Write observers (:func:`observe_writes`) see each atomic write after its temporary file holds all the data and
before it is made durable and renamed into place: the moment a crash leaves a stale temp file and the old
file intact. Tools that audit writes, and crash tests that kill the process there, install one; none is
installed by convscope itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

WriteObserver = Callable[[Path, Path], None]   # (destination, temporary file holding the data, not yet renamed)
_observers: list[WriteObserver] = []


@contextlib.contextmanager
def observe_writes(fn: WriteObserver) -> Iterator[None]:
    """Call ``fn(path, tmp)`` on every atomic write in this process while the context is open."""
    _observers.append(fn)
    try:
        yield
    finally:
        _observers.remove(fn)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    # 0o666 filtered by the umask: the same permissions a plain open() would give (mkstemp gives 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            for observe in tuple(_observers):
                observe(path, tmp)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def writable_folder(folder: str | os.PathLike[str], what: str, example: str = "") -> Path:
    """Create ``folder`` and probe it for writing now, before minutes of work: a file in the way, /proc or a
    read-only place is a ConfigError naming ``what`` (e.g. ``"--out runs/x"``) and the fix (``example``)."""
    import tempfile

    from .errors import ConfigError

    folder = Path(folder)
    hint = f", e.g. {example}" if example else ""
    step = "create"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        step = "write in"
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError) as e:
        raise ConfigError(f"{what}: {e.filename} is not a folder: a file stands where a folder is needed; give a "
                          f"folder{hint}") from None
    except OSError as e:
        raise ConfigError(f"{what}: cannot {step} the folder {folder} ({e.strerror or e}); give a folder you may "
                          f"write{hint}") from None
    return folder
