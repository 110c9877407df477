"""One exception hierarchy for everything convscope rejects.

Every message names the file or argument at fault, what is wrong with it and how to fix it.
Catch :class:`ConvscopeError` to handle them all.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator


class ConvscopeError(Exception):
    """Base class of every error convscope raises on purpose."""


class DataError(ConvscopeError, ValueError):
    """A dataset file or folder is missing, malformed, corrupt or unreadable."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset is nowhere to be found locally and could not be downloaded."""


class ChecksumError(DataError):
    """A file's checksum differs from the published one (corrupt, truncated or tampered)."""


class DownloadError(DataError):
    """Every mirror of a file failed to deliver it intact."""


class ConfigError(ConvscopeError, ValueError):
    """An argument or configuration value is invalid. ``arg``: the argument's Python name when the message starts
    with it (``top_k: ...``), so that the CLI can name its flag (``--top-k``) instead."""

    def __init__(self, message: str = "", *, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


class ConfigTypeError(ConfigError, TypeError):
    """An argument of a type an operation cannot take, where Python itself would raise ``TypeError`` (an objective
    plus a string): a ConfigError with a message in words, which ``except TypeError`` catches too."""


class WriteError(ConvscopeError, OSError):
    """A file could not be written (full disk, file-size limit, read-only place, a file where a folder should
    be); nothing partial is left. The message names the file and the cause; ``filename`` is the file and
    ``errno``/``strerror`` the system's reason, so code that handles ``OSError`` keeps working."""

    def __init__(self, message: str, *, filename: str | None = None, errno: int | None = None,
                 strerror: str | None = None) -> None:
        super().__init__(message)
        self.filename, self.errno, self.strerror = filename, errno, strerror

    def __str__(self) -> str:   # OSError's own str() would print "[Errno 28] ...: 'path'" instead of the message
        return str(self.args[0]) if self.args else ""


class ConvscopeWarning(UserWarning):
    """Base class of every warning convscope gives on purpose: something valid but probably not what was meant.
    The ``convscope`` command prints each one once, as ``convscope: warning: ...`` on standard error."""


class SettingWarning(ConvscopeWarning):
    """A training setting that is valid but unusual enough to be a mistake (a learning rate far outside its
    optimizer's usual range, fewer training images than classes, a batch larger than the training set)."""


@contextlib.contextmanager
def warnings_in_words() -> Iterator[None]:
    """Within the block, convscope's own warnings (:class:`ConvscopeWarning`) print as ``convscope: warning: ...``
    lines on standard error, each text once (a tune study's trials would repeat it); others print as Python
    prints them. The ``convscope`` command and its worker processes run inside it."""
    shown: set[str] = set()
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if not issubclass(category, ConvscopeWarning):
            return original(message, category, filename, lineno, file, line)
        if str(message) not in shown:
            shown.add(str(message))
            print(f"convscope: warning: {message}", file=sys.stderr, flush=True)
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvscopeWarning)   # not Python's once-per-code-line: deduplicated by text
        warnings.showwarning = show
        yield
