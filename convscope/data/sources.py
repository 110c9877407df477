"""Where dataset files come from, in order: an explicit root, the user cache, system installs, a download.

Downloads try each public mirror in turn, stream into a temporary file beside the target, check the
published MD5 *before* the atomic rename, and never leave a partial or unverified file behind.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import os
import re
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .._atomic import atomic_writer
from ..errors import ChecksumError, DataError, DatasetNotFoundError, DownloadError
from .safe_io import DEFAULT_MAX_BYTES, GZIP_MAGIC, gunzip_bounded, open_regular, read_regular


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, the published MD5 of that file, and (when known) the MD5 of its
    decompressed content, which still identifies a copy that was recompressed (Debian's are)."""

    name: str
    md5: str
    raw_md5: str | None = None
    # the published size of the content (decompressed), or for an archive read as a stream a cap on it:
    # no local copy may decompress beyond it, so a small gzip bomb in --data-dir costs nothing
    raw_size: int | None = None

    @property
    def max_file_bytes(self) -> int:
        """The largest a local copy (compressed or not) may be: the content plus gzip's worst-case overhead."""
        raw = self.raw_size if self.raw_size is not None else DEFAULT_MAX_BYTES
        return raw + raw // 1000 + (1 << 16)


@dataclass(frozen=True)
class RemoteSource:
    """A dataset's published files, its mirrors (base URLs, tried in order) and system install folders."""

    name: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    # a folder that may hold the archive's content already unpacked (CIFAR-10's cifar-10-batches-bin)
    unpacked_dir: str | None = None


MNIST = RemoteSource(
    "mnist",
    (
        RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "6bbc9ace898e44ae57da46a324031adb", 47_040_016),
        RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
                   "a25bea736e30d166cdddb491f175f624", 60_008),
        RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                   "2646ac647ad5339dbf082846283269ea", 7_840_016),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                   "27ae3e4e09519cfbb04c329615203637", 10_008),
    ),
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ("/usr/share/datasets/mnist",),
)

FASHION_MNIST = RemoteSource(
    "fashion-mnist",
    (
        RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                   "f4a8712d7a061bf5bd6d2ca38dc4d50a", 47_040_016),
        RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                   "9018921c3c673c538a1fc5bad174d6f9", 60_008),
        RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                   "8181f5470baa50b63fa0f6fddb340f0a", 7_840_016),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                   "15d484375f8d13e6eb1aabb0c3f46965", 10_008),
    ),
    (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    ("/usr/share/datasets/fashion-mnist",),
)

CIFAR10 = RemoteSource(
    "cifar10",
    # 170,052,171 bytes published; its tar stream holds 6 x 30,730,000 bytes of batches plus headers and two
    # small text files (184,381,440 bytes): 190 MB caps the stream
    (RemoteFile("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", raw_size=190_000_000),),
    ("https://www.cs.toronto.edu/~kriz/",),
    ("/usr/share/datasets/cifar10", "/usr/share/datasets/cifar-10"),
    unpacked_dir="cifar-10-batches-bin",
)


def cache_dir() -> Path:
    """The user cache: ``$CONVSCOPE_DATA`` if set, else ``~/.cache/convscope``."""
    env = os.environ.get("CONVSCOPE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "convscope"


def search_dirs(source: RemoteSource, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for ``source``'s files, in priority order."""
    dirs: list[Path] = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [root, root / source.name]
    dirs.append(cache_dir() / source.name)
    dirs += [Path(d) for d in source.system_dirs]
    return dirs


def download_dir(source: RemoteSource, root: str | os.PathLike[str] | None = None) -> Path:
    """Where downloads of ``source`` go: ``root/<name>`` when a root is given, else the user cache."""
    return (Path(root).expanduser() if root is not None else cache_dir()) / source.name


def _candidates(folder: Path, file: RemoteFile) -> list[Path]:
    names = [file.name]
    if file.name.endswith(".gz"):
        names.append(file.name[:-3])  # a copy someone already gunzipped
    return [folder / n for n in names]


def find_file(source: RemoteSource, file: RemoteFile, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first existing copy of ``file`` in the search folders, or None."""
    for folder in search_dirs(source, root):
        for path in _candidates(folder, file):
            if path.exists() and not path.is_dir():  # a FIFO or device is found too, then refused by name
                return path
    return None


def find_unpacked(source: RemoteSource, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first search folder holding the already-unpacked archive folder, if the source has one."""
    if source.unpacked_dir is None:
        return None
    for folder in search_dirs(source, root):
        if (folder / source.unpacked_dir).is_dir():
            return folder / source.unpacked_dir
    return None


def read_verified(path: Path, file: RemoteFile) -> bytes:
    """Read a local copy of ``file``, check it against the published checksums, return it decompressed.

    A gzip file passes if its own MD5 is the published one or its content's MD5 is the published raw one;
    an uncompressed copy passes on the raw MD5 (or, when no raw MD5 is published, is trusted as is).
    Bounded: the file may not exceed :attr:`RemoteFile.max_file_bytes`, and gzip content is decompressed
    in a stream that stops at the published size, so a decompression bomb is refused after reading at
    most that much, not after expanding whole. Only regular files are read (a FIFO or device is refused).
    """
    data = read_regular(path, file.max_file_bytes, f"copy of {file.name}")
    md5 = hashlib.md5(data).hexdigest()
    limit = file.raw_size if file.raw_size is not None else DEFAULT_MAX_BYTES
    why = f" (the published {file.name} holds {limit:,})" if file.raw_size is not None else ""
    if data.startswith(GZIP_MAGIC):
        if md5 == file.md5:
            return gunzip_bounded(data, limit, str(path), why)
        if file.raw_md5 is None:  # nothing else could make it pass: refuse without decompressing
            raise ChecksumError(f"{path}: checksum mismatch: MD5 {md5}, published {file.md5}. The file is corrupt, "
                                "truncated or not the published one; delete it and run again to re-fetch it")
        try:
            raw = gunzip_bounded(data, limit, str(path), why)
        except DataError as e:
            raise ChecksumError(f"{e}; MD5 {md5} is not the published {file.md5} either. Delete the file and run "
                                "again to re-fetch it") from None
    else:
        raw = data
        if md5 == file.md5 and not file.name.endswith(".gz"):
            return raw
    raw_md5 = hashlib.md5(raw).hexdigest()
    if file.raw_md5 is not None and raw_md5 == file.raw_md5:
        return raw
    if file.raw_md5 is None and raw is data and not file.name.endswith(".gz"):
        return raw
    want = f"{file.md5}" + (f" (or content MD5 {file.raw_md5})" if file.raw_md5 else "")
    raise ChecksumError(
        f"{path}: checksum mismatch: MD5 {md5}, content MD5 {raw_md5}, published {want}. "
        "The file is corrupt, truncated or not the published one; delete it and run again to re-fetch it"
    )


def check_published(path: Path, file: RemoteFile) -> None:
    """Check a local copy of a (large) published file against its MD5 in a stream, without decompressing it."""
    h = hashlib.md5()
    with open_regular(path, f"copy of {file.name}") as f:
        size = os.fstat(f.fileno()).st_size
        if size > file.max_file_bytes:
            raise ChecksumError(f"{path}: {size:,} bytes, more than the published {file.name} can be; "
                                "delete it and run again to re-fetch it")
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != file.md5:
        raise ChecksumError(f"{path}: checksum mismatch: MD5 {h.hexdigest()}, published {file.md5}. The file is "
                            "corrupt, truncated or not the published one; delete it and run again to re-fetch it")


def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


STALE_PART_SECONDS = 600   # a live download writes every few seconds (30 s read timeout); older parts are dead


def clean_stale_parts(dest: Path) -> list[Path]:
    """Remove the temporary ``.NAME.<hex>.part`` files that an earlier, killed download of ``dest`` left beside it
    (atomic_writer's naming; a kill -9 gives no chance to clean up). Parts written in the last
    :data:`STALE_PART_SECONDS` are left alone: another process may be downloading the same file right now."""
    removed = []
    now = time.time()
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        if not re.fullmatch(rf"\.{re.escape(dest.name)}\.[0-9a-f]{{12}}\.part", p.name):
            continue
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_PART_SECONDS:
                p.unlink()
                removed.append(p)
        except OSError:
            pass    # gone already, or not ours to remove: the download goes on regardless
    return removed


def download(urls: list[str] | tuple[str, ...], dest: str | os.PathLike[str], md5: str, *,
             progress: bool = True, timeout: float = 30.0, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Fetch one file from the first URL that delivers it intact; write it to ``dest`` atomically.

    The MD5 is checked on the temporary file before the rename, so ``dest`` never holds a partial or
    unverified file. A mirror that sends more than ``max_bytes`` (the most the published file can be; a stream
    without Content-Length that never ends) is cut off there. Raises :class:`DownloadError` listing each URL's
    failure when none succeeds.
    """
    dest = Path(dest)
    clean_stale_parts(dest)
    failures: list[str] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (https/http mirrors)
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                if total is not None and total > max_bytes:
                    raise DownloadError(f"the mirror announces {total:,} bytes, more than the published file can "
                                        f"be ({max_bytes:,} bytes); not the published file")
                digest = hashlib.md5()
                received = 0
                with atomic_writer(dest) as out, tqdm(total=total, unit="B", unit_scale=True, leave=False,
                                                       desc=dest.name, disable=not progress) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        if received + len(chunk) > max_bytes:
                            raise DownloadError(f"the mirror sent more than {max_bytes:,} bytes, more than the "
                                                "published file can be; stopped (not the published file)")
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                    if total is not None and received != total:
                        raise DownloadError(f"connection closed after {received} of {total} bytes")
                    if digest.hexdigest() != md5:
                        raise ChecksumError(f"checksum mismatch: MD5 {digest.hexdigest()}, published {md5}")
            return dest
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, DownloadError,
                ChecksumError) as e:
            reason = getattr(e, "reason", None) or e
            failures.append(f"  {url}: {type(e).__name__}: {reason}")
    raise DownloadError(f"could not download {dest.name}; every mirror failed (nothing was kept):\n"
                        + "\n".join(failures))


def fetch(source: RemoteSource, root: str | os.PathLike[str] | None = None, *, download_missing: bool = True,
          progress: bool = True, names: Collection[str] | None = None) -> dict[str, Path]:
    """Paths of ``source``'s files (``names``: only those, e.g. a test split's two; default all), downloading the
    missing ones into :func:`download_dir`.

    Raises :class:`DatasetNotFoundError` naming every place looked and how to fix it when a file is
    neither found nor downloadable.
    """
    found: dict[str, Path] = {}
    for file in source.files:
        if names is not None and file.name not in names:
            continue
        path = find_file(source, file, root)
        if path is None and download_missing:
            target = download_dir(source, root) / file.name
            try:
                path = download([m + file.name for m in source.mirrors], target, file.md5, progress=progress,
                                max_bytes=file.max_file_bytes)
            except (DownloadError, OSError) as e:
                raise DatasetNotFoundError(_not_found_message(source, file, root, e)) from e
        if path is None:
            raise DatasetNotFoundError(_not_found_message(source, file, root, None))
        found[file.name] = path
    return found


def _not_found_message(source: RemoteSource, file: RemoteFile, root, error: Exception | None) -> str:
    looked = "\n".join(f"  {p}" for d in search_dirs(source, root) for p in _candidates(d, file))
    tail = f"\nDownload failed:\n{error}" if error else "\nDownloading was not allowed."
    hint = {
        "fashion-mnist": " On Debian/Ubuntu: apt-get install dataset-fashion-mnist.",
    }.get(source.name, "")
    return (
        f"dataset {source.name!r}: {file.name} not found. Looked in:\n{looked}{tail}\n"
        f"To fix: connect to the internet and run again, or copy the published files "
        f"({', '.join(f.name for f in source.files)}) "
        f"into {download_dir(source, root)}, or into a folder you then name with --data-dir (from Python: "
        f"root=).{hint}"
    )
