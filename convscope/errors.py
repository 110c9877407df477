"""One exception hierarchy for everything convscope rejects.

Every message names the file or argument at fault, what is wrong with it and how to fix it.
Catch :class:`ConvscopeError` to handle them all.
"""

from __future__ import annotations


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
