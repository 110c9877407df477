"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A reader (or a crash at any instant) sees either the old file or the complete new one, never a part.

Write observers (:func:`observe_writes`) see each atomic write after its temporary file holds all the data and
before it is made durable and renamed into place: the moment a crash leaves a stale temp file and the old
file intact. Tools that audit writes, and crash tests that kill the process there, install one; none is
installed by convscope itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import WriteError

WriteObserver = Callable[[Path, Path], None]   # (destination, temporary file holding the data, not yet renamed)
_observers: list[WriteObserver] = []


class _OutputSet:
    """The undo log of :func:`output_set`: the files this command created, the files it replaced (each with a
    hard link to its old content) and the folders it made."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        self.replaced: dict[Path, Path | None] = {}   # path -> link to the old content (None: could not keep it)
        self.folders: list[Path] = []

    def before_replace(self, path: Path) -> None:
        if path in self.replaced or path in self.created:
            return
        if not os.path.lexists(path):
            self.created.append(path)
            return
        keep = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
        try:
            os.link(path, keep, follow_symlinks=False)   # a second name for the old content: no data is copied
        except OSError:
            keep = None
        self.replaced[path] = keep

    def undo(self) -> None:
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for path, keep in self.replaced.items():
            if keep is not None:
                with contextlib.suppress(OSError):
                    os.replace(keep, path)
        for folders in reversed(self.folders):
            _remove_empty([folders])

    def commit(self) -> None:
        for keep in self.replaced.values():
            if keep is not None:
                with contextlib.suppress(OSError):
                    os.unlink(keep)


_sets: list[_OutputSet] = []


@contextlib.contextmanager
def output_set() -> Iterator[None]:
    """All or nothing for a command that writes several files (a JSON and its pictures, one picture per layer):
    when the block fails (a full disk on the third file, an error, Ctrl-C), every file it wrote through this
    module goes again, a file it replaced gets its old content back and the folders it made are removed, so no
    half-written set is left looking complete. Each file stays atomic on its own as always."""
    current = _OutputSet()
    _sets.append(current)
    try:
        yield
    except BaseException:
        current.undo()
        raise
    else:
        current.commit()
    finally:
        _sets.remove(current)


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


def os_error_hint(e: OSError) -> str:
    """What to do about a failed file operation, from its errno: the one wording every command uses."""
    code = getattr(e, "errno", None)
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        return "a file stands where a folder is needed: give a folder path (or remove the file)"
    if isinstance(e, IsADirectoryError):
        return "a folder stands where a file is needed: give a file path"
    if isinstance(e, PermissionError) or code == errno.EROFS:
        return "choose a location you may write, or change its permissions"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free space or choose another location"
    if code == errno.EFBIG:
        return "the file exceeds the size this system allows (see `ulimit -f`): raise the limit or write elsewhere"
    return "check that the path exists and is writable (output) or readable (input)"


def write_error(path: str | os.PathLike[str], e: OSError) -> WriteError:
    """``cannot write PATH: No space left on device; the disk is full: ...``: a failed write as a convscope error
    naming the file, its cause and the fix (``e`` itself when it already is one)."""
    if isinstance(e, WriteError):
        return e
    reason = e.strerror or str(e) or type(e).__name__
    return WriteError(f"cannot write {path}: {reason}; {os_error_hint(e)}", filename=str(path), errno=e.errno,
                      strerror=e.strerror)


def _missing_folders(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Undo a failed write's ``mkdir``: each folder it created goes again, deepest first, while empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


class _Sink:
    """The temporary file as the caller writes it: a failed ``write`` (disk full) is a :class:`WriteError`
    naming the destination, while other OSErrors raised in the ``with`` block (a download's) stay as they are."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self._f, self._path = f, path

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            raise write_error(self._path, e) from e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _refuse_special(path: Path) -> None:
    """The rename would put a regular file where a device, a named pipe or a socket is (as root, ``--png
    /dev/null`` would replace the system's /dev/null): refuse, naming what is there. A symbolic link is replaced
    itself, never what it points to."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return                                    # nothing there (or nothing we can see): the write decides
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
             (stat.S_ISSOCK, "a socket"))
    for test, kind in kinds:
        if test(mode):
            raise WriteError(f"{path}: exists and is {kind}, not a regular file; convscope replaces only files. "
                             "Give the path of a new or existing regular file", filename=str(path))


NAME_MAX = 255   # bytes in one file name on ext4, XFS, btrfs, tmpfs, APFS, NTFS (in UTF-16 units there)


def _temp_name(name: str) -> str:
    """``.NAME.<12 hex>.part``, with NAME shortened as far as needed to keep the whole within NAME_MAX bytes: a
    legal name of 237 to 255 bytes left no room for the 19 added ones, and its write failed."""
    token = secrets.token_hex(6)
    keep = name
    while len(os.fsencode(f".{keep}.{token}.part")) > NAME_MAX and keep:
        keep = keep[:-1]
    return f".{keep}.{token}.part"


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file (and any folder created for it) is removed and ``path`` is left untouched.
    A failure of the file system (full disk, size limit, read-only place, a file in the folder's way) is a
    :class:`~convscope.errors.WriteError` naming ``path`` and the cause.
    """
    path = Path(path)
    _refuse_special(path)
    made = _missing_folders(path.parent)
    tmp = path.parent / _temp_name(path.name)
    for log in _sets:
        log.folders.extend(reversed(made))   # outermost first: undone innermost first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 filtered by the umask: the same permissions a plain open() would give (mkstemp gives 0o600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        _remove_empty(made)
        raise write_error(path, e) from e
    try:
        f = os.fdopen(fd, "wb")
        try:
            yield typing.cast(BinaryIO, _Sink(f, path))
            try:
                f.flush()
                for observe in tuple(_observers):
                    observe(path, tmp)
                os.fsync(f.fileno())
                f.close()
                for log in _sets:
                    log.before_replace(path)
                os.replace(tmp, path)
            except OSError as e:
                raise write_error(path, e) from e
        finally:
            if not f.closed:   # after a failed write the buffer still holds data: close() would raise it again
                with contextlib.suppress(OSError):
                    f.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_empty(made)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def probe_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (with its parents) and write one byte into a uniquely named probe file there, which is
    always removed again: whether the folder takes a write now, before minutes of work. On failure the folders
    it created are removed too and the OSError is raised, for the caller to word (nothing is left behind)."""
    folder = Path(folder)
    made = _missing_folders(folder)
    probe = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)   # unique: others may probe too
        with os.fdopen(fd, "wb") as f:
            f.write(b"ok")   # a full disk or a size limit may still allow creating an empty file
    except OSError:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        _remove_empty(made)
        raise
    with contextlib.suppress(OSError):
        os.unlink(probe)
    for log in _sets:   # a command's output folder made here goes again if the command fails
        log.folders.extend(reversed(made))
    return folder


def writable_folder(folder: str | os.PathLike[str], what: str, example: str = "", arg: str | None = None) -> Path:
    """:func:`probe_folder` for a command's output folder: a file in the way, /proc or a read-only place is a
    ConfigError naming ``what`` (e.g. ``"--out runs/x"``), the cause and the fix (``example``); ``arg``: the
    argument it is about, when ``what`` starts with its name (the CLI then names the flag)."""
    from .errors import ConfigError

    folder = Path(folder)
    hint = f", e.g. {example}" if example else ""
    try:
        probe_folder(folder)
    except (FileExistsError, NotADirectoryError) as e:
        raise ConfigError(f"{what}: {e.filename} is not a folder: a file stands where a folder is needed; give a "
                          f"folder{hint}", arg=arg) from None
    except OSError as e:
        step = "write in" if folder.is_dir() else "create"
        raise ConfigError(f"{what}: cannot {step} the folder {folder}: {e.strerror or e}; {os_error_hint(e)}"
                          f"{hint}", arg=arg) from None
    return folder
